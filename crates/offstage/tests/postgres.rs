//! The conformance suite on the PostgreSQL store, on the database `OFFSTAGE_TEST_POSTGRES`
//! names (e.g. `postgres://postgres@127.0.0.1:5432/test`). Each test gets a schema of its own,
//! so they run in parallel. Without the variable at build time every test is ignored, with the
//! reason (`build.rs` sets `offstage_test_postgres`).

#![cfg(feature = "postgres")]

use offstage::testing::conformance::PostgresBackend;

// ANCHOR: suite
offstage::conformance_tests!(
    #[cfg_attr(
        not(offstage_test_postgres),
        ignore = "set OFFSTAGE_TEST_POSTGRES=postgres://… to run"
    )]
    PostgresBackend::from_env()
);
// ANCHOR_END: suite
