//! `switchyard plugin list|check|call|new`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::client::{Client, ServerArgs};
use crate::plugins::{EngineOptions, HostServices, PluginHost, PluginSummary, ReloadOutcome};

#[derive(clap::Subcommand)]
pub enum PluginCommand {
    /// List plugins: of a running server, or of a plugins directory offline (--plugins).
    List {
        #[command(flatten)]
        server: ServerArgs,
        /// Load this plugins directory here instead of asking a server.
        #[arg(long)]
        plugins: Option<PathBuf>,
        /// Where compiled components are cached when listing offline.
        #[arg(long, env = "SWITCHYARD_DATA_DIR", default_value = ".switchyard")]
        data_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Validate a plugin folder (manifest + component) offline.
    Check {
        /// The plugin folder (or its plugin.toml).
        path: PathBuf,
        #[arg(long, env = "SWITCHYARD_DATA_DIR", default_value = ".switchyard")]
        data_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Create a new plugin folder that builds with one command and passes `plugin check`.
    New {
        /// Plugin name: lower-case letters, digits and '-'.
        name: String,
        #[arg(long)]
        lang: super::scaffold::Lang,
        #[arg(long, default_value = "trigger")]
        kind: crate::plugins::PluginKind,
        /// Where to create it (the plugin goes in DIR/NAME).
        #[arg(long, env = "SWITCHYARD_PLUGINS", default_value = "plugins")]
        dir: PathBuf,
    },
    /// Call one export of a loaded plugin with JSON input, for debugging.
    Call {
        name: String,
        /// describe | run-turn | supports-steering | handle-webhook | deliver | evaluate
        export: String,
        /// JSON input: inline, @FILE, or - for stdin.
        #[arg(long, default_value = "{}")]
        input: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

pub async fn run(cmd: PluginCommand) -> anyhow::Result<()> {
    match cmd {
        PluginCommand::List {
            server,
            plugins,
            data_dir,
            json,
        } => {
            let list: Vec<PluginSummary> = match plugins {
                Some(dir) => {
                    let host = offline_host(&data_dir)?;
                    host.scan(&dir).await;
                    host.list()
                }
                None => serde_json::from_value(Client::new(&server).get("/v1/plugins").await?)?,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print_table(&list);
            }
            Ok(())
        }
        PluginCommand::Check {
            path,
            data_dir,
            json,
        } => {
            let dir = if path.ends_with("plugin.toml") {
                path.parent().map(Path::to_owned).unwrap_or_default()
            } else {
                path
            };
            let dir = dir
                .canonicalize()
                .with_context(|| format!("{}: no such plugin folder", dir.display()))?;
            let host = offline_host(&data_dir)?;
            let (name, outcome) = host.reload(&dir).await;
            let summary = host.get(&name);
            if json {
                let error = match &outcome {
                    ReloadOutcome::Failed(e) => Some(e.clone()),
                    _ => None,
                };
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({ "ok": error.is_none(), "error": error, "plugin": summary })
                    )?
                );
            }
            match outcome {
                ReloadOutcome::Failed(e) => bail!("{e}"),
                _ if !json => {
                    let s = summary.context("plugin vanished during the check")?;
                    println!(
                        "ok: {} {} ({}, {}) — {}",
                        s.name,
                        s.version.unwrap_or_default(),
                        s.kind.map(|k| k.to_string()).unwrap_or_default(),
                        s.language.unwrap_or_else(|| "unknown language".into()),
                        s.summary.unwrap_or_default()
                    );
                    Ok(())
                }
                _ => Ok(()),
            }
        }
        PluginCommand::New {
            name,
            lang,
            kind,
            dir,
        } => {
            let created = super::scaffold::scaffold(lang, kind, &name, &dir)?;
            println!("created {}", created.display());
            println!("build it:  bash {}/build.sh", created.display());
            println!("check it:  switchyard plugin check {}", created.display());
            Ok(())
        }
        PluginCommand::Call {
            name,
            export,
            input,
            server,
        } => {
            let input = read_input(&input)?;
            let output = Client::new(&server)
                .post(
                    &format!("/v1/plugins/{name}/call"),
                    &json!({ "export": export, "input": input }),
                )
                .await?;
            println!("{}", serde_json::to_string_pretty(&output)?);
            Ok(())
        }
    }
}

/// A host with no store or bus, caching compiled components under `data_dir`.
fn offline_host(data_dir: &Path) -> anyhow::Result<PluginHost> {
    PluginHost::new(
        EngineOptions {
            concurrent_instances: 16,
        },
        data_dir.join("cache").join("components"),
        HostServices::default(),
    )
    .map_err(|e| anyhow::anyhow!("cannot start the wasm engine: {e:#}"))
}

/// `{...}` inline, `@file`, or `-` for stdin.
fn read_input(arg: &str) -> anyhow::Result<Value> {
    let text = match arg {
        "-" => std::io::read_to_string(std::io::stdin())?,
        a if a.starts_with('@') => {
            std::fs::read_to_string(&a[1..]).with_context(|| format!("cannot read {}", &a[1..]))?
        }
        a => a.to_owned(),
    };
    serde_json::from_str(&text).with_context(|| "--input is not valid JSON")
}

fn print_table(list: &[PluginSummary]) {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|p| {
            let load = p.load_ms.map(|ms| {
                let cached = if p.from_cache == Some(true) {
                    " (cached)"
                } else {
                    ""
                };
                format!("{ms:.1} ms{cached}")
            });
            vec![
                p.name.clone(),
                p.kind.map(|k| k.to_string()).unwrap_or_else(|| "-".into()),
                p.version.clone().unwrap_or_else(|| "-".into()),
                p.language.clone().unwrap_or_else(|| "-".into()),
                p.status.clone(),
                load.unwrap_or_else(|| "-".into()),
                p.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let header = [
        "NAME",
        "KIND",
        "VERSION",
        "LANGUAGE",
        "STATUS",
        "LOAD",
        "LAST ERROR",
    ];
    super::table::print(&header, &rows);
}
