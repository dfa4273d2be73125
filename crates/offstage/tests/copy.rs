//! `store::copy` on the pages of a table whose rows may share a key: the stats, which a node
//! appends one row per minute and task type on every flush. A page must never end inside a
//! key, or the next page (read after that key) would skip the key's other rows. SQLite files
//! on both sides; `crates/offstage-server/tests/migrate.rs` has the rest of the copy.

use chrono::{DateTime, Utc};
use offstage::store::copy::DatabaseCopy;
use offstage::testing::conformance::{Backend, SqliteBackend};
use offstage::{NodeId, StatsRow};

/// A source with five stats rows: two flushes of one minute for types `a` and `b`, and one
/// flush of the next minute for `a`.
async fn source() -> (String, DateTime<Utc>) {
    let db = SqliteBackend.new_database();
    let store = SqliteBackend.open(&db).await;
    let node = NodeId::new();
    // A whole minute (a multiple of 60 s).
    let minute = DateTime::from_timestamp(1_799_999_940, 0).unwrap();
    let next = minute + chrono::Duration::minutes(1);
    let expire_before = DateTime::from_timestamp(0, 0).unwrap();
    for flush in [
        vec![(minute, "a"), (minute, "b")],
        vec![(minute, "a"), (minute, "b"), (next, "a")],
    ] {
        let rows = flush
            .into_iter()
            .map(|(at, name)| {
                let mut row = StatsRow::new(at, name);
                row.completed = 1;
                row
            })
            .collect();
        store.record_stats(node, rows, expire_before).await.unwrap();
    }
    (db, minute)
}

#[tokio::test]
async fn stats_rows_sharing_a_key_are_each_copied_once_in_small_pages() {
    let (from, minute) = source().await;
    let to = SqliteBackend.new_database();
    // Pages of 3 rows: [a a (b)] ends before b, [b b (a')] before a', then [a'].
    let copy = DatabaseCopy::open(&from, &to).await.unwrap().batch(3);
    let plan = copy.plan().await.unwrap();
    let mut pages = 0;
    let report = copy
        .run(&plan, |progress| {
            pages += usize::from(progress.table == "stats")
        })
        .await
        .unwrap();
    assert!(report.matches(), "{report:?}");
    let stats = report.tables.iter().find(|t| t.table == "stats").unwrap();
    assert_eq!((stats.source, stats.copied), (5, 5));
    // The start, then one call per page.
    assert_eq!(pages, 4);
    let (source, target) = (
        SqliteBackend.open(&from).await,
        SqliteBackend.open(&to).await,
    );
    let read = |rows: Vec<StatsRow>| {
        rows.iter()
            .map(|r| (r.minute, r.name.clone(), r.completed))
            .collect::<Vec<_>>()
    };
    let copied = read(target.stats_since(minute).await.unwrap());
    assert_eq!(copied, read(source.stats_since(minute).await.unwrap()));
    assert_eq!(
        copied,
        [
            (minute, "a".to_owned(), 2),
            (minute, "b".to_owned(), 2),
            (minute + chrono::Duration::minutes(1), "a".to_owned(), 1),
        ]
    );
}

#[tokio::test]
async fn a_batch_smaller_than_a_key_says_to_raise_it() {
    let (from, _) = source().await;
    let to = SqliteBackend.new_database();
    let copy = DatabaseCopy::open(&from, &to).await.unwrap().batch(2);
    let plan = copy.plan().await.unwrap();
    let error = copy.run(&plan, |_| {}).await.unwrap_err();
    assert!(
        error.to_string().contains("copy with a larger batch"),
        "{error}"
    );
}
