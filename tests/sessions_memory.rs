//! Idle sessions leave memory (never disk) and come back transparently.

mod util;

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard::bus::Bus;
use switchyard::plugins::{EngineOptions, HostServices, PluginHost};
use switchyard::sessions::{Sessions, SessionsConfig};
use switchyard::store::Store;

async fn wait_until(limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < limit,
            "condition not reached within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_leave_memory_and_come_back() {
    let data = tempfile::tempdir().unwrap();
    let plugins = tempfile::tempdir().unwrap();
    util::install_plugin(plugins.path(), "echo-agent");
    let store = Store::open(data.path()).unwrap();
    let bus = Bus::new(store.clone());
    let host = Arc::new(
        PluginHost::new(
            EngineOptions {
                concurrent_instances: 16,
            },
            util::shared_cache(),
            HostServices {
                store: Some(store.clone()),
                bus: Some(bus.clone()),
                plugin_config: Default::default(),
            },
        )
        .unwrap(),
    );
    host.scan(plugins.path()).await;
    let sessions = Sessions::new(
        store,
        bus,
        host,
        SessionsConfig {
            idle_timeout: Duration::from_millis(200),
            ..Default::default()
        },
    );

    for i in 0..50 {
        let key = format!("s{i}");
        sessions
            .create(switchyard::sessions::NewSession {
                key: Some(key.clone()),
                ..Default::default()
            })
            .await
            .unwrap();
        sessions.enqueue(&key, format!("hello {i}")).await.unwrap();
    }
    assert!(sessions.in_memory().await > 0);
    // Every turn done, then every worker gone from memory.
    wait_until(Duration::from_secs(20), async || {
        sessions.in_memory().await == 0
    })
    .await;
    for i in 0..50 {
        let s = sessions.snapshot(&format!("s{i}")).await.unwrap();
        assert!(!s.in_memory && s.queue_depth == 0 && !s.processing);
        assert_eq!(
            sessions.history(&format!("s{i}"), 10).await.unwrap().len(),
            2,
            "kept on disk"
        );
    }

    // A new message brings the session back, with its history.
    sessions.enqueue("s7", "back again".into()).await.unwrap();
    assert!(sessions.snapshot("s7").await.unwrap().in_memory);
    wait_until(Duration::from_secs(10), async || {
        sessions.history("s7", 10).await.unwrap().len() == 4
    })
    .await;
    let h = sessions.history("s7", 10).await.unwrap();
    assert_eq!(h[2].text, "back again");
    assert_eq!(h[3].text, "back again");
    wait_until(Duration::from_secs(5), async || {
        sessions.in_memory().await == 0
    })
    .await;
}
