//! HTTP routes of the approval function:
//!
//! | route                              | auth       | what                                        |
//! |------------------------------------|------------|---------------------------------------------|
//! | `GET /approvals`                   | `AWS_IAM`  | requests waiting on the caller now          |
//! | `GET /approvals?decided=true`      | `AWS_IAM`  | requests the caller decided                 |
//! | `GET /approvals?review=open`       | `AWS_IAM`  | break-glass grants the caller may review    |
//! | `POST /requests/{id}/approve`      | `AWS_IAM`  | approve, optional `{"comment"}`              |
//! | `POST /requests/{id}/reject`       | `AWS_IAM`  | reject, optional `{"comment"}`               |
//! | `POST /requests/{id}/cancel`       | `AWS_IAM`  | the requester withdraws a pending request   |
//! | `POST /requests/{id}/revoke`       | `AWS_IAM`  | an approver or administrator ends access    |
//! | `POST /requests/{id}/review`       | `AWS_IAM`  | acknowledge or flag a break-glass grant     |
//! | `POST /people/{person}/revoke`     | `AWS_IAM`  | an administrator ends every grant of a person |
//! | `GET /decide/{token}`              | the token  | confirmation page; never changes anything   |
//! | `POST /decide/{token}`             | the token  | the decision from that page's form          |
//! | `POST /chat/slack`                 | Slack's signature | an Approve/Reject click in Slack (`slack`) |

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{authenticated_caller, decide_page, error, method_not_allowed, to_json, ApiRequest, ApiResponse};
use crate::app::approve::{self as approvals, ApprovalDeps};
use crate::app::error::ServiceError;
use crate::domain::approval::Verdict;
use crate::domain::approval_token;

/// True for the paths this function serves (the local stack routes on it).
pub fn serves(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    is_link_path(path)
        || super::slack::serves(path)
        || super::jitna::serves_approve(path)
        || matches!(
            segments.as_slice(),
            ["approvals"]
                | ["requests", _, "approve" | "reject" | "cancel" | "revoke" | "review"]
                | ["people", _, .., "revoke"]
        )
}

/// Paths that carry their own credential (the mail-link token) instead of a SigV4 signature.
pub fn is_link_path(path: &str) -> bool {
    approval_token::token_of_path(path).is_some()
}

pub async fn handle(deps: &ApprovalDeps<'_>, req: &ApiRequest, now: DateTime<Utc>) -> ApiResponse {
    handle_with_slack(deps, None, req, now).await
}

/// `handle`, with the Slack app's signing secret when Slack is set up (`None`: `/chat/slack`
/// answers 404).
pub async fn handle_with_slack(
    deps: &ApprovalDeps<'_>,
    slack: Option<&crate::domain::slack::SlackSigningSecret>,
    req: &ApiRequest,
    now: DateTime<Utc>,
) -> ApiResponse {
    if super::slack::serves(&req.path) {
        return super::slack::handle(deps, slack, req, now).await;
    }
    if let Some(token) = approval_token::token_of_path(&req.path) {
        return link(deps, req, token, now).await;
    }
    if super::jitna::serves_approve(&req.path) {
        return super::jitna::handle_approve(deps, req, now).await;
    }
    let segments: Vec<&str> = req.path.trim_end_matches('/').split('/').skip(1).collect();
    match api(deps, req, &segments, now).await {
        Ok(resp) => resp,
        Err(e) => ApiResponse::error(&e),
    }
}

