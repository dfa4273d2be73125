//! The CLI's HTTP client: JSON calls with the API's errors, a reader for SSE streams, and
//! [`decode`] to read an answer into a typed record.

use std::ops::ControlFlow;

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Failure;

/// A connection to one server.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub(crate) fn new(base: &str, token: Option<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            token,
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a request and returns the JSON body as the server sent it (what `--json`
    /// prints), turning API errors into their message.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        Err(Failure::Message(api_error(
            status,
            &body,
            self.token.is_some(),
        )))
    }

    fn unreachable(&self, error: reqwest::Error) -> Failure {
        Failure::Message(format!(
            "cannot reach the Offstage server at {} ({error}); start one with `offstage serve`, \
             or point at yours with --server or OFFSTAGE_SERVER",
            self.base
        ))
    }

    /// Opens an SSE stream and calls `on_event(event_name, data)` for each event until it
    /// breaks, fails or the stream ends. With `after`, the server first replays the events
    /// after that sequence number that it still holds (0: all of them).
    pub(crate) async fn follow(
        &self,
        path: &str,
        after: Option<u64>,
        mut on_event: impl FnMut(&str, &Value) -> Result<ControlFlow<()>, Failure>,
    ) -> Result<(), Failure> {
        let mut request = self
            .request(Method::GET, path)
            .header("accept", "text/event-stream");
        if let Some(after) = after {
            request = request.header("last-event-id", after.to_string());
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        if !status.is_success() {
            let body: Value = response.json().await.unwrap_or(Value::Null);
            return Err(Failure::Message(api_error(
                status,
                &body,
                self.token.is_some(),
            )));
        }
        let mut bytes = response.bytes_stream();
        let mut buffer = String::new();
        while let Some(chunk) = bytes.next().await {
            let chunk = chunk.map_err(|e| format!("the event stream broke off: {e}"))?;
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            // Events end with a blank line; handle every complete one in the buffer.
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let mut name = "message";
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                let value: Value = serde_json::from_str(&data).unwrap_or(Value::String(data));
                if on_event(name, &value)?.is_break() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// Reads `answer`, a JSON body or event from the server, as a `T`.
pub(crate) fn decode<T: DeserializeOwned>(answer: &Value) -> Result<T, Failure> {
    T::deserialize(answer).map_err(|e| {
        Failure::Message(format!(
            "the server's answer is not what this `offstage` expects ({e}): is the server an \
             Offstage server of the same version?"
        ))
    })
}

/// The server's error, in the command line's words where they differ from HTTP's: a missing or
/// refused token is fixed with `--token` or `OFFSTAGE_TOKEN`, not with a header.
fn api_error(status: StatusCode, body: &Value, has_token: bool) -> String {
    let code = status.as_u16();
    match (status, has_token) {
        (StatusCode::UNAUTHORIZED, false) => {
            return format!(
                "this server needs a token: give one with --token TOKEN or the OFFSTAGE_TOKEN \
                 environment variable (HTTP {code})"
            )
        }
        (StatusCode::UNAUTHORIZED, true) => {
            return format!(
                "the server does not know the token given with --token or OFFSTAGE_TOKEN: check \
                 it against the server's --token ROLE:SECRET (HTTP {code})"
            )
        }
        _ => {}
    }
    match body["error"]["message"].as_str() {
        Some(message) => format!("{message} (HTTP {code})"),
        None => format!("the server answered HTTP {code}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_refused_token_is_told_in_the_command_lines_words() {
        let body = serde_json::json!({ "error": { "code": "unauthorized",
            "message": "this server needs a token: send `Authorization: Bearer <token>`" } });
        let missing = api_error(StatusCode::UNAUTHORIZED, &body, false);
        assert!(
            missing.contains("--token") && missing.contains("OFFSTAGE_TOKEN"),
            "{missing}"
        );
        assert!(!missing.contains("Authorization"), "{missing}");
        let refused = api_error(StatusCode::UNAUTHORIZED, &body, true);
        assert!(refused.contains("--token") && !refused.contains("Authorization"));
        let other = serde_json::json!({ "error": { "code": "not_found", "message": "no task" } });
        assert_eq!(
            api_error(StatusCode::NOT_FOUND, &other, false),
            "no task (HTTP 404)"
        );
    }
}
