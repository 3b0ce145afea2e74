//! AWS JITNA's API shapes over this stack's use cases, for the AWS CLI and boto3: the service
//! model in `clients/aws-cli/` (botocore `rest-json`, signed for `execute-api`) names these routes,
//! and this module translates each to the use case the native route calls
//! ([docs/aws-cli.md](../../../docs/aws-cli.md)).
//!
//! | operation              | route                                                   | function          |
//! |------------------------|---------------------------------------------------------|-------------------|
//! | `StartAccessRequest`   | `POST /jitna/access-requests`                           | submit-request    |
//! | `ExtendAccessRequest`  | `POST /jitna/access-requests/{id}/extend`               | submit-request    |
//! | `ListAccessRequests`   | `GET /jitna/access-requests`                            | submit-request    |
//! | `GetAccessRequest`     | `GET /jitna/access-requests/{AccessRequestId}`          | submit-request    |
//! | `GetAccessToken`       | `POST /jitna/access-requests/{id}/access-token`         | issue-credentials |
//! | `ApproveAccessRequest` | `POST /jitna/access-requests/{id}/approve`              | approve-request   |
//! | `RejectAccessRequest`  | `POST /jitna/access-requests/{id}/reject`               | approve-request   |
//! | `CancelAccessRequest`  | `POST /jitna/access-requests/{id}/cancel`               | approve-request   |
//! | `RevokeAccessRequest`  | `POST /jitna/access-requests/{id}/revoke`               | approve-request   |
//! | `ReviewAccessRequest`  | `POST /jitna/access-requests/{id}/review`               | approve-request   |
//! | `ListApprovals`        | `GET /jitna/approvals`                                  | approve-request   |
//!
//! `ExtendAccessRequest`, `ReviewAccessRequest` and `StartAccessRequest`'s `StartsAt` and
//! `BreakGlass` are not JITNA's: they reach the native extend, schedule, break-glass and review
//! (`submit::extend`, `submit::submit`'s `startsAt` and `breakGlass`, `approve::review`) in the
//! same style.
//!
//! Members carry JITNA's names (`AccessRequestId`, `Targets`, `Credentials` with
//! `ExpirationTime` in epoch seconds, `AccessRequestStatus`). Errors are what botocore reads from a
//! `rest-json` error: the type in `__type` and in the `x-amzn-errortype` header, the text in
//! `message`, and for bad input the field in `Field` and at the start of the message.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::{authenticated_caller, error, to_json, ApiRequest, ApiResponse};
use crate::app::approve::{self as approvals, ApprovalDeps};
use crate::app::credentials::{self, CredentialsDeps, Issued};
use crate::app::error::{FieldError, ServiceError};
use crate::app::submit::{self, SubmitDeps};
use crate::domain::approval::Verdict;
use crate::domain::break_glass::{Review, ReviewVerdict};
use crate::domain::request::AccessRequest;
use crate::domain::status::RequestStatus;
use crate::ports::ListQuery;

/// The only target key JITNA's `StartAccessRequest` takes.
pub const TARGET_KEY: &str = "InstanceIds";

/// What a decision route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Approve,
    Reject,
    Cancel,
    Revoke,
}

