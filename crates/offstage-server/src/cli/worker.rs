//! `offstage worker`: the demo task types served to a server as a remote worker.

use std::process::ExitCode;

use super::{Failure, Out, Remote};
use crate::demo;

/// `offstage worker`.
#[derive(clap::Args, Debug)]
pub(crate) struct Worker {
    /// The name the server shows for this worker.
    #[arg(long)]
    name: Option<String>,
    /// How many tasks it runs at once.
    #[arg(long, default_value_t = 4)]
    concurrency: u32,
    #[command(flatten)]
    remote: Remote,
}

impl Worker {
    /// Serves until stopped, reconnecting when the connection drops; it prints nothing on
    /// stdout (its one line goes to stderr).
    pub(crate) async fn run(self, _out: &mut Out) -> Result<ExitCode, Failure> {
        let mut worker = offstage::Worker::new(&self.remote.server).concurrency(self.concurrency);
        if let Some(token) = self.remote.token {
            worker = worker.token(token);
        }
        if let Some(name) = self.name {
            worker = worker.name(name);
        }
        eprintln!(
            "offstage worker serving the demo task types for {}",
            self.remote.server
        );
        demo::register(worker)
            .run()
            .await
            .map_err(|e| Failure::Message(e.to_string()))?;
        Ok(ExitCode::SUCCESS)
    }
}
