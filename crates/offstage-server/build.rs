//! Marks the suites that need something installed as ignored unless their variable is set, so
//! that `cargo test` counts them, with the reason, in its summary: `cfg(offstage_test_postgres)`
//! for `OFFSTAGE_TEST_POSTGRES` (the multi-node, frozen-node, fault and PostgreSQL trust
//! tests), `cfg(offstage_test_browser)` for `OFFSTAGE_TEST_BROWSER` (the dashboard in Chromium)
//! and `cfg(offstage_test_python)` for `OFFSTAGE_TEST_PYTHON` (the Python client's pytest suite).
//! The tests read them in `#[cfg_attr(not(…), ignore = "…")]`; the crate's own code never does.

const SUITES: [(&str, &str); 3] = [
    ("OFFSTAGE_TEST_POSTGRES", "offstage_test_postgres"),
    ("OFFSTAGE_TEST_BROWSER", "offstage_test_browser"),
    ("OFFSTAGE_TEST_PYTHON", "offstage_test_python"),
];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    for (variable, cfg) in SUITES {
        println!("cargo::rerun-if-env-changed={variable}");
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if std::env::var_os(variable).is_some_and(|value| !value.is_empty()) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