/// The resources of the JITNA routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resource<'a> {
    Requests,
    Request(&'a str),
    Extend(&'a str),
    Token(&'a str),
    Decision(&'a str, Action),
    Review(&'a str),
    Approvals,
}

fn resource(path: &str) -> Option<Resource<'_>> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    Some(match segments.as_slice() {
        ["jitna", "access-requests"] => Resource::Requests,
        ["jitna", "access-requests", id] => Resource::Request(id),
        ["jitna", "access-requests", id, "extend"] => Resource::Extend(id),
        ["jitna", "access-requests", id, "access-token"] => Resource::Token(id),
        ["jitna", "access-requests", id, "approve"] => Resource::Decision(id, Action::Approve),
        ["jitna", "access-requests", id, "reject"] => Resource::Decision(id, Action::Reject),
        ["jitna", "access-requests", id, "cancel"] => Resource::Decision(id, Action::Cancel),
        ["jitna", "access-requests", id, "revoke"] => Resource::Decision(id, Action::Revoke),
        ["jitna", "access-requests", id, "review"] => Resource::Review(id),
        ["jitna", "approvals"] => Resource::Approvals,
        _ => return None,
    })
}

/// True for every path under `/jitna/`, known or not (the submit function answers the unknown
/// ones with a JITNA-shaped 404).
pub fn is_jitna_path(path: &str) -> bool {
    path == "/jitna" || path.starts_with("/jitna/")
}

/// The JITNA paths the approve-request function serves.
pub fn serves_approve(path: &str) -> bool {
    matches!(resource(path), Some(Resource::Decision(..) | Resource::Review(_) | Resource::Approvals))
}

/// The JITNA path the issue-credentials function serves.
pub fn serves_credentials(path: &str) -> bool {
    matches!(resource(path), Some(Resource::Token(_)))
}

/// `StartAccessRequest`, `ExtendAccessRequest`, `ListAccessRequests`, `GetAccessRequest` (the
/// submit-request function).
pub async fn handle_submit(deps: &SubmitDeps<'_>, req: &ApiRequest, now: DateTime<Utc>) -> ApiResponse {
    respond(req, submit_routes(deps, req, now).await)
}

/// `GetAccessToken` (the issue-credentials function).
pub async fn handle_credentials(deps: &CredentialsDeps<'_>, req: &ApiRequest, now: DateTime<Utc>) -> ApiResponse {
    respond(req, credentials_route(deps, req, now).await)
}

/// Approve, reject, cancel, revoke, review and `ListApprovals` (the approve-request function).
pub async fn handle_approve(deps: &ApprovalDeps<'_>, req: &ApiRequest, now: DateTime<Utc>) -> ApiResponse {
    respond(req, approve_routes(deps, req, now).await)
}

/// A route's outcome: a response, or the request used a method the route does not take.
enum Outcome {
    Done(ApiResponse),
    WrongMethod,
}

fn respond(req: &ApiRequest, outcome: Result<Outcome, ServiceError>) -> ApiResponse {
    match outcome {
        Ok(Outcome::Done(resp)) => resp,
        Ok(Outcome::WrongMethod) => {
            let message = format!("{} is not allowed on {}", req.method, req.path);
            typed_error(
                405,
                "MethodNotAllowedException",
                json!({ "message": message, "ReasonCode": "MethodNotAllowed" }),
            )
        }
        Err(e) => error_response(&e),
    }
}

fn no_route(req: &ApiRequest) -> ServiceError {
    ServiceError::NotFound(format!("no route for {} {}", req.method, req.path))
}

async fn submit_routes(deps: &SubmitDeps<'_>, req: &ApiRequest, now: DateTime<Utc>) -> Result<Outcome, ServiceError> {
    let Some(found @ (Resource::Requests | Resource::Request(_) | Resource::Extend(_))) = resource(&req.path) else {
        return Err(no_route(req));
    };
    let caller = authenticated_caller(req)?;
    let resp = match (req.method.as_str(), found) {
        ("POST", Resource::Requests) => {
            let body = start_body(&req.body)?;
            let submitted = submit::submit(deps, &caller, &body, req.header("idempotency-key"), now).await?;
            let id = submitted.request.request_id.as_str();
            let mut resp = ApiResponse::json(202, json!({ "AccessRequestId": id }));
            resp.headers.push(("location".into(), format!("/jitna/access-requests/{id}")));
            if submitted.replayed {
                resp.headers.push(("idempotent-replayed".into(), "true".into()));
            }
            resp
        }
        ("POST", Resource::Extend(id)) => {
            let body = extend_body(&req.body)?;
            let extension = submit::extend(deps, &caller, id, &body, req.header("idempotency-key"), now).await?;
            let new_id = extension.request.request_id.as_str();
            let mut resp = ApiResponse::json(202, json!({ "AccessRequestId": new_id }));
            resp.headers.push(("location".into(), format!("/jitna/access-requests/{new_id}")));
            if extension.replayed {
                resp.headers.push(("idempotent-replayed".into(), "true".into()));
            }
            resp
        }
        ("GET", Resource::Requests) => {
            let (query, pending_only) = list_query(&req.query)?;
            let page = submit::list(deps, &caller, &query).await?;
            let items: Vec<Value> = page
                .items
                .iter()
                .filter(|r| !pending_only || status_name(r.status) == "Pending")
                .map(access_request)
                .collect();
            let mut body = json!({ "AccessRequests": items });
            if let Some(next) = page.next.as_ref() {
                body["NextToken"] = json!(submit::encode_position(next));
            }
            ApiResponse::json(200, body)
        }
        ("GET", Resource::Request(id)) => {
            ApiResponse::json(200, access_request(&submit::get(deps, &caller, id).await?))
        }
        _ => return Ok(Outcome::WrongMethod),
    };
    Ok(Outcome::Done(resp))
}

async fn credentials_route(
    deps: &CredentialsDeps<'_>,
    req: &ApiRequest,
    now: DateTime<Utc>,
) -> Result<Outcome, ServiceError> {
    let Some(Resource::Token(id)) = resource(&req.path) else {
        return Err(no_route(req));
    };
    let caller = authenticated_caller(req)?;
    if req.method != "POST" {
        return Ok(Outcome::WrongMethod);
    }
    let body = match credentials::issue(deps, &caller, id, now).await {
        Ok(issued) => access_token(&issued),
        // As JITNA: a request that is not (or no longer) approved is answered with its status
        // and no credentials. `issue` refuses anyone but the requester before it looks at the
        // status, so the status goes only to them.
        Err(ServiceError::Conflict { code: "RequestNotApproved", message }) => {
            let request = crate::app::common::parse_id(id)?;
            match deps.store.get(&request).await? {
                Some(r) if r.requester == caller => json!({ "AccessRequestStatus": status_name(r.status) }),
                _ => return Err(ServiceError::Conflict { code: "RequestNotApproved", message }),
            }
        }
        Err(e) => return Err(e),
    };
    let mut resp = ApiResponse::json(200, body);
    resp.headers.push(("cache-control".into(), "no-store".into()));
    Ok(Outcome::Done(resp))
}

async fn approve_routes(
    deps: &ApprovalDeps<'_>,
    req: &ApiRequest,
    now: DateTime<Utc>,
) -> Result<Outcome, ServiceError> {
    let Some(found @ (Resource::Decision(..) | Resource::Review(_) | Resource::Approvals)) = resource(&req.path) else {
        return Err(no_route(req));
    };
    let caller = authenticated_caller(req)?;
    let resp = match (req.method.as_str(), found) {
        ("GET", Resource::Approvals) => {
            let items = if approvals_decided(&req.query)? {
                approvals::decided_by(deps, &caller).await?
            } else {
                approvals::waiting_for(deps, &caller, now).await?
            };
            let items: Vec<Value> = items.iter().map(access_request).collect();
            ApiResponse::json(200, json!({ "AccessRequests": items }))
        }
        ("POST", Resource::Decision(id, action)) => {
            let body = comment_body(&req.body)?;
            let updated = match action {
                Action::Approve => approvals::decide_as_caller(deps, &caller, id, Verdict::Approve, &body, now).await?,
                Action::Reject => approvals::decide_as_caller(deps, &caller, id, Verdict::Reject, &body, now).await?,
                Action::Cancel => approvals::cancel(deps, &caller, id, &body, now).await?,
                Action::Revoke => approvals::revoke(deps, &caller, id, &body, now).await?,
            };
            ApiResponse::json(200, access_request(&updated))
        }
        ("POST", Resource::Review(id)) => {
            let body = review_body(&req.body)?;
            ApiResponse::json(200, access_request(&approvals::review(deps, &caller, id, &body, now).await?))
        }
        _ => return Ok(Outcome::WrongMethod),
    };
    Ok(Outcome::Done(resp))
}

/// The JSON object of a body, naming `body` when it is none.
fn object(body: &[u8]) -> Result<Map<String, Value>, FieldError> {
    if body.len() > submit::MAX_BODY_BYTES {
        return Err(FieldError::new(
            "body",
            "BodyTooLarge",
            format!("the body must be at most {} bytes", submit::MAX_BODY_BYTES),
        ));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(FieldError::new("body", "InvalidBody", "the body must be a JSON object")),
        Err(e) => Err(FieldError::new("body", "InvalidJson", format!("the body is not valid JSON: {e}"))),
    }
}

fn invalid_targets(message: impl Into<String>) -> FieldError {
    FieldError::new("Targets", "InvalidTargets", message)
}

/// `StartAccessRequest`'s body (`Reason`, `Targets`, optional `StartsAt` and `BreakGlass`) as
/// the native `POST /requests` body: the node of the one `InstanceIds` target, the reason, the
/// start as RFC 3339, `breakGlass`, and no duration (the deciding policy's window, or the
/// break-glass maximum, applies, as in JITNA). The node id, reason, start and their combination
/// are checked by `submit` itself.
pub fn start_body(body: &[u8]) -> Result<Vec<u8>, FieldError> {
    let map = object(body)?;
    let allowed = ["Reason", "Targets", "StartsAt", "BreakGlass"];
    if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(match unknown.as_str() {
            // The model declares JITNA's `Tags` so that the CLI and boto3 send it here, to be
            // refused by name rather than client-side as an unknown option.
            "Tags" => FieldError::new(
                "Tags",
                "UnsupportedParameter",
                "tags on access requests are not supported by jit-node-access; leave Tags out",
            ),
            _ => FieldError::new(
                unknown.clone(),
                "UnknownField",
                "unknown member; allowed: Reason, Targets, StartsAt, BreakGlass",
            ),
        });
    }
    let reason = match map.get("Reason") {
        None | Some(Value::Null) => return Err(FieldError::new("Reason", "MissingField", "is required")),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(FieldError::new("Reason", "InvalidType", "must be a string")),
    };
    let one = "give exactly one target: Key=InstanceIds,Values=<one node id>";
    let targets = match map.get("Targets") {
        None | Some(Value::Null) => {
            return Err(FieldError::new("Targets", "MissingField", format!("is required: {one}")))
        }
        Some(Value::Array(t)) => t,
        Some(_) => return Err(invalid_targets(format!("must be a list; {one}"))),
    };
    let [Value::Object(target)] = targets.as_slice() else {
        return Err(invalid_targets(format!("{} targets given; {one}", targets.len())));
    };
    if let Some(unknown) = target.keys().find(|k| !["Key", "Values"].contains(&k.as_str())) {
        return Err(invalid_targets(format!("unknown member {unknown} in the target; {one}")));
    }
    match target.get("Key") {
        Some(Value::String(k)) if k == TARGET_KEY => {}
        Some(Value::String(k)) => return Err(invalid_targets(format!("the target key {k} is not supported; {one}"))),
        _ => return Err(invalid_targets(format!("the target has no Key; {one}"))),
    }
    let node = match target.get("Values") {
        Some(Value::Array(values)) => match values.as_slice() {
            [Value::String(node)] => node.clone(),
            [_] => return Err(invalid_targets(format!("the node id must be a string; {one}"))),
            more => return Err(invalid_targets(format!("{} node ids given; {one}", more.len()))),
        },
        _ => return Err(invalid_targets(format!("the target has no Values list; {one}"))),
    };
    let mut native = json!({ "nodeId": node, "reason": reason });
    if let Some(at) = starts_at(map.get("StartsAt"))? {
        native["startsAt"] = json!(at);
    }
    match map.get("BreakGlass") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => native["breakGlass"] = json!(b),
        Some(_) => return Err(FieldError::new("BreakGlass", "InvalidType", "must be true or false")),
    }
    Ok(native.to_string().into_bytes())
}

