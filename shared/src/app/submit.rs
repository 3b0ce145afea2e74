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
    /// Scheduled access (`startsAt`): checked against the clock by `submit`.
    pub starts_at: Option<DateTime<Utc>>,
    /// `breakGlass: true`: an emergency (`PolicySet::decide_break_glass`).
    pub break_glass: bool,
}

/// How far ahead access may be scheduled.
pub const MAX_SCHEDULE_DAYS: i64 = 14;

/// Parses an optional RFC 3339 `startsAt` (an offset is required, so the time is unambiguous).
fn parse_starts_at(value: Option<&serde_json::Value>) -> Result<Option<DateTime<Utc>>, FieldError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(text)) => {
            DateTime::parse_from_rfc3339(text).map(|t| Some(t.with_timezone(&Utc))).map_err(|_| {
                FieldError::new(
                    "startsAt",
                    "InvalidStartsAt",
                    "must be an RFC 3339 time with an offset, such as 2026-12-24T08:00:00Z",
                )
            })
        }
        Some(_) => Err(FieldError::new("startsAt", "InvalidType", "must be a string")),
    }
}

/// A schedule must start in the future and at most `MAX_SCHEDULE_DAYS` ahead.
pub fn check_schedule(starts_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Result<(), FieldError> {
    let Some(at) = starts_at else { return Ok(()) };
    if at <= now {
        return Err(FieldError::new(
            "startsAt",
            "StartsInThePast",
            "must be in the future; leave it out for access as soon as it is approved",
        ));
    }
    if at > now + chrono::Duration::days(MAX_SCHEDULE_DAYS) {
        return Err(FieldError::new(
            "startsAt",
            "StartsTooLate",
            format!("must be at most {MAX_SCHEDULE_DAYS} days ahead"),
        ));
    }
    Ok(())
}

/// Parses `durationMinutes` (absent or null: `None`).
fn parse_duration(value: Option<&serde_json::Value>) -> Result<Option<DurationMinutes>, FieldError> {
    let minutes = match value {
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
    minutes.map(DurationMinutes::try_from).transpose()
}

/// The body as a JSON object of at most `MAX_BODY_BYTES` with only `allowed` keys.
pub(crate) fn body_object(
    body: &[u8],
    allowed: &[&str],
) -> Result<serde_json::Map<String, serde_json::Value>, FieldError> {
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
    if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(FieldError::new(
            unknown.clone(),
            "UnknownField",
            format!("unknown field; allowed: {}", allowed.join(", ")),
        ));
    }
    Ok(map)
}

fn required_string(map: &serde_json::Map<String, serde_json::Value>, name: &str) -> Result<String, FieldError> {
    match map.get(name) {
        None | Some(serde_json::Value::Null) => Err(FieldError::new(name, "MissingField", "is required")),
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(FieldError::new(name, "InvalidType", "must be a string")),
    }
}

/// A validated `POST /requests/{id}/extend` body: how much longer, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Extension {
    pub duration_minutes: DurationMinutes,
    pub reason: Reason,
}

impl Extension {
    pub fn parse(body: &[u8]) -> Result<Self, FieldError> {
        let map = body_object(body, &["durationMinutes", "reason"])?;
        let reason = Reason::try_from(required_string(&map, "reason")?)?;
        let duration_minutes = parse_duration(map.get("durationMinutes"))?
            .ok_or_else(|| FieldError::new("durationMinutes", "MissingField", "is required: how many minutes more"))?;
        Ok(Self { duration_minutes, reason })
    }
}

impl NewRequest {
    /// Parses the JSON body, naming the field of the first problem found.
    pub fn parse(body: &[u8]) -> Result<Self, FieldError> {
        let map = body_object(body, &["nodeId", "reason", "durationMinutes", "startsAt", "breakGlass"])?;
        let node_id = NodeId::try_from(required_string(&map, "nodeId")?)?;
        let reason = Reason::try_from(required_string(&map, "reason")?)?;
        let duration_minutes = parse_duration(map.get("durationMinutes"))?;
        let starts_at = parse_starts_at(map.get("startsAt"))?;
        let break_glass = match map.get("breakGlass") {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(b)) => *b,
            Some(_) => return Err(FieldError::new("breakGlass", "InvalidType", "must be true or false")),
        };
        if break_glass && starts_at.is_some() {
            return Err(FieldError::new("startsAt", "BreakGlassIsNow", "a break-glass request cannot be scheduled"));
        }
        Ok(Self { node_id, reason, duration_minutes, starts_at, break_glass })
    }

    /// Hash of the normalized body: two bodies that mean the same request hash the same.
    pub fn fingerprint(&self) -> String {
        let mut canonical =
            serde_json::json!([self.node_id.as_str(), self.reason.as_str(), self.duration_minutes.map(|d| d.get())]);
        if let (Some(at), Some(list)) = (&self.starts_at, canonical.as_array_mut()) {
            list.push(serde_json::json!(at.timestamp_micros()));
        }
        if let (true, Some(list)) = (self.break_glass, canonical.as_array_mut()) {
            list.push(serde_json::json!("breakGlass"));
        }
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
    if let Err(refusal) = check_schedule(new.starts_at, now) {
        // A retry of a call that was made before its start passed answers as that call did.
        if let Some(key) = &key {
            let record = IdempotencyRecord {
                caller: caller.clone(),
                key: key.as_str().to_owned(),
                body_hash: new.fingerprint(),
            };
            if let Some(outcome) = deps.store.replay(&record, now).await? {
                return answer(outcome, None);
            }
        }
        return Err(refusal.into());
    }
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
        starts_at: new.starts_at,
        extends: None,
        break_glass: new.break_glass,
        review: None,
        revoke_held_at: None,
    };
    create(deps, caller, request, key, new.fingerprint()).await
}

