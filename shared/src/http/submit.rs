//! Routes of the submit-request function: `POST /requests`, `GET /requests`, `GET /requests/{id}`,
//! `GET /requests/{id}/audit`, `POST /requests/{id}/extend`.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{authenticated_caller, method_not_allowed, to_json, ApiRequest, ApiResponse};
use crate::app::error::ServiceError;
use crate::app::submit::{self, SubmitDeps};

pub async fn handle(deps: &SubmitDeps<'_>, req: &ApiRequest, now: DateTime<Utc>) -> ApiResponse {
    if super::jitna::is_jitna_path(&req.path) {
        return super::jitna::handle_submit(deps, req, now).await;
    }
    match route(deps, req, now).await {
        Ok(resp) => resp,
        Err(e) => ApiResponse::error(&e),
    }
}

async fn route(deps: &SubmitDeps<'_>, req: &ApiRequest, now: DateTime<Utc>) -> Result<ApiResponse, ServiceError> {
    let path = req.path.trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let known = matches!(segments.as_slice(), ["requests"] | ["requests", _] | ["requests", _, "audit" | "extend"]);
    if !known {
        return Err(ServiceError::NotFound(format!("no route for {} {}", req.method, req.path)));
    }
    let caller = authenticated_caller(req)?;
    match (req.method.as_str(), segments.as_slice()) {
        ("POST", ["requests"] | ["requests", _, "extend"]) => {
            if let Some(ct) = req.header("content-type") {
                if !ct.to_ascii_lowercase().starts_with("application/json") {
                    return Err(ServiceError::UnsupportedMediaType("send the body as application/json".into()));
                }
            }
            let key = req.header("idempotency-key");
            let submitted = match segments.as_slice() {
                ["requests", id, "extend"] => submit::extend(deps, &caller, id, &req.body, key, now).await?,
                _ => submit::submit(deps, &caller, &req.body, key, now).await?,
            };
            let mut resp = ApiResponse::json(202, to_json(&submitted.request)?);
            resp.headers.push(("location".into(), format!("/requests/{}", submitted.request.request_id)));
            if submitted.replayed {
                resp.headers.push(("idempotent-replayed".into(), "true".into()));
            }
            Ok(resp)
        }
        ("GET", ["requests"]) => {
            let query = submit::parse_list_query(&req.query)?;
            let page = submit::list(deps, &caller, &query).await?;
            Ok(ApiResponse::json(
                200,
                json!({ "items": to_json(&page.items)?, "nextToken": page.next.as_ref().map(submit::encode_position) }),
            ))
        }
        ("GET", ["requests", id]) => Ok(ApiResponse::json(200, to_json(&submit::get(deps, &caller, id).await?)?)),
        ("GET", ["requests", id, "audit"]) => {
            let trail = submit::audit(deps, &caller, id).await?;
            Ok(ApiResponse::json(200, json!({ "requestId": id, "items": to_json(&trail)? })))
        }
        _ => Ok(method_not_allowed(req)),
    }
}