/// `StartsAt` as the native RFC 3339 `startsAt`: the model sends ISO 8601; a number is read as
/// epoch seconds, the wire form of the model's other timestamps. `submit` checks the rest.
fn starts_at(value: Option<&Value>) -> Result<Option<String>, FieldError> {
    let bad =
        || FieldError::new("StartsAt", "InvalidStartsAt", "must be a time (ISO 8601 with an offset, or epoch seconds)");
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(Value::Number(n)) => {
            let seconds = n.as_f64().filter(|s| s.is_finite()).ok_or_else(bad)?;
            #[expect(clippy::cast_possible_truncation, reason = "whole seconds; out-of-range values are refused below")]
            let at = DateTime::<Utc>::from_timestamp(seconds.floor() as i64, 0).ok_or_else(bad)?;
            Ok(Some(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
        }
        Some(_) => Err(bad()),
    }
}

/// `ExtendAccessRequest`'s body (`DurationMinutes`, `Reason`) as the native
/// `POST /requests/{id}/extend` body; `submit::extend` checks the values.
pub fn extend_body(body: &[u8]) -> Result<Vec<u8>, FieldError> {
    let map = object(body)?;
    if let Some(unknown) = map.keys().find(|k| !["DurationMinutes", "Reason"].contains(&k.as_str())) {
        return Err(FieldError::new(
            unknown.clone(),
            "UnknownField",
            "unknown member; allowed: DurationMinutes, Reason",
        ));
    }
    let mut native = Map::new();
    for (member, field) in [("DurationMinutes", "durationMinutes"), ("Reason", "reason")] {
        if let Some(value) = map.get(member) {
            native.insert(field.to_owned(), value.clone());
        }
    }
    Ok(Value::Object(native).to_string().into_bytes())
}

/// The optional `{"Comment"}` of approve, reject, cancel and revoke as the native body.
pub fn comment_body(body: &[u8]) -> Result<Vec<u8>, FieldError> {
    let map = object(body)?;
    if let Some(unknown) = map.keys().find(|k| k.as_str() != "Comment") {
        return Err(FieldError::new(unknown.clone(), "UnknownField", "unknown member; allowed: Comment"));
    }
    match map.get("Comment") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(c)) => Ok(json!({ "comment": c }).to_string().into_bytes()),
        Some(_) => Err(FieldError::new("Comment", "InvalidType", "must be a string")),
    }
}

/// `ReviewAccessRequest`'s body (`Verdict`, optional `Comment`) as the native
/// `POST /requests/{id}/review` body; `approve::review` checks the values (a missing or unknown
/// verdict is a 400 naming `verdict`, which the error names `Verdict`).
pub fn review_body(body: &[u8]) -> Result<Vec<u8>, FieldError> {
    let map = object(body)?;
    if let Some(unknown) = map.keys().find(|k| !["Verdict", "Comment"].contains(&k.as_str())) {
        return Err(FieldError::new(unknown.clone(), "UnknownField", "unknown member; allowed: Verdict, Comment"));
    }
    let mut native = Map::new();
    for (member, field) in [("Verdict", "verdict"), ("Comment", "comment")] {
        if let Some(value) = map.get(member) {
            native.insert(field.to_owned(), value.clone());
        }
    }
    Ok(Value::Object(native).to_string().into_bytes())
}

