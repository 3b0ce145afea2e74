//! An in-memory `RequestStore` with the same contract as the DynamoDB one: checked changes,
//! conditional on the stored request being the change's basis, each with its audit record and
//! the change the stream would carry (`changes`). It keeps the use cases' unit tests fast and
//! free of the emulator; races and item mapping are tested against moto.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::adapters::Order;
use crate::domain::events::ChangeRecord;
use crate::domain::ids::RequestId;
use crate::domain::principal::CallerArn;
use crate::domain::request::{AccessRequest, AuditRecord};
use crate::domain::status::RequestStatus;
use crate::ports::{
    CreateOutcome, ExecutionControl, IdempotencyRecord, ListPosition, ListQuery, Page, PortError, RequestStore,
    Transition, TransitionError,
};

#[derive(Default)]
struct State {
    requests: BTreeMap<RequestId, AccessRequest>,
    audits: HashMap<RequestId, Vec<AuditRecord>>,
    /// (caller, key) → (body hash, request)
    idempotency: HashMap<(String, String), (String, RequestId)>,
    /// Every committed change in commit order: what the table's stream would deliver.
    changes: Vec<ChangeRecord>,
}

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

/// What an earlier call with this key left (idempotency keys here never expire).
fn replayed(state: &State, record: &IdempotencyRecord) -> Result<Option<CreateOutcome>, PortError> {
    let key = (record.caller.to_string(), record.key.clone());
    let Some((hash, id)) = state.idempotency.get(&key) else { return Ok(None) };
    if hash != &record.body_hash {
        return Ok(Some(CreateOutcome::KeyReused));
    }
    let existing = state
        .requests
        .get(id)
        .cloned()
        .ok_or_else(|| PortError::Permanent("idempotency key without its request".into()))?;
    Ok(Some(CreateOutcome::Replayed(Box::new(existing))))
}

fn poisoned() -> PortError {
    PortError::Permanent("the in-memory store's lock was poisoned".into())
}

