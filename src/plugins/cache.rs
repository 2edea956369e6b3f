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
        std::fs::create_dir_all(&self.dir)?;
        // Write then rename, so a concurrent reader never sees half a file.
        let tmp = entry.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, &compiled)?;
        std::fs::rename(&tmp, &entry)?;
        // SAFETY: as above; these bytes were just produced by this engine.
        let component = unsafe { Component::deserialize(engine, &compiled)? };
        Ok((component, CacheOutcome::Compiled))
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