/// JITNA's status names: a `Submitted` request (not evaluated yet) is `Pending` there; `Cancelled`
/// and `Failed` are ours.
pub fn status_name(status: RequestStatus) -> &'static str {
    match status {
        RequestStatus::Submitted => "Pending",
        other => other.as_str(),
    }
}

/// `ListAccessRequests`' query (`status`, `maxResults`, `nextToken`), and whether only `Pending`
/// ones are wanted (`Submitted` and `Pending` alike: the page is filtered, so it may be shorter).
pub fn list_query(params: &[(String, String)]) -> Result<(ListQuery, bool), FieldError> {
    let mut query = ListQuery { status: None, limit: submit::DEFAULT_PAGE_SIZE, after: None };
    let mut pending_only = false;
    for (k, v) in params {
        match k.as_str() {
            "status" => {
                let status = RequestStatus::ALL.into_iter().find(|s| status_name(*s) == v).ok_or_else(|| {
                    FieldError::new(
                        "AccessRequestStatus",
                        "InvalidStatus",
                        "must be one of Pending, Approved, Rejected, Revoked, Expired, Cancelled, Failed",
                    )
                })?;
                pending_only = status_name(status) == "Pending";
                query.status = (!pending_only).then_some(status);
            }
            "maxResults" => {
                query.limit =
                    v.parse::<u32>().ok().filter(|l| (1..=submit::MAX_PAGE_SIZE).contains(l)).ok_or_else(|| {
                        FieldError::new(
                            "MaxResults",
                            "InvalidMaxResults",
                            format!("must be a whole number from 1 to {}", submit::MAX_PAGE_SIZE),
                        )
                    })?;
            }
            "nextToken" => {
                query.after =
                    Some(submit::decode_position(v).map_err(|e| FieldError { field: "NextToken".into(), ..e })?)
            }
            other => {
                return Err(FieldError::new(
                    other,
                    "UnknownParameter",
                    "unknown query parameter; allowed: status, maxResults, nextToken",
                ))
            }
        }
    }
    Ok((query, pending_only))
}

/// `ListApprovals`' one parameter, `decided` (`Decided` in the model).
fn approvals_decided(params: &[(String, String)]) -> Result<bool, FieldError> {
    let mut decided = false;
    for (k, v) in params {
        decided = match (k.as_str(), v.as_str()) {
            ("decided", "true") => true,
            ("decided", "false") => false,
            ("decided", _) => return Err(FieldError::new("Decided", "InvalidValue", "must be true or false")),
            (other, _) => {
                return Err(FieldError::new(other, "UnknownParameter", "unknown query parameter; allowed: decided"))
            }
        };
    }
    Ok(decided)
}

fn epoch(t: &DateTime<Utc>) -> Value {
    json!(t.timestamp())
}

/// A request in JITNA's member names (the model's `AccessRequest`); times in epoch seconds.
pub fn access_request(r: &AccessRequest) -> Value {
    let mut out = Map::new();
    out.insert("AccessRequestId".into(), json!(r.request_id.as_str()));
    out.insert("AccessRequestStatus".into(), json!(status_name(r.status)));
    out.insert("Reason".into(), json!(r.reason.as_str()));
    out.insert("Targets".into(), json!([{ "Key": TARGET_KEY, "Values": [r.node_id.as_str()] }]));
    out.insert("Requester".into(), json!(r.requester.as_str()));
    out.insert("CreatedTime".into(), epoch(&r.created_at));
    out.insert("UpdatedTime".into(), epoch(&r.updated_at));
    out.insert("GrantMode".into(), json!(r.grant_mode.as_str()));
    // A request that asked for no duration has one once the deciding policy set it.
    if !r.duration_from_policy || r.decision.is_some() {
        out.insert("AccessDurationMinutes".into(), json!(r.duration_minutes.get()));
    }
    if let Some(at) = &r.starts_at {
        out.insert("StartsAt".into(), epoch(at));
    }
    if let Some(of) = &r.extends {
        out.insert("Extends".into(), json!(of.as_str()));
    }
    if r.break_glass {
        out.insert("BreakGlass".into(), json!(true));
    }
    if let Some(review) = &r.review {
        out.insert("Review".into(), break_glass_review(review));
    }
    if let Some(at) = &r.approved_at {
        out.insert("ApprovedTime".into(), epoch(at));
        out.insert("AccessDeadline".into(), epoch(&r.access_deadline()));
    }
    if let Some(g) = &r.grant {
        out.insert("GrantedTime".into(), epoch(&g.attached_at));
    }
    if let (RequestStatus::Pending, Some(p)) = (r.status, &r.progress) {
        out.insert("ApprovalLevel".into(), json!(p.current_level));
        out.insert("ApprovalDeadline".into(), epoch(&p.pending_until));
    }
    if let Some(d) = &r.decision {
        let mut decision = Map::new();
        if let Ok(rule) = to_json(&d.rule) {
            decision.insert("Rule".into(), rule);
        }
        decision.insert("Message".into(), json!(d.message));
        decision.insert("DecidingPolicyIds".into(), json!(d.deciding_policy_ids));
        if !d.deny_policy_ids.is_empty() {
            decision.insert("DenyPolicyIds".into(), json!(d.deny_policy_ids));
        }
        if let Some(code) = &d.failure_code {
            decision.insert("FailureCode".into(), json!(code));
        }
        out.insert("Decision".into(), Value::Object(decision));
    }
    Value::Object(out)
}

/// A break-glass review in the model's `BreakGlassReview` members: `Due` while open, and the
/// verdict, reviewer, time and comment once decided.
fn break_glass_review(review: &Review) -> Value {
    let mut out = Map::new();
    out.insert("Due".into(), epoch(&review.due));
    if let Some(verdict) = review.verdict {
        let name = match verdict {
            ReviewVerdict::Acknowledge => "acknowledge",
            ReviewVerdict::Flag => "flag",
        };
        out.insert("Verdict".into(), json!(name));
    }
    if let Some(by) = &review.by {
        out.insert("ReviewedBy".into(), json!(by));
    }
    if let Some(at) = &review.at {
        out.insert("ReviewedTime".into(), epoch(at));
    }
    if let Some(comment) = &review.comment {
        out.insert("Comment".into(), json!(comment.as_str()));
    }
    Value::Object(out)
}

