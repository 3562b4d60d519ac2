//! Message bodies stored apart (`crate::spool`): files with SQLite, chunk rows with Postgres.

use crate::Store;
use crate::model::{DeliveryResult, Outcome, QueueAction, Selection};
use crate::spool::{CHUNK, INLINE_MAX, QueuedBody, SpooledBody};
use crate::tests::queue::{message, root};

const NODE: &str = "mx1.example.test";

crate::store_tests!(
    a_large_body_is_stored_apart_and_read_back_byte_exact,
    a_small_body_stays_inline,
    a_body_goes_with_its_message,
    orphans_are_swept_and_referenced_bodies_kept,
    upkeep_gives_freed_space_back_and_reports_sizes,
    a_streamed_body_is_read_after_its_inline_prefix,
    bodies_being_written_hold_no_connection,
    an_aborted_body_leaves_nothing_and_a_crashed_one_is_swept
);

/// A body of `len` bytes that no shift of a chunk boundary leaves unchanged.
fn body(len: usize) -> Vec<u8> {
    let mut b = b"Subject: big\r\n\r\n".to_vec();
    let mut x: u32 = 7;
    while b.len() < len {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        b.push((x >> 16) as u8);
    }
    b.truncate(len);
    b
}

/// The names of the bodies the default store holds: files, or chunk rows.
async fn stored(store: &Store) -> Vec<String> {
    match &store.inner.bodies.files {
        Some(files) => match std::fs::read_dir(files.dir()) {
            Ok(entries) => {
                entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
            }
            Err(_) => Vec::new(),
        },
        None => sqlx::query_scalar("SELECT body_ref FROM queue_body_chunks WHERE seq = 0")
            .fetch_all(store.pool())
            .await
            .unwrap(),
    }
}

async fn queue(store: &Store, body: Vec<u8>) -> (crate::model::QueueId, Option<String>) {
    let mut m = message("a@x.test", &["b@y.test"]);
    m.body = body;
    let body_ref = store.spool_body(&m.body).await.unwrap();
    store.spool_sync().await.unwrap();
    let ids =
        store.queue_insert_spooled(NODE, &[m], std::slice::from_ref(&body_ref)).await.unwrap();
    (ids[0], body_ref)
}

async fn a_large_body_is_stored_apart_and_read_back_byte_exact(store: Store) {
    let big = body(3 * CHUNK + 17);
    let (id, body_ref) = queue(&store, big.clone()).await;
    let body_ref = body_ref.expect("stored apart");
    let expected = if store.is_postgres() { "db:" } else { "file:" };
    assert!(body_ref.starts_with(expected), "{body_ref}");
    assert_eq!(stored(&store).await.len(), 1);

    assert!(store.queue_body(id).await.unwrap().unwrap() == big, "byte-exact");
    assert_eq!(store.queue_body_head(id, 100).await.unwrap().unwrap(), &big[..100]);
    let mut reader = store.queue_body_reader(id).await.unwrap().unwrap();
    let mut chunks = 0;
    while let Some(chunk) = reader.next_chunk().await.unwrap() {
        assert!(!chunk.is_empty() && chunk.len() <= CHUNK, "{}", chunk.len());
        chunks += 1;
    }
    assert_eq!(chunks, 4);
    // The envelope loads as ever; its size is the body's.
    let work = store.queue_load_work(NODE).await.unwrap();
    assert!(work.damaged.is_empty(), "{:?}", work.damaged);
    assert_eq!(work.messages[0].size, big.len() as u64);
}

async fn a_small_body_stays_inline(store: Store) {
    let small = body(INLINE_MAX - 1);
    assert_eq!(store.spool_body(&small).await.unwrap(), None);
    let (id, body_ref) = queue(&store, small.clone()).await;
    assert_eq!(body_ref, None);
    assert!(stored(&store).await.is_empty());
    assert!(store.queue_body(id).await.unwrap().unwrap() == small);
    // The first spooled size.
    assert!(store.spool_body(&body(INLINE_MAX)).await.unwrap().is_some());
}

async fn a_body_goes_with_its_message(store: Store) {
    let (delivered, _) = queue(&store, body(INLINE_MAX + 1)).await;
    let (deleted, _) = queue(&store, body(2 * CHUNK)).await;
    assert_eq!(stored(&store).await.len(), 2);
    let removed = store
        .queue_record_results(&[DeliveryResult {
            id: delivered,
            recipient: 0,
            at: 1_700_000_100,
            outcome: Outcome::Delivered { reply: "250 ok".into() },
        }])
        .await
        .unwrap();
    assert_eq!(removed, [delivered]);
    assert_eq!(store.queue_body(delivered).await.unwrap(), None);
    assert_eq!(stored(&store).await.len(), 1);
    store.queue_act(&root(), QueueAction::Delete, &Selection::Ids(vec![deleted])).await.unwrap();
    assert_eq!(store.queue_body(deleted).await.unwrap(), None);
    assert!(stored(&store).await.is_empty());
    let trash: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM queue_body_trash")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(trash, 0, "the trash is emptied after the commit");
}

