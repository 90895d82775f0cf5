//! The auditors' web page at `/`: plain HTML, CSS and JavaScript embedded in the binary (no
//! build toolchain). Loading it needs no token; the API calls it makes send the token the user
//! typed, which the page keeps in `sessionStorage` (this browser tab only).
//!
//! Every answer carries a strict Content-Security-Policy: scripts and styles from this origin
//! only (no inline script, no `eval`), requests to this origin only, no frames, no form posts
//! (the page submits through `fetch`). The evidence chart is fetched as SVG text and parsed as
//! XML before it joins the page, so nothing in it can run.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../../web/index.html");
const SCRIPT: &str = include_str!("../../web/app.js");
const STYLE: &str = include_str!("../../web/app.css");

/// The page's Content-Security-Policy.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Served from the binary: a new version is a restart away, so browsers revalidate.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /`: the page.
pub async fn index() -> Response {
    asset(INDEX, "text/html; charset=utf-8")
}

/// `GET /web/app.js`: its script.
pub async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

/// `GET /web/app.css`: its style sheet.
pub async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}
