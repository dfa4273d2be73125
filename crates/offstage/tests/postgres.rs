//! The conformance suite on the PostgreSQL store, when `OFFSTAGE_TEST_POSTGRES` names a
//! database (e.g. `postgres://postgres@127.0.0.1:5432/test`). Each test gets a schema of its
//! own, so they run in parallel. Without the variable every test passes at once and says,
//! loudly, that it was skipped.

#![cfg(feature = "postgres")]

use offstage::testing::conformance::PostgresBackend;

offstage::conformance_tests!(optional PostgresBackend::from_env("the PostgreSQL conformance suite"));
