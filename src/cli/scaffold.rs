//! `switchyard plugin new`: create a plugin folder from the templates in `templates/`.
//!
//! The generated folder `DIR/NAME/` builds with one command (`bash build.sh`) and passes
//! `switchyard plugin check`, for every language × kind. Templates are plain files under
//! `templates/<lang>/` (per-language sources, `build.sh`, notes) and `templates/common/`
//! (manifest per kind, README skeleton, usage per kind), embedded with `include_str!` and
//! filled in by replacing `{{placeholder}}`s (see [`render`]).
//!
//! Where the toolchain comes from — one way, for every language: the folder is
//! self-contained. The scaffold copies the contract (`wit/*.wit` of this repository) into
//! `NAME/wit/`, and `plugins/toolchains/common.sh` plus the language's script into
//! `NAME/toolchain/`; `build.sh` sources only those copies. `common.sh` installs tools
//! into `$SWITCHYARD_TOOLS` if set, else into the `.tools/` of the Switchyard checkout
//! the folder sits in (found by walking up from the script), else into
//! `${XDG_CACHE_HOME:-~/.cache}/switchyard/tools`. A Rust plugin's cargo target dir is
//! likewise `$CARGO_TARGET_DIR`, else the checkout's `target/`, else `NAME/target/`.
//! So a plugin made inside `plugins/` behaves like the shipped ones, and one made
//! anywhere else still builds with nothing but its own folder.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::plugins::PluginKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
    C,
}

/// The contract, copied into every plugin's `wit/`.
const WIT: &[(&str, &str)] = &[
    ("agent.wit", include_str!("../../wit/agent.wit")),
    ("connector.wit", include_str!("../../wit/connector.wit")),
    ("host.wit", include_str!("../../wit/host.wit")),
    ("trigger.wit", include_str!("../../wit/trigger.wit")),
    ("types.wit", include_str!("../../wit/types.wit")),
    ("worlds.wit", include_str!("../../wit/worlds.wit")),
];

const COMMON_SH: &str = include_str!("../../plugins/toolchains/common.sh");
/// First line of every copied toolchain script.
const COPY_NOTE: &str =
    "# Copied from Switchyard's plugins/toolchains/ by `switchyard plugin new`.\n";

const README: &str = include_str!("../../templates/common/README.md");
/// The Rust template's dependencies, as locked in plugins/echo-agent.
const CARGO_LOCK: &str = include_str!("../../templates/rust/Cargo.lock.tmpl");

/// A file of the generated folder: its path inside it, its template, and whether it is
/// executable.
struct Template {
    path: &'static str,
    text: &'static str,
    executable: bool,
}

const fn file(path: &'static str, text: &'static str) -> Template {
    Template {
        path,
        text,
        executable: false,
    }
}

