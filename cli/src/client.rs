//! A SigV4-signing HTTP client for the local API (the demo and the tests use it).

use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::sigv4::{self, ProfileCredentials};

#[derive(Clone)]
pub struct ApiClient {
    base_url: String,
    credentials: Option<ProfileCredentials>,
    http: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

#[derive(Debug, Clone)]
pub struct ApiReply {
    pub status: u16,
    pub body: serde_json::Value,
}

impl ApiClient {
    /// `credentials: None` sends unsigned requests.
    pub fn new(base_url: &str, credentials: Option<ProfileCredentials>) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            credentials,
            http: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub async fn send(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<&serde_json::Value>,
        extra_headers: &[(&str, &str)],
    ) -> Result<ApiReply, String> {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let content_type = body.map(|_| "application/json");
        let (status, body) = self.send_raw(method, path_and_query, bytes, content_type, extra_headers).await?;
        let body = if body.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&body)
                .map_err(|e| format!("{method} {path_and_query}: response is not JSON: {e}"))?
        };
        Ok(ApiReply { status, body })
    }

    /// `GET` a page; returns the status and the text.
    pub async fn get_text(&self, path: &str) -> Result<(u16, String), String> {
        let (status, body) = self.send_raw("GET", path, Vec::new(), None, &[]).await?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// `POST` a form the way a browser submits one; returns the status and the page.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Result<(u16, String), String> {
        self.post_raw(path, form_body(fields).into_bytes(), "application/x-www-form-urlencoded", &[]).await
    }

    /// `POST` exactly `body` with these headers (a caller that signs the body itself: Slack's
    /// callbacks); returns the status and the answer as text.
    pub async fn post_raw(
        &self,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
        headers: &[(&str, &str)],
    ) -> Result<(u16, String), String> {
        let (status, answer) = self.send_raw("POST", path, body, Some(content_type), headers).await?;
        Ok((status, String::from_utf8_lossy(&answer).into_owned()))
    }

    async fn send_raw(
        &self,
        method: &str,
        path_and_query: &str,
        bytes: Vec<u8>,
        content_type: Option<&str>,
        extra_headers: &[(&str, &str)],
    ) -> Result<(u16, Bytes), String> {
        let url = format!("{}{path_and_query}", self.base_url);
        let uri: hyper::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
        let host = uri.authority().map(|a| a.to_string()).unwrap_or_default();
        let mut headers: Vec<(String, String)> = vec![("host".into(), host)];
        if let Some(ct) = content_type {
            headers.push(("content-type".into(), ct.into()));
        }
        headers.extend(extra_headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        if let Some(creds) = &self.credentials {
            let signed =
                sigv4::sign(creds, crate::emulator::REGION, method, &url, &headers, &bytes, SystemTime::now())?;
            headers.extend(signed);
        }
        let mut builder = hyper::Request::builder().method(method).uri(uri);
        for (k, v) in &headers {
            builder = builder.header(k, v);
        }
        let request = builder.body(Full::new(Bytes::from(bytes))).map_err(|e| e.to_string())?;
        let response = self.http.request(request).await.map_err(|e| format!("{method} {url}: {e}"))?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok((status, body))
    }

    /// Polls `GET /requests/{id}` until the request leaves `Submitted`.
    pub async fn wait_decided(&self, id: &str, timeout: std::time::Duration) -> Result<serde_json::Value, String> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let reply = self.send("GET", &format!("/requests/{id}"), None, &[]).await?;
            if reply.status != 200 {
                return Err(format!("GET /requests/{id} answered {}: {}", reply.status, reply.body));
            }
            if reply.body["status"] != "Submitted" {
                return Ok(reply.body);
            }
            if std::time::Instant::now() > deadline {
                return Err(format!("request {id} was not decided within {timeout:?}"));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// Reads one profile from an AWS shared credentials file.
pub fn read_profile(
    credentials_file: impl AsRef<std::path::Path>,
    profile: &str,
) -> Result<ProfileCredentials, String> {
    let path = credentials_file.as_ref();
    let credentials_file = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {credentials_file}: {e}"))?;
    let mut current = String::new();
    let (mut key, mut secret, mut token) = (None, None, None);
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_owned();
        } else if current == profile {
            if let Some((k, v)) = line.split_once('=') {
                match k.trim() {
                    "aws_access_key_id" => key = Some(v.trim().to_owned()),
                    "aws_secret_access_key" => secret = Some(v.trim().to_owned()),
                    "aws_session_token" => token = Some(v.trim().to_owned()),
                    _ => {}
                }
            }
        }
    }
    match (key, secret) {
        (Some(access_key_id), Some(secret_access_key)) => {
            Ok(ProfileCredentials { access_key_id, secret_access_key, session_token: token })
        }
        _ => Err(format!("profile '{profile}' is not in {credentials_file}")),
    }
}

/// `application/x-www-form-urlencoded`, as a browser (or Slack) encodes a form.
pub fn form_body(fields: &[(&str, &str)]) -> String {
    fields.iter().map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v))).collect::<Vec<_>>().join("&")
}

fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
