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

/// Sessions over a real store and the real echo-agent; the directories live as long
/// as the returned guard.
async fn start(config: SessionsConfig) -> (Sessions, Store, [tempfile::TempDir; 2]) {
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
    let sessions = Sessions::new(store.clone(), bus, host, config);
    (sessions, store, [data, plugins])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_leave_memory_and_come_back() {
    let (sessions, _store, _dirs) = start(SessionsConfig {
        idle_timeout: Duration::from_millis(200),
        ..Default::default()
    })
    .await;

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

/// A key still naming a session deleted underneath it (as an enqueue that raced the
/// delete leaves it: it woke the worker after the delete forgot the key) is noticed at
/// the next message: it goes to the session created under the key since, or is refused
/// as not found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_naming_a_deleted_session_finds_the_new_one() {
    use switchyard::sessions::{NewSession, SessionError};

    let (sessions, store, _dirs) = start(SessionsConfig::default()).await;
    let new = || NewSession {
        key: Some("k".into()),
        ..Default::default()
    };

    let old = sessions.create(new()).await.unwrap();
    sessions.enqueue("k", "first".into()).await.unwrap();
    assert!(sessions.snapshot("k").await.unwrap().in_memory);
    assert!(store.delete_session(&old.id).await.unwrap());
    let fresh = sessions.create(new()).await.unwrap();
    assert_ne!(fresh.id, old.id);
    assert_eq!(
        sessions.id_of("k").await.unwrap(),
        fresh.id,
        "create forgot the old"
    );

    sessions.enqueue("k", "second".into()).await.unwrap();
    assert_eq!(sessions.id_of("k").await.unwrap(), fresh.id);
    wait_until(Duration::from_secs(10), async || {
        sessions.history("k", 10).await.unwrap().len() == 2
    })
    .await;
    assert_eq!(sessions.history("k", 10).await.unwrap()[0].text, "second");

    // Deleted with no new session under the key: not found, not a store error.
    let again = sessions.snapshot("k").await.unwrap();
    assert!(again.in_memory);
    assert!(store.delete_session(&fresh.id).await.unwrap());
    assert!(matches!(
        sessions.enqueue("k", "third".into()).await,
        Err(SessionError::NotFound(_))
    ));
    assert!(matches!(
        sessions.delete("k").await,
        Err(SessionError::NotFound(_))
    ));
}

/// A deleted session's worker leaves memory at once, not after the idle timeout:
/// deleted through the sessions, or underneath them and then noticed by a message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_sessions_worker_leaves_memory_at_once() {
    use switchyard::sessions::{NewSession, SessionError};

    // Idle workers stay a minute: only the delete can make them leave within the test.
    let (sessions, store, _dirs) = start(SessionsConfig::default()).await;
    for key in ["a", "b"] {
        sessions
            .create(NewSession {
                key: Some(key.into()),
                ..Default::default()
            })
            .await
            .unwrap();
        sessions.enqueue(key, "hello".into()).await.unwrap();
    }
    wait_until(Duration::from_secs(10), async || {
        sessions.history("a", 10).await.unwrap().len() == 2
            && sessions.history("b", 10).await.unwrap().len() == 2
    })
    .await;
    assert_eq!(sessions.in_memory().await, 2);

    sessions.delete("a").await.unwrap();
    wait_until(Duration::from_secs(5), async || {
        sessions.in_memory().await == 1
    })
    .await;

    // Deleted in the store only: the next message finds it gone.
    let b = sessions.id_of("b").await.unwrap();
    assert!(store.delete_session(&b).await.unwrap());
    assert!(matches!(
        sessions.enqueue("b", "again".into()).await,
        Err(SessionError::NotFound(_))
    ));
    wait_until(Duration::from_secs(5), async || {
        sessions.in_memory().await == 0
    })
    .await;
}