impl Lang {
    /// The manifest's `language`.
    fn language(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "javascript",
            Lang::C => "c",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
            Lang::C => "C",
        }
    }

    /// The language's script in `plugins/toolchains/`: file name and text.
    fn toolchain(self) -> (&'static str, &'static str) {
        match self {
            Lang::Rust => ("rust.sh", include_str!("../../plugins/toolchains/rust.sh")),
            Lang::Python => (
                "python.sh",
                include_str!("../../plugins/toolchains/python.sh"),
            ),
            Lang::Js => ("js.sh", include_str!("../../plugins/toolchains/js.sh")),
            Lang::C => ("c.sh", include_str!("../../plugins/toolchains/c.sh")),
        }
    }

    /// The "Files" section of the README.
    fn notes(self) -> &'static str {
        match self {
            Lang::Rust => include_str!("../../templates/rust/NOTES.md"),
            Lang::Python => include_str!("../../templates/python/NOTES.md"),
            Lang::Js => include_str!("../../templates/js/NOTES.md"),
            Lang::C => include_str!("../../templates/c/NOTES.md"),
        }
    }

    /// `build.sh`, `.gitignore` and the sources for `kind`.
    fn templates(self, kind: PluginKind) -> Vec<Template> {
        use PluginKind::*;
        let build = |text| Template {
            path: "build.sh",
            text,
            executable: true,
        };
        match self {
            Lang::Rust => vec![
                build(include_str!("../../templates/rust/build.sh")),
                file(".gitignore", include_str!("../../templates/rust/gitignore")),
                file(
                    "Cargo.toml",
                    include_str!("../../templates/rust/Cargo.toml.tmpl"),
                ),
                file(
                    "src/lib.rs",
                    match kind {
                        AgentAdapter => include_str!("../../templates/rust/src/agent-adapter.rs"),
                        Connector => include_str!("../../templates/rust/src/connector.rs"),
                        Trigger => include_str!("../../templates/rust/src/trigger.rs"),
                    },
                ),
            ],
            Lang::Python => vec![
                build(include_str!("../../templates/python/build.sh")),
                file(
                    ".gitignore",
                    include_str!("../../templates/python/gitignore"),
                ),
                file(
                    "app.py",
                    match kind {
                        AgentAdapter => include_str!("../../templates/python/agent-adapter.py"),
                        Connector => include_str!("../../templates/python/connector.py"),
                        Trigger => include_str!("../../templates/python/trigger.py"),
                    },
                ),
            ],
            Lang::Js => vec![
                build(include_str!("../../templates/js/build.sh")),
                file(".gitignore", include_str!("../../templates/js/gitignore")),
                file(
                    "app.js",
                    match kind {
                        AgentAdapter => include_str!("../../templates/js/agent-adapter.js"),
                        Connector => include_str!("../../templates/js/connector.js"),
                        Trigger => include_str!("../../templates/js/trigger.js"),
                    },
                ),
            ],
            Lang::C => vec![
                build(include_str!("../../templates/c/build.sh")),
                file(".gitignore", include_str!("../../templates/c/gitignore")),
                file(
                    "plugin.c",
                    match kind {
                        AgentAdapter => include_str!("../../templates/c/agent-adapter.c"),
                        Connector => include_str!("../../templates/c/connector.c"),
                        Trigger => include_str!("../../templates/c/trigger.c"),
                    },
                ),
                file("json.c", include_str!("../../templates/c/json.c")),
                file("json.h", include_str!("../../templates/c/json.h")),
            ],
        }
    }
}

/// Per kind: the manifest template, the README's usage section, and the one-line
/// summary (the manifest's description and what `describe()` says).
fn kind_templates(kind: PluginKind) -> (&'static str, &'static str, &'static str) {
    match kind {
        PluginKind::AgentAdapter => (
            include_str!("../../templates/common/plugin-agent-adapter.toml"),
            include_str!("../../templates/common/usage-agent-adapter.md"),
            "Streams a reply word by word and stops when the turn is aborted.",
        ),
        PluginKind::Connector => (
            include_str!("../../templates/common/plugin-connector.toml"),
            include_str!("../../templates/common/usage-connector.md"),
            "Turns a JSON webhook into one bus event.",
        ),
        PluginKind::Trigger => (
            include_str!("../../templates/common/plugin-trigger.toml"),
            include_str!("../../templates/common/usage-trigger.md"),
            "Fires when an event's topic starts with a configured prefix.",
        ),
    }
}

/// Create `dir/name/`, a plugin of `kind` in `lang`; returns its path. Refuses an invalid
/// name and never touches an existing `dir/name`.
pub fn scaffold(lang: Lang, kind: PluginKind, name: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    if lang == Lang::Rust && lock_packages(CARGO_LOCK).any(|p| p == name) {
        bail!(
            "a Rust plugin cannot be named `{name}`: its crate would clash with the \
             dependency of that name; choose another name"
        );
    }
    let target = dir.join(name);
    let exists = || {
        anyhow::anyhow!(
            "{} already exists: choose another name or --dir (plugin new never overwrites)",
            target.display()
        )
    };
    if std::fs::symlink_metadata(&target).is_ok() {
        return Err(exists());
    }
    let files = plan(lang, kind, name);

    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    match std::fs::create_dir(&target) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Err(exists()),
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", target.display())),
    }
    if let Err(e) = write_files(&target, &files) {
        // Only the folder created just above is removed.
        let _ = std::fs::remove_dir_all(&target);
        return Err(e);
    }
    Ok(target)
}

/// The manifest's rule: 1-64 lower-case letters, digits and '-', starting with a letter.
fn check_name(name: &str) -> anyhow::Result<()> {
    if !crate::plugins::manifest::is_plugin_name(name) {
        bail!(
            "invalid plugin name `{name}`: use 1-64 lower-case letters, digits and '-', \
             starting with a letter (it names the folder, the manifest and the component)"
        );
    }
    Ok(())
}

