//! Marks the browser test as ignored unless `OFFSTAGE_TEST_BROWSER` is set (as the dashboard's
//! suite is, in `crates/offstage-server/build.rs`), so that `cargo test` counts it, with the
//! reason, in its summary.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=OFFSTAGE_TEST_BROWSER");
    println!("cargo::rustc-check-cfg=cfg(offstage_test_browser)");
    if std::env::var_os("OFFSTAGE_TEST_BROWSER").is_some_and(|value| !value.is_empty()) {
        println!("cargo::rustc-cfg=offstage_test_browser");
    }
}
