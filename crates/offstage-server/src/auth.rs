//! Bearer tokens, roles, and who a request is ([`Access`]).
//!
//! A token has one role. Roles nest: `control` may do everything `launch` may, and `launch`
//! everything `read` may. `worker` is apart: it is for worker processes only. With no tokens
//! configured the API is open; the binary allows that only on a loopback address.
//!
//! A scoped token (`ost1.…`, see [`crate::scoped`]) is checked here too, by its signature,
//! open server or not. The middleware of each route group decides who gets in and puts the
//! caller's [`Access`] in the request's extensions; the few handlers that take scoped tokens
//! (the task reads, the event streams, kill) narrow what they answer through it.

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
use crate::scoped::{Grant, Refused, Scope, PREFIX};

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

/// The configured tokens. Empty means the API is open, unless made with [`Tokens::closed`].
///
/// Secrets are kept as SHA-256 digests, and a presented token is hashed and compared with every
/// one of them in constant time (`subtle`): how long a check takes says nothing about how
/// close a guess was, nor which token matched.
#[derive(Clone, Default)]
pub struct Tokens {
    digests: Arc<Vec<([u8; 32], Role)>>,
    /// No role token, and not open: only scoped tokens get in.
    closed: bool,
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
            closed: false,
        }
    }

    /// No role token at all, and not open either: every request needs a token, and only the
    /// scoped tokens the app mints get in (see [`crate::ScopedTokens`]). For an app whose own
    /// users are the only callers of the router it mounts: without this, a router with no role
    /// token is open to anyone who sends no token.
    ///
    /// ```
    /// use offstage_server::{AppState, ScopedTokens, Tokens};
    /// # async fn demo(rt: offstage::Runtime) {
    /// let state = AppState::new(rt)
    ///     .with_tokens(Tokens::closed())
    ///     .scoped_tokens(ScopedTokens::random());
    /// # }
    /// ```
    pub fn closed() -> Self {
        Self {
            digests: Arc::default(),
            closed: true,
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
        if secret.starts_with(PREFIX) {
            return Err(format!(
                "the token for role {role} starts with `{PREFIX}`, which marks scoped tokens: \
                 give the role token a secret that does not"
            ));
        }
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

    /// True when no tokens are configured (and the set was not made [`Tokens::closed`]).
    pub fn is_open(&self) -> bool {
        self.digests.is_empty() && !self.closed
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

    /// Who the caller presenting `headers` is, for the record of what they did (a bulk
    /// action's `actor`): `anonymous` on an open server; otherwise the token's role and the
    /// first 8 hex digits of its SHA-256 digest (`control token 3f9a1c2b`), which tells the
    /// configured tokens apart without saying anything usable about the secret. Call it after
    /// the route's token check.
    pub fn actor(&self, headers: &HeaderMap) -> String {
        if self.is_open() {
            return "anonymous".to_owned();
        }
        let Some(secret) = bearer(headers) else {
            return "anonymous".to_owned();
        };
        let presented = digest(secret);
        let fingerprint: String = presented[..4].iter().map(|b| format!("{b:02x}")).collect();
        match self.lookup(secret) {
            Some(role) => format!("{role} token {fingerprint}"),
            None => format!("token {fingerprint}"),
        }
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
}

/// Who a request is, as the route group's middleware found it. In the request's extensions
/// for every route behind a token check; a handler reads it as an extractor.
#[derive(Clone, Debug)]
pub enum Access {
    /// A role token. On an open server, anyone without a scoped token: `control` (`worker` on
    /// the worker route).
    Role(Role),
    /// A valid scoped token: the handler shows and does only what it grants.
    Scoped(Grant),
}

impl Access {
    /// The scope, for a scoped token; `None` for a role, which sees every task.
    pub fn scope(&self) -> Option<&Scope> {
        match self {
            Access::Role(_) => None,
            Access::Scoped(grant) => Some(&grant.scope),
        }
    }

    /// True when the caller may see the task `id` owned by `owner`.
    pub fn sees(&self, id: offstage::TaskId, owner: Option<&str>) -> bool {
        self.scope().is_none_or(|scope| scope.contains(id, owner))
    }

    /// `Ok` when the caller may see `record`; else the 404 an unknown id gets, word for word,
    /// so that a scoped token learns nothing of tasks outside its scope, not even that they
    /// exist.
    pub fn check_sees(&self, record: &offstage::TaskRecord) -> Result<(), ApiError> {
        if self.sees(record.id, record.owner.as_deref()) {
            Ok(())
        } else {
            Err(not_found(record.id))
        }
    }

    /// `Ok` when the caller may kill `record`: 404 outside the scope (as for an unknown id),
    /// 403 inside it for a token without the `kill` right.
    pub fn check_kills(&self, record: &offstage::TaskRecord) -> Result<(), ApiError> {
        self.check_sees(record)?;
        match self {
            Access::Scoped(grant) if !grant.rights.can_kill() => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "{}; killing needs a token with rights [\"read\", \"kill\"]: mint one",
                    grant.describe()
                ),
            )),
            _ => Ok(()),
        }
    }
    /// `Ok` when the caller may send signals to `record`: 404 outside the scope (as for an
    /// unknown id), 403 inside it for a token without the `signal` right.
    pub fn check_signals(&self, record: &offstage::TaskRecord) -> Result<(), ApiError> {
        self.check_sees(record)?;
        match self {
            Access::Scoped(grant) if !grant.rights.can_signal() => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "{}; sending a signal needs a token with the \"signal\" right (e.g. \
                     [\"read\", \"signal\"]): mint one",
                    grant.describe()
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// The 404 of `Runtime::record` for an id no task has.
pub(crate) fn not_found(id: offstage::TaskId) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no task has id {id}: check the id, or it may have been purged \
             (list tasks to see the ids that exist)"
        ),
    )
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Access {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, ApiError> {
        parts.extensions.get::<Access>().cloned().ok_or_else(|| {
            // A route wired without its middleware: refuse rather than show everything.
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the server failed to handle this request; its log has the cause",
            )
            .with_cause("a handler read `Access` on a route without an auth middleware")
        })
    }
}