/// One file to write: path inside the plugin folder, contents, executable or not.
type Planned = (String, String, bool);

/// Every file of the new folder, rendered.
fn plan(lang: Lang, kind: PluginKind, name: &str) -> Vec<Planned> {
    let (manifest, usage, summary) = kind_templates(kind);
    let (toolchain_script, toolchain_text) = lang.toolchain();
    let crate_name = name.replace('-', "_");
    let c_world = kind.world().replace('-', "_");
    let vars: &[(&str, &str)] = &[
        ("name", name),
        ("crate_name", &crate_name),
        ("kind", kind.as_str()),
        ("world", kind.world()),
        ("c_world", &c_world),
        ("language", lang.language()),
        ("language_title", lang.title()),
        ("summary", summary),
        ("toolchain_script", toolchain_script),
    ];

    let mut files: Vec<Planned> = Vec::new();
    files.push(("plugin.toml".into(), render(manifest, vars), false));
    let readme = README
        .replace("{{lang_notes}}", lang.notes())
        .replace("{{usage}}", usage);
    files.push(("README.md".into(), render(&readme, vars), false));
    for t in lang.templates(kind) {
        files.push((t.path.into(), render(t.text, vars), t.executable));
    }
    if lang == Lang::Rust {
        let lock = cargo_lock(CARGO_LOCK, name);
        files.push(("Cargo.lock".into(), lock, false));
    }
    for (script, text) in [("common.sh", COMMON_SH), (toolchain_script, toolchain_text)] {
        files.push((
            format!("toolchain/{script}"),
            format!("{COPY_NOTE}{text}"),
            false,
        ));
    }
    for (file, text) in WIT {
        files.push((format!("wit/{file}"), (*text).to_owned(), false));
    }
    files
}

/// `template` with every `{{key}}` of `vars` replaced by its value.
fn render(template: &str, vars: &[(&str, &str)]) -> String {
    vars.iter().fold(template.to_owned(), |text, (key, value)| {
        text.replace(&format!("{{{{{key}}}}}"), value)
    })
}

/// The crate's `Cargo.lock`: the template's packages (the dependencies, pinned as in
/// plugins/echo-agent) plus the crate itself, in cargo's order (by name), so that
/// `cargo build --locked` accepts it and builds offline from an already-filled cache.
fn cargo_lock(template: &str, name: &str) -> String {
    let own = format!(
        "[[package]]\nname = \"{name}\"\nversion = \"0.1.0\"\ndependencies = [\n \"serde_json\",\n \"wit-bindgen\",\n]"
    );
    let mut blocks: Vec<&str> = template.trim_end().split("\n\n").collect();
    let at = blocks
        .iter()
        .position(|b| package_name(b).is_some_and(|n| n > name))
        .unwrap_or(blocks.len());
    blocks.insert(at, &own);
    blocks.join("\n\n") + "\n"
}

/// The name of a `[[package]]` block of a Cargo.lock.
fn package_name(block: &str) -> Option<&str> {
    let rest = block.strip_prefix("[[package]]\nname = \"")?;
    rest.split('"').next()
}

/// The names of the packages in a Cargo.lock.
fn lock_packages(lock: &str) -> impl Iterator<Item = &str> {
    lock.split("\n\n").filter_map(package_name)
}

