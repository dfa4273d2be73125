//! The Python client's own suite (`clients/python/tests`, pytest), against this build's
//! `offstage` binary: it starts real `offstage serve --demo` processes and a Python worker.
//!
//! Runs when `OFFSTAGE_TEST_PYTHON` is set (needs `python3` with the client installed:
//! `pip install -e 'clients/python[test]'`). Without it at build time the test is ignored, with
//! the reason (`build.rs` sets `offstage_test_python`).

use std::path::Path;
use std::process::Command;

#[cfg_attr(
    not(offstage_test_python),
    ignore = "set OFFSTAGE_TEST_PYTHON=1 to run (after `pip install -e 'clients/python[test]'`)"
)]
#[test]
fn the_python_client_suite_passes() {
    assert!(
        std::env::var_os("OFFSTAGE_TEST_PYTHON").is_some(),
        "this test runs the Python client's suite and OFFSTAGE_TEST_PYTHON is not set: set it \
         to 1 (after `pip install -e 'clients/python[test]'`), or leave the test ignored"
    );
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = Command::new("python3")
        .args(["-m", "pytest", "clients/python/tests", "-q", "-rs"])
        .current_dir(&repo)
        .env("OFFSTAGE_BIN", env!("CARGO_BIN_EXE_offstage"))
        .output()
        .expect("python3 could not be started: install Python 3.10 or newer");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "pytest failed:\n{text}");
    // Skips are reported, not hidden.
    eprintln!("{text}");
}