/// Who may pass a route group's middleware ([`require`]).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Gate {
    /// A token with this role; a scoped token gets 403.
    Role(Role),
    /// A token with this role, or a scoped token, which the handler holds to its scope. With
    /// `query`, the token may also come as `?token=` (the event streams: `EventSource` cannot
    /// send headers), scoped tokens only.
    Scoped { role: Role, query: bool },
    /// A token with either role (a limiter's permits: for launchers and for workers).
    Either(Role, Role),
}

/// The value of the query parameter `token`, if the URI has one (percent-decoded).
fn query_token(request: &Request) -> Option<String> {
    let query = request.uri().query()?;
    form_urlencoded::parse(query.as_bytes())
        .find_map(|(name, value)| (name == "token").then(|| value.into_owned()))
}

/// What the scoped token `token` allows, or the 401 that says why it does not.
pub(crate) fn verify(state: &crate::AppState, token: &str) -> Result<Grant, ApiError> {
    state
        .scoped_tokens
        .verify(token)
        .map_err(|refused| match refused {
            Refused::Expired(at) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "token_expired",
                format!(
                    "this scoped token expired at {}: mint a new one (POST /api/tokens, or \
                     ScopedTokens::mint in the app)",
                    at.to_rfc3339()
                ),
            ),
            Refused::Invalid => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "token_invalid",
                "this scoped token is not one this server signed: it is malformed or was \
                 changed, or it was minted with another secret (another server's, or this \
                 one's before a restart with a new secret). Mint a new one",
            ),
        })
}

/// Finds who `request` is and whether `gate` lets them in.
fn access(state: &crate::AppState, request: &Request, gate: Gate) -> Result<Access, ApiError> {
    let in_query = query_token(request);
    if let Some(token) = &in_query {
        if !matches!(gate, Gate::Scoped { query: true, .. }) {
            return Err(ApiError::bad_request(
                "token_in_query",
                "a token in the URL (`?token=`) is taken only by the event streams \
                 (/api/events and /api/tasks/{id}/events, which EventSource opens without \
                 headers): send `Authorization: Bearer <token>` here",
            ));
        }
        if !token.starts_with(PREFIX) {
            return Err(ApiError::bad_request(
                "token_in_query",
                "only a scoped token (`ost1.…`, short-lived) may be put in a URL, where logs \
                 and browser history keep it: send role tokens in `Authorization: Bearer \
                 <token>`",
            ));
        }
    }
    // The header wins over the URL.
    let presented = bearer(request.headers()).map(str::to_owned).or(in_query);
    if let Some(token) = presented.as_deref().filter(|t| t.starts_with(PREFIX)) {
        let grant = verify(state, token)?;
        return match gate {
            Gate::Scoped { .. } => Ok(Access::Scoped(grant)),
            Gate::Role(_) | Gate::Either(..) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                grant.describe(),
            )),
        };
    }
    let (needed, or) = match gate {
        Gate::Role(role) | Gate::Scoped { role, .. } => (role, role),
        Gate::Either(role, or) => (role, or),
    };
    if state.tokens.is_open() {
        // Anyone may do anything, serving tasks as a worker included (`control` alone does
        // not allow `worker`).
        return Ok(Access::Role(if needed == Role::Worker {
            Role::Worker
        } else {
            Role::Control
        }));
    }
    let role = state.tokens.role_of(request.headers())?;
    if role.allows(needed) || role.allows(or) {
        Ok(Access::Role(role))
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this needs a token with role {needed}; yours has role {role}"),
        ))
    }
}

/// The token of an `Authorization: Bearer <token>` header. The scheme is case-insensitive
/// (RFC 7235: `bearer`, `BEARER` and `Bearer` are one scheme), and any run of spaces may
/// follow it.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once([' ', '\t'])?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The middleware of a route group: lets through what `gate` allows, with the request's
/// [`Access`] in its extensions for the handlers. `app()` puts one on each group.
pub(crate) async fn require(
    State((state, gate)): State<(crate::AppState, Gate)>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let access = access(&state, &request, gate)?;
    request.extensions_mut().insert(access);
    Ok(next.run(request).await)
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
    fn a_closed_set_lets_no_one_in_without_a_token_where_an_empty_one_lets_everyone() {
        let open = Tokens::default();
        assert!(open.is_open());
        assert_eq!(open.role_of(&HeaderMap::new()).unwrap(), Role::Control);
        let closed = Tokens::closed();
        assert!(!closed.is_open());
        let refused = closed.role_of(&HeaderMap::new()).unwrap_err();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        let refused = closed
            .role_of(&with_authorization("Bearer anything"))
            .unwrap_err();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
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
    fn a_token_in_the_query_is_percent_decoded() {
        let request = Request::builder()
            .uri("/api/events?a=1&&token=ost1.x%2Ey+z%zz")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(query_token(&request).as_deref(), Some("ost1.x.y z%zz"));
        let request = Request::builder()
            .uri("/api/events?tokens=1")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(query_token(&request), None);
        assert!(
            Tokens::parse_one("read:ost1.abc").is_err(),
            "the scoped prefix"
        );
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
