//! The conformance suite on the SQLite store.

use offstage::testing::conformance::SqliteBackend;

offstage::conformance_tests!(SqliteBackend);