/// `POST /requests/{id}/extend`: the requester of an `Approved` request whose access has
/// started asks for more time. The extension is a request of its own (same requester, node and
/// grant mode, `extends` naming the original) that the same policies decide for the new total;
/// approved, it moves the original's deadline (`lifecycle::grant`), refused, it changes nothing.
pub async fn extend(
    deps: &SubmitDeps<'_>,
    caller: &CallerArn,
    id: &str,
    body: &[u8],
    idempotency_key: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Submitted, ServiceError> {
    let key = idempotency_key.map(|k| IdempotencyKey::try_from(k.to_owned())).transpose()?;
    let ask = Extension::parse(body)?;
    let original = deps.store.get(&parse_id(id)?).await?.ok_or_else(|| not_found(id))?;
    if &original.requester != caller {
        // Only the requester extends; to anyone else the request does not exist.
        return Err(not_found(id));
    }
    let refuse = |code: &'static str, message: String| Err(ServiceError::Conflict { code, message });
    if let Some(of) = &original.extends {
        return refuse("NotExtendable", format!("{id} is itself an extension; extend {of} instead"));
    }
    if original.status != RequestStatus::Approved {
        return refuse(
            "NotExtendable",
            format!("only an Approved request can be extended; {id} is {}", original.status),
        );
    }
    let granted = original.grant.as_ref().is_some_and(|g| g.detached_at.is_none());
    if !granted || original.not_started(now) {
        return refuse("NotExtendable", format!("{id}'s access has not started yet; extend it once it has"));
    }
    if now >= original.access_deadline() {
        return refuse("NotExtendable", format!("{id}'s access has already ended"));
    }
    let request = AccessRequest {
        request_id: RequestId::generate(),
        requester: caller.clone(),
        node_id: original.node_id.clone(),
        reason: ask.reason.clone(),
        duration_minutes: ask.duration_minutes,
        duration_from_policy: false,
        status: RequestStatus::Submitted,
        created_at: now,
        updated_at: now,
        version: 1,
        decision: None,
        progress: None,
        approved_at: None,
        grant: None,
        grant_mode: original.grant_mode,
        credentials: None,
        approval_seal: None,
        starts_at: None,
        extends: Some(original.request_id.clone()),
        break_glass: false,
        review: None,
        revoke_held_at: None,
    };
    let fingerprint = hex::encode(Sha256::digest(
        serde_json::json!(["extend", original.request_id.as_str(), ask.reason.as_str(), ask.duration_minutes.get()])
            .to_string()
            .as_bytes(),
    ));
    create(deps, caller, request, key, fingerprint).await
}

/// Stores a new `Submitted` request with its first audit record (and idempotency key).
async fn create(
    deps: &SubmitDeps<'_>,
    caller: &CallerArn,
    request: AccessRequest,
    key: Option<IdempotencyKey>,
    fingerprint: String,
) -> Result<Submitted, ServiceError> {
    let audit = AuditRecord {
        request_id: request.request_id.clone(),
        version: 1,
        from: None,
        to: RequestStatus::Submitted,
        actor: caller.to_string(),
        at: request.created_at,
        reason: request.reason.as_str().to_owned(),
        approval: None,
        level_completed: None,
        credentials: None,
        nudge: None,
        extension: None,
        review: None,
    };
    let idem =
        key.map(|k| IdempotencyRecord { caller: caller.clone(), key: k.as_str().to_owned(), body_hash: fingerprint });
    // The Submitted event comes from the table's stream once this write commits, so a replay
    // has nothing to publish again.
    let outcome = deps.store.create(&request, &audit, idem.as_ref()).await?;
    answer(outcome, Some(request))
}

/// The answer to a create (`created`: the request it stored, if it did) or a replay.
fn answer(outcome: CreateOutcome, created: Option<AccessRequest>) -> Result<Submitted, ServiceError> {
    match (outcome, created) {
        (CreateOutcome::Created, Some(request)) => Ok(Submitted { request, replayed: false }),
        (CreateOutcome::Created, None) => Err(ServiceError::Internal("a replay created a request".into())),
        (CreateOutcome::Replayed(existing), _) => Ok(Submitted { request: *existing, replayed: true }),
        (CreateOutcome::KeyReused, _) => Err(ServiceError::Conflict {
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
