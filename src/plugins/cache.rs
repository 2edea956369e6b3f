//! Compiled components cached on disk, keyed by the component's content hash and the
//! engine's compatibility hash, so a restart (or an unchanged plugin touched on disk)
//! loads native code in milliseconds instead of compiling again.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of precompiled `.cwasm` artefacts.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded precompiled code.
    Hit,
    /// Compiled now (and stored for next time).
    Compiled,
}

/// The content hash of a component binary (hex SHA-256).
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl ComponentCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry(&self, engine: &Engine, hash: &str) -> PathBuf {
        let mut h = Sha256::new();
        h.update(hash.as_bytes());
        std::hash::Hash::hash(
            &engine.precompile_compatibility_hash(),
            &mut HashWriter(&mut h),
        );
        self.dir
            .join(format!("{}.cwasm", hex::encode(&h.finalize()[..16])))
    }

    /// Load `bytes` (a component binary whose content hash is `hash`) from the cache,
    /// compiling and storing it on a miss. A corrupt or stale entry is replaced.
    pub fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
        hash: &str,
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let entry = self.entry(engine, hash);
        if entry.exists() {
            // SAFETY: the file was written by `precompile_component` of an engine with
            // the same compatibility hash (part of the key), in a directory only
            // Switchyard writes; `deserialize_file` still checks the header and refuses
            // an incompatible artefact, in which case we recompile below.
            match unsafe { Component::deserialize_file(engine, &entry) } {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(e) => {
                    tracing::warn!(path = %entry.display(), error = %e, "discarding unusable cache entry")
                }
            }
        }
        let compiled = engine.precompile_component(bytes)?;
        // The cache only saves time: failing to write it must not fail the load.
        if let Err(e) = self.store(&entry, &compiled) {
            tracing::warn!(path = %entry.display(), error = %e, "cannot write the compile cache; continuing without it");
        }
        // SAFETY: as above; these bytes were just produced by this engine.
        let component = unsafe { Component::deserialize(engine, &compiled)? };
        Ok((component, CacheOutcome::Compiled))
    }
}

impl ComponentCache {
    /// Write `compiled` to `entry` through a temporary file of its own, then rename, so
    /// a reader never sees half a file and concurrent writers of the same entry (two
    /// loads of one component at once) never share a temporary file.
    fn store(&self, entry: &Path, compiled: &[u8]) -> std::io::Result<()> {
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        std::fs::create_dir_all(&self.dir)?;
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = entry.with_extension(format!("tmp-{}-{n}", std::process::id()));
        std::fs::write(&tmp, compiled)?;
        std::fs::rename(&tmp, entry).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }
}

/// Feeds `Hash` output into a SHA-256 state.
struct HashWriter<'a>(&'a mut Sha256);

impl std::hash::Hasher for HashWriter<'_> {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many loads of one component at once, on a cold cache: each compiles and writes
    /// the same entry; all succeed and the entry is usable afterwards.
    #[test]
    fn concurrent_first_loads_of_one_component() {
        let engine = Engine::default();
        // The smallest component: an empty one, in binary form.
        let bytes: &[u8] = b"\0asm\x0d\0\x01\0";
        let hash = content_hash(bytes);
        let dir = tempfile::tempdir().unwrap();
        let cache = ComponentCache::new(dir.path());
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| cache.load(&engine, bytes, &hash).unwrap());
            }
        });
        let (_, outcome) = cache.load(&engine, bytes, &hash).unwrap();
        assert_eq!(outcome, CacheOutcome::Hit);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "temporary files left behind: {leftovers:?}"
        );
    }
}
