//! [`Worker`]: a Rust program serving task types for an Offstage server, over the network.
//!
//! ```no_run
//! use offstage::{Context, TaskError, Worker};
//!
//! # async fn demo() -> Result<(), offstage::Error> {
//! Worker::new("http://127.0.0.1:7700")
//!     .token("worker-secret")
//!     .concurrency(4)
//!     .task("reports.monthly", |ctx: Context, month: String| async move {
//!         ctx.log(format!("building the report for {month}"));
//!         Ok::<_, TaskError>(format!("report-{month}.pdf"))
//!     })
//!     .run()
//!     .await
//! # }
//! ```

use std::future::Future;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use super::session::{self, Hello};
use crate::context::Context;
use crate::error::{Error, ErrorKind, TaskError};
use crate::registry::{Registry, TaskType, TaskTypeOptions};

/// Connects to a server's `/api/workers`, serves the task types registered on it, and
/// reconnects with backoff whenever the connection ends. Tasks it was running when a connection
/// dropped are `missing` on the server (they are not run twice).
///
/// ```no_run
/// use offstage::{Context, TaskError, Worker};
///
/// # async fn demo() -> Result<(), offstage::Error> {
/// // On a machine with a GPU; the server was started with `--remote-type images.upscale`.
/// Worker::new("ws://offstage.internal:7700/api/workers")
///     .token("w0rker-t0ken")
///     .name("gpu-1")
///     .concurrency(4)
///     .task("images.upscale", |ctx: Context, path: String| async move {
///         ctx.set_state(&serde_json::json!({ "progress": 0.5 }))?;
///         Ok::<_, TaskError>(format!("{path}@4x"))
///     })
///     .run() // serves until the process ends
///     .await
/// # }
/// ```
pub struct Worker {
    url: String,
    token: Option<String>,
    name: Option<String>,
    concurrency: u32,
    registry: Registry,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("url", &self.url)
            .field("name", &self.name)
            .field("concurrency", &self.concurrency)
            .field("task_types", &self.registry)
            .finish()
    }
}

impl Worker {
    /// A worker for the server at `url` (`http://host:port`, or `ws://…` / `wss://…`).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            token: None,
            name: None,
            concurrency: 1,
            registry: Registry::default(),
        }
    }

    /// The token to connect with (role `worker`).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The name the server shows for this worker.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How many tasks it runs at once (default 1).
    pub fn concurrency(mut self, concurrency: u32) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Serves a task type whose body is `f(ctx, args)`, as [`crate::RuntimeBuilder::task`].
    pub fn task<A, O, F, Fut>(mut self, name: &str, f: F) -> Self
    where
        A: DeserializeOwned + Send + 'static,
        O: Serialize + Send + 'static,
        F: Fn(Context, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, TaskError>> + Send + 'static,
    {
        self.registry
            .register_fn(name, TaskTypeOptions::default(), f);
        self
    }

    /// Serves a [`TaskType`].
    pub fn register<T: TaskType>(mut self, task_type: T) -> Self {
        self.registry.register(task_type);
        self
    }

    fn endpoint(&self) -> Result<String, Error> {
        let url = self.url.trim_end_matches('/');
        let base = if let Some(rest) = url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else if let Some(rest) = url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if url.starts_with("ws://") || url.starts_with("wss://") {
            url.to_owned()
        } else {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("`{url}` is not a server URL: use http://host:port (or https://, ws://, wss://)"),
            ));
        };
        Ok(if base.ends_with("/api/workers") {
            base
        } else {
            format!("{base}/api/workers")
        })
    }

    /// Connects once and serves until the connection ends. `Ok` when the server closed it.
    pub async fn run_once(&self) -> Result<(), Error> {
        if self.registry.names().next().is_none() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "this worker serves no task types: register one with Worker::task",
            ));
        }
        let mut request = self
            .endpoint()?
            .into_client_request()
            .map_err(|e| Error::new(ErrorKind::InvalidArgument, format!("bad server URL: {e}")))?;
        if let Some(token) = &self.token {
            let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    "the token has characters a header cannot carry",
                )
            })?;
            request.headers_mut().insert("authorization", value);
        }
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|e| {
                use tokio_tungstenite::tungstenite::Error as WsError;
                match &e {
                    WsError::Http(response) if matches!(response.status().as_u16(), 401 | 403) => {
                        Error::new(
                            ErrorKind::Refused,
                            format!(
                                "{} refused this worker's token ({}): give a token of role worker",
                                self.url,
                                response.status()
                            ),
                        )
                    }
                    _ => Error::new(
                        ErrorKind::Connection,
                        format!("connecting to {}: {e}", self.url),
                    ),
                }
            })?;
        let (mut sink, stream) = socket.split();
        let incoming = stream
            .take_while(|frame| futures::future::ready(matches!(frame, Ok(m) if !m.is_close())))
            .filter_map(|frame| async move {
                match frame {
                    Ok(Message::Text(text)) => Some(text.as_str().to_owned()),
                    _ => None,
                }
            })
            .boxed();
        let (outgoing, mut to_send) = mpsc::unbounded_channel::<String>();
        let writer = tokio::spawn(async move {
            while let Some(text) = to_send.recv().await {
                if sink.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let hello = Hello {
            name: self.name.clone(),
            concurrency: self.concurrency.max(1),
            isolated: false,
        };
        let served = session::serve(&self.registry, &hello, incoming, outgoing).await;
        let _ = writer.await;
        served.map_err(|e| {
            Error::new(
                ErrorKind::Connection,
                format!("the connection to {} ended: {e}", self.url),
            )
        })
    }

    /// Serves forever, reconnecting with backoff (0.1 s doubling to 10 s, reset after a
    /// connection that lasted).
    pub async fn run(self) -> Result<(), Error> {
        let mut backoff = Duration::from_millis(100);
        loop {
            let started = tokio::time::Instant::now();
            match self.run_once().await {
                Ok(()) => {
                    tracing::info!(server = %self.url, "the server closed the connection; reconnecting")
                }
                // A bad URL, no task types or a refused token: retrying cannot help.
                Err(error)
                    if matches!(
                        error.kind(),
                        ErrorKind::InvalidArgument | ErrorKind::Refused
                    ) =>
                {
                    return Err(error);
                }
                Err(error) => {
                    tracing::warn!(server = %self.url, %error, "worker connection ended; reconnecting")
                }
            }
            if started.elapsed() > Duration::from_secs(30) {
                backoff = Duration::from_millis(100);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }
}
