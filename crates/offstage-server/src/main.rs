//! `offstage`: run an Offstage server, or drive one from the command line.

fn main() -> std::process::ExitCode {
    offstage_server::cli::main()
}
