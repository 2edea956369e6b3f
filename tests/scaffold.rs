//! `switchyard plugin new` end to end, with the real binary: scaffold a plugin into a
//! temporary folder (outside the repository, so the folder must be self-contained), build
//! it with its own `build.sh`, and load it with `switchyard plugin check`.
//!
//! Toolchains install into the repository's `.tools/` (through `SWITCHYARD_TOOLS`) and
//! Rust plugins build in the repository's `target/`, so each tool is installed once and
//! the wit-bindgen dependencies are compiled once (the shipped plugins share both).
//!

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn switchyard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
}

/// Run `cmd`; its stdout if it succeeds, else an error with its whole output.
fn run(what: &str, cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{what}: cannot run: {e}"))?;
    if !out.status.success() {
        return Err(format!("{what} failed:\n{}", show(&out)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn show(out: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `plugin new` → `build.sh` → `plugin check`, in a fresh temporary folder.
fn new_build_check(lang: &str, kind: &str) -> Result<(), String> {
    let name = format!("new-{lang}-{kind}");
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");

    let created = run(
        "plugin new",
        switchyard()
            .args([
                "plugin", "new", &name, "--lang", lang, "--kind", kind, "--dir",
            ])
            .arg(&plugins),
    )?;
    let dir = plugins.join(&name);
    if !created.contains(&dir.display().to_string()) {
        return Err(format!(
            "plugin new did not print {}: {created}",
            dir.display()
        ));
    }

    run(
        &format!("{name}/build.sh"),
        Command::new("bash")
            .arg(dir.join("build.sh"))
            .env("SWITCHYARD_TOOLS", repo().join(".tools"))
            .env("CARGO_TARGET_DIR", repo().join("target")),
    )?;

    let checked = run(
        &format!("plugin check {name}"),
        switchyard()
            .args(["plugin", "check"])
            .arg(&dir)
            .arg("--data-dir")
            .arg(tmp.path().join("data")),
    )?;
    if !checked.starts_with(&format!("ok: {name} 0.1.0 ({kind}, ")) {
        return Err(format!("plugin check {name} said: {checked}"));
    }
    Ok(())
}

/// Scaffold, build and check every kind in `lang`; report all failures at once.
fn every_kind(lang: &str) {
    let failed: Vec<String> = ["agent-adapter", "connector", "trigger"]
        .into_iter()
        .filter_map(|kind| {
            new_build_check(lang, kind)
                .err()
                .map(|e| format!("{lang} {kind}: {e}"))
        })
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

#[test]
fn rust_every_kind() {
    every_kind("rust");
}

#[test]
fn python_every_kind() {
    every_kind("python");
}

#[test]
fn js_every_kind() {
    every_kind("js");
}

#[test]
fn c_every_kind() {
    every_kind("c");
}

#[test]
fn refuses_bad_names_and_existing_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let new = |name: &str| {
        switchyard()
            .args([
                "plugin", "new", name, "--lang", "c", "--kind", "trigger", "--dir",
            ])
            .arg(tmp.path())
            .output()
            .unwrap()
    };
    for name in ["Bad", "1st", "has_underscore", "../escape"] {
        let out = new(name);
        assert!(!out.status.success(), "{name}: {}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("invalid plugin name"),
            "{}",
            show(&out)
        );
    }
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);

    let taken = tmp.path().join("taken");
    std::fs::create_dir(&taken).unwrap();
    std::fs::write(taken.join("keep.txt"), "mine").unwrap();
    let out = new("taken");
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already exists"),
        "{}",
        show(&out)
    );
    let left: Vec<_> = std::fs::read_dir(&taken).unwrap().collect();
    assert_eq!(left.len(), 1);
    assert_eq!(read(&taken.join("keep.txt")), "mine");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}