fn same_request(stored: &AccessRequest, basis: &AccessRequest) -> bool {
    stored.status == basis.status
        && stored.version == basis.version
        && stored.requester == basis.requester
        && stored.node_id == basis.node_id
        && stored.duration_minutes == basis.duration_minutes
        && stored.reason == basis.reason
        && stored.created_at == basis.created_at
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every committed change so far, in order (the stream's view of the table).
    pub fn changes(&self) -> Vec<ChangeRecord> {
        self.state.lock().map(|s| s.changes.clone()).unwrap_or_default()
    }

    /// The ids `keep` gives a time for, in `order` of that time (as the by-deadline index sorts
    /// them), at most `limit`.
    fn ids_where(
        &self,
        limit: u32,
        order: Order,
        keep: impl Fn(&AccessRequest) -> Option<DateTime<Utc>>,
    ) -> Result<Vec<RequestId>, PortError> {
        let state = self.state.lock().map_err(|_| poisoned())?;
        let mut found: Vec<(DateTime<Utc>, RequestId)> =
            state.requests.values().filter_map(|r| keep(r).map(|at| (at, r.request_id.clone()))).collect();
        found.sort();
        if order == Order::NewestFirst {
            found.reverse();
        }
        Ok(found.into_iter().take(limit as usize).map(|(_, id)| id).collect())
    }
}

#[async_trait::async_trait]
impl RequestStore for MemoryStore {
    async fn create(
        &self,
        request: &AccessRequest,
        audit: &AuditRecord,
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<CreateOutcome, PortError> {
        let mut state = self.state.lock().map_err(|_| poisoned())?;
        if let Some(record) = idempotency {
            if let Some(outcome) = replayed(&state, record)? {
                return Ok(outcome);
            }
        }
        if state.requests.contains_key(&request.request_id) {
            return Err(PortError::Permanent(format!("request {} exists", request.request_id)));
        }
        if let Some(record) = idempotency {
            let key = (record.caller.to_string(), record.key.clone());
            state.idempotency.insert(key, (record.body_hash.clone(), request.request_id.clone()));
        }
        state.requests.insert(request.request_id.clone(), request.clone());
        state.audits.entry(request.request_id.clone()).or_default().push(audit.clone());
        state.changes.push(ChangeRecord::of(audit, request.clone()));
        Ok(CreateOutcome::Created)
    }

    async fn get(&self, id: &RequestId) -> Result<Option<AccessRequest>, PortError> {
        Ok(self.state.lock().map_err(|_| poisoned())?.requests.get(id).cloned())
    }

    async fn list_by_requester(&self, requester: &CallerArn, query: &ListQuery) -> Result<Page, PortError> {
        let state = self.state.lock().map_err(|_| poisoned())?;
        let mut mine: Vec<&AccessRequest> = state.requests.values().filter(|r| &r.requester == requester).collect();
        mine.sort_by(|a, b| (b.created_at, &b.request_id).cmp(&(a.created_at, &a.request_id)));
        let start = query.after.as_ref().map_or(0, |after| {
            mine.iter()
                .position(|r| r.created_at == after.created_at && r.request_id == after.request_id)
                .map_or(mine.len(), |i| i + 1)
        });
        let window: Vec<&AccessRequest> = mine.into_iter().skip(start).take(query.limit as usize).collect();
        let next = (window.len() == query.limit as usize)
            .then(|| window.last().map(|r| ListPosition { created_at: r.created_at, request_id: r.request_id.clone() }))
            .flatten();
        let items = window.into_iter().filter(|r| query.status.is_none_or(|s| r.status == s)).cloned().collect();
        Ok(Page { items, next })
    }

    async fn list_pending_by_approver(&self, approver_key: &str, limit: u32) -> Result<Vec<RequestId>, PortError> {
        let state = self.state.lock().map_err(|_| poisoned())?;
        let mut found: Vec<&AccessRequest> = state
            .requests
            .values()
            .filter(|r| r.status == RequestStatus::Pending)
            .filter(|r| {
                r.decision
                    .as_ref()
                    .and_then(|d| d.approval_plan.as_ref())
                    .is_some_and(|p| p.all_approvers().any(|a| a.index_key() == approver_key))
            })
            .collect();
        found.sort_by_key(|r| std::cmp::Reverse(r.created_at));
        Ok(found.into_iter().take(limit as usize).map(|r| r.request_id.clone()).collect())
    }

    async fn list_decided_by(&self, counted_as: &str, limit: u32) -> Result<Vec<RequestId>, PortError> {
        let state = self.state.lock().map_err(|_| poisoned())?;
        let mut found: Vec<(DateTime<Utc>, RequestId)> = state
            .requests
            .values()
            .filter_map(|r| {
                let entries = r.progress.as_ref()?.entries.iter();
                let at = entries.filter(|e| e.counted_as() == counted_as).map(|e| e.at).max()?;
                Some((at, r.request_id.clone()))
            })
            .collect();
        found.sort_by(|a, b| b.cmp(a));
        Ok(found.into_iter().take(limit as usize).map(|(_, id)| id).collect())
    }

    async fn transition(&self, t: &Transition) -> Result<AccessRequest, TransitionError> {
        t.check()?;
        let mut state = self.state.lock().map_err(|_| poisoned())?;
        let changes: Vec<&Transition> = std::iter::once(t).chain(t.companion.as_deref()).collect();
        // All conditions first, then all writes: one transaction.
        for change in &changes {
            let stored = state.requests.get(change.request_id()).ok_or(TransitionError::Conflict)?;
            if !same_request(stored, &change.basis) {
                return Err(TransitionError::Conflict);
            }
            if change.credentials.is_some() && stored.revoke_held_at.is_some() {
                return Err(TransitionError::Conflict);
            }
            if stored.status == RequestStatus::Pending {
                let until = stored.progress.as_ref().map(|p| p.pending_until);
                let allowed = match until {
                    Some(until) if change.to == RequestStatus::Expired => until <= change.at,
                    Some(until) => until > change.at,
                    None => false,
                };
                if !allowed {
                    return Err(TransitionError::Conflict);
                }
            }
        }
        for change in changes {
            let mut after = change.after();
            // As in DynamoDB, whose update never names it: a hold stays whatever the change's basis.
            let held = state.requests.get(change.request_id()).and_then(|r| r.revoke_held_at);
            after.revoke_held_at = held.or(after.revoke_held_at);
            let audit = change.audit();
            state.requests.insert(after.request_id.clone(), after.clone());
            state.audits.entry(after.request_id.clone()).or_default().push(audit.clone());
            state.changes.push(ChangeRecord::of(&audit, after));
        }
        Ok(t.after())
    }

    async fn audit_trail(&self, id: &RequestId) -> Result<Vec<AuditRecord>, PortError> {
        Ok(self.state.lock().map_err(|_| poisoned())?.audits.get(id).cloned().unwrap_or_default())
    }

    async fn hold_for_revoke(&self, id: &RequestId, at: DateTime<Utc>) -> Result<bool, PortError> {
        let mut state = self.state.lock().map_err(|_| poisoned())?;
        match state.requests.get_mut(id) {
            Some(stored) if stored.status == RequestStatus::Approved => {
                stored.revoke_held_at.get_or_insert(at);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn replay(
        &self,
        record: &IdempotencyRecord,
        _now: DateTime<Utc>,
    ) -> Result<Option<CreateOutcome>, PortError> {
        replayed(&*self.state.lock().map_err(|_| poisoned())?, record)
    }

    async fn list_pending_past_deadline(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<RequestId>, PortError> {
        self.ids_where(limit, Order::OldestFirst, |r| {
            let until = r.progress.as_ref().map(|p| p.pending_until)?;
            (r.status == RequestStatus::Pending && until <= now).then_some(until)
        })
    }

    async fn list_grants_past_deadline(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<RequestId>, PortError> {
        self.ids_where(limit, Order::NewestFirst, |r| {
            let g = r.grant.as_ref().filter(|g| g.detached_at.is_none())?;
            (r.status == RequestStatus::Approved && g.deadline <= now).then_some(g.deadline)
        })
    }

    async fn list_awaiting_grant(
        &self,
        approved_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<RequestId>, PortError> {
        // A scheduled approval awaits its grant from its start (as the DynamoDB index sorts it).
        self.ids_where(limit, Order::NewestFirst, |r| {
            let at = r.approved_at?.max(r.starts_at.unwrap_or(DateTime::<Utc>::MIN_UTC));
            (r.status == RequestStatus::Approved && r.grant.is_none() && at <= approved_before).then_some(at)
        })
    }

    async fn list_reviews_past_due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<RequestId>, PortError> {
        self.ids_where(limit, Order::OldestFirst, |r| r.review.as_ref().filter(|v| v.is_overdue(now)).map(|v| v.due))
    }

    async fn list_ended_since(&self, since: DateTime<Utc>, limit: u32) -> Result<Vec<RequestId>, PortError> {
        self.ids_where(limit, Order::NewestFirst, |r| {
            let ended = r.approved_at.is_some()
                && matches!(
                    r.status,
                    RequestStatus::Revoked | RequestStatus::Expired | RequestStatus::Failed | RequestStatus::Cancelled
                );
            (ended && r.updated_at >= since).then_some(r.updated_at)
        })
    }

    async fn list_submitted_before(
        &self,
        created_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<RequestId>, PortError> {
        self.ids_where(limit, Order::NewestFirst, |r| {
            (r.status == RequestStatus::Submitted && r.created_at <= created_before).then_some(r.created_at)
        })
    }
}

/// Lifecycle executions that are only recorded: what was started (for which request) and what
/// was stopped. The use-case tests and the race tests read them back.
#[derive(Default)]
pub struct MemoryExecutions {
    pub started: Mutex<Vec<RequestId>>,
    pub stopped: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl ExecutionControl for MemoryExecutions {
    async fn start(&self, request_id: &RequestId) -> Result<String, PortError> {
        self.started.lock().map_err(|_| poisoned())?.push(request_id.clone());
        Ok(format!("arn:aws:states:us-east-1:123456789012:execution:jit-lifecycle:{request_id}"))
    }

    async fn stop(&self, execution_arn: &str, _cause: &str) -> Result<(), PortError> {
        self.stopped.lock().map_err(|_| poisoned())?.push(execution_arn.to_owned());
        Ok(())
    }
}

/// Wraps a store so that every write commits and then reports a transient failure, as a function
/// that dies (or loses its connection) right after its transaction would: what the outbox must
/// survive. For tests, in memory and against the emulator alike.
pub struct FailsAfterCommit<S>(pub S);

fn lost_reply() -> PortError {
    PortError::Transient("injected: the connection dropped after the commit".into())
}

#[async_trait::async_trait]
impl<S: RequestStore> RequestStore for FailsAfterCommit<S> {
    async fn create(
        &self,
        request: &AccessRequest,
        audit: &AuditRecord,
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<CreateOutcome, PortError> {
        self.0.create(request, audit, idempotency).await?;
        Err(lost_reply())
    }
    async fn get(&self, id: &RequestId) -> Result<Option<AccessRequest>, PortError> {
        self.0.get(id).await
    }
    async fn list_by_requester(&self, requester: &CallerArn, query: &ListQuery) -> Result<Page, PortError> {
        self.0.list_by_requester(requester, query).await
    }
    async fn list_pending_by_approver(&self, approver_key: &str, limit: u32) -> Result<Vec<RequestId>, PortError> {
        self.0.list_pending_by_approver(approver_key, limit).await
    }
    async fn list_decided_by(&self, counted_as: &str, limit: u32) -> Result<Vec<RequestId>, PortError> {
        self.0.list_decided_by(counted_as, limit).await
    }
    async fn transition(&self, t: &Transition) -> Result<AccessRequest, TransitionError> {
        self.0.transition(t).await?;
        Err(TransitionError::Port(lost_reply()))
    }
    async fn replay(&self, record: &IdempotencyRecord, now: DateTime<Utc>) -> Result<Option<CreateOutcome>, PortError> {
        self.0.replay(record, now).await
    }
    async fn audit_trail(&self, id: &RequestId) -> Result<Vec<AuditRecord>, PortError> {
        self.0.audit_trail(id).await
    }
    async fn hold_for_revoke(&self, id: &RequestId, at: DateTime<Utc>) -> Result<bool, PortError> {
        self.0.hold_for_revoke(id, at).await
    }
    async fn list_pending_past_deadline(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<RequestId>, PortError> {
        self.0.list_pending_past_deadline(now, limit).await
    }
    async fn list_grants_past_deadline(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<RequestId>, PortError> {
        self.0.list_grants_past_deadline(now, limit).await
    }
    async fn list_awaiting_grant(
        &self,
        approved_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<RequestId>, PortError> {
        self.0.list_awaiting_grant(approved_before, limit).await
    }
    async fn list_ended_since(&self, since: DateTime<Utc>, limit: u32) -> Result<Vec<RequestId>, PortError> {
        self.0.list_ended_since(since, limit).await
    }
    async fn list_reviews_past_due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<RequestId>, PortError> {
        self.0.list_reviews_past_due(now, limit).await
    }
    async fn list_submitted_before(&self, before: DateTime<Utc>, limit: u32) -> Result<Vec<RequestId>, PortError> {
        self.0.list_submitted_before(before, limit).await
    }
}

/// Credentials issued without STS: what was asked (the spec each call carried) and made-up keys
/// (`ASIAMEMORY<n>`) whose expiration is `at` (else the wall clock) plus the asked duration.
#[derive(Default)]
pub struct MemoryIssuer {
    pub issued: Mutex<Vec<crate::domain::credentials::CredentialsSpec>>,
    pub at: Mutex<Option<DateTime<Utc>>>,
}

#[async_trait::async_trait]
impl crate::ports::CredentialIssuer for MemoryIssuer {
    async fn issue(
        &self,
        spec: &crate::domain::credentials::CredentialsSpec,
    ) -> Result<crate::domain::credentials::IssuedCredentials, PortError> {
        use crate::domain::credentials::{IssuedCredentials, Secret};
        let now = self.at.lock().map_err(|_| poisoned())?.unwrap_or_else(Utc::now);
        let mut issued = self.issued.lock().map_err(|_| poisoned())?;
        issued.push(spec.clone());
        Ok(IssuedCredentials {
            access_key_id: format!("ASIAMEMORY{}", issued.len()),
            secret_access_key: Secret::new(format!("secret-{}", issued.len())),
            session_token: Secret::new(format!("token-{}", issued.len())),
            expiration: now + chrono::Duration::seconds(i64::from(spec.duration_seconds)),
        })
    }
}

/// Seals with HMAC-SHA256 under a key of its own, as KMS would under an HMAC key: for tests and
/// benches that need no KMS.
pub struct MemorySeal {
    key: Vec<u8>,
}

impl MemorySeal {
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.to_vec() }
    }

    /// The seal of `message`, at once (tests that write approvals themselves).
    pub fn seal_now(&self, message: &[u8]) -> String {
        self.mac(message).map(hex::encode).unwrap_or_default()
    }

    fn mac(&self, message: &[u8]) -> Result<Vec<u8>, crate::ports::PortError> {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key)
            .map_err(|e| crate::ports::PortError::Permanent(format!("seal key: {e}")))?;
        mac.update(message);
        Ok(mac.finalize().into_bytes().to_vec())
    }
}

impl Default for MemorySeal {
    fn default() -> Self {
        Self::new(b"memory-seal-key-for-tests-only")
    }
}

#[async_trait::async_trait]
impl crate::ports::ApprovalSeal for MemorySeal {
    async fn seal(&self, message: &[u8]) -> Result<String, crate::ports::PortError> {
        Ok(hex::encode(self.mac(message)?))
    }
    async fn check(&self, message: &[u8], seal: &str) -> Result<bool, crate::ports::PortError> {
        use hmac::Mac;
        let Ok(given) = hex::decode(seal) else { return Ok(false) };
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key)
            .map_err(|e| crate::ports::PortError::Permanent(format!("seal key: {e}")))?;
        mac.update(message);
        Ok(mac.verify_slice(&given).is_ok())
    }
}
