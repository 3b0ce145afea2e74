//! The operator commands' client of the HTTP API, deployed or local: HTTPS (plain HTTP only to a
//! loopback address, which is where `make dev` serves), each request SigV4-signed for
//! `execute-api` with the SDK's signer (`sigv4::sign`) and credentials from any AWS credentials
//! provider, refreshed before they expire. Answers are JSON; the API's errors
//! (`{"error": {"code", "message", "field"}}`) come back as `ApiError::Api`.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;

use crate::sigv4::{self, ProfileCredentials};

/// How long one call may take, connection included.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Credentials this close to their expiry are fetched again before signing.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
const USER_AGENT: &str = concat!("jit/", env!("CARGO_PKG_VERSION"));

/// Why a call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The API answered with an error status.
    #[error("{}", api_error_text(*.status, .code, .message, .field.as_deref()))]
    Api { status: u16, code: String, message: String, field: Option<String> },
    /// The API could not be reached, or answered something that is not its JSON.
    #[error("{0}")]
    Network(String),
    /// No credentials could be found to sign with.
    #[error(
        "no AWS credentials to sign with, from {0}\n  pass --profile, or set AWS_PROFILE (for IAM Identity \
         Center, run `aws sso login --profile …` first)"
    )]
    Credentials(String),
}

fn api_error_text(status: u16, code: &str, message: &str, field: Option<&str>) -> String {
    let hint = match (status, code) {
        (403, "Forbidden") if message.contains("not authenticated") || message.contains("signature") => {
            " (check the credentials: --profile / AWS_PROFILE, and that --region is the API's Region)"
        }
        _ => "",
    };
    match field {
        Some(field) => format!("{field}: {message} ({code}){hint}"),
        None => format!("{message} ({code}, HTTP {status}){hint}"),
    }
}

impl ApiError {
    /// Worth trying again: the network, throttling, or the service having a bad moment.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Network(_) => true,
            Self::Api { status, .. } => *status == 429 || *status >= 500,
            Self::Credentials(_) => false,
        }
    }

    /// The API's error code, for an API error.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// An API base URL as typed, checked: `https://…`, or `http://` to a loopback address only (the
/// local stack). Any path (an API Gateway stage, `/prod`) is kept; a trailing `/` is dropped.
pub fn check_api_url(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim().trim_end_matches('/');
    let uri: hyper::Uri = trimmed.parse().map_err(|e| format!("'{raw}' is not a URL: {e}"))?;
    let host = uri.host().ok_or_else(|| format!("'{raw}' has no host: write it as https://<host>[/<stage>]"))?;
    if uri.query().is_some() || trimmed.contains('#') {
        return Err(format!("'{raw}' must not carry a query or fragment: give the API's base URL only"));
    }
    match uri.scheme_str() {
        Some("https") => Ok(trimmed.to_owned()),
        Some("http") if is_loopback(host) => Ok(trimmed.to_owned()),
        Some("http") => Err(format!(
            "'{raw}' uses plain http: use https:// (http is accepted only for a loopback address such as \
             http://127.0.0.1:8080, the local stack)"
        )),
        _ => Err(format!("'{raw}' must start with https://")),
    }
}

