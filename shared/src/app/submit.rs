//! Request intake: submit, read and list access requests. Plain async functions over the ports,
//! called by the submission Lambda, the local stack and the tests alike.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

use crate::app::common::{approver_keys, is_administrator, not_found, parse_id, plan_names_any, resolve_caller};
use crate::app::error::{FieldError, ServiceError};
use crate::domain::approval_rules as approval;
use crate::domain::grant::{GrantMode, GrantSettings};
use crate::domain::ids::{DurationMinutes, IdempotencyKey, NodeId, Reason, RequestId};
use crate::domain::principal::CallerArn;
use crate::domain::request::{AccessRequest, AuditRecord};
use crate::domain::status::RequestStatus;
use crate::ports::{CreateOutcome, IdempotencyRecord, ListPosition, ListQuery, Page, PrincipalDirectory, RequestStore};

/// The largest request body accepted; a valid one is far smaller.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
pub const DEFAULT_PAGE_SIZE: u32 = 25;
pub const MAX_PAGE_SIZE: u32 = 100;

pub struct SubmitDeps<'a> {
    pub store: &'a dyn RequestStore,
    pub directory: &'a dyn PrincipalDirectory,
    /// The stack's grant mode (`GrantMode::for_request` refines it per request) and the
    /// accounts whose nodes it serves.
    pub settings: &'a GrantSettings,
    /// They may read any request and its audit trail.
    pub administrators: &'a crate::domain::administrators::Administrators,
}

/// A validated `POST /requests` body.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRequest {
    pub node_id: NodeId,
    pub reason: Reason,
    /// `None`: the deciding policy's window (auto-approval) or maximum (manual) applies.
    pub duration_minutes: Option<DurationMinutes>,
}

impl NewRequest {
    /// Parses the JSON body, naming the field of the first problem found.
    pub fn parse(body: &[u8]) -> Result<Self, FieldError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(FieldError::new(
                "body",
                "BodyTooLarge",
                format!("the body must be at most {MAX_BODY_BYTES} bytes"),
            ));
        }
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| FieldError::new("body", "InvalidJson", format!("the body is not valid JSON: {e}")))?;
        let serde_json::Value::Object(map) = value else {
            return Err(FieldError::new("body", "InvalidBody", "the body must be a JSON object"));
        };
        if let Some(unknown) = map.keys().find(|k| !["nodeId", "reason", "durationMinutes"].contains(&k.as_str())) {
            return Err(FieldError::new(
                unknown.clone(),
                "UnknownField",
                "unknown field; allowed: nodeId, reason, durationMinutes",
            ));
        }
        let string = |name: &str| -> Result<String, FieldError> {
            match map.get(name) {
                None | Some(serde_json::Value::Null) => Err(FieldError::new(name, "MissingField", "is required")),
                Some(serde_json::Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(FieldError::new(name, "InvalidType", "must be a string")),
            }
        };
        let node_id = NodeId::try_from(string("nodeId")?)?;
        let reason = Reason::try_from(string("reason")?)?;
        let duration = match map.get("durationMinutes") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Number(n)) => {
                Some(n.as_u64().and_then(|v| u32::try_from(v).ok()).ok_or_else(|| {
                    FieldError::new(
                        "durationMinutes",
                        "InvalidDuration",
                        "must be a whole number of minutes from 1 to 20160 (336 hours)",
                    )
                })?)
            }
            Some(_) => return Err(FieldError::new("durationMinutes", "InvalidType", "must be a number")),
        };
        Ok(Self { node_id, reason, duration_minutes: duration.map(DurationMinutes::try_from).transpose()? })
    }

    /// Hash of the normalized body: two bodies that mean the same request hash the same.
    pub fn fingerprint(&self) -> String {
        let canonical =
            serde_json::json!([self.node_id.as_str(), self.reason.as_str(), self.duration_minutes.map(|d| d.get())]);
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    pub request: AccessRequest,
    /// True when an earlier call with the same `Idempotency-Key` created the request.
    pub replayed: bool,
}

