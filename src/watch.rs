//! Hot reload: watch a directory (not files — editors save by writing a temp file and
//! renaming it over the old one) and report, debounced, which of its top-level entries
//! changed. What to do with a change is the caller's business.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::mpsc;

/// Keeps the watch alive; dropping it stops watching.
pub struct DirWatch {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
}

/// Watch `dir` recursively; each message is the set of its direct children (files or
/// folders) under which something changed during one debounce window.
pub fn watch_dir(
    dir: &Path,
    debounce: Duration,
) -> notify::Result<(DirWatch, mpsc::UnboundedReceiver<BTreeSet<PathBuf>>)> {
    let root = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    let (tx, rx) = mpsc::unbounded_channel();
    let top = root.clone();
    let mut debouncer = new_debouncer(debounce, None, move |result: DebounceEventResult| {
        let events = match result {
            Ok(events) => events,
            Err(errors) => {
                for e in errors {
                    tracing::warn!(error = %e, "file watcher error");
                }
                return;
            }
        };
        let changed: BTreeSet<PathBuf> = events
            .iter()
            .flat_map(|e| e.paths.iter())
            .filter_map(|p| child_of(&top, p))
            .collect();
        if !changed.is_empty() {
            let _ = tx.send(changed);
        }
    })?;
    debouncer.watch(&root, RecursiveMode::Recursive)?;
    Ok((
        DirWatch {
            _debouncer: debouncer,
        },
        rx,
    ))
}

/// The direct child of `root` that contains `path`.
fn child_of(root: &Path, path: &Path) -> Option<PathBuf> {
    let rel = path.strip_prefix(root).ok()?;
    let first = rel.components().next()?;
    Some(root.join(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_nested_paths_to_top_level_children() {
        let root = Path::new("/p");
        assert_eq!(
            child_of(root, Path::new("/p/a/b/c.wasm")),
            Some(PathBuf::from("/p/a"))
        );
        assert_eq!(
            child_of(root, Path::new("/p/x.yaml")),
            Some(PathBuf::from("/p/x.yaml"))
        );
        assert_eq!(child_of(root, Path::new("/q/x")), None);
        assert_eq!(child_of(root, Path::new("/p")), None);
    }

    #[tokio::test]
    async fn reports_a_rename_save_once_debounced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("plug")).unwrap();
        let (_watch, mut rx) = watch_dir(dir.path(), Duration::from_millis(50)).unwrap();
        // An editor's save: write a temp file, rename it over the target.
        let tmp = dir.path().join("plug/.plugin.toml.swp");
        std::fs::write(&tmp, "x").unwrap();
        std::fs::rename(&tmp, dir.path().join("plug/plugin.toml")).unwrap();
        let changed = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a change within 5 s")
            .unwrap();
        let expected = dir.path().canonicalize().unwrap().join("plug");
        assert_eq!(changed.into_iter().collect::<Vec<_>>(), vec![expected]);
    }
}
