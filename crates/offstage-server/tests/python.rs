//! The Python client's own suite (`clients/python/tests`, pytest), against this build's
//! `offstage` binary: it starts real `offstage serve --demo` processes and a Python worker.
//!
//! Runs when `OFFSTAGE_TEST_PYTHON` is set (needs `python3` with the client installed:
//! `pip install -e 'clients/python[test]'`). Without it the test says loudly that it skipped.

use std::path::Path;
use std::process::Command;

#[test]
fn the_python_client_suite_passes() {
    if std::env::var_os("OFFSTAGE_TEST_PYTHON").is_none() {
        eprintln!(
            "SKIPPED the Python client suite: set OFFSTAGE_TEST_PYTHON=1 to run it \
             (after `pip install -e 'clients/python[test]'`)"
        );
        return;
    }
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