pub async fn submit(
    deps: &SubmitDeps<'_>,
    caller: &CallerArn,
    body: &[u8],
    idempotency_key: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Submitted, ServiceError> {
    // Validate everything before touching the store: a bad input writes nothing.
    let key = idempotency_key.map(|k| IdempotencyKey::try_from(k.to_owned())).transpose()?;
    let new = NewRequest::parse(body)?;
    deps.settings.check_node(&new.node_id)?;
    let member_node = deps.settings.is_member_node(&new.node_id);
    let request = AccessRequest {
        request_id: RequestId::generate(),
        requester: caller.clone(),
        node_id: new.node_id.clone(),
        reason: new.reason.clone(),
        duration_minutes: new.duration_minutes.unwrap_or(DurationMinutes::MAX),
        duration_from_policy: new.duration_minutes.is_none(),
        status: RequestStatus::Submitted,
        created_at: now,
        updated_at: now,
        version: 1,
        decision: None,
        progress: None,
        approved_at: None,
        grant: None,
        grant_mode: GrantMode::for_request(deps.settings.mode, caller, member_node),
        credentials: None,
        approval_seal: None,
    };
    let audit = AuditRecord {
        request_id: request.request_id.clone(),
        version: 1,
        from: None,
        to: RequestStatus::Submitted,
        actor: caller.to_string(),
        at: now,
        reason: request.reason.as_str().to_owned(),
        approval: None,
        level_completed: None,
        credentials: None,
        nudge: None,
    };
    let idem = key.map(|k| IdempotencyRecord {
        caller: caller.clone(),
        key: k.as_str().to_owned(),
        body_hash: new.fingerprint(),
    });
    // The Submitted event comes from the table's stream once this write commits, so a replay
    // has nothing to publish again.
    match deps.store.create(&request, &audit, idem.as_ref()).await? {
        CreateOutcome::Created => Ok(Submitted { request, replayed: false }),
        CreateOutcome::Replayed(existing) => Ok(Submitted { request: *existing, replayed: true }),
        CreateOutcome::KeyReused => Err(ServiceError::Conflict {
            code: "IdempotencyKeyReused",
            message: "this Idempotency-Key was already used with a different request body".into(),
        }),
    }
}

/// Requests are visible to their requester and to the approvers their plan names. Anyone else
/// gets 404, so request ids cannot be probed.
pub async fn get(deps: &SubmitDeps<'_>, caller: &CallerArn, id: &str) -> Result<AccessRequest, ServiceError> {
    let request = deps.store.get(&parse_id(id)?).await?.ok_or_else(|| not_found(id))?;
    if may_read(deps, caller, &request).await? {
        Ok(request)
    } else {
        Err(not_found(id))
    }
}

/// The requester, an approver named by the request's plan, or an administrator.
async fn may_read(deps: &SubmitDeps<'_>, caller: &CallerArn, request: &AccessRequest) -> Result<bool, ServiceError> {
    if &request.requester == caller || is_administrator(deps.administrators, deps.directory, caller).await? {
        return Ok(true);
    }
    if approval::plan_of(request).is_none() {
        return Ok(false);
    }
    let keys = resolve_caller(deps.directory, caller).await?.as_ref().map(approver_keys).unwrap_or_default();
    Ok(plan_names_any(request, &keys))
}

/// `GET /requests/{id}/audit`: every status change of the request, oldest first, for whoever may
/// read the request (a request that does not exist for the caller has no trail either).
pub async fn audit(deps: &SubmitDeps<'_>, caller: &CallerArn, id: &str) -> Result<Vec<AuditRecord>, ServiceError> {
    let request = get(deps, caller, id).await?;
    let mut trail = deps.store.audit_trail(&request.request_id).await?;
    trail.sort_by_key(|r| r.version);
    Ok(trail)
}

/// Parses `GET /requests` query parameters, naming the parameter of the first problem.
pub fn parse_list_query(params: &[(String, String)]) -> Result<ListQuery, FieldError> {
    let mut query = ListQuery { status: None, limit: DEFAULT_PAGE_SIZE, after: None };
    for (k, v) in params {
        match k.as_str() {
            "status" => query.status = Some(v.parse()?),
            "limit" => {
                query.limit = v.parse::<u32>().ok().filter(|l| (1..=MAX_PAGE_SIZE).contains(l)).ok_or_else(|| {
                    FieldError::new(
                        "limit",
                        "InvalidLimit",
                        format!("must be a whole number from 1 to {MAX_PAGE_SIZE}"),
                    )
                })?;
            }
            "nextToken" => query.after = Some(decode_position(v)?),
            other => {
                return Err(FieldError::new(
                    other,
                    "UnknownParameter",
                    "unknown query parameter; allowed: status, limit, nextToken",
                ))
            }
        }
    }
    Ok(query)
}

/// `nextToken` is the base64url of `<createdAt>|<requestId>`: it only ever positions within
/// the caller's own list, so a forged token reveals nothing.
pub fn encode_position(p: &ListPosition) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{}", p.created_at.to_rfc3339_opts(SecondsFormat::Micros, true), p.request_id))
}

