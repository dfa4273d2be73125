//! `offstage`: run an Offstage server, or drive one from the command line.
//!
//! `main` is thin: it runs the command line ([`cli::run`]) and maps how it ended to an exit
//! code. A closed stdout (`offstage list | head -1`) ends it quietly with 0.

mod cli;
mod demo;

use std::process::ExitCode;

use cli::Failure;

fn main() -> ExitCode {
    // A worker process for `serve --demo`'s isolated task types serves them from here, before
    // the command line is parsed or logging set up.
    offstage::isolation_entry(demo::register);
    match cli::run() {
        Ok(code) => code,
        Err(Failure::BrokenPipe) => ExitCode::SUCCESS,
        Err(Failure::Message(message)) => {
            eprintln!("offstage: {message}");
            ExitCode::FAILURE
        }
    }
}