fn is_loopback(host: &str) -> bool {
    host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether a checked base URL is the local stack's (a loopback address).
pub fn is_local(base_url: &str) -> bool {
    base_url.parse::<hyper::Uri>().ok().and_then(|u| u.host().map(is_loopback)).unwrap_or(false)
}

/// The Region an `…execute-api.<region>.amazonaws.com` URL names, if it is one.
pub fn region_of_url(base_url: &str) -> Option<String> {
    let uri: hyper::Uri = base_url.parse().ok()?;
    let host = uri.host()?;
    let mut labels = host.split('.');
    let _api_id = labels.next()?;
    (labels.next()? == "execute-api").then_some(())?;
    let region = labels.next()?;
    let rest: Vec<&str> = labels.collect();
    (rest.first() == Some(&"amazonaws") && !region.is_empty()).then(|| region.to_owned())
}

/// Encodes one query-string value: everything but RFC 3986's unreserved characters.
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A signed client of one API.
pub struct Api {
    base_url: String,
    region: String,
    provider: SharedCredentialsProvider,
    /// Where the credentials come from, for messages: `profile 'ops'`, `the AWS credential chain`.
    credentials_source: String,
    cached: tokio::sync::Mutex<Option<Credentials>>,
    http: jit_shared::adapters::https::HttpsClient,
}

impl Api {
    /// `base_url` must have passed `check_api_url`; `region` is the API's (the signing Region).
    pub fn new(base_url: &str, region: &str, provider: SharedCredentialsProvider) -> Result<Self, String> {
        // Plain HTTP only to the loopback stack (`check_api_url`).
        let base_url = check_api_url(base_url)?;
        let http = jit_shared::adapters::https::client(&base_url).map_err(|e| e.to_string())?;
        Ok(Self {
            base_url,
            region: region.to_owned(),
            provider,
            credentials_source: "the AWS credential chain".into(),
            cached: tokio::sync::Mutex::new(None),
            http,
        })
    }

    /// Names where the provider's credentials come from, in messages.
    pub fn credentials_from(mut self, source: impl Into<String>) -> Self {
        self.credentials_source = source.into();
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub async fn get(&self, path_and_query: &str) -> Result<Value, ApiError> {
        self.call("GET", path_and_query, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: Option<&Value>) -> Result<Value, ApiError> {
        self.call("POST", path, body, &[]).await
    }

    /// One call: signs it, sends it, and returns the JSON answer of a 2xx status.
    pub async fn call(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<&Value>,
        extra_headers: &[(&str, &str)],
    ) -> Result<Value, ApiError> {
        let url = format!("{}{path_and_query}", self.base_url);
        let payload = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let uri: hyper::Uri = url.parse().map_err(|e| ApiError::Network(format!("{url}: {e}")))?;
        let host = uri.authority().map(|a| a.to_string()).unwrap_or_default();
        let mut headers: Vec<(String, String)> = vec![("host".into(), host)];
        if body.is_some() {
            headers.push(("content-type".into(), "application/json".into()));
        }
        headers.extend(extra_headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let credentials = self.credentials().await?;
        let signature = sigv4::sign(&credentials, &self.region, method, &url, &headers, &payload, SystemTime::now())
            .map_err(|e| ApiError::Credentials(format!("signing the request: {e}")))?;
        headers.extend(signature);
        headers.push(("user-agent".into(), USER_AGENT.into()));
        let mut request = hyper::Request::builder().method(method).uri(uri);
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        let request =
            request.body(Full::new(Bytes::from(payload))).map_err(|e| ApiError::Network(format!("{url}: {e}")))?;
        let exchange = async {
            let response = self.http.request(request).await.map_err(|e| network_error(&url, &e))?;
            let status = response.status().as_u16();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| ApiError::Network(format!("{method} {url}: reading the answer: {e}")))?
                .to_bytes();
            Ok::<_, ApiError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(CALL_TIMEOUT, exchange).await.map_err(|_| {
            ApiError::Network(format!("{method} {url}: no answer within {}s", CALL_TIMEOUT.as_secs()))
        })??;
        interpret(method, &url, status, &bytes)
    }

    /// The credentials to sign with, fetched again when they are about to expire.
    async fn credentials(&self) -> Result<ProfileCredentials, ApiError> {
        let mut cached = self.cached.lock().await;
        let fresh = cached.as_ref().is_some_and(|c| {
            c.expiry().is_none_or(|at| at.duration_since(SystemTime::now()).is_ok_and(|d| d > REFRESH_BEFORE_EXPIRY))
        });
        if !fresh {
            let provided = self.provider.provide_credentials().await.map_err(|e| {
                let why = match e {
                    CredentialsError::CredentialsNotLoaded(_) => "none found".to_owned(),
                    other => error_chain(&other),
                };
                ApiError::Credentials(format!("{}: {why}", self.credentials_source))
            })?;
            *cached = Some(provided);
        }
        let c = cached.as_ref().ok_or_else(|| ApiError::Credentials("the provider returned nothing".into()))?;
        Ok(ProfileCredentials {
            access_key_id: c.access_key_id().to_owned(),
            secret_access_key: c.secret_access_key().to_owned(),
            session_token: c.session_token().map(str::to_owned),
        })
    }
}

/// The answer of a call: its JSON for 2xx, the API's error otherwise.
fn interpret(method: &str, url: &str, status: u16, bytes: &[u8]) -> Result<Value, ApiError> {
    let json: Option<Value> = if bytes.is_empty() { Some(Value::Null) } else { serde_json::from_slice(bytes).ok() };
    if (200..300).contains(&status) {
        return json
            .ok_or_else(|| ApiError::Network(format!("{method} {url}: the answer (HTTP {status}) is not JSON")));
    }
    let error = json.as_ref().map(|j| &j["error"]);
    match error.and_then(|e| e["code"].as_str().map(|code| (e, code))) {
        Some((e, code)) => Err(ApiError::Api {
            status,
            code: code.to_owned(),
            message: e["message"].as_str().unwrap_or("").to_owned(),
            field: e["field"].as_str().map(str::to_owned),
        }),
        None => {
            // Not the API's own error body: API Gateway's (`{"message": "Forbidden"}`) or a proxy's.
            let message = json
                .as_ref()
                .and_then(|j| j["message"].as_str().or(j["Message"].as_str()).map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(bytes).chars().take(200).collect());
            let code = match status {
                403 => "Forbidden",
                404 => "NotFound",
                429 => "TooManyRequests",
                s if s >= 500 => "ServiceError",
                _ => "HttpError",
            };
            let message = if status == 403 {
                format!("{message}: the API refused the signature or the caller")
            } else {
                format!("{method} {url}: {message}")
            };
            Err(ApiError::Api { status, code: code.to_owned(), message, field: None })
        }
    }
}

fn network_error(url: &str, error: &hyper_util::client::legacy::Error) -> ApiError {
    ApiError::Network(format!("cannot reach {url}: {}", error_chain(error)))
}

/// An error with its causes, `outer: inner: …`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_urls_are_accepted_and_plain_http_only_on_loopback() {
        assert_eq!(
            check_api_url("https://abc.execute-api.eu-west-1.amazonaws.com/"),
            Ok("https://abc.execute-api.eu-west-1.amazonaws.com".into())
        );
        assert_eq!(check_api_url("https://api.example.com/prod"), Ok("https://api.example.com/prod".into()));
        assert_eq!(check_api_url("http://127.0.0.1:8080"), Ok("http://127.0.0.1:8080".into()));
        assert_eq!(check_api_url("http://[::1]:8080"), Ok("http://[::1]:8080".into()));
        for refused in
            ["http://api.example.com", "http://localhost:8080", "ftp://x", "api.example.com", "https://a/b?x=1"]
        {
            assert!(check_api_url(refused).is_err(), "{refused}");
        }
        assert!(check_api_url("http://10.0.0.1").unwrap_err().contains("https://"));
    }

    #[test]
    fn an_execute_api_url_names_its_region() {
        assert_eq!(region_of_url("https://a1b2c3.execute-api.eu-west-1.amazonaws.com/prod"), Some("eu-west-1".into()));
        assert_eq!(region_of_url("https://api.example.com"), None);
        assert_eq!(region_of_url("http://127.0.0.1:8080"), None);
    }

    #[test]
    fn the_apis_errors_name_the_field_and_code() {
        let body = br#"{"error":{"code":"InvalidNodeId","message":"must be an EC2 instance id","field":"nodeId"}}"#;
        let err = interpret("POST", "u", 400, body).unwrap_err();
        assert_eq!(err.to_string(), "nodeId: must be an EC2 instance id (InvalidNodeId)");
        let err =
            interpret("GET", "u", 404, br#"{"error":{"code":"NotFound","message":"no such request","field":null}}"#)
                .unwrap_err();
        assert_eq!(err.to_string(), "no such request (NotFound, HTTP 404)");
        let gateway = interpret("GET", "u", 403, br#"{"message":"Forbidden"}"#).unwrap_err();
        assert_eq!(gateway.code(), Some("Forbidden"));
        assert!(!gateway.is_transient());
        assert!(interpret("GET", "u", 503, b"<html>").unwrap_err().is_transient());
        assert_eq!(interpret("GET", "u", 200, br#"{"a":1}"#), Ok(serde_json::json!({"a": 1})));
        assert!(interpret("GET", "u", 200, b"<html>").is_err());
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode_query_value("a b+c/=~"), "a%20b%2Bc%2F%3D~");
    }
}
