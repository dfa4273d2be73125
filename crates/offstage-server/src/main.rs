//! `offstage`: run an Offstage server, or drive one from the command line.

fn main() -> std::process::ExitCode {
    // A worker process for `serve --demo`'s isolated task types serves them from here, before
    // the command line is parsed or logging set up.
    offstage::isolation_entry(offstage_server::demo::register);
    offstage_server::cli::main()
}
