//! `switchyard serve`: open the store, load plugins, serve HTTP, watch for changes, and
//! shut down gracefully.
//!
//! Start-up order matters: the listener is bound first, so `/healthz` answers while
//! plugins compile (`/readyz` says when they are done). Shutdown stops accepting
//! requests, lets requests and plugin calls in flight finish (up to a grace period),
//! then exits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::auth::Tokens;
use crate::automations::Automations;
use crate::bus::Bus;
use crate::config::Config;
use crate::plugins::{EngineOptions, HostServices, PluginHost};
use crate::queues::{Queues, QueuesConfig};
use crate::recipes::RecipeRegistry;
use crate::runs::Runs;
use crate::sessions::{Sessions, SessionsConfig};
use crate::store::Store;

/// How long shutdown waits for plugin calls in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Quiet time after the last file change before plugins reload. Long enough for a
/// build tool to finish writing a component.
const PLUGIN_DEBOUNCE: Duration = Duration::from_millis(300);
/// Recipe files are small and written at once; a short debounce keeps save → active
/// well under a quarter of a second while still folding an editor's write + rename.
const RECIPE_DEBOUNCE: Duration = Duration::from_millis(100);

pub async fn serve(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create the data dir {}", config.data_dir.display()))?;
    // Users drop recipe files here; it must exist to be watched.
    if let Err(e) = std::fs::create_dir_all(&config.recipes_dir) {
        tracing::warn!(dir = %config.recipes_dir.display(), error = %e, "cannot create the recipes directory");
    }
    let store = Store::open_with(&config.data_dir, config.store.durability)?;
    let bus = Bus::new(store.clone());
    let tokens = Tokens::load(
        store.clone(),
        std::env::var(crate::auth::ADMIN_TOKEN_ENV).ok().as_deref(),
    )
    .await?;
    if let Some((token, path)) = tokens.bootstrap(&config.data_dir).await? {
        // Shown once, on the first start; the file lets the CLI on this machine use it.
        eprintln!(
            "switchyard: first start; admin token (also in {}): {token}",
            path.display()
        );
    }
    let plugins = Arc::new(
        PluginHost::new(
            EngineOptions::default(),
            config.cache_dir.clone(),
            HostServices {
                store: Some(store.clone()),
                bus: Some(bus.clone()),
                plugin_config: config.plugin_config.clone(),
            },
        )
        .map_err(|e| anyhow::anyhow!("cannot start the wasm engine: {e:#}"))?,
    );
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    // Streams are many small writes (SSE events, UI chunks); with Nagle's algorithm each
    // waits for the peer's delayed ACK, about 40 ms. Send them as they are written.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY on a connection");
        }
    });
    // On stdout, for scripts and tests that start a server on port 0.
    println!("switchyard listening on http://{addr}");
    tracing::info!(%addr, data_dir = %config.data_dir.display(), plugins = %config.plugins_dir.display(), "switchyard started");

    let c = &config.sessions;
    let sessions = Sessions::new(
        store.clone(),
        bus.clone(),
        plugins.clone(),
        SessionsConfig {
            default_adapter: c.default_adapter.clone(),
            max_queue: c.max_queue,
            history_limit: c.history_limit,
            idle_timeout: Duration::from_secs_f64(c.idle_timeout_secs),
            abort_grace: Duration::from_secs_f64(c.abort_grace_secs),
        },
    );
    tokio::spawn(crate::bus::retention::run(bus.clone(), config.bus.clone()));
    let catalog_of = plugins.clone();
    let recipes = Arc::new(RecipeRegistry::new(
        Box::new(move || {
            catalog_of
                .list()
                .into_iter()
                .filter_map(|p| Some((p.name, p.kind?)))
                .collect()
        }),
        Some(bus.clone()),
    ));
    let runs = Runs::new(store.clone(), bus.clone(), sessions.clone());
    let automations = Automations::new(
        store.clone(),
        bus.clone(),
        runs.clone(),
        recipes.clone(),
        plugins.clone(),
    );
    let queues = Queues::new(store.clone(), QueuesConfig::default());
    tokio::spawn(queues.clone().reap());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let state = AppState::new(api::App {
        plugins: plugins.clone(),
        store,
        bus,
        sessions,
        recipes,
        runs,
        automations,
        queues,
        tokens,
        metrics: crate::metrics::install(),
        ready: Arc::new(AtomicBool::new(false)),
        plugins_dir: config.plugins_dir.clone(),
        shutdown: shutdown.clone(),
    });
    let loader = tokio::spawn(start_up(state.clone(), config.clone()));
    let app = api::router(state);
    let stop = shutdown.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            stop.cancel();
        })
        .await?;

    tracing::info!(
        in_flight = plugins.calls_in_flight(),
        "shutting down: waiting for plugin calls in flight"
    );
    loader.abort();
    if !plugins.drain(SHUTDOWN_GRACE).await {
        tracing::warn!("plugin calls still running after {SHUTDOWN_GRACE:?}; exiting anyway");
    }
    tracing::info!("switchyard stopped");
    Ok(())
}

/// Load every plugin, resume session queues and then the runs in flight (their steps
/// are session turns), load the recipes (they name plugins), start the automations,
/// mark the server ready, then reload plugins and recipes as their files change.
async fn start_up(state: AppState, config: Config) {
    let api::App {
        plugins,
        sessions,
        recipes,
        runs,
        automations,
        queues,
        ready,
        shutdown,
        ..
    } = &*state;
    let plugin_watch = crate::watch::watch_dir(&config.plugins_dir, PLUGIN_DEBOUNCE);
    let recipe_watch = crate::watch::watch_dir(&config.recipes_dir, RECIPE_DEBOUNCE);
    plugins.scan(&config.plugins_dir).await;
    if let Err(e) = sessions.recover().await {
        tracing::error!(error = %e, "cannot resume session queues");
    }
    if let Err(e) = runs.recover().await {
        tracing::error!(error = %e, "cannot resume the runs in flight");
    }
    recipes.scan(&config.recipes_dir).await;
    // After the scan, so the first items do not find their plugin missing.
    crate::queues::served::Server {
        queues: queues.clone(),
        sessions: sessions.clone(),
        plugins: plugins.clone(),
        shutdown: shutdown.clone(),
    }
    .spawn(&config.served_queues);
    // Schedules, bus events and webhooks fire from here on (missed slots first).
    tokio::spawn(automations.clone().run());
    ready.store(true, Ordering::Release);
    let plugin_changes = async {
        let (_watch, mut changes) = match plugin_watch {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(dir = %config.plugins_dir.display(), error = %e, "cannot watch the plugins directory; hot reload is off");
                return;
            }
        };
        while let Some(changed) = changes.recv().await {
            for path in changed {
                // Loose files at the top level are not plugins.
                if path.is_dir() || !path.exists() {
                    plugins.reload(&path).await;
                }
            }
        }
    };
    let recipe_changes = async {
        let (_watch, mut changes) = match recipe_watch {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(dir = %config.recipes_dir.display(), error = %e, "cannot watch the recipes directory; recipe hot reload is off");
                return;
            }
        };
        while let Some(changed) = changes.recv().await {
            for path in changed {
                // Editors' temporary and backup files are not recipes; a deleted
                // recipe file no longer exists, so judge it by its name.
                if crate::recipes::is_recipe_name(&path) && !path.is_dir() {
                    recipes.reload(&path).await;
                }
            }
        }
    };
    futures::join!(plugin_changes, recipe_changes);
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}
