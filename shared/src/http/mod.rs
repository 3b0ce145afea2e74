//! The HTTP face, independent of how requests arrive: API Gateway (through `lambda_http`) and the
//! local stack both turn their request into an `ApiRequest` and send back the `ApiResponse`.
//! Routes live next to the use case they serve (`submit`, `approve`); `error` is the one mapping
//! from the application error to a status and body.

pub mod approve;
pub mod credentials;
pub mod decide_page;
pub mod error;
pub mod jitna;
pub mod slack;
pub mod submit;

use serde_json::json;

use crate::app::error::ServiceError;
use crate::domain::principal::CallerArn;

#[derive(Debug, Clone, Default)]
pub struct ApiRequest {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The authenticated caller ARN (API Gateway's `requestContext.authorizer.iam.userArn`).
    pub caller: Option<String>,
    /// The account that owns the API (`requestContext.accountId`): an HTTP API has no resource
    /// policy, so a principal of another account allowed `execute-api:Invoke` by its own account
    /// could call; such callers are refused.
    pub api_account: Option<String>,
}

impl ApiRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: serde_json::Value,
    /// An HTML page (the mail-link pages); when set it is the body instead of `body`.
    pub html: Option<String>,
}

impl ApiResponse {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self { status, headers: vec![("content-type".into(), "application/json".into())], body, html: None }
    }

    /// A page that must not be cached, framed, or leak its URL (it holds a token) to other sites.
    pub fn html(status: u16, page: String) -> Self {
        let headers = [
            ("content-type", "text/html; charset=utf-8"),
            ("cache-control", "no-store"),
            ("referrer-policy", "no-referrer"),
            ("x-frame-options", "DENY"),
            ("x-content-type-options", "nosniff"),
            (
                "content-security-policy",
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
            ),
        ];
        Self {
            status,
            headers: headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            body: serde_json::Value::Null,
            html: Some(page),
        }
    }

    pub fn body_text(&self) -> String {
        match &self.html {
            Some(page) => page.clone(),
            None => self.body.to_string(),
        }
    }

    pub fn error(err: &ServiceError) -> Self {
        let status = error::status(err);
        if status >= 500 {
            tracing::error!(error = %err, "request failed");
        }
        let mut resp = Self::json(status, error::body(err));
        if status == 503 {
            resp.headers.push(("retry-after".into(), "2".into()));
        }
        resp
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters (a path segment, a query or
/// form value).
pub fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Decodes `%XX` escapes (and `+` as a space in forms); `None` for a bad escape or text that is
/// not UTF-8.
pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' => {
                // Two hex digits exactly (`from_str_radix` alone would take a sign).
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, ServiceError> {
    serde_json::to_value(value).map_err(|e| ServiceError::Internal(format!("serializing a response: {e}")))
}

pub(crate) fn method_not_allowed(req: &ApiRequest) -> ApiResponse {
    ApiResponse::json(
        405,
        json!({ "error": { "code": "MethodNotAllowed", "message": format!("{} is not allowed on {}", req.method, req.path), "field": null } }),
    )
}

pub(crate) fn authenticated_caller(req: &ApiRequest) -> Result<CallerArn, ServiceError> {
    let raw = req
        .caller
        .as_deref()
        .ok_or_else(|| ServiceError::Unauthenticated("sign the request with AWS SigV4 (IAM authorization)".into()))?;
    let caller = CallerArn::try_from(raw.to_owned()).map_err(|e| ServiceError::Forbidden(e.message))?;
    match req.api_account.as_deref() {
        Some(account) if account != caller.account() => Err(ServiceError::Forbidden(format!(
            "callers from account {} cannot use this stack: sign in to account {account}",
            caller.account()
        ))),
        _ => Ok(caller),
    }
}
