//! Bearer tokens and roles (CONTRACT.md section 6).
//!
//! The tokens file (`GRIDWATCH_TOKENS_FILE`) names each token's holder and role and stores only
//! its SHA-256. A presented token is hashed and compared with every stored hash in constant
//! time; neither tokens nor hashes are ever logged (the types here print neither). An address
//! that presents too many bad tokens is locked out for a while ([`super::lockout`]).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::lockout::{ClientKey, Failure, Lockout};
use crate::metrics::Metrics;

/// A token's role. `viewer` < `investigator` < `admin`; `market` may only submit purchases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads anomalies, the registry, rejections, the calculator.
    Viewer,
    /// A viewer who also moves anomalies through their life cycle.
    Investigator,
    /// Everything, including the registry and purchases.
    Admin,
    /// The market platform: submits purchases, nothing else.
    Market,
}

impl Role {
    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Investigator => "investigator",
            Role::Admin => "admin",
            Role::Market => "market",
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a token.
    Public,
    /// `viewer`, `investigator` or `admin`.
    Viewer,
    /// `investigator` or `admin`.
    Investigator,
    /// `admin` only.
    Admin,
    /// `market` or `admin`: purchases.
    Market,
}

impl Access {
    /// Whether `role` may call a route with this access.
    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Public => true,
            Access::Viewer => matches!(role, Role::Viewer | Role::Investigator | Role::Admin),
            Access::Investigator => matches!(role, Role::Investigator | Role::Admin),
            Access::Admin => role == Role::Admin,
            Access::Market => matches!(role, Role::Market | Role::Admin),
        }
    }

    /// The roles allowed, for messages and the OpenAPI document.
    pub fn roles(self) -> &'static str {
        match self {
            Access::Public => "anyone",
            Access::Viewer => "viewer, investigator or admin",
            Access::Investigator => "investigator or admin",
            Access::Admin => "admin",
            Access::Market => "market or admin",
        }
    }
}

/// The authenticated caller of a request, for handlers (as a request extension).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's name, as written into histories.
    pub name: Arc<str>,
    /// Its role.
    pub role: Role,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    tokens: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    role: Role,
    sha256: String,
}

struct Entry {
    name: Arc<str>,
    role: Role,
    hash: [u8; 32],
}

/// The configured tokens.
pub struct Tokens {
    entries: Vec<Entry>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.entries.len())
    }
}

fn decode_hex(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let nibble = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

/// The hex SHA-256 of a token, as the tokens file stores it.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Tokens {
    /// Parses a tokens file's text.
    pub fn parse(text: &str) -> anyhow::Result<Tokens> {
        let file: TokensFile = toml::from_str(text).context("Failed to parse the tokens file")?;
        let mut entries: Vec<Entry> = Vec::new();
        for (i, token) in file.tokens.into_iter().enumerate() {
            if token.name.trim().is_empty() || token.name.len() > 128 {
                bail!("tokens[{i}]: name must be 1 to 128 characters");
            }
            let Some(hash) = decode_hex(&token.sha256) else {
                bail!(
                    "tokens[{i}] ({}): sha256 must be 64 hexadecimal digits",
                    token.name
                );
            };
            if entries.iter().any(|e| e.name.as_ref() == token.name) {
                bail!("tokens[{i}]: the name {:?} is used twice", token.name);
            }
            if entries.iter().any(|e| e.hash == hash) {
                bail!(
                    "tokens[{i}] ({}): the same token is configured twice",
                    token.name
                );
            }
            entries.push(Entry {
                name: token.name.into(),
                role: token.role,
                hash,
            });
        }
        Ok(Tokens { entries })
    }

    /// Reads the tokens file at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Tokens> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!("Failed to read the tokens file {path:?} (set GRIDWATCH_TOKENS_FILE)")
        })?;
        let tokens =
            Tokens::parse(&text).with_context(|| format!("In the tokens file {path:?}"))?;
        if tokens.entries.is_empty() {
            tracing::warn!(path = %path.display(), "The tokens file holds no token: only public routes will answer.");
        }
        Ok(tokens)
    }

    /// The caller a presented token belongs to, if any. Every stored hash is compared, in
    /// constant time, whatever matches.
    pub fn verify(&self, token: &str) -> Option<Caller> {
        let digest = Sha256::digest(token.as_bytes());
        let mut found = None;
        for entry in &self.entries {
            let equal: bool = digest.as_slice().ct_eq(&entry.hash).into();
            if equal && found.is_none() {
                found = Some(Caller {
                    name: entry.name.clone(),
                    role: entry.role,
                });
            }
        }
        found
    }
}

/// What the guard of one route needs.
#[derive(Clone)]
pub struct Guard {
    /// Who may call the route.
    pub access: Access,
    /// The configured tokens.
    pub tokens: Arc<Tokens>,
    /// To count refusals.
    pub metrics: Arc<Metrics>,
    /// The failures of client addresses, shared by every route.
    pub lockout: Arc<Lockout>,
    /// Proxies in front of the API whose `X-Forwarded-For` names the client
    /// (`api.trusted_proxy_hops`).
    pub trusted_proxy_hops: usize,
}

