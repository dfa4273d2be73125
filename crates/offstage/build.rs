//! Marks the PostgreSQL suites of this crate's tests as ignored unless `OFFSTAGE_TEST_POSTGRES`
//! is set, so that `cargo test` counts them, with the reason, in its summary.
//!
//! Sets `cfg(offstage_test_postgres)` when the variable names a database; `tests/postgres*.rs`
//! read it in `#[cfg_attr(not(offstage_test_postgres), ignore = "…")]`. The library's code
//! never reads it. Changing the variable reruns this script and rebuilds the crate (and what
//! depends on it): that is the price of a skip libtest can count (docs/decisions.md).

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=OFFSTAGE_TEST_POSTGRES");
    println!("cargo::rustc-check-cfg=cfg(offstage_test_postgres)");
    if std::env::var_os("OFFSTAGE_TEST_POSTGRES").is_some_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=offstage_test_postgres");
    }
}