/// `GetAccessToken`'s answer: JITNA's `Credentials` and `AccessRequestStatus`, and what to start
/// the session with (`Target`, `DocumentName`, `Region`), the deadline and the role.
pub fn access_token(issued: &Issued) -> Value {
    let c = &issued.credentials;
    json!({
        "Credentials": {
            "AccessKeyId": c.access_key_id,
            "SecretAccessKey": c.secret_access_key.expose(),
            "SessionToken": c.session_token.expose(),
            "ExpirationTime": epoch(&issued.expiration),
        },
        "AccessRequestStatus": status_name(RequestStatus::Approved),
        "Target": issued.node_id.instance_id(),
        "DocumentName": issued.document_name,
        "Region": issued.region,
        "RoleArn": issued.role_arn,
        "AccessDeadline": epoch(&issued.access_deadline),
    })
}

/// The field of a native error as the model names it.
fn model_field(field: &str) -> &str {
    match field {
        "nodeId" => "Targets",
        "reason" => "Reason",
        "durationMinutes" => "DurationMinutes",
        "startsAt" => "StartsAt",
        "breakGlass" => "BreakGlass",
        "verdict" => "Verdict",
        "comment" => "Comment",
        "requestId" => "AccessRequestId",
        "Idempotency-Key" => "ClientToken",
        other => other,
    }
}

/// The exception type botocore shows for an error (the model's error shapes).
pub fn error_type(e: &ServiceError) -> &'static str {
    match error::status(e) {
        400 | 415 => "ValidationException",
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        409 => "ConflictException",
        503 => "ServiceUnavailableException",
        _ => "InternalServerError",
    }
}

fn typed_error(status: u16, kind: &str, mut body: Value) -> ApiResponse {
    body["__type"] = json!(kind);
    let mut resp = ApiResponse::json(status, body);
    resp.headers.push(("x-amzn-errortype".into(), kind.to_owned()));
    resp
}

