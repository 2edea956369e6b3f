//! `switchyard serve`: open the store, load plugins, serve HTTP, watch for changes, and
//! shut down gracefully.
//!
//! Start-up order matters: the listener is bound first, so `/healthz` answers while
//! plugins compile (`/readyz` says when they are done). Every background loop is
//! spawned under a stage of [`Shutdown`], which drains them in its documented order on
//! SIGINT or SIGTERM.

use std::future::IntoFuture;
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
use crate::queues::Queues;
use crate::recipes::RecipeRegistry;
use crate::runs::Runs;
use crate::sessions::Sessions;
use crate::shutdown::{Shutdown, Stage};
use crate::store::Store;

/// How long shutdown waits for each stage (requests, turns, plugin calls in flight).
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

    let sessions = Sessions::new(
        store.clone(),
        bus.clone(),
        plugins.clone(),
        config.sessions.clone(),
    );
    let shutdown = Shutdown::new();
    shutdown.spawn_loop(
        Stage::Work,
        crate::bus::retention::run(bus.clone(), config.bus.clone()),
    );
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
    let queues = Queues::new(store.clone(), config.queues.clone());
    shutdown.spawn_loop(Stage::Work, queues.clone().reap());
    register_drains(&shutdown, &sessions, &runs, &automations, &plugins, &store);
    let metrics = crate::metrics::install();
    if let Some(handle) = &metrics {
        shutdown.spawn_loop(Stage::Work, crate::metrics::upkeep(handle.clone()));
    }
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
        metrics: metrics.clone(),
        ready: Arc::new(AtomicBool::new(false)),
        plugins_dir: config.plugins_dir.clone(),
        shutdown: shutdown.signal(Stage::Accept),
    });
    shutdown.spawn_loop(
        Stage::Accept,
        start_up(state.clone(), config.clone(), shutdown.clone()),
    );
    let stop_accepting = shutdown.signal(Stage::Accept);
    let mut serving = shutdown.spawn(
        Stage::Accept,
        axum::serve(listener, api::router(state))
            .with_graceful_shutdown(stop_accepting.cancelled_owned())
            .into_future(),
    );
    tokio::select! {
        () = shutdown_signal() => {}
        served = &mut serving => match served {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "the HTTP server stopped"),
            Err(e) => tracing::error!(error = %e, "the HTTP server task failed"),
        },
    }
    let report = shutdown.drain(SHUTDOWN_GRACE).await;
    // On stdout too, like the first line, for scripts and tests that watch a stop.
    if report.is_clean() {
        println!("switchyard stopped: every stage drained");
    } else {
        tracing::warn!(left = ?report.left, "some stages did not drain in time");
        println!("switchyard stopped: tasks left running: {:?}", report.left);
    }
    Ok(())
}

/// Each part's own way to stop, in its stage (see [`crate::shutdown`]).
fn register_drains(
    shutdown: &Shutdown,
    sessions: &crate::sessions::Sessions,
    runs: &Runs,
    automations: &Automations,
    plugins: &Arc<PluginHost>,
    store: &Store,
) {
    let automations = automations.clone();
    shutdown.on_drain(Stage::Automations, "firings", move || async move {
        automations.stop().await
    });
    let sessions = sessions.clone();
    shutdown.on_drain(Stage::Work, "sessions", move || async move {
        sessions.drain(SHUTDOWN_GRACE).await;
    });
    let runs = runs.clone();
    shutdown.on_drain(
        Stage::Work,
        "runs",
        move || async move { runs.stop().await },
    );
    let plugins = plugins.clone();
    shutdown.on_drain(Stage::Plugins, "plugin calls", move || async move {
        tracing::info!(
            in_flight = plugins.calls_in_flight(),
            "shutdown: waiting for plugin calls in flight"
        );
        plugins.drain(SHUTDOWN_GRACE).await;
    });
    let store = store.clone();
    shutdown.on_drain(Stage::Store, "writer", move || async move {
        if let Err(e) = store.flush().await {
            tracing::error!(error = %e, "shutdown: the store's last writes failed");
        }
    });
}

/// Load every plugin, resume session queues and then the runs in flight (their steps
/// are session turns), load the recipes (they name plugins), start the automations,
/// mark the server ready, then reload plugins and recipes as their files change.
async fn start_up(state: AppState, config: Config, shutdown: Shutdown) {
    let api::App {
        plugins,
        sessions,
        recipes,
        runs,
        automations,
        queues,
        ready,
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
        shutdown: shutdown.signal(Stage::Work),
        tasks: shutdown.tracker(Stage::Work),
    }
    .spawn(&config.queues.served);
    // Schedules, bus events and webhooks fire from here on (missed slots first).
    shutdown.spawn_loop(Stage::Automations, automations.clone().run());
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
