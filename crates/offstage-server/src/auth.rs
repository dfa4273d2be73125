//! Bearer tokens and roles.
//!
//! A token has one role. Roles nest: `control` may do everything `launch` may, and `launch`
//! everything `read` may. `worker` is apart: it is for worker processes only. With no tokens
//! configured the API is open; the binary allows that only on a loopback address.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

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
///
/// Secrets are kept as SHA-256 digests, and a presented token is hashed and compared with every
/// one of them in constant time (`subtle`): how long a check takes says nothing about how
/// close a guess was, nor which token matched.
#[derive(Clone, Default)]
pub struct Tokens {
    digests: Arc<Vec<([u8; 32], Role)>>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print secrets (nor their digests).
        f.debug_struct("Tokens")
            .field("count", &self.digests.len())
            .finish()
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

impl Tokens {
    /// Tokens from `(role, secret)` pairs.
    pub fn new(tokens: impl IntoIterator<Item = (Role, String)>) -> Self {
        let digests = tokens
            .into_iter()
            .map(|(role, secret)| (digest(&secret), role))
            .collect();
        Self {
            digests: Arc::new(digests),
        }
    }

    /// Parses `ROLE:SECRET`. The error never repeats the secret.
    pub fn parse_one(text: &str) -> Result<(Role, String), String> {
        let text = text.trim();
        let Some((role, secret)) = text.split_once(':') else {
            return Err(
                "a token is ROLE:SECRET (for example control:s3cret), and this one has no `:`"
                    .into(),
            );
        };
        let role: Role = role.trim().parse()?;
        let secret = secret.trim();
        if secret.is_empty() {
            return Err(format!(
                "the token for role {role} is empty: give it a secret"
            ));
        }
        if secret.chars().any(char::is_control) {
            return Err(format!(
                "the token for role {role} has a control character in its secret, which no \
                 `Authorization` header can carry: use letters, digits and punctuation"
            ));
        }
        Ok((role, secret.to_owned()))
    }

    /// Parses a token file (`--token-file`): one `ROLE:SECRET` per line; blank lines and lines
    /// starting with `#` are skipped. `source` names the file in errors, which give the line's
    /// number, never its secret.
    pub fn parse_file(text: &str, source: &str) -> Result<Vec<(Role, String)>, String> {
        let mut tokens = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let token =
                Self::parse_one(line).map_err(|e| format!("{source}, line {}: {e}", number + 1))?;
            tokens.push(token);
        }
        Ok(tokens)
    }

    /// Parses `OFFSTAGE_TOKENS`: `ROLE:SECRET` entries separated by commas or newlines (so a
    /// secret there cannot contain a comma); blank entries are skipped.
    pub fn parse_env(text: &str, source: &str) -> Result<Vec<(Role, String)>, String> {
        text.split([',', '\n'])
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .enumerate()
            .map(|(number, entry)| {
                Self::parse_one(entry).map_err(|e| format!("{source}, entry {}: {e}", number + 1))
            })
            .collect()
    }

    /// True when no tokens are configured.
    pub fn is_open(&self) -> bool {
        self.digests.is_empty()
    }

    /// The role of `secret`, checked against every token in constant time.
    fn lookup(&self, secret: &str) -> Option<Role> {
        let presented = digest(secret);
        let mut found: Option<Role> = None;
        for (known, role) in self.digests.iter() {
            // No early exit: every digest is compared, whatever matched.
            if bool::from(known.ct_eq(&presented)) {
                found = Some(*role);
            }
        }
        found
    }

    /// The role of the token `headers` present. On an open API that is `control`: anyone may do
    /// anything.
    pub fn role_of(&self, headers: &HeaderMap) -> Result<Role, ApiError> {
        if self.is_open() {
            return Ok(Role::Control);
        }
        let Some(secret) = bearer(headers) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this server needs a token: send `Authorization: Bearer <token>`",
            ));
        };
        self.lookup(secret).ok_or_else(|| {
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

/// The token of an `Authorization: Bearer <token>` header. The scheme is case-insensitive
/// (RFC 7235: `bearer`, `BEARER` and `Bearer` are one scheme), and any run of spaces may
/// follow it.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once([' ', '\t'])?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn with_authorization(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let tokens = Tokens::new([(Role::Launch, "s3cret".to_owned())]);
        for value in [
            "Bearer s3cret",
            "bearer s3cret",
            "BEARER  s3cret",
            "bEaReR\ts3cret ",
        ] {
            assert_eq!(
                tokens.role_of(&with_authorization(value)).unwrap(),
                Role::Launch,
                "{value}"
            );
        }
        for value in [
            "Basic s3cret",
            "Bearer",
            "Bearers3cret",
            "Bearer s3cre",
            "Bearer s3cret2",
        ] {
            assert!(
                tokens.role_of(&with_authorization(value)).is_err(),
                "{value}"
            );
        }
    }

    #[test]
    fn lists_from_files_and_the_environment() {
        let file = "# tokens\nread:r1\n\n  control:c1  \nworker:w,1\n";
        let tokens = Tokens::parse_file(file, "tokens.txt").unwrap();
        assert_eq!(
            tokens,
            [
                (Role::Read, "r1".to_owned()),
                (Role::Control, "c1".to_owned()),
                (Role::Worker, "w,1".to_owned()),
            ]
        );
        let env = Tokens::parse_env("read:r1, control:c1\nlaunch:l1,", "OFFSTAGE_TOKENS").unwrap();
        assert_eq!(env.len(), 3);
        assert_eq!(env[2], (Role::Launch, "l1".to_owned()));
        let error = Tokens::parse_file("read:r1\ntopsecret\n", "tokens.txt").unwrap_err();
        assert!(error.starts_with("tokens.txt, line 2:"), "{error}");
        assert!(
            !error.contains("topsecret"),
            "never echoes a secret: {error}"
        );
        let error = Tokens::parse_env("read:r1,admin:hunter2", "OFFSTAGE_TOKENS").unwrap_err();
        assert!(error.starts_with("OFFSTAGE_TOKENS, entry 2:"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
        assert!(Tokens::parse_one("read:a\u{7}b").is_err());
    }
}
