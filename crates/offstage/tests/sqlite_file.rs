//! What the SQLite store does with files that are not what it expects.

use offstage::store::sqlite::SqliteStore;
use offstage::testing::conformance::{Backend, SqliteBackend};
use offstage::ErrorKind;

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused_untouched() {
    let path = SqliteBackend.new_database();
    let junk = b"these are somebody's notes, not a database\n".repeat(200);
    std::fs::write(&path, &junk).unwrap();
    let error = SqliteStore::open(&path).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Corrupt);
    assert!(
        error.message().contains("not an Offstage database"),
        "{error}"
    );
    assert!(
        error.message().contains("new file"),
        "says how to fix it: {error}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        junk,
        "the file is left as it was"
    );
}

#[tokio::test]
async fn a_database_from_a_newer_offstage_is_refused() {
    let path = SqliteBackend.new_database();
    drop(SqliteStore::open(&path).await.unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let error = SqliteStore::open(&path).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::SchemaTooNew);
    assert!(error.message().contains("schema version 99"), "{error}");
    assert!(error.message().contains("upgrade Offstage"), "{error}");
}

#[tokio::test]
async fn reopening_keeps_the_schema_and_the_data() {
    let path = SqliteBackend.new_database();
    let store = SqliteStore::open(&path).await.unwrap();
    let record = offstage::testing::sample_record(offstage::TaskId::new());
    offstage::store::Store::launch(&store, &record)
        .await
        .unwrap();
    drop(store);
    let store = SqliteStore::open(&path).await.unwrap();
    let read = offstage::store::Store::get(&store, record.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.id, record.id);
    assert_eq!(read.name, record.name);
}

#[tokio::test]
async fn a_database_in_a_missing_directory_says_so() {
    let path = format!("{}-missing/tasks.db", SqliteBackend.new_database());
    let error = SqliteStore::open(&path).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Store);
    assert!(error.message().contains("does not exist"), "{error}");
}
