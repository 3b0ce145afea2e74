//! The route of the issue-credentials function: `POST /requests/{id}/credentials` (`AWS_IAM`).
//! The body is empty; the answer holds a secret, so it is never cached.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use super::{authenticated_caller, method_not_allowed, ApiRequest, ApiResponse};
use crate::app::credentials::{self, CredentialsDeps, Issued};
use crate::app::error::ServiceError;

/// True for the paths this function serves (the local stack routes on it).
pub fn serves(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    matches!(segments.as_slice(), ["requests", _, "credentials"]) || super::jitna::serves_credentials(path)
}

pub async fn handle(deps: &CredentialsDeps<'_>, req: &ApiRequest, now: DateTime<Utc>) -> ApiResponse {
    if super::jitna::serves_credentials(&req.path) {
        return super::jitna::handle_credentials(deps, req, now).await;
    }
    match route(deps, req, now).await {
        Ok(resp) => resp,
        Err(e) => ApiResponse::error(&e),
    }
}

async fn route(deps: &CredentialsDeps<'_>, req: &ApiRequest, now: DateTime<Utc>) -> Result<ApiResponse, ServiceError> {
    let segments: Vec<&str> = req.path.trim_end_matches('/').split('/').skip(1).collect();
    let ["requests", id, "credentials"] = segments.as_slice() else {
        return Err(ServiceError::NotFound(format!("no route for {} {}", req.method, req.path)));
    };
    let caller = authenticated_caller(req)?;
    if req.method != "POST" {
        return Ok(method_not_allowed(req));
    }
    let issued = credentials::issue(deps, &caller, id, now).await?;
    let mut resp = ApiResponse::json(200, body(&issued));
    resp.headers.push(("cache-control".into(), "no-store".into()));
    Ok(resp)
}

fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The response: the credentials, and what to start a session with.
pub fn body(issued: &Issued) -> serde_json::Value {
    let c = &issued.credentials;
    json!({
        "requestId": issued.request_id,
        "accessKeyId": c.access_key_id,
        "secretAccessKey": c.secret_access_key.expose(),
        "sessionToken": c.session_token.expose(),
        "expiration": time(&issued.expiration),
        "accessDeadline": time(&issued.access_deadline),
        "roleArn": issued.role_arn,
        "region": issued.region,
        // `start-session --target` takes the bare instance id (in `region`, with these
        // credentials of the node's account), never the node's ARN.
        "target": issued.node_id.instance_id(),
        "documentName": issued.document_name,
    })
}