pub fn decode_position(token: &str) -> Result<ListPosition, FieldError> {
    let bad = || FieldError::new("nextToken", "InvalidNextToken", "is not a token this API returned");
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (at, id) = text.split_once('|').ok_or_else(bad)?;
    Ok(ListPosition {
        created_at: DateTime::parse_from_rfc3339(at).map_err(|_| bad())?.with_timezone(&Utc),
        request_id: RequestId::try_from(id.to_owned()).map_err(|_| bad())?,
    })
}

pub async fn list(deps: &SubmitDeps<'_>, caller: &CallerArn, query: &ListQuery) -> Result<Page, ServiceError> {
    Ok(deps.store.list_by_requester(caller, query).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_bodies_are_refused_naming_the_field() {
        let cases: &[(&str, &str)] = &[
            ("not json", "body"),
            ("[1]", "body"),
            (r#"{"reason":"x","durationMinutes":5}"#, "nodeId"),
            (r#"{"nodeId":"i-0123abcd","durationMinutes":5}"#, "reason"),
            (r#"{"nodeId":"host1","reason":"x","durationMinutes":5}"#, "nodeId"),
            (r#"{"nodeId":"i-0123abcd","reason":"   ","durationMinutes":5}"#, "reason"),
            (r#"{"nodeId":"i-0123abcd","reason":"x","durationMinutes":0}"#, "durationMinutes"),
            (r#"{"nodeId":"i-0123abcd","reason":"x","durationMinutes":20161}"#, "durationMinutes"),
            (r#"{"nodeId":"i-0123abcd","reason":"x","durationMinutes":1.5}"#, "durationMinutes"),
            (r#"{"nodeId":"i-0123abcd","reason":"x","durationMinutes":-3}"#, "durationMinutes"),
            (r#"{"nodeId":"i-0123abcd","reason":"x","durationMinutes":"5"}"#, "durationMinutes"),
            (r#"{"nodeId":"i-0123abcd","reason":7,"durationMinutes":5}"#, "reason"),
            (r#"{"nodeId":"i-0123abcd","reason":"x","durationMinutes":5,"admin":true}"#, "admin"),
        ];
        for (body, field) in cases {
            let err = NewRequest::parse(body.as_bytes()).unwrap_err();
            assert_eq!(err.field, *field, "{body}: {err:?}");
        }
        assert_eq!(NewRequest::parse(&vec![b' '; MAX_BODY_BYTES + 1]).unwrap_err().field, "body");
    }

    #[test]
    fn a_body_without_a_duration_leaves_it_to_the_deciding_policy() {
        let without = NewRequest::parse(br#"{"nodeId":"i-0123abcd","reason":"x"}"#).unwrap();
        let null = NewRequest::parse(br#"{"nodeId":"i-0123abcd","reason":"x","durationMinutes":null}"#).unwrap();
        let with = NewRequest::parse(br#"{"nodeId":"i-0123abcd","reason":"x","durationMinutes":60}"#).unwrap();
        assert_eq!(without.duration_minutes, None);
        assert_eq!(without.fingerprint(), null.fingerprint());
        assert_ne!(without.fingerprint(), with.fingerprint());
    }

    #[test]
    fn equivalent_bodies_share_a_fingerprint() {
        let a = NewRequest::parse(br#"{"nodeId":"i-0123abcd","reason":"disk full","durationMinutes":30}"#).unwrap();
        let b = NewRequest::parse(br#"{"durationMinutes":30, "reason":"  disk full ","nodeId":"i-0123abcd"}"#).unwrap();
        let c = NewRequest::parse(br#"{"nodeId":"i-0123abcd","reason":"disk full","durationMinutes":31}"#).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
    }

    #[test]
    fn list_positions_round_trip() {
        let p = ListPosition { created_at: Utc::now(), request_id: RequestId::generate() };
        let back = decode_position(&encode_position(&p)).unwrap();
        assert_eq!(back.request_id, p.request_id);
        assert_eq!(back.created_at.timestamp_micros(), p.created_at.timestamp_micros());
    }

    #[test]
    fn list_parameters_are_checked() {
        let q = parse_list_query(&[("status".into(), "Pending".into()), ("limit".into(), "10".into())]).unwrap();
        assert_eq!((q.status, q.limit), (Some(RequestStatus::Pending), 10));
        for (k, v, field) in [
            ("status", "pending", "status"),
            ("limit", "0", "limit"),
            ("limit", "101", "limit"),
            ("sort", "asc", "sort"),
            ("nextToken", "", "nextToken"),
            ("nextToken", "bm9wZQ", "nextToken"),
        ] {
            assert_eq!(parse_list_query(&[(k.into(), v.into())]).unwrap_err().field, field);
        }
    }
}