async fn api(
    deps: &ApprovalDeps<'_>,
    req: &ApiRequest,
    segments: &[&str],
    now: DateTime<Utc>,
) -> Result<ApiResponse, ServiceError> {
    if !serves(&req.path) {
        return Err(ServiceError::NotFound(format!("no route for {} {}", req.method, req.path)));
    }
    let caller = authenticated_caller(req)?;
    match (req.method.as_str(), segments) {
        ("GET", ["approvals"]) => {
            let items = match parse_approvals_query(&req.query)? {
                Listing::Decided => approvals::decided_by(deps, &caller).await?,
                Listing::Reviews => approvals::reviews_for(deps, &caller).await?,
                Listing::Waiting => approvals::waiting_for(deps, &caller, now).await?,
            };
            Ok(ApiResponse::json(200, json!({ "items": to_json(&items)? })))
        }
        ("POST", ["people", person @ .., "revoke"]) => {
            check_json_body(req)?;
            // The person key has `#` (and a role session's `/`) percent-encoded in the path; a
            // proxy that decoded the `/` leaves it as two segments.
            let person = super::percent_decode(&person.join("/"), false).ok_or_else(|| {
                ServiceError::from(crate::app::error::FieldError::new(
                    "person",
                    "InvalidPerson",
                    "the person in the path has a bad % escape or is not UTF-8",
                ))
            })?;
            let done = approvals::revoke_person(deps, &caller, &person, &req.body, now).await?;
            Ok(ApiResponse::json(200, to_json(&done)?))
        }
        ("POST", ["requests", id, action]) => {
            check_json_body(req)?;
            let updated = match *action {
                "approve" => approvals::decide_as_caller(deps, &caller, id, Verdict::Approve, &req.body, now).await?,
                "reject" => approvals::decide_as_caller(deps, &caller, id, Verdict::Reject, &req.body, now).await?,
                "revoke" => approvals::revoke(deps, &caller, id, &req.body, now).await?,
                "review" => approvals::review(deps, &caller, id, &req.body, now).await?,
                _ => approvals::cancel(deps, &caller, id, &req.body, now).await?,
            };
            Ok(ApiResponse::json(200, to_json(&updated)?))
        }
        _ => Ok(method_not_allowed(req)),
    }
}

/// Which list `GET /approvals` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listing {
    Waiting,
    Decided,
    Reviews,
}

/// `GET /approvals` takes `decided=true|false` or `review=open`, not both.
fn parse_approvals_query(query: &[(String, String)]) -> Result<Listing, ServiceError> {
    let field = |name: &str, code: &str, message: &str| crate::app::error::FieldError::new(name, code, message);
    let mut listing = Listing::Waiting;
    for (k, v) in query {
        let next = match (k.as_str(), v.as_str()) {
            ("decided", "true") => Listing::Decided,
            ("decided", "false") => Listing::Waiting,
            ("decided", _) => return Err(field("decided", "InvalidValue", "must be true or false").into()),
            ("review", "open") => Listing::Reviews,
            ("review", _) => return Err(field("review", "InvalidValue", "must be open").into()),
            _ => return Err(field(k, "UnknownParameter", "allowed: decided, review").into()),
        };
        if listing != Listing::Waiting && next != listing {
            return Err(field(k, "InvalidValue", "ask for decided=true or review=open, not both").into());
        }
        listing = next;
    }
    Ok(listing)
}

fn check_json_body(req: &ApiRequest) -> Result<(), ServiceError> {
    match req.header("content-type") {
        Some(ct) if !req.body.is_empty() && !ct.to_ascii_lowercase().starts_with("application/json") => {
            Err(ServiceError::UnsupportedMediaType("send the body as application/json".into()))
        }
        _ => Ok(()),
    }
}

fn link_error(e: &ServiceError) -> ApiResponse {
    let status = error::link_status(e);
    if status >= 500 {
        tracing::error!(error = %e, "mail-link decision failed");
    }
    ApiResponse::html(status, decide_page::refused(status, &error::link_message(e)))
}

async fn link(deps: &ApprovalDeps<'_>, req: &ApiRequest, token: &str, now: DateTime<Utc>) -> ApiResponse {
    match req.method.as_str() {
        "GET" | "HEAD" => match approvals::view_link(deps, token, now).await {
            Ok(view) => ApiResponse::html(200, decide_page::confirmation(&view)),
            Err(e) => link_error(&e),
        },
        "POST" => {
            let form = match decide_page::parse_form(&req.body) {
                Ok(f) => f,
                Err(m) => return ApiResponse::html(400, decide_page::refused(400, &m)),
            };
            let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
            let verdict = match field("decision") {
                Some("approve") => Verdict::Approve,
                Some("reject") => Verdict::Reject,
                _ => return ApiResponse::html(400, decide_page::refused(400, "decision: choose Approve or Reject")),
            };
            match approvals::decide_with_link(deps, token, verdict, field("comment"), now).await {
                Ok(updated) => ApiResponse::html(200, decide_page::decided(&updated, verdict)),
                Err(ServiceError::InvalidInput(f)) => ApiResponse::html(400, decide_page::refused(400, &f.to_string())),
                Err(e) => link_error(&e),
            }
        }
        _ => ApiResponse::html(405, decide_page::refused(405, "use the buttons on the page")),
    }
}
