//! Bearer tokens and roles.
//!
//! A token has one role. Roles nest: `control` may do everything `launch` may, and `launch`
//! everything `read` may. `worker` is apart: it is for worker processes only. With no tokens
//! configured the API is open; the binary allows that only on a loopback address.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::ApiError;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Read tasks, logs and events.
    Read,
    /// `Read`, and launch tasks.
    Launch,
    /// `Launch`, and kill and purge.
    Control,
    /// Serve tasks as a worker.
    Worker,
}

impl Role {
    fn allows(self, needed: Role) -> bool {
        match (self, needed) {
            (Role::Worker, needed) => needed == Role::Worker,
            (_, Role::Worker) => false,
            (have, needed) => have.rank() >= needed.rank(),
        }
    }

    fn rank(self) -> u8 {
        match self {
            Role::Read => 0,
            Role::Launch => 1,
            Role::Control => 2,
            Role::Worker => 0,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Read => "read",
            Role::Launch => "launch",
            Role::Control => "control",
            Role::Worker => "worker",
        })
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(Role::Read),
            "launch" => Ok(Role::Launch),
            "control" => Ok(Role::Control),
            "worker" => Ok(Role::Worker),
            other => Err(format!(
                "`{other}` is not a role: use read, launch, control or worker"
            )),
        }
    }
}

/// The configured tokens. Empty means the API is open.
#[derive(Clone, Default)]
pub struct Tokens {
    by_secret: Arc<HashMap<String, Role>>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print secrets.
        f.debug_struct("Tokens")
            .field("count", &self.by_secret.len())
            .finish()
    }
}

impl Tokens {
    /// Tokens from `(role, secret)` pairs.
    pub fn new(tokens: impl IntoIterator<Item = (Role, String)>) -> Self {
        let by_secret = tokens
            .into_iter()
            .map(|(role, secret)| (secret, role))
            .collect();
        Self {
            by_secret: Arc::new(by_secret),
        }
    }

    /// Parses `ROLE:SECRET`.
    pub fn parse_one(text: &str) -> Result<(Role, String), String> {
        let (role, secret) = text
            .split_once(':')
            .ok_or_else(|| format!("`{text}` is not ROLE:SECRET (for example control:s3cret)"))?;
        if secret.is_empty() {
            return Err(format!(
                "the token for role {role} is empty: give it a secret"
            ));
        }
        Ok((role.parse()?, secret.to_owned()))
    }

    /// True when no tokens are configured.
    pub fn is_open(&self) -> bool {
        self.by_secret.is_empty()
    }

    /// The role of the token `headers` present. On an open API that is `control`: anyone may do
    /// anything.
    pub fn role_of(&self, headers: &HeaderMap) -> Result<Role, ApiError> {
        if self.is_open() {
            return Ok(Role::Control);
        }
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        let Some(secret) = presented else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this server needs a token: send `Authorization: Bearer <token>`",
            ));
        };
        self.by_secret.get(secret.trim()).copied().ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the token is not one this server knows: check it, or ask for a new one",
            )
        })
    }

    fn check(&self, request: &Request, needed: Role) -> Result<(), ApiError> {
        if self.is_open() {
            // Anyone may do anything, serving tasks as a worker included (`control` alone
            // does not allow `worker`).
            return Ok(());
        }
        let role = self.role_of(request.headers())?;
        if role.allows(needed) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this needs a token with role {needed}; yours has role {role}"),
            ))
        }
    }
}

async fn require(
    tokens: &Tokens,
    needed: Role,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    tokens.check(&request, needed)?;
    Ok(next.run(request).await)
}

/// Middleware: the request needs role `read`.
pub async fn read(
    State(state): State<crate::AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    require(&state.tokens, Role::Read, request, next).await
}

/// Middleware: the request needs role `launch`.
pub async fn launch(
    State(state): State<crate::AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    require(&state.tokens, Role::Launch, request, next).await
}

/// Middleware: the request needs role `worker`.
pub async fn worker(
    State(state): State<crate::AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    require(&state.tokens, Role::Worker, request, next).await
}

/// Middleware: the request needs role `control`.
pub async fn control(
    State(state): State<crate::AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    require(&state.tokens, Role::Control, request, next).await
}
