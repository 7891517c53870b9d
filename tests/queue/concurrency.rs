//! 1,000 concurrent enqueues with 100 distinct idempotency keys store exactly 100 messages,
//! and every enqueue of one key returns the same id.

use std::collections::HashMap;

use mail_connector::queue::{EnqueueOptions, State};

use crate::helpers::{Backend, count, email, on_both_stores, open};

on_both_stores!(concurrent_enqueues_with_repeated_keys_store_each_key_once);

async fn concurrent_enqueues_with_repeated_keys_store_each_key_once(backend: Backend) {
    let (queue, _guard) = open(backend).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let queue = queue.clone();
        tasks.spawn(async move {
            let key = format!("key-{}", i % 100);
            let options = EnqueueOptions::new().idempotency_key(key.clone());
            let id = queue
                .enqueue(&email("a@example.org", &key), options)
                .await
                .unwrap();
            (key, id)
        });
    }
    let mut ids: HashMap<String, Vec<String>> = HashMap::new();
    while let Some(done) = tasks.join_next().await {
        let (key, id) = done.unwrap();
        ids.entry(key).or_default().push(id.to_string());
    }
    assert_eq!(ids.len(), 100);
    for (key, list) in &ids {
        assert_eq!(list.len(), 10);
        assert!(list.iter().all(|id| *id == list[0]), "{key}: {list:?}");
    }
    assert_eq!(count(&queue, State::Queued).await, 100);
}