/// 401, counted against the client's address (which this failure may lock out).
fn unauthorized(
    guard: &Guard,
    client: Option<ClientKey>,
    code: &'static str,
    message: &str,
) -> Response {
    guard.metrics.api.auth_failures.inc();
    if let Some(client) = client {
        if let Failure::LockedOut(lockout) = guard.lockout.record_failure(client, Instant::now()) {
            tracing::warn!(
                %client,
                lockout_secs = lockout.as_secs(),
                "A client address presented too many invalid bearer tokens: it is locked out."
            );
        }
    }
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, code, message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"gridwatch\""),
    );
    response
}

/// 429 for a locked-out address, with `Retry-After` in whole seconds (rounded up).
fn locked_out(metrics: &Metrics, remaining: Duration) -> Response {
    metrics.api.auth_rate_limited.inc();
    let seconds = (remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0)).max(1);
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        format!("this address presented too many invalid bearer tokens; retry in {seconds} s"),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// Checks the bearer token against the route's access; on success, the [`Caller`] is added to
/// the request's extensions. A locked-out client address gets 429 whatever its token.
pub async fn authorize(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    if guard.access == Access::Public {
        return next.run(request).await;
    }
    let client = ClientKey::of_request(
        request.headers(),
        request.extensions().get::<ConnectInfo<SocketAddr>>(),
        guard.trusted_proxy_hops,
    );
    if let Some(remaining) = client.and_then(|c| guard.lockout.locked_for(c, Instant::now())) {
        return locked_out(&guard.metrics, remaining);
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        });
    let Some(token) = presented else {
        return unauthorized(
            &guard,
            client,
            "unauthorized",
            "this route needs an `Authorization: Bearer <token>` header",
        );
    };
    let Some(caller) = guard.tokens.verify(&token) else {
        return unauthorized(
            &guard,
            client,
            "invalid_token",
            "the bearer token is not valid",
        );
    };
    if !guard.access.allows(caller.role) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "role {} may not call this route (it needs {})",
                caller.role.as_str(),
                guard.access.roles()
            ),
        )
        .into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_by_hash_and_never_print() {
        let text = format!(
            "[[tokens]]\nname = \"auditor-1\"\nrole = \"viewer\"\nsha256 = \"{}\"\n",
            hash_token("secret-1")
        );
        let tokens = Tokens::parse(&text).expect("valid");
        let caller = tokens.verify("secret-1").expect("known token");
        assert_eq!(
            (caller.name.as_ref(), caller.role),
            ("auditor-1", Role::Viewer)
        );
        assert!(tokens.verify("secret-2").is_none());
        assert!(tokens.verify("").is_none());
        assert!(!format!("{tokens:?}").contains(&hash_token("secret-1")));
    }

    #[test]
    fn bad_files_are_refused() {
        assert!(
            Tokens::parse("[[tokens]]\nname = \"a\"\nrole = \"root\"\nsha256 = \"00\"\n").is_err()
        );
        assert!(
            Tokens::parse("[[tokens]]\nname = \"a\"\nrole = \"viewer\"\nsha256 = \"zz\"\n")
                .is_err()
        );
        assert!(Tokens::parse("[[tokens]]\nname = \"a\"\nrole = \"viewer\"\n").is_err());
        assert!(Tokens::parse("[[tokenz]]\n").is_err());
        let twice = format!(
            "[[tokens]]\nname = \"a\"\nrole = \"viewer\"\nsha256 = \"{0}\"\n[[tokens]]\nname = \"b\"\nrole = \"admin\"\nsha256 = \"{0}\"\n",
            hash_token("x")
        );
        assert!(Tokens::parse(&twice).is_err());
    }

    #[test]
    fn roles_are_ordered_and_market_is_apart() {
        use Role::*;
        assert!(Access::Viewer.allows(Viewer) && Access::Viewer.allows(Admin));
        assert!(!Access::Viewer.allows(Market));
        assert!(!Access::Investigator.allows(Viewer) && Access::Investigator.allows(Investigator));
        assert!(!Access::Admin.allows(Investigator));
        assert!(Access::Market.allows(Market) && Access::Market.allows(Admin));
        assert!(!Access::Market.allows(Viewer) && !Access::Market.allows(Investigator));
    }

    #[test]
    fn the_dev_tokens_file_holds_the_documented_tokens() {
        use Role::*;
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/tokens.dev.toml");
        let tokens = Tokens::load(&path).expect("dev tokens parse");
        for (token, role) in [
            ("dev-viewer-token", Viewer),
            ("dev-investigator-token", Investigator),
            ("dev-admin-token", Admin),
            ("dev-market-token", Market),
        ] {
            assert_eq!(tokens.verify(token).map(|c| c.role), Some(role), "{token}");
        }
    }
}