async fn orphans_are_swept_and_referenced_bodies_kept(store: Store) {
    let (kept, _) = queue(&store, body(INLINE_MAX * 2)).await;
    // Written, then the envelope never committed: a crash in between.
    let orphan = store.spool_body(&body(INLINE_MAX * 3)).await.unwrap().unwrap();
    assert_eq!(stored(&store).await.len(), 2);
    // While sessions run, a young body may be one whose envelope is about to commit.
    assert_eq!(store.spool_sweep(false).await.unwrap().orphans, 0);
    assert_eq!(stored(&store).await.len(), 2);
    if store.is_postgres() {
        // Other engines may be writing to a shared database: only old rows are orphans.
        assert_eq!(store.spool_sweep(true).await.unwrap().orphans, 0);
        sqlx::query("UPDATE queue_body_chunks SET created_at = 0 WHERE body_ref = $1")
            .bind(orphan.as_str())
            .execute(store.pool())
            .await
            .unwrap();
        assert_eq!(store.spool_sweep(false).await.unwrap().orphans, 1);
    } else {
        // At start-up, before any session of this engine runs, every stray file is an orphan.
        assert_eq!(store.spool_sweep(true).await.unwrap().orphans, 1);
    }
    assert_eq!(stored(&store).await.len(), 1);
    assert_eq!(store.queue_body(kept).await.unwrap().unwrap(), body(INLINE_MAX * 2));
    // A failed batch discards its bodies at once.
    let unqueued = store.spool_body(&body(INLINE_MAX)).await.unwrap().unwrap();
    store.spool_discard(&[unqueued]).await;
    assert_eq!(stored(&store).await.len(), 1);
}

/// A day's traffic in miniature: messages arrive and are delivered, and the upkeep leaves the
/// SQLite file and its WAL no larger than what is still queued needs.
async fn upkeep_gives_freed_space_back_and_reports_sizes(store: Store) {
    let empty = store.storage_sizes().await.unwrap();
    assert!(empty.database > 0);
    assert_eq!((empty.spooled, empty.spooled_bytes), (0, 0));
    for round in 0..3 {
        let batch: Vec<_> = (0..40)
            .map(|_| {
                let mut m = message("a@x.test", &["b@y.test"]);
                m.body = body(INLINE_MAX - 100);
                m
            })
            .collect();
        let ids = store.queue_insert(NODE, &batch).await.unwrap();
        let (big, _) = queue(&store, body(2 * CHUNK)).await;
        let sizes = store.storage_sizes().await.unwrap();
        assert_eq!(sizes.spooled, 1, "round {round}");
        assert!(sizes.spooled_bytes >= 2 * CHUNK as u64, "{sizes:?}");
        let results: Vec<DeliveryResult> = ids
            .iter()
            .chain([&big])
            .map(|&id| DeliveryResult {
                id,
                recipient: 0,
                at: 1_700_000_100,
                outcome: Outcome::Delivered { reply: "250 ok".into() },
            })
            .collect();
        store.queue_record_results(&results).await.unwrap();
        let done = store.compact().await.unwrap();
        let after = store.storage_sizes().await.unwrap();
        assert_eq!((after.spooled, after.spooled_bytes), (0, 0), "{after:?}");
        if !store.is_postgres() {
            assert!(done.vacuumed > 0, "round {round}: {done:?}");
            assert!(done.wal_truncated);
            assert_eq!(after.wal, Some(0));
            assert_eq!(after.free, 0);
            // 40 bodies of nearly 64 KiB passed through; the file keeps far less than that.
            assert!(after.database < 2 << 20, "round {round}: {after:?}");
        }
    }
}