fn write_files(target: &Path, files: &[Planned]) -> anyhow::Result<()> {
    for (path, text, executable) in files {
        let path = target.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        #[cfg(unix)]
        if *executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("cannot make {} executable", path.display()))?;
        }
        #[cfg(not(unix))]
        let _ = executable;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LANGS: [Lang; 4] = [Lang::Rust, Lang::Python, Lang::Js, Lang::C];
    const KINDS: [PluginKind; 3] = [
        PluginKind::AgentAdapter,
        PluginKind::Connector,
        PluginKind::Trigger,
    ];

    /// The `{{key}}`s left in `text`.
    fn placeholders(text: &str) -> Vec<&str> {
        text.match_indices("{{")
            .filter_map(|(i, _)| {
                let key = text[i + 2..].split("}}").next()?;
                let ok = !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_');
                (ok && text[i + 2 + key.len()..].starts_with("}}")).then_some(key)
            })
            .collect()
    }

    #[test]
    fn refuses_invalid_names() {
        let dir = tempfile::tempdir().unwrap();
        let long = "a".repeat(65);
        for name in [
            "",
            "Foo",
            "1abc",
            "-abc",
            "my_plugin",
            "a.b",
            "a/b",
            "..",
            "é",
            &long,
        ] {
            let err = scaffold(Lang::Rust, PluginKind::Trigger, name, dir.path())
                .unwrap_err()
                .to_string();
            assert!(err.contains("invalid plugin name"), "{name:?}: {err}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        for name in ["a", "my-plugin-2", &"b".repeat(64)] {
            check_name(name).unwrap();
        }
    }

    #[test]
    fn refuses_rust_names_of_dependencies() {
        let dir = tempfile::tempdir().unwrap();
        let err = scaffold(Lang::Rust, PluginKind::Trigger, "wit-bindgen", dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("clash"), "{err}");
        scaffold(Lang::C, PluginKind::Trigger, "wit-bindgen", dir.path()).unwrap();
    }

    #[test]
    fn never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let existing = dir.path().join("taken");
        std::fs::create_dir(&existing).unwrap();
        std::fs::write(existing.join("plugin.toml"), "mine").unwrap();
        std::fs::write(dir.path().join("a-file"), "mine too").unwrap();
        for name in ["taken", "a-file"] {
            let err = scaffold(Lang::C, PluginKind::Connector, name, dir.path())
                .unwrap_err()
                .to_string();
            assert!(err.contains("already exists"), "{err}");
        }
        assert_eq!(
            std::fs::read_to_string(existing.join("plugin.toml")).unwrap(),
            "mine"
        );
        assert_eq!(std::fs::read_dir(&existing).unwrap().count(), 1);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a-file")).unwrap(),
            "mine too"
        );
    }

    #[test]
    fn creates_the_folder_and_missing_parents() {
        let dir = tempfile::tempdir().unwrap();
        let parent = dir.path().join("new").join("plugins");
        let made = scaffold(Lang::Python, PluginKind::Trigger, "hello", &parent).unwrap();
        assert_eq!(made, parent.join("hello"));
        for file in [
            "plugin.toml",
            "README.md",
            "build.sh",
            ".gitignore",
            "app.py",
            "toolchain/common.sh",
            "toolchain/python.sh",
            "wit/worlds.wit",
        ] {
            assert!(made.join(file).is_file(), "{file} is missing");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(made.join("build.sh"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o111, 0o111);
        }
    }

    #[test]
    fn every_template_renders_completely_and_its_manifest_is_valid() {
        for lang in LANGS {
            for kind in KINDS {
                let files = plan(lang, kind, "my-plugin");
                for (path, text, _) in &files {
                    let left = placeholders(text);
                    assert!(left.is_empty(), "{lang:?}/{kind}: {path} keeps {left:?}");
                }
                let (_, manifest, _) = files.iter().find(|f| f.0 == "plugin.toml").unwrap();
                let m = crate::plugins::PluginManifest::parse(manifest, Path::new("plugin.toml"))
                    .unwrap_or_else(|e| panic!("{lang:?}/{kind}: {e}"));
                assert_eq!(m.name, "my-plugin");
                assert_eq!(m.kind, kind);
                assert_eq!(m.language.as_deref(), Some(lang.language()));
                assert!(m.permissions.allowed_hosts.is_empty());
                assert!(!m.permissions.bus_publish && !m.permissions.kv);
            }
        }
    }

    #[test]
    fn cargo_lock_keeps_cargo_order() {
        assert!(lock_packages(CARGO_LOCK).any(|p| p == "wit-bindgen"));
        for name in ["aaa", "my-plugin", "serde-x", "zzz"] {
            let lock = cargo_lock(CARGO_LOCK, name);
            let names: Vec<&str> = lock
                .lines()
                .filter_map(|l| l.strip_prefix("name = \""))
                .map(|n| n.trim_end_matches('"'))
                .collect();
            let mut sorted = names.clone();
            sorted.sort();
            assert_eq!(names, sorted, "{name}");
            assert!(names.contains(&name));
            assert!(lock.starts_with("# This file is automatically @generated by Cargo."));
            assert!(!lock.contains("\n\n\n"));
        }
    }

    #[test]
    fn embeds_every_wit_file_of_the_contract() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("wit");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".wit"))
            .collect();
        on_disk.sort();
        let embedded: Vec<&str> = WIT.iter().map(|(n, _)| *n).collect();
        assert_eq!(embedded, on_disk, "update WIT in src/cli/scaffold.rs");
    }
}