/// A JITNA-shaped error: `__type` (and the `x-amzn-errortype` header), `message`, `ReasonCode`
/// (the native error code) and, for bad input, `Field` named as the model names it, which also
/// starts the message. Internal details never reach the caller (as `ApiResponse::error`).
pub fn error_response(e: &ServiceError) -> ApiResponse {
    let status = error::status(e);
    if status >= 500 {
        tracing::error!(error = %e, "request failed");
    }
    let body = match e {
        ServiceError::InvalidInput(f) => {
            let field = model_field(&f.field);
            json!({ "message": format!("{field}: {}", f.message), "ReasonCode": f.code, "Field": field })
        }
        other => json!({ "message": other.public_message(), "ReasonCode": other.code() }),
    };
    let mut resp = typed_error(status, error_type(e), body);
    if status == 503 {
        resp.headers.push(("retry-after".into(), "2".into()));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::credentials::{IssuedCredentials, Secret};
    use crate::domain::ids::{NodeId, RequestId};

    fn approved() -> AccessRequest {
        let env: crate::domain::events::EventEnvelope =
            serde_json::from_str(include_str!("../../../events/request-approved.json")).unwrap();
        env.detail.request().unwrap()
    }

    fn field_of(body: &str) -> String {
        start_body(body.as_bytes()).unwrap_err().field
    }

    fn model() -> Value {
        serde_json::from_str(include_str!("../../../clients/aws-cli/jit-node-access/2026-12-01/service-2.json"))
            .unwrap()
    }

    /// The members the model declares for a shape: botocore drops any others.
    fn members(model: &Value, shape: &str) -> Vec<String> {
        model["shapes"][shape]["members"].as_object().unwrap().keys().cloned().collect()
    }

    fn assert_declared(model: &Value, shape: &str, value: &Value) {
        let declared = members(model, shape);
        for key in value.as_object().unwrap().keys().filter(|k| k.as_str() != "__type") {
            assert!(declared.contains(key), "{shape} does not declare {key}");
        }
    }

    #[test]
    fn every_operation_of_the_model_has_its_route() {
        let model = model();
        let id = "req-5f0c2a9e8b7d4c3a9e1f2b3c4d5e6f70";
        let ops = model["operations"].as_object().unwrap();
        assert_eq!(ops.len(), 11);
        for (name, op) in ops {
            let path = op["http"]["requestUri"].as_str().unwrap().replace("{AccessRequestId}", id);
            let method = op["http"]["method"].as_str().unwrap();
            let found = resource(&path).unwrap_or_else(|| panic!("{name}: no route for {path}"));
            let expected = match found {
                Resource::Requests if name == "StartAccessRequest" => "POST",
                Resource::Requests | Resource::Request(_) | Resource::Approvals => "GET",
                Resource::Token(_) | Resource::Decision(..) | Resource::Review(_) | Resource::Extend(_) => "POST",
            };
            assert_eq!(method, expected, "{name}");
        }
        assert_eq!(model["metadata"]["signingName"], "execute-api");
        assert_eq!(model["metadata"]["protocol"], "rest-json");
    }

    #[test]
    fn responses_and_errors_use_only_members_the_model_declares() {
        let model = model();
        assert_declared(&model, "AccessRequest", &access_request(&approved()));
        assert_declared(&model, "Decision", &access_request(&approved())["Decision"]);
        let err = error_response(&FieldError::new("nodeId", "InvalidNodeId", "bad").into());
        assert_declared(&model, "ValidationException", &err.body);
        let err = error_response(&ServiceError::Conflict { code: "RequestNotPending", message: "x".into() });
        assert_declared(&model, "ConflictException", &err.body);
        for e in [
            ServiceError::Forbidden("x".into()),
            ServiceError::NotFound("x".into()),
            ServiceError::Unavailable("x".into()),
            ServiceError::Internal("x".into()),
        ] {
            let kind = error_type(&e);
            assert_eq!(model["shapes"][kind]["exception"], true, "{kind}");
            assert_declared(&model, kind, &error_response(&e).body);
        }
    }

    #[test]
    fn routes_go_to_the_function_of_their_use_case() {
        let id = "req-5f0c2a9e8b7d4c3a9e1f2b3c4d5e6f70";
        assert!(serves_credentials(&format!("/jitna/access-requests/{id}/access-token")));
        for action in ["approve", "reject", "cancel", "revoke", "review"] {
            let path = format!("/jitna/access-requests/{id}/{action}");
            assert!(serves_approve(&path) && !serves_credentials(&path), "{path}");
        }
        assert!(serves_approve("/jitna/approvals"));
        let extend = format!("/jitna/access-requests/{id}/extend");
        for submit in
            ["/jitna/access-requests", "/jitna/access-requests/", &format!("/jitna/access-requests/{id}"), &extend]
        {
            assert!(is_jitna_path(submit) && !serves_approve(submit) && !serves_credentials(submit), "{submit}");
            assert!(resource(submit).is_some());
        }
        assert!(resource("/jitna/access-requests/x/y/z").is_none());
        assert!(!is_jitna_path("/requests") && !is_jitna_path("/jitnax"));
    }

    #[test]
    fn a_start_body_becomes_the_native_body_without_a_duration() {
        let body =
            start_body(br#"{"Reason":"disk full","Targets":[{"Key":"InstanceIds","Values":["i-0123abcd"]}]}"#).unwrap();
        let native: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(native, json!({ "nodeId": "i-0123abcd", "reason": "disk full" }));
    }

    #[test]
    fn bad_start_bodies_name_the_member() {
        let t = |targets: &str| format!(r#"{{"Reason":"x","Targets":{targets}}}"#);
        let cases = [
            ("not json".to_owned(), "body"),
            ("[1]".to_owned(), "body"),
            (r#"{"Targets":[{"Key":"InstanceIds","Values":["i-0123abcd"]}]}"#.to_owned(), "Reason"),
            (r#"{"Reason":7,"Targets":[]}"#.to_owned(), "Reason"),
            (r#"{"Reason":"x"}"#.to_owned(), "Targets"),
            (t("{}"), "Targets"),
            (t("[]"), "Targets"),
            (t(r#"[{"Key":"InstanceIds","Values":["i-1"]},{"Key":"InstanceIds","Values":["i-2"]}]"#), "Targets"),
            (t(r#"[{"Key":"InstanceIds","Values":["i-1","i-2"]}]"#), "Targets"),
            (t(r#"[{"Key":"InstanceIds","Values":[]}]"#), "Targets"),
            (t(r#"[{"Key":"InstanceIds","Values":[5]}]"#), "Targets"),
            (t(r#"[{"Key":"tag:Environment","Values":["Production"]}]"#), "Targets"),
            (t(r#"[{"Values":["i-1"]}]"#), "Targets"),
            (t(r#"[{"Key":"InstanceIds","Values":["i-1"],"Extra":1}]"#), "Targets"),
            (r#"{"Reason":"x","Targets":[],"Tags":[{"Key":"a","Value":"b"}]}"#.to_owned(), "Tags"),
            (r#"{"Reason":"x","Targets":[],"DurationMinutes":5}"#.to_owned(), "DurationMinutes"),
            (
                r#"{"Reason":"x","Targets":[{"Key":"InstanceIds","Values":["i-1"]}],"StartsAt":true}"#.to_owned(),
                "StartsAt",
            ),
            (
                r#"{"Reason":"x","Targets":[{"Key":"InstanceIds","Values":["i-1"]}],"BreakGlass":"yes"}"#.to_owned(),
                "BreakGlass",
            ),
            (r#"{"Reason":"x","Targets":[],"breakGlass":true}"#.to_owned(), "breakGlass"),
        ];
        for (body, field) in cases {
            assert_eq!(field_of(&body), field, "{body}");
        }
    }

    #[test]
    fn tags_reach_the_server_as_jitna_declares_them_and_are_refused_by_name() {
        // Declared as AWS's model does (a list of {Key, Value}), so neither the CLI nor boto3
        // refuses `Tags` before it is sent.
        let model = model();
        let tags = &model["shapes"]["StartAccessRequestRequest"]["members"]["Tags"];
        assert_eq!(tags["shape"], "TagList");
        assert_eq!(model["shapes"]["TagList"]["member"]["shape"], "Tag");
        assert_eq!(model["shapes"]["Tag"]["required"], json!(["Key", "Value"]));
        assert_eq!(members(&model, "Tag"), ["Key", "Value"]);
        let body = r#"{"Reason":"x","Targets":[{"Key":"InstanceIds","Values":["i-0123abcd"]}],"Tags":[{"Key":"a","Value":"b"}]}"#;
        let resp = error_response(&start_body(body.as_bytes()).unwrap_err().into());
        assert_eq!(
            (resp.status, resp.body["__type"].as_str(), resp.body["Field"].as_str(), resp.body["ReasonCode"].as_str()),
            (400, Some("ValidationException"), Some("Tags"), Some("UnsupportedParameter"))
        );
        assert!(resp.body["message"].as_str().is_some_and(|m| m.starts_with("Tags: ") && m.contains("not supported")));
    }

    #[test]
    fn the_paginator_names_members_of_list_access_requests() {
        let paginators: Value =
            serde_json::from_str(include_str!("../../../clients/aws-cli/jit-node-access/2026-12-01/paginators-1.json"))
                .unwrap();
        let model = model();
        let config = &paginators["pagination"]["ListAccessRequests"];
        let op = &model["operations"]["ListAccessRequests"];
        let input = op["input"]["shape"].as_str().unwrap();
        let output = op["output"]["shape"].as_str().unwrap();
        assert_eq!(paginators["pagination"].as_object().unwrap().len(), 1, "only ListAccessRequests pages");
        for (key, shape) in
            [("input_token", input), ("limit_key", input), ("output_token", output), ("result_key", output)]
        {
            let member = config[key].as_str().unwrap_or_else(|| panic!("no {key}"));
            assert!(members(&model, shape).iter().any(|m| m == member), "{shape} does not declare {member} ({key})");
        }
        assert_eq!(model["shapes"][input]["members"]["MaxResults"]["locationName"], "maxResults");
        assert_eq!(model["shapes"][input]["members"]["NextToken"]["locationName"], "nextToken");
    }

    #[test]
    fn a_start_time_becomes_the_native_starts_at() {
        let target = r#""Targets":[{"Key":"InstanceIds","Values":["i-0123abcd"]}]"#;
        let native = |starts: &str| -> Value {
            serde_json::from_slice(
                &start_body(format!(r#"{{"Reason":"r",{target},"StartsAt":{starts}}}"#).as_bytes()).unwrap(),
            )
            .unwrap()
        };
        assert_eq!(native(r#""2026-12-24T08:00:00Z""#)["startsAt"], "2026-12-24T08:00:00Z");
        assert_eq!(native("1798099200")["startsAt"], "2026-12-24T08:00:00Z");
        assert_eq!(native("null").get("startsAt"), None);
    }

    #[test]
    fn break_glass_becomes_the_native_member_and_cannot_be_scheduled() {
        let target = r#""Targets":[{"Key":"InstanceIds","Values":["i-0123abcd"]}]"#;
        let body = |extra: &str| start_body(format!(r#"{{"Reason":"r",{target}{extra}}}"#).as_bytes()).unwrap();
        let native: Value = serde_json::from_slice(&body(r#","BreakGlass":true"#)).unwrap();
        assert_eq!(native, json!({ "nodeId": "i-0123abcd", "reason": "r", "breakGlass": true }));
        let parsed = submit::NewRequest::parse(&body(r#","BreakGlass":true"#)).unwrap();
        assert!(parsed.break_glass);
        assert!(!submit::NewRequest::parse(&body(r#","BreakGlass":null"#)).unwrap().break_glass);
        assert!(!submit::NewRequest::parse(&body(r#","BreakGlass":false"#)).unwrap().break_glass);
        // Scheduled break-glass is refused by the native parser; the error names the model's member.
        let both = body(r#","BreakGlass":true,"StartsAt":"2030-01-01T00:00:00Z""#);
        let resp = error_response(&submit::NewRequest::parse(&both).unwrap_err().into());
        assert_eq!(
            (resp.status, resp.body["Field"].as_str(), resp.body["ReasonCode"].as_str()),
            (400, Some("StartsAt"), Some("BreakGlassIsNow"))
        );
    }

    #[test]
    fn a_review_body_becomes_the_native_body_and_names_its_members() {
        let native: Value =
            serde_json::from_slice(&review_body(br#"{"Verdict":"acknowledge","Comment":"real outage"}"#).unwrap())
                .unwrap();
        assert_eq!(native, json!({ "verdict": "acknowledge", "comment": "real outage" }));
        let native: Value = serde_json::from_slice(&review_body(b"").unwrap()).unwrap();
        assert_eq!(native, json!({}), "the native review names the missing verdict");
        assert_eq!(review_body(br#"{"verdict":"flag"}"#).unwrap_err().field, "verdict");
        assert_eq!(review_body(b"[]").unwrap_err().field, "body");
        let bad = "ok".parse::<ReviewVerdict>().unwrap_err();
        let resp = error_response(&bad.into());
        assert_eq!(
            (resp.status, resp.body["Field"].as_str(), resp.body["ReasonCode"].as_str()),
            (400, Some("Verdict"), Some("InvalidVerdict"))
        );
        assert!(resp.body["message"].as_str().is_some_and(|m| m.starts_with("Verdict: ")), "{}", resp.body);
        let twice = error_response(&ServiceError::Conflict { code: "AlreadyReviewed", message: "x".into() });
        assert_declared(&model(), "ConflictException", &twice.body);
        assert_eq!((twice.status, twice.body["ReasonCode"].as_str()), (409, Some("AlreadyReviewed")));
        let verdicts = model()["shapes"]["ReviewVerdict"]["enum"].clone();
        assert_eq!(verdicts, json!(["acknowledge", "flag"]));
        for v in verdicts.as_array().unwrap() {
            assert!(v.as_str().unwrap().parse::<ReviewVerdict>().is_ok(), "{v}");
        }
    }

    #[test]
    fn a_break_glass_request_reads_with_its_review() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let open = Review::open(at("2026-12-04T09:00:00Z"));
        let glass = AccessRequest { break_glass: true, review: Some(open.clone()), ..approved() };
        let v = access_request(&glass);
        assert_declared(&model(), "AccessRequest", &v);
        assert_eq!(v["BreakGlass"], true);
        assert_eq!(v["Review"], json!({ "Due": at("2026-12-04T09:00:00Z").timestamp() }));
        let comment = crate::domain::approval::Comment::try_from("real outage".to_owned()).unwrap();
        let reviewer = "arn:aws:iam::123456789012:user/approver-a";
        let reviewed = open.decide(ReviewVerdict::Flag, reviewer, Some(comment), at("2026-12-03T10:00:00Z")).unwrap();
        let v = access_request(&AccessRequest { review: Some(reviewed), ..glass });
        assert_declared(&model(), "BreakGlassReview", &v["Review"]);
        assert_eq!(
            v["Review"],
            json!({
                "Due": at("2026-12-04T09:00:00Z").timestamp(),
                "Verdict": "flag",
                "ReviewedBy": reviewer,
                "ReviewedTime": at("2026-12-03T10:00:00Z").timestamp(),
                "Comment": "real outage",
            })
        );
        let plain = access_request(&approved());
        assert!(plain.get("BreakGlass").is_none() && plain.get("Review").is_none(), "{plain}");
    }

    #[test]
    fn an_extend_body_becomes_the_native_body_and_names_its_members() {
        let native: Value =
            serde_json::from_slice(&extend_body(br#"{"DurationMinutes":20,"Reason":"longer"}"#).unwrap()).unwrap();
        assert_eq!(native, json!({ "durationMinutes": 20, "reason": "longer" }));
        assert_eq!(extend_body(br#"{"Minutes":20}"#).unwrap_err().field, "Minutes");
        let missing = submit::Extension::parse(&extend_body(br#"{"Reason":"r"}"#).unwrap()).unwrap_err();
        let resp = error_response(&missing.into());
        assert_eq!((resp.status, resp.body["Field"].as_str()), (400, Some("DurationMinutes")));
        let refused = error_response(&ServiceError::Conflict { code: "NotExtendable", message: "x".into() });
        assert_eq!((refused.status, refused.body["__type"].as_str()), (409, Some("ConflictException")));
    }

    #[test]
    fn native_field_errors_are_renamed_and_typed_for_botocore() {
        let resp = error_response(&FieldError::new("nodeId", "InvalidNodeId", "must be i-…").into());
        assert_eq!(resp.status, 400);
        assert!(resp.headers.contains(&("x-amzn-errortype".into(), "ValidationException".into())));
        assert_eq!(resp.body["__type"], "ValidationException");
        assert_eq!(resp.body["Field"], "Targets");
        assert_eq!(resp.body["ReasonCode"], "InvalidNodeId");
        assert_eq!(resp.body["message"], "Targets: must be i-…");
        let resp = error_response(&FieldError::new("reason", "InvalidReason", "empty").into());
        assert_eq!(
            (resp.body["Field"].as_str(), resp.body["message"].as_str()),
            (Some("Reason"), Some("Reason: empty"))
        );
    }

    #[test]
    fn other_errors_keep_their_code_and_hide_internal_details() {
        let cases: Vec<(ServiceError, u16, &str)> = vec![
            (ServiceError::Forbidden("x".into()), 403, "AccessDeniedException"),
            (ServiceError::NotFound("x".into()), 404, "ResourceNotFoundException"),
            (ServiceError::Conflict { code: "RequestNotPending", message: "x".into() }, 409, "ConflictException"),
            (ServiceError::UnsupportedMediaType("x".into()), 415, "ValidationException"),
            (ServiceError::Unavailable("x".into()), 503, "ServiceUnavailableException"),
            (ServiceError::Internal("table jit-secret exploded".into()), 500, "InternalServerError"),
        ];
        for (err, status, kind) in cases {
            let resp = error_response(&err);
            assert_eq!((resp.status, resp.body["__type"].as_str()), (status, Some(kind)), "{err}");
            assert_eq!(resp.body["ReasonCode"], err.code());
            assert!(resp.body.get("Field").is_none());
            assert!(!resp.body.to_string().contains("jit-secret"));
        }
    }

    #[test]
    fn statuses_carry_jitna_names() {
        assert_eq!(status_name(RequestStatus::Submitted), "Pending");
        for s in RequestStatus::ALL.into_iter().filter(|s| *s != RequestStatus::Submitted) {
            assert_eq!(status_name(s), s.as_str());
        }
    }

    #[test]
    fn list_parameters_are_translated_and_checked() {
        let q = |pairs: &[(&str, &str)]| {
            list_query(&pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<Vec<_>>())
        };
        let (query, pending) = q(&[("status", "Approved"), ("maxResults", "10")]).unwrap();
        assert_eq!((query.status, query.limit, pending), (Some(RequestStatus::Approved), 10, false));
        let (query, pending) = q(&[("status", "Pending")]).unwrap();
        assert_eq!((query.status, pending), (None, true));
        for (k, v, field) in [
            ("status", "Submitted", "AccessRequestStatus"),
            ("status", "pending", "AccessRequestStatus"),
            ("maxResults", "0", "MaxResults"),
            ("maxResults", "101", "MaxResults"),
            ("nextToken", "bm9wZQ", "NextToken"),
            ("limit", "5", "limit"),
        ] {
            assert_eq!(q(&[(k, v)]).unwrap_err().field, field, "{k}={v}");
        }
        assert_eq!(approvals_decided(&[("decided".into(), "yes".into())]).unwrap_err().field, "Decided");
        assert!(approvals_decided(&[("decided".into(), "true".into())]).unwrap());
    }

    #[test]
    fn comments_are_optional_and_checked() {
        assert!(comment_body(b"").unwrap().is_empty());
        assert!(comment_body(b"{}").unwrap().is_empty());
        let native: Value = serde_json::from_slice(&comment_body(br#"{"Comment":"ok"}"#).unwrap()).unwrap();
        assert_eq!(native, json!({ "comment": "ok" }));
        assert_eq!(comment_body(br#"{"comment":"ok"}"#).unwrap_err().field, "comment");
        assert_eq!(comment_body(br#"{"Comment":1}"#).unwrap_err().field, "Comment");
    }

    #[test]
    fn a_request_reads_in_jitna_member_names_with_epoch_times() {
        let at = DateTime::parse_from_rfc3339("2026-12-24T08:00:00Z").unwrap().with_timezone(&Utc);
        let scheduled_extension =
            AccessRequest { starts_at: Some(at), extends: Some(RequestId::generate()), ..approved() };
        let v = access_request(&scheduled_extension);
        assert_declared(&model(), "AccessRequest", &v);
        assert_eq!(v["StartsAt"], json!(at.timestamp()));
        assert_eq!(v["Extends"].as_str(), scheduled_extension.extends.as_ref().map(RequestId::as_str));
        let r = approved();
        let v = access_request(&r);
        assert_eq!(v["AccessRequestId"], r.request_id.as_str());
        assert_eq!(v["AccessRequestStatus"], "Approved");
        assert_eq!(v["Targets"], json!([{ "Key": "InstanceIds", "Values": ["i-0123456789abcdef0"] }]));
        assert_eq!(v["Requester"], "arn:aws:iam::123456789012:user/operator");
        assert_eq!(v["CreatedTime"], json!(r.created_at.timestamp()));
        assert_eq!(v["Decision"]["Rule"], "AutoApproval");
        assert_eq!(v["Decision"]["DecidingPolicyIds"], json!(["development-auto-approval"]));
        assert_eq!(v["AccessDurationMinutes"], 30);
        assert!(v.get("ApprovalLevel").is_none());
    }

    #[test]
    fn an_access_token_carries_jitna_credentials() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let issued = Issued {
            request_id: RequestId::generate(),
            node_id: NodeId::try_from("i-0123456789abcdef0".to_owned()).unwrap(),
            credentials: IssuedCredentials {
                access_key_id: "ASIAEXAMPLE".into(),
                secret_access_key: Secret::new("secret"),
                session_token: Secret::new("token"),
                expiration: at("2026-12-03T10:00:00Z"),
            },
            expiration: at("2026-12-03T09:30:00Z"),
            access_deadline: at("2026-12-03T09:30:00Z"),
            role_arn: "arn:aws:iam::123456789012:role/jit-session".into(),
            region: "us-east-1".into(),
            document_name: "SSM-SessionManagerRunShell".into(),
        };
        let v = access_token(&issued);
        assert_declared(&model(), "GetAccessTokenResponse", &v);
        assert_declared(&model(), "Credentials", &v["Credentials"]);
        assert_eq!(
            v["Credentials"],
            json!({
                "AccessKeyId": "ASIAEXAMPLE",
                "SecretAccessKey": "secret",
                "SessionToken": "token",
                "ExpirationTime": at("2026-12-03T09:30:00Z").timestamp(),
            })
        );
        assert_eq!(
            (v["AccessRequestStatus"].as_str(), v["Target"].as_str()),
            (Some("Approved"), Some("i-0123456789abcdef0"))
        );
    }
}