/// A body streamed to the store by a session, with the fields we add kept inline in front of it:
/// every reader sees prefix then body, the size counts both, and the body goes with the message.
async fn a_streamed_body_is_read_after_its_inline_prefix(store: Store) {
    let big = body(2 * CHUNK + 5);
    let mut writer = store.body_writer().await.unwrap();
    for piece in big.chunks(10_000) {
        writer.write(piece).await.unwrap();
    }
    let body_ref = writer.commit().await.unwrap();
    store.spool_sync().await.unwrap();
    assert!(store.spool_equals(&body_ref, &big).await.unwrap());
    assert!(!store.spool_equals(&body_ref, &big[1..]).await.unwrap());
    assert_eq!(store.spool_read(&body_ref, big.len()).await.unwrap().as_ref(), Some(&big));
    assert_eq!(store.spool_read(&body_ref, big.len() - 1).await.unwrap(), None);

    let prefix = b"Received: from x\r\n\tby y; now\r\n".to_vec();
    let mut m = message("a@x.test", &["b@y.test"]);
    m.body = prefix.clone();
    let place = SpooledBody { body_ref, len: big.len() as u64, prefix: true };
    let ids = store.queue_insert_streamed(NODE, &[m], &[Some(place)]).await.unwrap();
    let whole = [prefix.as_slice(), &big].concat();
    assert!(store.queue_body(ids[0]).await.unwrap().unwrap() == whole, "prefix, then body");
    assert_eq!(store.queue_body_head(ids[0], 100).await.unwrap().unwrap(), &whole[..100]);
    match store.queue_body_open(ids[0]).await.unwrap().unwrap() {
        QueuedBody::Spooled { head, size } => {
            assert_eq!(size, whole.len() as u64);
            assert_eq!(head, &whole[..INLINE_MAX]);
        }
        QueuedBody::Whole(_) => panic!("a streamed body is not read whole"),
    }
    let work = store.queue_load_work(NODE).await.unwrap();
    assert!(work.damaged.is_empty(), "{:?}", work.damaged);
    assert_eq!(work.messages[0].size, whole.len() as u64);
    store
        .queue_record_results(&[DeliveryResult {
            id: ids[0],
            recipient: 0,
            at: 1_700_000_100,
            outcome: Outcome::Delivered { reply: "250 ok".into() },
        }])
        .await
        .unwrap();
    store.spool_empty_trash().await.unwrap();
    assert!(stored(&store).await.is_empty(), "the body goes with its message");
}

/// More bodies being written at once than the pool has connections (8): on Postgres each chunk
/// is a statement of its own, so none of them holds a connection or a transaction between
/// chunks, and the store goes on answering. (Before, each held one from its first chunk to its
/// commit, and the ninth waited for the pool's timeout.)
async fn bodies_being_written_hold_no_connection(store: Store) {
    let big = body(CHUNK + 10);
    let mut writers = Vec::new();
    for _ in 0..12 {
        let mut writer =
            tokio::time::timeout(std::time::Duration::from_secs(5), store.body_writer())
                .await
                .expect("a writer without waiting for the pool")
                .unwrap();
        writer.write(&big[..CHUNK + 1]).await.unwrap();
        writers.push(writer);
    }
    let answered = tokio::time::timeout(std::time::Duration::from_secs(5), store.storage_sizes())
        .await
        .expect("the pool is free while bodies are written");
    answered.unwrap();
    let mut refs = Vec::new();
    for mut writer in writers {
        writer.write(&big[CHUNK + 1..]).await.unwrap();
        refs.push(writer.commit().await.unwrap());
    }
    store.spool_sync().await.unwrap();
    for body_ref in &refs {
        assert!(store.spool_equals(body_ref, &big).await.unwrap());
    }
    store.spool_discard(&refs).await;
    assert!(stored(&store).await.is_empty());
}

/// A body whose client went away is removed at once (`BodyWriter::abort`); one whose engine died
/// while writing it (neither committed nor aborted) is swept once old enough, and no chunk row is
/// left.
async fn an_aborted_body_leaves_nothing_and_a_crashed_one_is_swept(store: Store) {
    let big = body(3 * CHUNK);
    let mut aborted = store.body_writer().await.unwrap();
    aborted.write(&big[..2 * CHUNK + 3]).await.unwrap();
    if store.is_postgres() {
        assert_eq!(stored(&store).await.len(), 1, "rows are written as the body arrives");
    }
    aborted.abort().await;
    assert!(stored(&store).await.is_empty());

    let mut crashed = store.body_writer().await.unwrap();
    crashed.write(&big[..2 * CHUNK + 3]).await.unwrap();
    std::mem::forget(crashed);
    if store.is_postgres() {
        // Young: perhaps another engine's body still arriving.
        assert_eq!(store.spool_sweep(true).await.unwrap().orphans, 0);
        sqlx::query("UPDATE queue_body_chunks SET created_at = 0")
            .execute(store.pool())
            .await
            .unwrap();
        assert_eq!(store.spool_sweep(false).await.unwrap().orphans, 1);
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM queue_body_chunks")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(rows, 0, "every chunk of the orphan goes, not only its first");
    } else {
        assert_eq!(store.spool_sweep(true).await.unwrap().orphans, 1);
    }
    assert!(stored(&store).await.is_empty());
}
