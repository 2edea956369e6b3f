//! `switchyard recipe list|check|schema|run`.

use std::path::PathBuf;

use anyhow::{Context, bail};

use serde_json::Value;

use super::client::{Client, ServerArgs};
use crate::recipes::{self, PluginCatalog};

#[derive(clap::Subcommand)]
pub enum RecipeCommand {
    /// List the recipes of a running server, with problems of files that did not load.
    List {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        json: bool,
    },
    /// Check recipe files offline; prints every problem as file:line:col.
    Check {
        /// Recipe files (YAML). A directory means every *.yaml / *.yml in it.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Plugins directory whose adapters and triggers recipes may name.
        #[arg(long, env = "SWITCHYARD_PLUGINS", default_value = "plugins")]
        plugins: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of the recipe format (for yaml-language-server).
    Schema,
    /// Start a run of a recipe; with --follow, print its steps as they run and exit 1
    /// if it does not succeed.
    Run {
        #[command(flatten)]
        server: ServerArgs,
        name: String,
        /// An input, as NAME=VALUE (repeat for more). Text is read as a number or a
        /// boolean when the input is one.
        #[arg(long = "input", short = 'i', value_parser = parse_input)]
        inputs: Vec<(String, String)>,
        #[arg(long)]
        follow: bool,
        #[arg(long)]
        json: bool,
    },
}

fn parse_input(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not NAME=VALUE")),
    }
}

pub async fn run(cmd: RecipeCommand) -> anyhow::Result<()> {
    match cmd {
        RecipeCommand::List { server, json } => {
            let list = Client::new(&server).get("/v1/recipes").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print_list(&list);
            }
            Ok(())
        }
        RecipeCommand::Check {
            files,
            plugins,
            json,
        } => check(files, &plugins, json),
        RecipeCommand::Run {
            server,
            name,
            inputs,
            follow,
            json,
        } => {
            let client = Client::new(&server);
            let inputs: serde_json::Map<String, Value> = inputs
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            let view = client
                .post(
                    &format!("/v1/recipes/{}/runs", super::client::encode(&name)),
                    &serde_json::json!({ "inputs": inputs }),
                )
                .await?;
            let id = view["id"]
                .as_str()
                .context("the server's answer has no run id")?;
            if follow {
                eprintln!("run {id} of {name} started");
                return super::run::follow(&client, id, json).await;
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                println!("{id}");
            }
            Ok(())
        }
        RecipeCommand::Schema => {
            println!("{}", serde_json::to_string_pretty(&recipes::json_schema())?);
            Ok(())
        }
    }
}

fn check(paths: Vec<PathBuf>, plugins_dir: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let catalog: Option<PluginCatalog> = match crate::plugins::manifest::kinds_in(plugins_dir) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!(
                "warning: cannot read plugins directory {} ({e}); plugin names are not checked",
                plugins_dir.display()
            );
            None
        }
    };
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(&p)
                .with_context(|| format!("cannot read {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| recipes::is_recipe_file(f))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(p);
        }
    }
    let mut report = Vec::new();
    let mut problems = 0;
    for file in &files {
        match recipes::load(file, catalog.as_ref()) {
            Ok(recipe) => {
                if !json {
                    println!("{}: ok (recipe `{}`)", file.display(), recipe.name);
                }
                report.push(serde_json::json!({ "file": file, "ok": true, "recipe": recipe.name }));
            }
            Err(found) => {
                problems += found.len();
                if !json {
                    for p in &found {
                        println!("{p}");
                    }
                }
                report.push(serde_json::json!({ "file": file, "ok": false, "problems": found }));
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    if problems > 0 {
        bail!("{problems} problem(s) in {} file(s)", files.len());
    }
    Ok(())
}

fn print_list(list: &Value) {
    let empty = Vec::new();
    let items = list.as_array().unwrap_or(&empty);
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|r| {
            let automations = &r["automations"];
            let count = |k: &str| automations[k].as_array().map_or(0, Vec::len);
            let next = automations["schedule"]
                .as_array()
                .and_then(|s| s.iter().filter_map(|s| s["next"][0].as_str()).min())
                .unwrap_or("-");
            vec![
                r["name"].as_str().unwrap_or("").to_owned(),
                r["status"].as_str().unwrap_or("").to_owned(),
                r["steps"].as_array().map_or(0, Vec::len).to_string(),
                format!(
                    "{} schedule, {} event, {} webhook",
                    count("schedule"),
                    count("event"),
                    count("webhook")
                ),
                next.to_owned(),
                r["description"].as_str().unwrap_or("").to_owned(),
            ]
        })
        .collect();
    super::table::print(
        &[
            "NAME",
            "STATUS",
            "STEPS",
            "AUTOMATIONS",
            "NEXT FIRING",
            "DESCRIPTION",
        ],
        &rows,
    );
    for r in items {
        for p in r["problems"].as_array().into_iter().flatten() {
            eprintln!(
                "{}:{}:{}: {}",
                p["file"].as_str().unwrap_or(""),
                p["line"],
                p["column"],
                p["message"].as_str().unwrap_or("")
            );
            if let Some(help) = p["help"].as_str() {
                eprintln!("  help: {help}");
            }
        }
    }
}
