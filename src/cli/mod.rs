//! The command line: `serve`, and verbs per part that talk to a running server (found by
//! `--server` / `SWITCHYARD_URL`) or work offline where that makes sense.

mod automation;
mod bus;
mod client;
mod plugin;
mod queue;
mod recipe;
mod run;
mod scaffold;
mod session;
mod sse;
mod table;
mod token;
mod turn_printer;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::config::{Config, Overrides};

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "A host runtime for AI-agent work"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(Overrides),
    /// Inspect, check, call and scaffold plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Send messages to sessions, follow their turns, inspect and manage them.
    #[command(subcommand)]
    Session(session::SessionCommand),
    /// Publish events on the bus and follow it.
    #[command(subcommand)]
    Bus(bus::BusCommand),
    /// List recipes, check recipe files, print the recipe format's JSON Schema.
    #[command(subcommand)]
    Recipe(recipe::RecipeCommand),
    /// List automations (recipes' `on:` blocks), fire, pause and resume them.
    #[command(subcommand)]
    Automation(automation::AutomationCommand),
    /// Push, claim, ack and nack queue items; list queues and their dead letters.
    #[command(subcommand)]
    Queue(queue::QueueCommand),
    /// List, show, follow and cancel recipe runs.
    #[command(subcommand)]
    Run(run::RunCommand),
    /// Make, list and revoke API tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(overrides) => {
                let config = Config::resolve(&overrides)?;
                crate::server::serve(config).await
            }
            Command::Plugin(cmd) => plugin::run(cmd).await,
            Command::Session(cmd) => session::run(cmd).await,
            Command::Bus(cmd) => bus::run(cmd).await,
            Command::Recipe(cmd) => recipe::run(cmd).await,
            Command::Run(cmd) => run::run(cmd).await,
            Command::Queue(cmd) => queue::run(cmd).await,
            Command::Automation(cmd) => automation::run(cmd).await,
            Command::Token(cmd) => token::run(cmd).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("SWITCHYARD_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,wasmtime=warn,cranelift=warn"));
    // Colour only for a person at a terminal: not in a file, not with NO_COLOR.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
