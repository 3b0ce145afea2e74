//! The use cases' decisions against the in-memory store (no emulator, no Python): approve,
//! reject, cancel, revoke, expire, grant, sweep, and the outbox guarantee that a change whose
//! function fails right after the write still becomes its events. Races and item mapping are
//! tested against moto in `tests/`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test (or bench) stops loudly on a broken expectation"
)]

#[expect(dead_code, reason = "the use cases take only the mail outbox from the fakes")]
mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use jit_shared::adapters::memory::{FailsAfterCommit, MemoryExecutions, MemoryIssuer, MemorySeal, MemoryStore};
use jit_shared::app::approve::{self, ApprovalDeps};
use jit_shared::app::credentials::{self, CredentialsDeps};
use jit_shared::app::error::ServiceError;
use jit_shared::app::lifecycle::{self, LifecycleDeps, Task};
use jit_shared::app::publish::{publish_batch, OutboxContent, OutboxItem};
use jit_shared::app::submit::{self, SubmitDeps};
use jit_shared::app::sweep;
use jit_shared::domain::administrators::{Administrators, NO_ADMINISTRATORS};
use jit_shared::domain::approval::{ApprovalProgress, Person, Verdict};
use jit_shared::domain::approval_token::SigningKey;
use jit_shared::domain::events::{ChangeRecord, StatusEvent};
use jit_shared::domain::grant::{GrantMode, GrantSettings, DEFAULT_SESSION_DOCUMENT};
use jit_shared::domain::ids::{NodeId, RequestId};
use jit_shared::domain::principal::{CallerArn, ResolvedPrincipal};
use jit_shared::domain::request::{AccessRequest, ApprovalLevel, ApprovalPlan, Approver, Decision, DecisionRule};
use jit_shared::domain::status::RequestStatus;
use jit_shared::ports::{
    AccessGranter, DirectoryError, EventPublisher, GrantPrincipal, GrantWriteError, PortError, PrincipalDirectory,
    RequestStore, SessionControl, Transition,
};
use support::fakes::Outbox;

fn arn(user: &str) -> CallerArn {
    CallerArn::try_from(format!("arn:aws:iam::123456789012:user/{user}")).unwrap()
}

/// Everyone is an IAM user with no groups; the plans below name users directly.
struct Users;

#[async_trait]
impl PrincipalDirectory for Users {
    async fn resolve(&self, caller: &CallerArn) -> Result<ResolvedPrincipal, DirectoryError> {
        Ok(ResolvedPrincipal::from_arn_only(caller))
    }
    async fn resolve_person(&self, person: &Person) -> Result<ResolvedPrincipal, DirectoryError> {
        match person {
            Person::IamUser(name) => Ok(ResolvedPrincipal::from_arn_only(&arn(name))),
            other => Err(DirectoryError::NotFound(other.to_string())),
        }
    }
    /// Identity Center's roles are its own here; no role pins session names.
    async fn role_trust(&self, role: &str) -> Result<jit_shared::ports::RoleTrust, DirectoryError> {
        Ok(jit_shared::ports::RoleTrust {
            pins_session_names: false,
            identity_center: role.starts_with("AWSReservedSSO_"),
        })
    }
}

/// IAM inline policies by (principal, name).
#[derive(Default)]
struct Policies(Mutex<BTreeMap<String, String>>);

#[async_trait]
impl AccessGranter for Policies {
    async fn role(&self, role: &str) -> Result<jit_shared::ports::RoleFacts, GrantWriteError> {
        Ok(jit_shared::ports::RoleFacts { role_id: format!("AROA{role}"), pins_session_names: role != "Unpinned" })
    }
    async fn put_policy(&self, principal: &GrantPrincipal, name: &str, document: &str) -> Result<(), GrantWriteError> {
        self.0.lock().unwrap().insert(format!("{principal:?}/{name}"), document.to_owned());
        Ok(())
    }
    async fn delete_policy(&self, principal: &GrantPrincipal, name: &str) -> Result<bool, PortError> {
        Ok(self.0.lock().unwrap().remove(&format!("{principal:?}/{name}")).is_some())
    }
    async fn list_policies(&self, principal: &GrantPrincipal) -> Result<Vec<String>, PortError> {
        let prefix = format!("{principal:?}/");
        Ok(self.0.lock().unwrap().keys().filter_map(|k| k.strip_prefix(&prefix).map(str::to_owned)).collect())
    }
}

struct NoSessions;

#[async_trait]
impl SessionControl for NoSessions {
    async fn live_sessions(&self, _node: &NodeId, _owner_arn: &str) -> Result<Vec<String>, PortError> {
        Ok(vec![])
    }
    async fn terminate(&self, _node: &NodeId, _session_id: &str) -> Result<(), PortError> {
        Ok(())
    }
}

/// What the lifecycle and the sweep work on: the store, IAM policies and recorded executions.
#[derive(Default)]
struct Lifecycle {
    store: MemoryStore,
    policies: Policies,
    executions: MemoryExecutions,
}

impl Lifecycle {
    fn deps<'a>(&'a self, settings: &'a GrantSettings) -> LifecycleDeps<'a> {
        LifecycleDeps {
            store: &self.store,
            granter: &self.policies,
            sessions: &NoSessions,
            executions: &self.executions,
            settings,
            seal: &*SEAL,
        }
    }
}

/// Alice's request, submitted and decided `Pending` under `plan` (2 hours to decide).
async fn pending_under(world: &Lifecycle, plan: ApprovalPlan, now: DateTime<Utc>) -> AccessRequest {
    let settings = settings();
    let intake =
        SubmitDeps { store: &world.store, directory: &Users, settings: &settings, administrators: &NO_ADMINISTRATORS };
    let body = br#"{"nodeId": "i-0123456789abcdef0", "reason": "disk full", "durationMinutes": 30}"#;
    let submitted = submit::submit(&intake, &ARN_ALICE, body, None, now).await.unwrap().request;
    let pending = Transition {
        decision: Some(decision(RequestStatus::Pending, Some(plan), now)),
        progress: Some(ApprovalProgress::start(now + Duration::hours(2))),
        ..Transition::status_change(&submitted, RequestStatus::Pending, "system:evaluator", "decided", now)
    };
    world.store.transition(&pending).await.unwrap()
}

/// Credentials for Alice's requests: Users as the directory, nobody joined to anyone.
fn issuing<'a>(store: &'a MemoryStore, issuer: &'a MemoryIssuer, settings: &'a GrantSettings) -> CredentialsDeps<'a> {
    CredentialsDeps { store, issuer, settings, seal: &*SEAL, directory: &Users, people: &NO_PEOPLE }
}

/// The notifier with mail and no chat.
fn mail_only<'a>(
    store: &'a MemoryStore,
    directory: &'a dyn PrincipalDirectory,
    mailer: &'a Outbox,
    contacts: &'a [jit_shared::policy::contacts::Contact],
    key: &'a SigningKey,
    links: &'a jit_shared::app::notify::LinkSettings,
) -> jit_shared::app::notify::NotifyDeps<'a> {
    jit_shared::app::notify::NotifyDeps {
        store,
        directory,
        mailer,
        contacts,
        key,
        links,
        chat: None,
        teams: None,
        chat_topic: None,
        security_contacts: &[],
    }
}

/// Where the notifier's links point in these tests.
fn links() -> jit_shared::app::notify::LinkSettings {
    jit_shared::app::notify::LinkSettings {
        api_base_url: "https://jit.example.com".into(),
        account: "123456789012".into(),
        region: "us-east-1".into(),
    }
}

fn key() -> SigningKey {
    SigningKey::from_secret(&"k".repeat(48)).unwrap()
}

fn settings() -> GrantSettings {
    GrantSettings {
        partition: "aws".into(),
        region: "us-east-1".into(),
        account: "123456789012".into(),
        session_documents: vec![DEFAULT_SESSION_DOCUMENT.into()],
        mode: GrantMode::Attach,
        session_role_name: "jit-node-access-session".into(),
        member_accounts: vec![MEMBER_ACCOUNT.into()],
    }
}

/// A member account the stack serves, and a node of it.
const MEMBER_ACCOUNT: &str = "222233334444";
const MEMBER_NODE: &str = "arn:aws:ec2:us-east-1:222233334444:instance/i-0123456789abcdef0";

/// Two levels: level 1 needs lead; level 2 needs one of c, d.
fn two_level_plan() -> ApprovalPlan {
    ApprovalPlan {
        policy_name: "prod".into(),
        levels: vec![
            ApprovalLevel { min_approvals: 1, approvers: vec![Approver::IamUser("lead".into())], ..Default::default() },
            ApprovalLevel {
                min_approvals: 1,
                approvers: vec![Approver::IamUser("c".into()), Approver::IamUser("d".into())],
                ..Default::default()
            },
        ],
    }
}

fn decision(outcome: RequestStatus, plan: Option<ApprovalPlan>, now: DateTime<Utc>) -> Decision {
    Decision {
        outcome,
        rule: if plan.is_some() { DecisionRule::ManualTagSpecific } else { DecisionRule::AutoApproval },
        deciding_policy_ids: vec!["test".into()],
        deny_policy_ids: vec![],
        failure_code: None,
        message: "decided in a test".into(),
        max_duration_minutes: Some(60),
        approval_plan: plan,
        node_tags: BTreeMap::new(),
        node_location: None,
        decided_at: now,
    }
}

/// The seal the deciding functions would put on an approval (the tests' seal is `MemorySeal`'s).
fn sealed_if_approved(request: &AccessRequest, to: RequestStatus) -> Option<String> {
    (to == RequestStatus::Approved).then(|| MemorySeal::default().seal_now(&request.approval_message()))
}

/// A request by `alice`, submitted and then decided `to` (Pending with the two-level plan).
async fn decided(store: &dyn RequestStore, to: RequestStatus, now: DateTime<Utc>) -> AccessRequest {
    decided_in(GrantMode::Attach, store, to, now).await
}

/// `decided`, for a stack granting in `mode`.
async fn decided_in(mode: GrantMode, store: &dyn RequestStore, to: RequestStatus, now: DateTime<Utc>) -> AccessRequest {
    decided_on("i-0123456789abcdef0", mode, store, to, now).await
}

/// `decided_in`, for the node `node`.
async fn decided_on(
    node: &str,
    mode: GrantMode,
    store: &dyn RequestStore,
    to: RequestStatus,
    now: DateTime<Utc>,
) -> AccessRequest {
    decided_by("alice", node, mode, store, to, now).await
}

/// `decided_on`, asked by the IAM user `user`.
async fn decided_by(
    user: &str,
    node: &str,
    mode: GrantMode,
    store: &dyn RequestStore,
    to: RequestStatus,
    now: DateTime<Utc>,
) -> AccessRequest {
    let settings = GrantSettings { mode, ..settings() };
    let deps = SubmitDeps { store, directory: &Users, settings: &settings, administrators: &NO_ADMINISTRATORS };
    let body = format!(r#"{{"nodeId": "{node}", "reason": "disk full", "durationMinutes": 30}}"#);
    let submitted = submit::submit(&deps, &arn(user), body.as_bytes(), None, now).await.unwrap().request;
    let pending = to == RequestStatus::Pending;
    let change = Transition {
        decision: Some(decision(to, pending.then(two_level_plan), now)),
        progress: pending.then(|| ApprovalProgress::start(now + Duration::hours(1))),
        approval_seal: sealed_if_approved(&submitted, to),
        ..Transition::status_change(&submitted, to, "system:evaluator", "decided", now)
    };
    store.transition(&change).await.unwrap()
}

fn detail_types(changes: &[ChangeRecord]) -> Vec<String> {
    changes.iter().flat_map(ChangeRecord::events).map(|e| e.detail_type()).collect()
}

fn approvals<'a>(
    store: &'a dyn RequestStore,
    key: &'a SigningKey,
    administrators: &'a Administrators,
) -> ApprovalDeps<'a> {
    ApprovalDeps { store, directory: &Users, key, administrators, people: &NO_PEOPLE, seal: &*SEAL }
}

#[tokio::test]
async fn every_decision_is_one_change_and_becomes_its_events() {
    // Arrange
    let now = Utc::now();
    type Act = for<'a> fn(
        &'a ApprovalDeps<'a>,
        &'a RequestId,
        DateTime<Utc>,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<AccessRequest, ServiceError>> + 'a>,
    >;
    let cases: Vec<(&str, RequestStatus, Act, RequestStatus, Vec<&str>)> = vec![
        (
            "an approval that completes level 1",
            RequestStatus::Pending,
            |d, id, now| Box::pin(approve::decide_as_caller(d, &ARN_LEAD, id.as_str(), Verdict::Approve, b"", now)),
            RequestStatus::Pending,
            vec!["Access Request Approval Recorded", "Access Request Level Completed"],
        ),
        (
            "a rejection",
            RequestStatus::Pending,
            |d, id, now| {
                Box::pin(approve::decide_as_caller(
                    d,
                    &ARN_LEAD,
                    id.as_str(),
                    Verdict::Reject,
                    br#"{"comment": "not now"}"#,
                    now,
                ))
            },
            RequestStatus::Rejected,
            vec!["Access Request Rejected"],
        ),
        (
            "the requester's cancel",
            RequestStatus::Pending,
            |d, id, now| Box::pin(approve::cancel(d, &ARN_ALICE, id.as_str(), b"", now)),
            RequestStatus::Cancelled,
            vec!["Access Request Cancelled"],
        ),
        (
            "an administrator's revoke",
            RequestStatus::Approved,
            |d, id, now| Box::pin(approve::revoke(d, &ARN_ADMIN, id.as_str(), b"", now)),
            RequestStatus::Revoked,
            vec!["Access Request Revoked"],
        ),
    ];
    for (case, start, act, expected, events) in cases {
        let store = MemoryStore::new();
        let key = key();
        let admins = Administrators::parse([ARN_ADMIN.as_str()]).unwrap();
        let request = decided(&store, start, now).await;
        let before = store.changes().len();
        // Act
        let updated = act(&approvals(&store, &key, &admins), &request.request_id, now).await.unwrap();
        // Assert
        assert_eq!(updated.status, expected, "{case}");
        assert_eq!(detail_types(&store.changes()[before..]), events, "{case}");
        assert_eq!(
            store.audit_trail(&request.request_id).await.unwrap().len(),
            before + 1,
            "{case}: one audit record per change"
        );
    }
}

static ARN_LEAD: std::sync::LazyLock<CallerArn> = std::sync::LazyLock::new(|| arn("lead"));
static ARN_ALICE: std::sync::LazyLock<CallerArn> = std::sync::LazyLock::new(|| arn("alice"));
static SEAL: std::sync::LazyLock<MemorySeal> = std::sync::LazyLock::new(MemorySeal::default);
static NO_PEOPLE: std::sync::LazyLock<jit_shared::policy::contacts::People> =
    std::sync::LazyLock::new(jit_shared::policy::contacts::People::default);
static ARN_ADMIN: std::sync::LazyLock<CallerArn> = std::sync::LazyLock::new(|| arn("admin"));

#[tokio::test]
async fn the_requester_cannot_decide_and_a_stranger_cannot_see_the_request() {
    let now = Utc::now();
    let store = MemoryStore::new();
    let key = key();
    let request = decided(&store, RequestStatus::Pending, now).await;
    let deps = approvals(&store, &key, &NO_ADMINISTRATORS);

    let own = approve::decide_as_caller(&deps, &ARN_ALICE, request.request_id.as_str(), Verdict::Approve, b"", now)
        .await
        .unwrap_err();
    let stranger =
        approve::decide_as_caller(&deps, &arn("mallory"), request.request_id.as_str(), Verdict::Approve, b"", now)
            .await
            .unwrap_err();
    let level_two_too_early =
        approve::decide_as_caller(&deps, &arn("c"), request.request_id.as_str(), Verdict::Approve, b"", now)
            .await
            .unwrap_err();

    assert!(matches!(own, ServiceError::Forbidden(_)), "{own}");
    assert!(matches!(stranger, ServiceError::NotFound(_)), "{stranger}");
    assert!(matches!(level_two_too_early, ServiceError::Forbidden(_)), "{level_two_too_early}");
    assert_eq!(
        store.get(&request.request_id).await.unwrap().unwrap().status,
        RequestStatus::Pending,
        "nothing changed"
    );
}

#[tokio::test]
async fn a_change_whose_function_fails_right_after_the_commit_still_becomes_its_events() {
    // Arrange: the write commits, then the store reports a failure (the function's reply is lost).
    let now = Utc::now();
    let store = FailsAfterCommit(MemoryStore::new());
    let key = key();
    let request = decided(&store.0, RequestStatus::Pending, now).await;
    let before = store.0.changes().len();
    let deps = approvals(&store, &key, &NO_ADMINISTRATORS);

    // Act: an approval record (level 1 completes), then a status change (the level-2 rejection).
    let approval =
        approve::decide_as_caller(&deps, &ARN_LEAD, request.request_id.as_str(), Verdict::Approve, b"", now).await;
    let rejection =
        approve::decide_as_caller(&deps, &arn("c"), request.request_id.as_str(), Verdict::Reject, b"", now).await;

    // Assert: both callers saw a retryable failure, yet both changes are in the outbox.
    assert!(approval.as_ref().is_err_and(ServiceError::is_retryable), "{approval:?}");
    assert!(rejection.as_ref().is_err_and(ServiceError::is_retryable), "{rejection:?}");
    assert_eq!(
        detail_types(&store.0.changes()[before..]),
        ["Access Request Approval Recorded", "Access Request Level Completed", "Access Request Rejected"]
    );
}

#[tokio::test]
async fn a_grant_is_recorded_in_place_without_an_event_and_expiry_removes_it() {
    let now = Utc::now();
    let world = Lifecycle::default();
    let settings = settings();
    let deps = world.deps(&settings);
    let (store, policies) = (&world.store, &world.policies);
    let request = decided(store, RequestStatus::Approved, now).await;
    let before = store.changes().len();

    let out = lifecycle::grant(
        &deps,
        &request.request_id,
        Some("arn:aws:states:us-east-1:123456789012:execution:jit-lifecycle:x"),
        now,
    )
    .await
    .unwrap();
    let after_grant = store.changes().len();
    let ended = lifecycle::expire(&deps, *out.request, now + Duration::minutes(31)).await.unwrap();

    assert!(out.granted);
    assert_eq!(after_grant, before + 1, "the grant is one change");
    assert!(detail_types(&store.changes()[before..after_grant]).is_empty(), "and no event");
    assert_eq!(ended.status, RequestStatus::Expired);
    assert!(ended.detached, "the policy was removed");
    assert!(policies.0.lock().unwrap().is_empty());
    assert_eq!(detail_types(&store.changes()[after_grant..]), ["Access Request Expired"]);
}

#[tokio::test]
async fn the_sweep_expires_overdue_requests_and_starts_lifecycles_that_never_ran() {
    let now = Utc::now();
    let world = Lifecycle::default();
    let settings = settings();
    let deps = world.deps(&settings);
    let (store, executions) = (&world.store, &world.executions);
    let pending = decided(store, RequestStatus::Pending, now).await;
    let approved = decided(store, RequestStatus::Approved, now).await;

    let early = sweep::sweep(&deps, now).await.unwrap();
    let later = sweep::sweep(&deps, now + Duration::minutes(3)).await.unwrap();
    let after_window = sweep::sweep(&deps, now + Duration::hours(2)).await.unwrap();

    assert_eq!((early.pending_expired.len(), early.grants.fixed()), (0, 0), "nothing is due yet: {early:?}");
    assert_eq!(later.grants.restarted, vec![approved.request_id.to_string()], "past the grace period: {later:?}");
    assert_eq!(*executions.started.lock().unwrap(), vec![approved.request_id.clone()]);
    assert_eq!(after_window.pending_expired, vec![pending.request_id.to_string()]);
    assert_eq!(
        after_window.grants.failed,
        vec![approved.request_id.to_string()],
        "its window ended with nothing granted"
    );
}

/// Publishes into a list, failing for now on the request named `fail_on` and for good on the one
/// named `refuse`.
#[derive(Default)]
struct Bus {
    published: Mutex<Vec<StatusEvent>>,
    fail_on: Option<RequestId>,
    refuse: Option<RequestId>,
}

#[async_trait]
impl EventPublisher for Bus {
    async fn publish(&self, events: &[StatusEvent]) -> Result<(), PortError> {
        if events.iter().any(|e| Some(&e.request_id) == self.fail_on.as_ref()) {
            return Err(PortError::Transient("injected: PutEvents throttled".into()));
        }
        if events.iter().any(|e| Some(&e.request_id) == self.refuse.as_ref()) {
            return Err(PortError::Permanent("injected: PutEvents refused the event".into()));
        }
        self.published.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
}

#[tokio::test]
async fn the_publisher_publishes_in_order_and_stops_at_the_first_failure() {
    let now = Utc::now();
    let store = MemoryStore::new();
    let first = decided(&store, RequestStatus::Approved, now).await;
    let second = decided(&store, RequestStatus::Approved, now).await;
    let items: Vec<OutboxItem> = store
        .changes()
        .into_iter()
        .enumerate()
        .map(|(n, change)| OutboxItem { sequence: format!("{n:03}"), content: OutboxContent::Change(Box::new(change)) })
        .chain([OutboxItem { sequence: "skip".into(), content: OutboxContent::Skip }])
        .collect();

    let healthy = Bus::default();
    let all = publish_batch(&healthy, &items).await;
    let failing = Bus { fail_on: Some(second.request_id.clone()), ..Bus::default() };
    let partial = publish_batch(&failing, &items).await;
    let refusing = Bus { refuse: Some(first.request_id.clone()), ..Bus::default() };
    let past_refusal = publish_batch(&refusing, &items).await;

    assert_eq!((all.published_events, all.failed_from), (4, None), "Submitted and Approved for each");
    let order: Vec<(RequestId, RequestStatus)> =
        healthy.published.lock().unwrap().iter().map(|e| (e.request_id.clone(), e.status)).collect();
    assert_eq!(
        order,
        [
            (first.request_id.clone(), RequestStatus::Submitted),
            (first.request_id.clone(), RequestStatus::Approved),
            (second.request_id.clone(), RequestStatus::Submitted),
            (second.request_id.clone(), RequestStatus::Approved)
        ]
    );
    assert_eq!(
        (partial.published_events, partial.failed_from.as_deref()),
        (2, Some("002")),
        "retried from the first failed record"
    );
    assert_eq!(
        (past_refusal.published_events, past_refusal.unpublishable, past_refusal.failed_from),
        (2, 2, None),
        "events refused for good are counted and alarmed, and do not hold back the records after them"
    );
}

/// What the `Revoked` rule starts: the state machine's revoke branch, both passes.
async fn revoke_branch(deps: &LifecycleDeps<'_>, id: &RequestId, now: DateTime<Utc>) {
    for second_pass in [false, true] {
        lifecycle::run_task(deps, &Task::Revoke { request_id: id.clone(), second_pass }, now).await.unwrap();
    }
}

fn envelope(detail: StatusEvent) -> jit_shared::domain::events::EventEnvelope {
    jit_shared::domain::events::EventEnvelope {
        version: "0".into(),
        id: "test".into(),
        detail_type: detail.detail_type(),
        source: jit_shared::domain::events::EVENT_SOURCE.into(),
        account: "123456789012".into(),
        time: Some(detail.at),
        region: "us-east-1".into(),
        resources: vec![],
        detail,
    }
}

/// A credentials-mode request by alice in `status`, reached along the status graph.
async fn in_status(store: &dyn RequestStore, status: RequestStatus, now: DateTime<Utc>) -> AccessRequest {
    let (first, then) = match status {
        RequestStatus::Rejected => (RequestStatus::Pending, Some(status)),
        RequestStatus::Revoked | RequestStatus::Expired => (RequestStatus::Approved, Some(status)),
        _ => (status, None),
    };
    let request = decided_in(GrantMode::Credentials, store, first, now).await;
    match then {
        Some(to) => store.transition(&Transition::status_change(&request, to, "test", "test", now)).await.unwrap(),
        None => request,
    }
}

fn credentials_settings() -> GrantSettings {
    GrantSettings { mode: GrantMode::Credentials, ..settings() }
}

#[tokio::test]
async fn credentials_go_only_to_the_requester_of_an_approved_request_before_its_deadline() {
    // Arrange: one request per status, by alice, in credentials mode.
    let now = Utc::now();
    let store = MemoryStore::default();
    let issuer = MemoryIssuer::default();
    *issuer.at.lock().unwrap() = Some(now);
    let settings = credentials_settings();
    let deps = issuing(&store, &issuer, &settings);
    let approved = decided_in(GrantMode::Credentials, &store, RequestStatus::Approved, now).await;
    let id = approved.request_id.to_string();
    /// What happens: issued, or refused with this status and code.
    type Expected = Result<(), (u16, &'static str)>;
    let cases: Vec<(&str, &CallerArn, String, DateTime<Utc>, Expected)> = vec![
        ("the requester, while approved", &ARN_ALICE, id.clone(), now, Ok(())),
        ("anyone else", &ARN_LEAD, id.clone(), now, Err((404, "NotFound"))),
        ("an administrator", &ARN_ADMIN, id.clone(), now, Err((404, "NotFound"))),
        (
            "the requester, after the deadline",
            &ARN_ALICE,
            id.clone(),
            now + Duration::minutes(30),
            Err((409, "AccessEnded")),
        ),
        ("a malformed id", &ARN_ALICE, "req-nope".into(), now, Err((404, "NotFound"))),
    ];
    for (what, caller, id, at, expected) in cases {
        // Act
        let got = credentials::issue(&deps, caller, &id, at).await;
        // Assert
        match (got, expected) {
            (Ok(_), Ok(())) => {}
            (Err(e), Err((status, code))) => {
                assert_eq!((jit_shared::http::error::status(&e), e.code()), (status, code), "{what}: {e}");
            }
            (got, expected) => panic!("{what}: got {got:?}, expected {expected:?}"),
        }
    }
    for status in [
        RequestStatus::Pending,
        RequestStatus::Rejected,
        RequestStatus::Revoked,
        RequestStatus::Expired,
        RequestStatus::Failed,
    ] {
        let other = in_status(&store, status, now).await;
        let err = credentials::issue(&deps, &ARN_ALICE, other.request_id.as_str(), now).await.unwrap_err();
        assert_eq!((jit_shared::http::error::status(&err), err.code()), (409, "RequestNotApproved"), "{status}");
        assert!(err.to_string().contains(&status.to_string()), "the refusal names the status: {err}");
    }
    let attach = decided_in(GrantMode::Attach, &store, RequestStatus::Approved, now).await;
    let err = credentials::issue(&deps, &ARN_ALICE, attach.request_id.as_str(), now).await.unwrap_err();
    assert_eq!(err.code(), "AttachModeGrant");
    assert_eq!(issuer.issued.lock().unwrap().len(), 1, "only the one good call reached STS");
}

#[tokio::test]
async fn each_issuance_is_recorded_with_its_key_id_and_never_its_secret_and_lasts_at_most_an_hour() {
    // Arrange: approved for 30 minutes.
    let now = Utc::now();
    let store = MemoryStore::default();
    let issuer = MemoryIssuer::default();
    let settings = credentials_settings();
    let deps = issuing(&store, &issuer, &settings);
    let approved = decided_in(GrantMode::Credentials, &store, RequestStatus::Approved, now).await;
    let deadline = approved.access_deadline();
    let before = store.changes().len();

    // Act: two fetches, ten minutes apart.
    *issuer.at.lock().unwrap() = Some(now);
    let first = credentials::issue(&deps, &ARN_ALICE, approved.request_id.as_str(), now).await.unwrap();
    let later = now + Duration::minutes(10);
    *issuer.at.lock().unwrap() = Some(later);
    let second = credentials::issue(&deps, &ARN_ALICE, approved.request_id.as_str(), later).await.unwrap();

    // Assert
    assert!(first.expiration <= deadline && first.expiration <= now + Duration::hours(1));
    assert_eq!(second.expiration, deadline, "what remains of the window");
    let specs = issuer.issued.lock().unwrap().clone();
    assert_eq!(specs[0].duration_seconds, 1800);
    assert_eq!(specs[1].duration_seconds, 1200);
    assert_eq!(specs[0].session_name, approved.request_id.as_str());
    assert_eq!(specs[0].source_identity, "alice");
    assert_eq!(specs[0].role_arn, "arn:aws:iam::123456789012:role/jit-node-access-session");
    let changes = &store.changes()[before..];
    assert_eq!(detail_types(changes), ["Access Request Credentials Issued", "Access Request Credentials Issued"]);
    let events: Vec<StatusEvent> = changes.iter().flat_map(ChangeRecord::events).collect();
    assert_eq!(events[1].credentials.as_ref().unwrap().access_key_id, second.credentials.access_key_id);
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains(second.credentials.secret_access_key.expose()), "no secret in events");
    assert!(!text.contains(second.credentials.session_token.expose()), "no token in events");
    let trail = store.audit_trail(&approved.request_id).await.unwrap();
    assert_eq!(trail.iter().filter(|a| a.credentials.is_some()).count(), 2, "both in the audit trail");
    let stored = store.get(&approved.request_id).await.unwrap().unwrap();
    assert_eq!(stored.credentials.as_ref().map(|c| c.issued), Some(2));
    assert_eq!(stored.status, RequestStatus::Approved);
}

/// STS answering while an administrator's revoke of the request lands: the revoke is recorded
/// before the credentials come back.
struct RevokedWhileIssuing<'a> {
    inner: MemoryIssuer,
    store: &'a MemoryStore,
}

#[async_trait]
impl jit_shared::ports::CredentialIssuer for RevokedWhileIssuing<'_> {
    async fn issue(
        &self,
        spec: &jit_shared::domain::credentials::CredentialsSpec,
    ) -> Result<jit_shared::domain::credentials::IssuedCredentials, PortError> {
        let admins = Administrators::parse([ARN_ADMIN.as_str()]).unwrap();
        let k = key();
        approve::revoke(&approvals(self.store, &k, &admins), &ARN_ADMIN, &spec.session_name, b"", Utc::now())
            .await
            .unwrap();
        self.inner.issue(spec).await
    }
}

#[tokio::test]
async fn credentials_issued_while_a_revoke_lands_are_never_returned_nor_recorded() {
    // Arrange: approved, never fetched; STS answers only after the revoke is recorded.
    let now = Utc::now();
    let world = Lifecycle::default();
    let settings = credentials_settings();
    let issuer = RevokedWhileIssuing { inner: MemoryIssuer::default(), store: &world.store };
    let deps = CredentialsDeps { issuer: &issuer, ..issuing(&world.store, &issuer.inner, &settings) };
    let request = decided_in(GrantMode::Credentials, &world.store, RequestStatus::Approved, now).await;

    // Act: the fetch, then the revoke's teardown.
    let got = credentials::issue(&deps, &ARN_ALICE, request.request_id.as_str(), now).await;
    revoke_branch(&world.deps(&settings), &request.request_id, now).await;

    // Assert: refused naming the status; no issuance on the request or in its trail; STS was
    // called once, and no deny was needed for credentials nobody got.
    let err = got.expect_err("credentials issued after the revoke are not handed out");
    assert_eq!((jit_shared::http::error::status(&err), err.code()), (409, "RequestNotApproved"));
    assert!(err.to_string().contains("Revoked"), "{err}");
    let stored = world.store.get(&request.request_id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.credentials), (RequestStatus::Revoked, None));
    let trail = world.store.audit_trail(&request.request_id).await.unwrap();
    assert!(trail.iter().all(|a| a.credentials.is_none()), "{trail:?}");
    assert_eq!(issuer.inner.issued.lock().unwrap().len(), 1);
    assert_eq!(deny_on_session_role(&world, &request.request_id), None);
}

/// The table while alice fetches credentials as fast as she can: before each write that would
/// revoke her request, one more fetch of hers lands (and moves the request's version).
struct FetchingBeforeEachRevoke<'a> {
    inner: &'a MemoryStore,
    issuer: &'a MemoryIssuer,
    settings: &'a GrantSettings,
    fetches: Mutex<Vec<Result<(), String>>>,
}

#[async_trait]
impl RequestStore for FetchingBeforeEachRevoke<'_> {
    async fn create(
        &self,
        request: &AccessRequest,
        audit: &jit_shared::domain::request::AuditRecord,
        idempotency: Option<&jit_shared::ports::IdempotencyRecord>,
    ) -> Result<jit_shared::ports::CreateOutcome, PortError> {
        self.inner.create(request, audit, idempotency).await
    }
    async fn replay(
        &self,
        record: &jit_shared::ports::IdempotencyRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<jit_shared::ports::CreateOutcome>, PortError> {
        self.inner.replay(record, now).await
    }
    async fn get(&self, id: &RequestId) -> Result<Option<AccessRequest>, PortError> {
        self.inner.get(id).await
    }
    async fn list_by_requester(
        &self,
        requester: &CallerArn,
        query: &jit_shared::ports::ListQuery,
    ) -> Result<jit_shared::ports::Page, PortError> {
        self.inner.list_by_requester(requester, query).await
    }
    async fn list_pending_by_approver(&self, key: &str, limit: u32) -> Result<Vec<RequestId>, PortError> {
        self.inner.list_pending_by_approver(key, limit).await
    }
    async fn transition(&self, t: &Transition) -> Result<AccessRequest, jit_shared::ports::TransitionError> {
        if t.to == RequestStatus::Revoked {
            let deps = issuing(self.inner, self.issuer, self.settings);
            let fetched = credentials::issue(&deps, &ARN_ALICE, t.request_id().as_str(), t.at).await;
            self.fetches.lock().unwrap().push(fetched.map(|_| ()).map_err(|e| e.code().to_owned()));
        }
        self.inner.transition(t).await
    }
    async fn hold_for_revoke(&self, id: &RequestId, at: DateTime<Utc>) -> Result<bool, PortError> {
        self.inner.hold_for_revoke(id, at).await
    }
    async fn audit_trail(&self, id: &RequestId) -> Result<Vec<jit_shared::domain::request::AuditRecord>, PortError> {
        self.inner.audit_trail(id).await
    }
    async fn list_pending_past_deadline(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<RequestId>, PortError> {
        self.inner.list_pending_past_deadline(now, limit).await
    }
    async fn list_grants_past_deadline(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<RequestId>, PortError> {
        self.inner.list_grants_past_deadline(now, limit).await
    }
    async fn list_awaiting_grant(&self, before: DateTime<Utc>, limit: u32) -> Result<Vec<RequestId>, PortError> {
        self.inner.list_awaiting_grant(before, limit).await
    }
    async fn list_ended_since(&self, since: DateTime<Utc>, limit: u32) -> Result<Vec<RequestId>, PortError> {
        self.inner.list_ended_since(since, limit).await
    }
    async fn list_reviews_past_due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<RequestId>, PortError> {
        self.inner.list_reviews_past_due(now, limit).await
    }
    async fn list_submitted_before(&self, before: DateTime<Utc>, limit: u32) -> Result<Vec<RequestId>, PortError> {
        self.inner.list_submitted_before(before, limit).await
    }
}

#[tokio::test]
async fn a_requester_fetching_credentials_without_pause_cannot_keep_a_revoke_from_landing() {
    // Arrange: approved in credentials mode; alice fetches before every revoking write.
    let now = Utc::now();
    let world = Lifecycle::default();
    let settings = credentials_settings();
    let issuer = MemoryIssuer::default();
    *issuer.at.lock().unwrap() = Some(now);
    let request = decided_in(GrantMode::Credentials, &world.store, RequestStatus::Approved, now).await;
    let flooded = FetchingBeforeEachRevoke {
        inner: &world.store,
        issuer: &issuer,
        settings: &settings,
        fetches: Mutex::default(),
    };
    let admins = Administrators::parse([ARN_ADMIN.as_str()]).unwrap();
    let k = key();

    // Act: the administrator's revoke, then the state machine's teardown.
    let revoked =
        approve::revoke(&approvals(&flooded, &k, &admins), &ARN_ADMIN, request.request_id.as_str(), b"", now).await;
    revoke_branch(&world.deps(&settings), &request.request_id, now).await;

    // Assert: the first fetch beat the revoke's first write; the revoke then held the request, so
    // the next fetch was refused and the revoke landed. The credentials that were handed out are
    // denied, and a fetch now names the status.
    let revoked = revoked.expect("the revoke lands despite the fetches");
    assert_eq!(revoked.status, RequestStatus::Revoked);
    assert_eq!(*flooded.fetches.lock().unwrap(), vec![Ok(()), Err("RevokeInProgress".to_owned())]);
    let stored = world.store.get(&request.request_id).await.unwrap().unwrap();
    assert_eq!(stored.credentials.as_ref().map(|c| c.issued), Some(1));
    assert!(stored.revoke_held_at.is_some());
    assert!(deny_on_session_role(&world, &request.request_id).is_some(), "the fetched credentials are denied");
    assert_eq!(issuer.issued.lock().unwrap().len(), 1, "the refused fetch never reached STS");
    let after =
        credentials::issue(&issuing(&world.store, &issuer, &settings), &ARN_ALICE, request.request_id.as_str(), now)
            .await;
    assert_eq!(after.unwrap_err().code(), "RequestNotApproved");
}

#[tokio::test]
async fn a_request_held_for_its_revoke_issues_nothing_more_and_only_an_approved_one_can_be_held() {
    // Arrange: one approved request, one pending.
    let now = Utc::now();
    let store = MemoryStore::default();
    let issuer = MemoryIssuer::default();
    *issuer.at.lock().unwrap() = Some(now);
    let settings = credentials_settings();
    let approved = decided_in(GrantMode::Credentials, &store, RequestStatus::Approved, now).await;
    let pending = decided_in(GrantMode::Credentials, &store, RequestStatus::Pending, now).await;

    // Act
    let held = store.hold_for_revoke(&approved.request_id, now).await.unwrap();
    let not_held = store.hold_for_revoke(&pending.request_id, now).await.unwrap();
    let got =
        credentials::issue(&issuing(&store, &issuer, &settings), &ARN_ALICE, approved.request_id.as_str(), now).await;

    // Assert: refused before STS with 409, nothing recorded; a held request is still Approved.
    assert!(held && !not_held);
    let err = got.unwrap_err();
    assert_eq!((jit_shared::http::error::status(&err), err.code()), (409, "RevokeInProgress"));
    assert!(issuer.issued.lock().unwrap().is_empty());
    let stored = store.get(&approved.request_id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.version, stored.credentials), (RequestStatus::Approved, approved.version, None));
    assert_eq!(store.get(&pending.request_id).await.unwrap().unwrap().revoke_held_at, None);
}

#[tokio::test]
async fn the_memory_store_like_dynamodb_refuses_an_issuance_decided_before_the_hold_and_keeps_the_hold() {
    // Arrange: approved, read by a fetch before the revoke holds it.
    let now = Utc::now();
    let store = MemoryStore::default();
    let approved = decided_in(GrantMode::Credentials, &store, RequestStatus::Approved, now).await;
    let read_before_the_hold = store.get(&approved.request_id).await.unwrap().unwrap();
    let issuance = Transition {
        credentials: Some(jit_shared::domain::credentials::CredentialsIssue {
            access_key_id: "ASIALATE".into(),
            role_arn: "arn:aws:iam::123456789012:role/jit-node-access-session".into(),
            issued_at: now,
            expiration: now + Duration::minutes(30),
        }),
        ..Transition::status_change(&read_before_the_hold, RequestStatus::Approved, "alice", "issued", now)
    };

    // Act: the hold, the fetch's write, then the revoke's write, both on the earlier read.
    assert!(store.hold_for_revoke(&approved.request_id, now).await.unwrap());
    let late_fetch = store.transition(&issuance).await;
    let revoke = Transition::status_change(&read_before_the_hold, RequestStatus::Revoked, "admin", "revoked", now);
    let revoked = store.transition(&revoke).await;

    // Assert: as tests/store.rs shows for DynamoDB.
    assert_eq!(late_fetch.unwrap_err(), jit_shared::ports::TransitionError::Conflict);
    assert_eq!(revoked.unwrap().status, RequestStatus::Revoked);
    let stored = store.get(&approved.request_id).await.unwrap().unwrap();
    assert_eq!((stored.credentials, stored.revoke_held_at), (None, Some(now)));
}

/// An approved credentials-mode request of alice's (its grant recorded first when `granted`), for
/// which she fetched credentials once at `now`.
async fn approved_and_fetched(
    world: &Lifecycle,
    settings: &GrantSettings,
    granted: bool,
    now: DateTime<Utc>,
) -> AccessRequest {
    let issuer = MemoryIssuer::default();
    *issuer.at.lock().unwrap() = Some(now);
    let request = decided_in(GrantMode::Credentials, &world.store, RequestStatus::Approved, now).await;
    if granted {
        let grant = lifecycle::grant(&world.deps(settings), &request.request_id, None, now).await.unwrap();
        assert!(grant.granted);
        let grant_policy = format!("/jit-{}", request.request_id);
        let policies = world.policies.0.lock().unwrap();
        assert!(!policies.keys().any(|k| k.ends_with(&grant_policy)), "credentials mode attaches nothing");
    }
    credentials::issue(&issuing(&world.store, &issuer, settings), &ARN_ALICE, request.request_id.as_str(), now)
        .await
        .unwrap();
    request
}

/// `approved_and_fetched` (granted), then revoked by an administrator: the revoke recorded, its
/// teardown (the state machine's revoke branch) not run.
async fn fetched_then_revoked(world: &Lifecycle, settings: &GrantSettings, now: DateTime<Utc>) -> AccessRequest {
    let request = approved_and_fetched(world, settings, true, now).await;
    let admins = Administrators::parse([ARN_ADMIN.as_str()]).unwrap();
    let k = key();
    approve::revoke(&approvals(&world.store, &k, &admins), &ARN_ADMIN, request.request_id.as_str(), b"", now)
        .await
        .unwrap()
}

/// The revoke deny `jit-deny-<id>` on the stack account's session role, if it is there.
fn deny_on_session_role(world: &Lifecycle, id: &RequestId) -> Option<String> {
    let key = format!("SessionRole {{ account: \"123456789012\", name: \"jit-node-access-session\" }}/jit-deny-{id}");
    world.policies.0.lock().unwrap().get(&key).cloned()
}

#[tokio::test]
async fn a_revoke_denies_issued_credentials_and_the_sweep_removes_the_deny_once_they_are_spent() {
    // Arrange: approved in credentials mode, granted, credentials fetched.
    let now = Utc::now();
    let world = Lifecycle::default();
    let settings = credentials_settings();
    let deps = world.deps(&settings);

    // Act: the administrator revokes; the Revoked event reaches the lifecycle function.
    let revoked = fetched_then_revoked(&world, &settings, now).await;
    let event = world.store.changes().last().unwrap().events().pop().unwrap();
    revoke_branch(&deps, &event.request_id, now).await;

    // Assert: a deny on the role session named after the request.
    assert_eq!(revoked.status, RequestStatus::Revoked);
    let deny = deny_on_session_role(&world, &revoked.request_id).expect("the deny is on the session role");
    assert!(deny.contains(&format!("*:{}", revoked.request_id)), "{deny}");
    let early = sweep::reconcile(&deps, now + Duration::minutes(5)).await.unwrap();
    assert!(early.denies_removed.is_empty(), "kept while the credentials may be used");
    assert_eq!(early.denies_outstanding, 1, "and counted against the role's budget");
    let after = sweep::reconcile(&deps, now + Duration::minutes(31)).await.unwrap();
    assert_eq!(after.denies_removed, [format!("jit-deny-{}", revoked.request_id)]);
    assert!(world.policies.0.lock().unwrap().is_empty());
    assert_eq!(after.fixed(), 0, "removing a spent deny is routine, not drift");
    assert_eq!(after.denies_outstanding, 0);
}

#[tokio::test]
async fn grants_that_fail_slowly_for_good_leave_the_rest_of_the_sweep_its_share_of_time() {
    // Arrange: a hundred of alice's grants past their deadline, each refused teardown after
    // 20 ms (two seconds in all), and a request never evaluated for over an hour.
    let now = Utc::now();
    let world = Lifecycle::default();
    let settings = settings();
    let iam = RefusesDeletesOn::alice(&world.policies, std::time::Duration::from_millis(20));
    let deps = LifecycleDeps { granter: &iam, ..world.deps(&settings) };
    for _ in 0..100 {
        granted_to_alice(&world, &deps, now).await;
    }
    let intake =
        SubmitDeps { store: &world.store, directory: &Users, settings: &settings, administrators: &NO_ADMINISTRATORS };
    let long_ago = now - Duration::minutes(sweep::STUCK_SUBMITTED_MINUTES + 1);
    let stuck = submit::submit(&intake, &arn("bob"), DEV_ASK.as_bytes(), None, long_ago).await.unwrap().request;

    // Act: a sweep with a second of budget, less than the grants alone would take.
    let stop = std::time::Instant::now() + std::time::Duration::from_secs(1);
    let report = sweep::reconcile_within(&deps, now + Duration::minutes(40), stop).await.unwrap();

    // Assert: the grants had a quarter of it and left the rest for the next sweep; the stuck
    // request was still failed.
    assert!(report.deadline_deferred > 50, "{}", report.deadline_deferred);
    assert_eq!(report.item_failures.len() + report.deadline_deferred, 100);
    assert_eq!(report.stuck_failed, [stuck.request_id.to_string()]);
}

/// The names of the policies on the stack account's session role.
fn on_session_role(world: &Lifecycle) -> Vec<String> {
    let prefix = "SessionRole { account: \"123456789012\", name: \"jit-node-access-session\" }/";
    world.policies.0.lock().unwrap().keys().filter_map(|k| k.strip_prefix(prefix).map(str::to_owned)).collect()
}

#[tokio::test]
async fn past_the_roles_deny_budget_a_revoke_denies_every_earlier_credential_and_the_sweep_clears_up_after() {
    // Arrange: as many revoked requests with live credentials as the role holds one-request
    // denies for, each denied; then one more request, fetched and revoked.
    let now = Utc::now();
    let world = Lifecycle::default();
    let settings = credentials_settings();
    let deps = world.deps(&settings);
    for _ in 0..jit_shared::domain::credentials::MAX_REQUEST_DENIES {
        let revoked = fetched_then_revoked(&world, &settings, now).await;
        revoke_branch(&deps, &revoked.request_id, now).await;
    }
    let one_more = fetched_then_revoked(&world, &settings, now).await;

    // Act: its teardown, then sweeps five minutes and an hour and a bit later.
    revoke_branch(&deps, &one_more.request_id, now).await;
    let denied = on_session_role(&world);
    let documents: Vec<String> = world.policies.0.lock().unwrap().values().cloned().collect();
    let soon = sweep::reconcile(&deps, now + Duration::minutes(5)).await.unwrap();
    let after_soon = on_session_role(&world);
    let later = sweep::reconcile(&deps, now + Duration::minutes(62)).await.unwrap();

    // Assert: no one-request deny for it, but one deny of every credential issued until just
    // after its last fetch; the sweep then drops the one-request denies that deny covers, and
    // the deny itself once everything it covers has expired.
    let before: Vec<&String> = denied.iter().filter(|n| n.starts_with("jit-deny-before-")).collect();
    assert_eq!(before.len(), 1, "{denied:?}");
    assert!(!denied.contains(&format!("jit-deny-{}", one_more.request_id)));
    assert_eq!(denied.len(), jit_shared::domain::credentials::MAX_REQUEST_DENIES + 1);
    let by_issue_time = documents.iter().filter(|d| d.contains("aws:TokenIssueTime")).count();
    assert_eq!(by_issue_time, 1, "{documents:?}");
    assert_eq!(after_soon, [before[0].clone()], "the covered one-request denies are gone");
    assert_eq!((soon.denies_outstanding, soon.fixed()), (0, 0));
    assert!(on_session_role(&world).is_empty(), "{later:?}");
}

/// IAM refusing the session role's one-request denies for the role's inline-policy budget.
struct BudgetSpent<'a>(&'a Policies);

#[async_trait]
impl AccessGranter for BudgetSpent<'_> {
    async fn role(&self, role: &str) -> Result<jit_shared::ports::RoleFacts, GrantWriteError> {
        self.0.role(role).await
    }
    async fn put_policy(&self, principal: &GrantPrincipal, name: &str, document: &str) -> Result<(), GrantWriteError> {
        if name.starts_with("jit-deny-req-") {
            return Err(GrantWriteError::TooLarge("Maximum policy size of 10240 bytes exceeded (injected)".into()));
        }
        self.0.put_policy(principal, name, document).await
    }
    async fn delete_policy(&self, principal: &GrantPrincipal, name: &str) -> Result<bool, PortError> {
        self.0.delete_policy(principal, name).await
    }
    async fn list_policies(&self, principal: &GrantPrincipal) -> Result<Vec<String>, PortError> {
        self.0.list_policies(principal).await
    }
}

#[tokio::test]
async fn revokes_that_iam_refuses_denies_for_still_deny_by_issue_time_and_the_sweep_keeps_only_the_latest() {
    // Arrange: IAM refuses one-request denies (the role carries inline policies of its own);
    // two requests, fetched and revoked two minutes apart.
    let now = Utc::now();
    let world = Lifecycle::default();
    let settings = credentials_settings();
    let iam = BudgetSpent(&world.policies);
    let deps = LifecycleDeps { granter: &iam, ..world.deps(&settings) };
    let first = fetched_then_revoked(&world, &settings, now).await;
    let later = now + Duration::minutes(2);
    let second = fetched_then_revoked(&world, &settings, later).await;

    // Act: both teardowns, then a sweep.
    revoke_branch(&deps, &first.request_id, now).await;
    revoke_branch(&deps, &second.request_id, later).await;
    let after_revokes = on_session_role(&world);
    let recheck = sweep::reconcile(&deps, now + Duration::minutes(5)).await.unwrap();

    // Assert: each revoke denied by issue time and deleted nothing (the lifecycle may only put);
    // the sweep keeps the later deny, which covers both, and writes nothing more.
    assert_eq!(after_revokes.len(), 2, "{after_revokes:?}");
    assert!(after_revokes.iter().all(|n| n.starts_with("jit-deny-before-")), "{after_revokes:?}");
    let latest = after_revokes.iter().max().unwrap().clone();
    assert_eq!(on_session_role(&world), [latest]);
    assert!(recheck.ended_cleaned.is_empty() && recheck.item_failures.is_empty(), "{recheck:?}");
}

#[tokio::test]
async fn a_sweep_out_of_time_leaves_its_work_for_the_next() {
    // Arrange: a revoke recorded whose teardown never ran (its deny is missing), and a request
    // never evaluated for over an hour.
    let now = Utc::now();
    let world = Lifecycle::default();
    let settings = credentials_settings();
    let deps = world.deps(&settings);
    let request = fetched_then_revoked(&world, &settings, now).await;
    let intake =
        SubmitDeps { store: &world.store, directory: &Users, settings: &settings, administrators: &NO_ADMINISTRATORS };
    let long_ago = now - Duration::minutes(sweep::STUCK_SUBMITTED_MINUTES + 1);
    let stuck = submit::submit(&intake, &arn("bob"), DEV_ASK.as_bytes(), None, long_ago).await.unwrap().request;

    // Act: a run with no time left for re-checks, then one with time.
    let hurried = sweep::reconcile_within(&deps, now, std::time::Instant::now()).await.unwrap();
    let missing = deny_on_session_role(&world, &request.request_id).is_none();
    let next = sweep::reconcile(&deps, now + Duration::minutes(5)).await.unwrap();

    // Assert: the hurried run deferred both and said so; the next failed the stuck request and
    // made good the missing deny.
    assert_eq!((hurried.deadline_deferred, hurried.ended_deferred), (1, 1), "{hurried:?}");
    assert!(hurried.stuck_failed.is_empty() && missing, "nothing ran: {hurried:?}");
    assert_eq!((next.deadline_deferred, next.ended_deferred), (0, 0));
    assert_eq!(next.stuck_failed, [stuck.request_id.to_string()]);
    assert_eq!(next.ended_cleaned, [request.request_id.to_string()]);
    assert!(deny_on_session_role(&world, &request.request_id).is_some());
}

#[tokio::test]
async fn grants_whose_teardown_fails_for_good_do_not_hold_back_a_newer_one_past_its_deadline() {
    // Arrange: as many of alice's grants as a sweep lists, each refused teardown for good (her
    // principal refuses deletes), and bob's, granted a minute after them.
    let now = Utc::now();
    let world = Lifecycle::default();
    let settings = settings();
    let iam = RefusesDeletesOn::alice(&world.policies, std::time::Duration::ZERO);
    let deps = LifecycleDeps { granter: &iam, ..world.deps(&settings) };
    for _ in 0..sweep::DEADLINE_SCAN {
        granted_to_alice(&world, &deps, now).await;
    }
    let later = now + Duration::minutes(1);
    let bobs =
        decided_by("bob", "i-0123456789abcdef0", GrantMode::Attach, &world.store, RequestStatus::Approved, later).await;
    lifecycle::grant(&deps, &bobs.request_id, None, later).await.unwrap();

    // Act: a sweep after every deadline.
    let report = sweep::reconcile(&deps, now + Duration::minutes(40)).await.unwrap();

    // Assert: bob's access ended; alice's grants are recorded as failures, the oldest left over.
    assert_eq!(report.expired, [bobs.request_id.to_string()]);
    assert_eq!(report.item_failures.len(), usize::try_from(sweep::DEADLINE_SCAN).unwrap() - 1);
    assert!(world.store.get(&bobs.request_id).await.unwrap().is_some_and(|r| r.status == RequestStatus::Expired));
}

#[tokio::test]
async fn a_grant_that_fails_for_good_after_credentials_were_fetched_denies_them() {
    // Arrange: approved in credentials mode; alice fetched credentials before the Grant task
    // recorded anything (an unscheduled request may be fetched for at once).
    let now = Utc::now();
    let world = Lifecycle::default();
    let settings = credentials_settings();
    let deps = world.deps(&settings);
    let request = approved_and_fetched(&world, &settings, false, now).await;
    let failure = lifecycle::Task::RecordFailure {
        request_id: request.request_id.clone(),
        failed_task: "grant".into(),
        error: serde_json::json!({"Error": "States.Timeout"}),
        execution: None,
    };

    // Act: the Grant task failed for good; the state machine records it.
    lifecycle::run_task(&deps, &failure, now).await.unwrap();

    // Assert: Failed, and the credentials already out are denied until they are spent.
    let stored = world.store.get(&request.request_id).await.unwrap().unwrap();
    assert_eq!(stored.status, RequestStatus::Failed);
    assert!(deny_on_session_role(&world, &request.request_id).is_some(), "the deny is on the session role");
    let later = sweep::reconcile(&deps, now + Duration::minutes(31)).await.unwrap();
    assert_eq!(later.denies_removed, [format!("jit-deny-{}", request.request_id)], "removed once spent");
}

#[tokio::test]
async fn a_revoke_before_any_credentials_were_fetched_writes_no_deny() {
    let now = Utc::now();
    let world = Lifecycle::default();
    let settings = credentials_settings();
    let deps = world.deps(&settings);
    let request = decided_in(GrantMode::Credentials, &world.store, RequestStatus::Approved, now).await;
    let out =
        lifecycle::teardown(&deps, &request.request_id, RequestStatus::Revoked, "admin", "revoked", now).await.unwrap();
    assert_eq!(out.status, RequestStatus::Revoked);
    assert!(world.policies.0.lock().unwrap().is_empty());
}

/// One live session per owner asked about; records who was asked and what was ended.
#[derive(Default)]
struct OneSessionEach {
    asked: Mutex<Vec<String>>,
    ended: Mutex<Vec<String>>,
}

#[async_trait]
impl SessionControl for OneSessionEach {
    async fn live_sessions(&self, _node: &NodeId, owner_arn: &str) -> Result<Vec<String>, PortError> {
        self.asked.lock().unwrap().push(owner_arn.to_owned());
        let name = owner_arn.rsplit('/').next().unwrap_or_default().to_owned();
        Ok(if self.ended.lock().unwrap().iter().any(|s| s.starts_with(&name)) {
            vec![]
        } else {
            vec![format!("{name}-0a1b2c")]
        })
    }
    async fn terminate(&self, _node: &NodeId, session_id: &str) -> Result<(), PortError> {
        self.ended.lock().unwrap().push(session_id.to_owned());
        Ok(())
    }
}

#[tokio::test]
async fn teardown_ends_the_sessions_of_the_requests_role_session_in_credentials_mode_and_the_requesters_in_attach_mode()
{
    for (mode, owner_of) in [
        (GrantMode::Credentials, "arn:aws:sts::123456789012:assumed-role/jit-node-access-session/{id}"),
        (GrantMode::Attach, "arn:aws:iam::123456789012:user/alice"),
    ] {
        // Arrange
        let now = Utc::now();
        let world = Lifecycle::default();
        let settings = GrantSettings { mode, ..settings() };
        let sessions = OneSessionEach::default();
        let deps = LifecycleDeps { sessions: &sessions, ..world.deps(&settings) };
        let request = decided_in(mode, &world.store, RequestStatus::Approved, now).await;
        lifecycle::grant(&deps, &request.request_id, None, now).await.unwrap();
        let owner = owner_of.replace("{id}", request.request_id.as_str());

        // Act
        let out = lifecycle::expire(
            &deps,
            world.store.get(&request.request_id).await.unwrap().unwrap(),
            now + Duration::minutes(31),
        )
        .await
        .unwrap();

        // Assert
        assert_eq!(out.status, RequestStatus::Expired, "{mode:?}");
        assert_eq!(sessions.asked.lock().unwrap().first(), Some(&owner), "{mode:?}");
        let session = format!("{}-0a1b2c", owner.rsplit('/').next().unwrap());
        assert_eq!(out.terminated_sessions, [session], "{mode:?}");
        assert!(world.policies.0.lock().unwrap().is_empty(), "{mode:?}: an expiry leaves no deny and no policy");
    }
}

#[tokio::test]
async fn a_credentials_mode_expiry_after_a_fetch_ends_sessions_once_and_loses_no_write() {
    // Arrange: granted in credentials mode, then credentials fetched (a new version of the
    // request), so the copy the grant recorded, which the Expire task gets, is stale.
    let now = Utc::now();
    let world = Lifecycle::default();
    let settings = credentials_settings();
    let sessions = OneSessionEach::default();
    let deps = LifecycleDeps { sessions: &sessions, ..world.deps(&settings) };
    let issuer = MemoryIssuer::default();
    *issuer.at.lock().unwrap() = Some(now);
    let request = decided_in(GrantMode::Credentials, &world.store, RequestStatus::Approved, now).await;
    let granted = lifecycle::grant(&deps, &request.request_id, Some("arn:exec:1"), now).await.unwrap();
    let cred_deps = issuing(&world.store, &issuer, &settings);
    credentials::issue(&cred_deps, &ARN_ALICE, request.request_id.as_str(), now).await.unwrap();
    let writes_before = world.store.changes().len();

    // Act
    let out = lifecycle::expire(&deps, *granted.request, now + Duration::minutes(31)).await.unwrap();

    // Assert
    assert_eq!(out.status, RequestStatus::Expired);
    assert_eq!(sessions.asked.lock().unwrap().len(), 1, "the request's sessions were looked up once");
    assert_eq!(out.terminated_sessions.len(), 1);
    assert_eq!(world.store.changes().len(), writes_before + 1, "one write: the expiry");
}

#[tokio::test]
async fn a_member_accounts_node_is_reached_by_credentials_of_that_accounts_role_and_revoked_there() {
    // Arrange: an attach-mode stack that serves one member account; alice asks for a node there.
    let now = Utc::now();
    let world = Lifecycle::default();
    let settings = settings();
    let deps = world.deps(&settings);
    let issuer = MemoryIssuer::default();
    *issuer.at.lock().unwrap() = Some(now);
    let request = decided_on(MEMBER_NODE, settings.mode, &world.store, RequestStatus::Approved, now).await;
    assert_eq!(request.grant_mode, GrantMode::Credentials, "a policy in this account cannot reach a node in another");

    // Act: the grant is recorded, alice fetches credentials, then an administrator revokes.
    lifecycle::grant(&deps, &request.request_id, None, now).await.unwrap();
    let cred_deps = issuing(&world.store, &issuer, &settings);
    let issued = credentials::issue(&cred_deps, &ARN_ALICE, request.request_id.as_str(), now).await.unwrap();
    let admins = Administrators::parse([ARN_ADMIN.as_str()]).unwrap();
    let k = key();
    approve::revoke(&approvals(&world.store, &k, &admins), &ARN_ADMIN, request.request_id.as_str(), b"", now)
        .await
        .unwrap();
    let event = world.store.changes().last().unwrap().events().pop().unwrap();
    revoke_branch(&deps, &event.request_id, now).await;

    // Assert: the member account's session role, a policy naming the node and that account's
    // document in the node's Region, and the deny on that account's session role until spent.
    let spec = issuer.issued.lock().unwrap()[0].clone();
    assert_eq!(spec.role_arn, "arn:aws:iam::222233334444:role/jit-node-access-session");
    assert_eq!(issued.role_arn, spec.role_arn);
    let policy: serde_json::Value = serde_json::from_str(&spec.policy).unwrap();
    assert_eq!(
        policy["Statement"][0]["Resource"],
        serde_json::json!([MEMBER_NODE, "arn:aws:ssm:us-east-1:222233334444:document/SSM-SessionManagerRunShell"])
    );
    let deny_key = format!(
        "SessionRole {{ account: \"{MEMBER_ACCOUNT}\", name: \"jit-node-access-session\" }}/jit-deny-{}",
        request.request_id
    );
    assert!(world.policies.0.lock().unwrap().contains_key(&deny_key), "the deny is in the node's account");
    let after = sweep::reconcile(&deps, now + Duration::minutes(31)).await.unwrap();
    assert_eq!(after.denies_removed, [format!("jit-deny-{}", request.request_id)]);
    assert!(world.policies.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_node_of_an_account_the_stack_does_not_serve_is_refused_at_the_door_and_nothing_is_stored() {
    let cases = [
        ("arn:aws:ec2:us-east-1:999988887777:instance/i-0123456789abcdef0", "NodeAccountNotMember"),
        ("arn:aws:ec2:eu-west-2:222233334444:instance/i-0123456789abcdef0", "NodeOutsideRegion"),
        ("arn:aws-cn:ec2:cn-north-1:222233334444:instance/i-0123456789abcdef0", "NodeOutsidePartition"),
        ("arn:aws:ec2:eu-west-2:222233334444:volume/vol-0123456789abcdef0", "InvalidNodeId"),
    ];
    for (node, code) in cases {
        // Arrange
        let store = MemoryStore::default();
        let settings = settings();
        let deps =
            SubmitDeps { store: &store, directory: &Users, settings: &settings, administrators: &NO_ADMINISTRATORS };
        let body = format!(r#"{{"nodeId": "{node}", "reason": "disk full", "durationMinutes": 30}}"#);
        // Act
        let err = submit::submit(&deps, &ARN_ALICE, body.as_bytes(), None, Utc::now()).await.unwrap_err();
        // Assert
        assert_eq!((jit_shared::http::error::status(&err), err.code()), (400, code), "{node}: {err}");
        assert!(matches!(&err, ServiceError::InvalidInput(f) if f.field == "nodeId"), "{node}: {err:?}");
        assert!(store.changes().is_empty(), "{node}: nothing is stored");
    }
}

#[tokio::test]
async fn any_session_of_an_administrator_role_revokes_auto_approved_access_and_other_roles_cannot() {
    // Arrange: an auto-approved request (no approvers), administrators by role.
    let now = Utc::now();
    let store = MemoryStore::default();
    let key = key();
    let admins = Administrators::parse(["arn:aws:iam::123456789012:role/SecurityAdmin"]).unwrap();
    let cases = [
        ("arn:aws:sts::123456789012:assumed-role/OnCall/dave", Err("NotFound")),
        ("arn:aws:sts::999988887777:assumed-role/SecurityAdmin/erin", Err("NotFound")),
        ("arn:aws:sts::123456789012:assumed-role/SecurityAdmin/erin", Ok(RequestStatus::Revoked)),
    ];
    let request = decided(&store, RequestStatus::Approved, now).await;
    for (who, expected) in cases {
        // Act
        let caller = CallerArn::try_from(who.to_owned()).unwrap();
        let got =
            approve::revoke(&approvals(&store, &key, &admins), &caller, request.request_id.as_str(), b"", now).await;
        // Assert
        assert_eq!(got.map(|r| r.status).map_err(|e| e.code().to_owned()), expected.map_err(str::to_owned), "{who}");
    }
}

#[tokio::test]
async fn a_caller_from_another_account_is_refused_before_anything_is_stored() {
    // Arrange: the API is owned by 123456789012; the callers sign from there or elsewhere.
    let settings = settings();
    let cases = [
        ("arn:aws:iam::123456789012:user/alice", 202),
        ("arn:aws:iam::999988887777:user/alice", 403),
        ("arn:aws:sts::999988887777:assumed-role/AWSReservedSSO_Ops_1/alice", 403),
    ];
    for (caller, status) in cases {
        let store = MemoryStore::default();
        let deps =
            SubmitDeps { store: &store, directory: &Users, settings: &settings, administrators: &NO_ADMINISTRATORS };
        let request = jit_shared::http::ApiRequest {
            method: "POST".into(),
            path: "/requests".into(),
            query: vec![],
            headers: vec![],
            body: br#"{"nodeId": "i-0123456789abcdef0", "reason": "disk full", "durationMinutes": 30}"#.to_vec(),
            caller: Some(caller.into()),
            api_account: Some("123456789012".into()),
        };
        // Act
        let response = jit_shared::http::submit::handle(&deps, &request, Utc::now()).await;
        // Assert
        assert_eq!(response.status, status, "{caller}: {}", response.body_text());
        assert_eq!(store.changes().is_empty(), status != 202, "{caller}");
        if status == 403 {
            assert!(response.body_text().contains("999988887777"), "names the account: {}", response.body_text());
        }
    }
}

#[tokio::test]
async fn a_forged_revoked_event_for_an_approved_request_changes_nothing() {
    // Arrange: approved and granted; someone puts a Revoked event for it on the bus.
    let now = Utc::now();
    let world = Lifecycle::default();
    let settings = settings();
    let deps = world.deps(&settings);
    let request = decided(&world.store, RequestStatus::Approved, now).await;
    let granted = *lifecycle::grant(&deps, &request.request_id, None, now).await.unwrap().request;
    let policies_before = world.policies.0.lock().unwrap().clone();
    let mut forged =
        StatusEvent::for_request(&granted, Some(RequestStatus::Approved), "arn:aws:iam::123456789012:user/mallory");
    forged.status = RequestStatus::Revoked;

    // Act
    revoke_branch(&deps, &forged.request_id, now).await;

    // Assert: the table still says Approved, the grant stays, no audit record names the forger.
    let stored = world.store.get(&request.request_id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.version), (RequestStatus::Approved, granted.version));
    assert_eq!(*world.policies.0.lock().unwrap(), policies_before);
    assert!(!policies_before.is_empty(), "there was a grant to keep");
    let trail = world.store.audit_trail(&request.request_id).await.unwrap();
    assert!(trail.iter().all(|a| !a.actor.contains("mallory")), "{trail:?}");
}

/// Alice, who has a mail contact, and the notifier (mail only) over her requests.
struct MailedAlice {
    store: MemoryStore,
    key: SigningKey,
    outbox: Outbox,
    contacts: [jit_shared::policy::contacts::Contact; 1],
    links: jit_shared::app::notify::LinkSettings,
}

impl MailedAlice {
    fn new() -> Self {
        let contact = jit_shared::policy::contacts::Contact {
            person: Person::IamUser("alice".into()),
            email: "alice@example.com".into(),
            same_as: vec![],
            slack_user_id: None,
        };
        Self {
            store: MemoryStore::default(),
            key: key(),
            outbox: Outbox::default(),
            contacts: [contact],
            links: links(),
        }
    }

    fn deps(&self) -> jit_shared::app::notify::NotifyDeps<'_> {
        mail_only(&self.store, &Users, &self.outbox, &self.contacts, &self.key, &self.links)
    }

    /// One of her approved requests, revoked by the administrator, and the `Revoked` event the
    /// table's stream turns that change into.
    async fn revoked(&self, now: DateTime<Utc>) -> (AccessRequest, StatusEvent) {
        let admins = Administrators::parse([ARN_ADMIN.as_str()]).unwrap();
        let revoked = decided(&self.store, RequestStatus::Approved, now).await;
        approve::revoke(&approvals(&self.store, &self.key, &admins), &ARN_ADMIN, revoked.request_id.as_str(), b"", now)
            .await
            .unwrap();
        (revoked, self.store.changes().last().unwrap().events().pop().unwrap())
    }
}

#[tokio::test]
async fn the_requester_is_mailed_about_a_recorded_revoke_and_not_about_a_forged_one() {
    // Arrange: alice has a mail contact; one request of hers is really revoked, another is not.
    let now = Utc::now();
    let alice = MailedAlice::new();
    let (store, outbox, deps) = (&alice.store, &alice.outbox, alice.deps());
    let (revoked, genuine) = alice.revoked(now).await;
    let untouched = decided(store, RequestStatus::Approved, now).await;
    let mut forged =
        StatusEvent::for_request(&untouched, Some(RequestStatus::Approved), "arn:aws:iam::123456789012:user/admin");
    forged.status = RequestStatus::Revoked;
    forged.version += 1;

    // Act
    let sent_forged = jit_shared::app::notify::handle_event(&deps, &envelope(forged), now).await.unwrap();
    let sent_genuine = jit_shared::app::notify::handle_event(&deps, &envelope(genuine), now).await.unwrap();

    // Assert
    assert_eq!((sent_forged, sent_genuine), (0, 1));
    let mails = outbox.0.lock().unwrap();
    assert!(mails[0].body.contains(revoked.request_id.as_str()), "{}", mails[0].body);
}

#[tokio::test]
async fn the_requesters_mail_says_what_the_table_recorded_not_what_the_event_says() {
    // Arrange: alice's request is really revoked; the event that reaches the notifier names the
    // recorded version, status and actor, but its reason and duration were altered on the way.
    let now = Utc::now();
    let alice = MailedAlice::new();
    let (outbox, deps) = (&alice.outbox, alice.deps());
    let (revoked, mut altered) = alice.revoked(now).await;
    altered.reason = "Reset your password at https://evil.example".into();
    altered.duration_minutes = 480;

    // Act
    let sent = jit_shared::app::notify::handle_event(&deps, &envelope(altered), now).await.unwrap();

    // Assert: mailed, with the stored reason and duration only.
    assert_eq!(sent, 1);
    let body = outbox.0.lock().unwrap()[0].body.clone();
    assert!(!body.contains("evil.example") && !body.contains("480 minutes"), "{body}");
    assert!(body.contains(revoked.reason.as_str()), "{body}");
    assert!(body.contains(&format!("{} minutes", revoked.duration_minutes.get())), "{body}");
}

#[tokio::test]
async fn a_role_session_is_granted_by_attaching_only_when_the_role_pins_session_names() {
    for (role, granted) in [("Pinned", true), ("Unpinned", false)] {
        // Arrange: an approved attach-mode request from a session of `role`.
        let now = Utc::now();
        let world = Lifecycle::default();
        let settings = settings();
        let deps = world.deps(&settings);
        let caller = CallerArn::try_from(format!("arn:aws:sts::123456789012:assumed-role/{role}/alice")).unwrap();
        let intake = SubmitDeps {
            store: &world.store,
            directory: &Users,
            settings: &settings,
            administrators: &NO_ADMINISTRATORS,
        };
        let body = br#"{"nodeId": "i-0123456789abcdef0", "reason": "disk full", "durationMinutes": 30}"#;
        let submitted = submit::submit(&intake, &caller, body, None, now).await.unwrap().request;
        let approved = Transition {
            decision: Some(decision(RequestStatus::Approved, None, now)),
            approval_seal: sealed_if_approved(&submitted, RequestStatus::Approved),
            ..Transition::status_change(&submitted, RequestStatus::Approved, "system:evaluator", "decided", now)
        };
        world.store.transition(&approved).await.unwrap();

        // Act
        let out = lifecycle::grant(&deps, &submitted.request_id, None, now).await.unwrap();

        // Assert: granted, or failed with the fix named and nothing attached.
        let stored = world.store.get(&submitted.request_id).await.unwrap().unwrap();
        assert_eq!(out.granted, granted, "{role}");
        if !granted {
            assert_eq!(stored.status, RequestStatus::Failed);
            let trail = world.store.audit_trail(&submitted.request_id).await.unwrap();
            let reason = &trail.last().unwrap().reason;
            assert!(reason.contains("sts:RoleSessionName") && reason.contains("credentials"), "{reason}");
            assert!(world.policies.0.lock().unwrap().is_empty());
        }
    }
}

#[tokio::test]
async fn one_person_behind_two_sessions_of_a_role_that_does_not_pin_names_counts_once() {
    // Arrange: a request needing two approvals from the Ops role's sessions (or lead).
    let now = Utc::now();
    let store = MemoryStore::default();
    let key = key();
    let settings = settings();
    let intake =
        SubmitDeps { store: &store, directory: &Users, settings: &settings, administrators: &NO_ADMINISTRATORS };
    let body = br#"{"nodeId": "i-0123456789abcdef0", "reason": "disk full", "durationMinutes": 30}"#;
    let submitted = submit::submit(&intake, &ARN_ALICE, body, None, now).await.unwrap().request;
    let plan = ApprovalPlan {
        policy_name: "ops".into(),
        levels: vec![ApprovalLevel {
            min_approvals: 2,
            approvers: vec![Approver::IamRole("Ops".into()), Approver::IamUser("lead".into())],
            ..Default::default()
        }],
    };
    let pending = Transition {
        decision: Some(decision(RequestStatus::Pending, Some(plan), now)),
        progress: Some(ApprovalProgress::start(now + Duration::hours(1))),
        ..Transition::status_change(&submitted, RequestStatus::Pending, "system:evaluator", "decided", now)
    };
    let request = store.transition(&pending).await.unwrap();
    let deps = approvals(&store, &key, &NO_ADMINISTRATORS);
    let session =
        |name: &str| CallerArn::try_from(format!("arn:aws:sts::123456789012:assumed-role/Ops/{name}")).unwrap();

    // Act: the same person approves as two sessions.
    let id = request.request_id.as_str();
    approve::decide_as_caller(&deps, &session("mallory"), id, Verdict::Approve, b"", now).await.unwrap();
    let second = approve::decide_as_caller(&deps, &session("mallory-2"), id, Verdict::Approve, b"", now).await;

    // Assert
    assert_eq!(second.unwrap_err().code(), "AlreadyDecided");
    assert_eq!(store.get(&request.request_id).await.unwrap().unwrap().status, RequestStatus::Pending);
}

#[tokio::test]
async fn an_identity_center_user_and_their_iam_user_are_one_person() {
    // Arrange: carol (Identity Center) is also IAM user carol.smith, who is in the approving
    // group; carol asks for access.
    let now = Utc::now();
    let store = MemoryStore::default();
    let key = key();
    let contacts = jit_shared::policy::contacts::parse_contacts(
        "contacts:\n  - identityCenterUser: carol\n    email: carol@example.com\n    sameAs:\n      - iamUser: carol.smith\n",
    )
    .unwrap();
    let people = jit_shared::policy::contacts::People::from_contacts(&contacts);
    let deps = ApprovalDeps {
        store: &store,
        directory: &Users,
        key: &key,
        administrators: &NO_ADMINISTRATORS,
        people: &people,
        seal: &*SEAL,
    };
    let settings = settings();
    let intake =
        SubmitDeps { store: &store, directory: &Users, settings: &settings, administrators: &NO_ADMINISTRATORS };
    let carol_ic =
        CallerArn::try_from("arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Ops_1/carol".to_owned()).unwrap();
    let body = br#"{"nodeId": "i-0123456789abcdef0", "reason": "disk full", "durationMinutes": 30}"#;
    let submitted = submit::submit(&intake, &carol_ic, body, None, now).await.unwrap().request;
    let plan = ApprovalPlan {
        policy_name: "prod".into(),
        levels: vec![ApprovalLevel {
            min_approvals: 1,
            approvers: vec![Approver::IamUser("carol.smith".into())],
            ..Default::default()
        }],
    };
    let pending = Transition {
        decision: Some(decision(RequestStatus::Pending, Some(plan), now)),
        progress: Some(ApprovalProgress::start(now + Duration::hours(1))),
        ..Transition::status_change(&submitted, RequestStatus::Pending, "system:evaluator", "decided", now)
    };
    store.transition(&pending).await.unwrap();

    // Act: carol approves as her IAM user.
    let got = approve::decide_as_caller(
        &deps,
        &arn("carol.smith"),
        submitted.request_id.as_str(),
        Verdict::Approve,
        b"",
        now,
    )
    .await;

    // Assert: her own request, whichever identity she uses.
    let err = got.unwrap_err();
    assert_eq!(err.code(), "Forbidden");
    assert!(err.to_string().contains("their own request"), "{err}");
}

#[tokio::test]
async fn an_approved_item_without_a_valid_seal_grants_nothing_in_either_mode() {
    // Arrange: approvals written straight into the store (as anyone with PutItem could), with no
    // seal or with the seal of another request.
    let now = Utc::now();
    let other = decided(&MemoryStore::default(), RequestStatus::Approved, now).await;
    let stolen = other.approval_seal.clone();
    assert!(stolen.is_some(), "a genuine approval is sealed");
    for (mode, seal) in
        [(GrantMode::Attach, None), (GrantMode::Attach, stolen.clone()), (GrantMode::Credentials, stolen)]
    {
        let world = Lifecycle::default();
        let settings = GrantSettings { mode, ..settings() };
        let deps = world.deps(&settings);
        let request = decided_in(mode, &world.store, RequestStatus::Pending, now).await;
        let forged = Transition {
            approval_seal: seal.clone(),
            ..Transition::status_change(&request, RequestStatus::Approved, "mallory", "forged", now)
        };
        world.store.transition(&forged).await.unwrap();
        let issuer = MemoryIssuer::default();
        let cred_deps = issuing(&world.store, &issuer, &settings);

        // Act
        let fetched = credentials::issue(&cred_deps, &ARN_ALICE, request.request_id.as_str(), now).await;
        let out = lifecycle::grant(&deps, &request.request_id, None, now).await.unwrap();

        // Assert: nothing attached or issued; the request is Failed with the reason.
        assert!(!out.granted, "{mode:?} {seal:?}");
        assert!(world.policies.0.lock().unwrap().is_empty());
        assert!(issuer.issued.lock().unwrap().is_empty());
        let refused = if mode == GrantMode::Credentials { "Forbidden" } else { "AttachModeGrant" };
        assert_eq!(fetched.unwrap_err().code(), refused);
        let stored = world.store.get(&request.request_id).await.unwrap().unwrap();
        assert_eq!(stored.status, RequestStatus::Failed);
        let trail = world.store.audit_trail(&request.request_id).await.unwrap();
        assert!(trail.last().unwrap().reason.contains("no valid seal"), "{:?}", trail.last());
    }
}

/// Live sessions a test opens by owner; `terminate` ends them. While `failing` is above zero,
/// listing fails (a teardown that cannot reach Session Manager).
#[derive(Default)]
struct LiveSessions {
    open: Mutex<Vec<(String, String)>>,
    ended: Mutex<Vec<String>>,
    failing: AtomicU32,
}

impl LiveSessions {
    /// Opens a session of `owner` (an ARN) and returns its id.
    fn open(&self, owner: &str) -> String {
        let mut open = self.open.lock().unwrap();
        let id = format!("{}-{:04}", owner.rsplit('/').next().unwrap(), open.len() + self.ended.lock().unwrap().len());
        open.push((owner.to_owned(), id.clone()));
        id
    }

    fn still_open(&self) -> Vec<String> {
        self.open.lock().unwrap().iter().map(|(_, id)| id.clone()).collect()
    }
}

#[async_trait]
impl SessionControl for LiveSessions {
    async fn live_sessions(&self, _node: &NodeId, owner_arn: &str) -> Result<Vec<String>, PortError> {
        if self.failing.load(Ordering::SeqCst) > 0 {
            self.failing.fetch_sub(1, Ordering::SeqCst);
            return Err(PortError::Transient("injected: DescribeSessions timed out".into()));
        }
        Ok(self.open.lock().unwrap().iter().filter(|(o, _)| o == owner_arn).map(|(_, id)| id.clone()).collect())
    }
    async fn terminate(&self, _node: &NodeId, session_id: &str) -> Result<(), PortError> {
        self.open.lock().unwrap().retain(|(_, id)| id != session_id);
        self.ended.lock().unwrap().push(session_id.to_owned());
        Ok(())
    }
}

/// IAM that refuses every delete on one principal for good (its eligibility tag was removed, say),
/// `after` a while.
struct RefusesDeletesOn<'a> {
    inner: &'a Policies,
    principal: GrantPrincipal,
    after: std::time::Duration,
}

impl<'a> RefusesDeletesOn<'a> {
    /// Refusing alice's deletes.
    fn alice(inner: &'a Policies, after: std::time::Duration) -> Self {
        Self { inner, principal: GrantPrincipal::IamUser { name: "alice".into() }, after }
    }
}

#[async_trait]
impl AccessGranter for RefusesDeletesOn<'_> {
    async fn role(&self, role: &str) -> Result<jit_shared::ports::RoleFacts, GrantWriteError> {
        self.inner.role(role).await
    }
    async fn put_policy(&self, principal: &GrantPrincipal, name: &str, document: &str) -> Result<(), GrantWriteError> {
        self.inner.put_policy(principal, name, document).await
    }
    async fn delete_policy(&self, principal: &GrantPrincipal, name: &str) -> Result<bool, PortError> {
        if *principal == self.principal {
            tokio::time::sleep(self.after).await;
            return Err(PortError::Permanent("AccessDenied: iam:DeleteUserPolicy (injected)".into()));
        }
        self.inner.delete_policy(principal, name).await
    }
    async fn list_policies(&self, principal: &GrantPrincipal) -> Result<Vec<String>, PortError> {
        self.inner.list_policies(principal).await
    }
}

const ALICE: &str = "arn:aws:iam::123456789012:user/alice";

/// An attach-mode request by alice, approved and granted at `now` (30 minutes).
async fn granted_to_alice(world: &Lifecycle, deps: &LifecycleDeps<'_>, now: DateTime<Utc>) -> AccessRequest {
    let request = decided(&world.store, RequestStatus::Approved, now).await;
    *lifecycle::grant(
        deps,
        &request.request_id,
        Some("arn:aws:states:us-east-1:123456789012:execution:jit-lifecycle:e1"),
        now,
    )
    .await
    .unwrap()
    .request
}

/// The administrator revokes `request` (its Revoked event is not delivered here).
async fn revoked_by_the_administrator(world: &Lifecycle, request: &AccessRequest, now: DateTime<Utc>) {
    let admins = Administrators::parse([ARN_ADMIN.as_str()]).unwrap();
    let k = key();
    approve::revoke(&approvals(&world.store, &k, &admins), &ARN_ADMIN, request.request_id.as_str(), b"", now)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_revoke_whose_event_was_lost_still_ends_the_sessions_within_one_sweep() {
    // Arrange: granted, a shell open; the administrator revokes, and the Revoked event is lost.
    let now = Utc::now();
    let world = Lifecycle::default();
    let settings = settings();
    let sessions = LiveSessions::default();
    let deps = LifecycleDeps { sessions: &sessions, ..world.deps(&settings) };
    let request = granted_to_alice(&world, &deps, now).await;
    let shell = sessions.open(ALICE);
    revoked_by_the_administrator(&world, &request, now).await;

    // Act: the next sweep, five minutes later.
    let report = sweep::sweep(&deps, now + Duration::minutes(5)).await.unwrap().grants;

    // Assert
    assert_eq!(report.ended_cleaned, [request.request_id.to_string()], "{report:?}");
    assert_eq!(*sessions.ended.lock().unwrap(), [shell]);
    assert!(world.policies.0.lock().unwrap().is_empty(), "the policy is gone too");
    let again = sweep::sweep(&deps, now + Duration::minutes(10)).await.unwrap().grants;
    assert_eq!(again.fixed(), 0, "nothing left to fix: {again:?}");
}

#[tokio::test]
async fn a_revoke_whose_teardown_fails_three_times_still_ends_the_sessions_within_one_sweep() {
    // Arrange: granted, a shell open, revoked; Session Manager fails every attempt of the branch.
    let now = Utc::now();
    let world = Lifecycle::default();
    let settings = settings();
    let sessions = LiveSessions::default();
    let deps = LifecycleDeps { sessions: &sessions, ..world.deps(&settings) };
    let request = granted_to_alice(&world, &deps, now).await;
    let shell = sessions.open(ALICE);
    revoked_by_the_administrator(&world, &request, now).await;
    sessions.failing.store(3, Ordering::SeqCst);
    let task = Task::Revoke { request_id: request.request_id.clone(), second_pass: false };
    for _ in 0..3 {
        let err = lifecycle::run_task(&deps, &task, now).await.unwrap_err();
        assert_eq!(err.lambda_error_type(), "Retryable", "{err}");
    }
    assert_eq!(sessions.still_open(), std::slice::from_ref(&shell), "the failed teardown left the shell open");

    // Act
    let report = sweep::sweep(&deps, now + Duration::minutes(5)).await.unwrap().grants;

    // Assert
    assert_eq!(*sessions.ended.lock().unwrap(), [shell], "{report:?}");
    assert!(world.policies.0.lock().unwrap().is_empty(), "the policy went on the first attempt already");
}

#[tokio::test]
async fn a_session_started_while_a_revoke_propagates_is_ended_by_the_second_pass() {
    // Arrange
    let now = Utc::now();
    let world = Lifecycle::default();
    let settings = settings();
    let sessions = LiveSessions::default();
    let deps = LifecycleDeps { sessions: &sessions, ..world.deps(&settings) };
    let request = granted_to_alice(&world, &deps, now).await;
    let first = sessions.open(ALICE);
    revoked_by_the_administrator(&world, &request, now).await;
    let id = request.request_id.clone();

    // Act: the first pass; a session opens before the policy's removal reached every IAM
    // endpoint; then the second pass.
    lifecycle::run_task(&deps, &Task::Revoke { request_id: id.clone(), second_pass: false }, now).await.unwrap();
    let during_propagation = sessions.open(ALICE);
    let second = Task::Revoke { request_id: id.clone(), second_pass: true };
    let out = lifecycle::run_task(&deps, &second, now + Duration::seconds(60)).await.unwrap();

    // Assert: both ended, and the grant's execution was stopped once (by the first pass).
    assert_eq!(*sessions.ended.lock().unwrap(), [first, during_propagation.clone()]);
    assert_eq!(out["terminatedSessions"], serde_json::json!([during_propagation]));
    assert_eq!(world.executions.stopped.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_permanent_iam_failure_on_one_principal_neither_stops_the_sweep_of_others_nor_keeps_its_sessions_open() {
    // Arrange: alice's and bob's grants are both past their deadline; IAM refuses deletes on
    // alice; both have a shell open.
    let now = Utc::now();
    let world = Lifecycle::default();
    let settings = settings();
    let sessions = LiveSessions::default();
    let alice_principal = GrantPrincipal::IamUser { name: "alice".into() };
    let iam = RefusesDeletesOn { inner: &world.policies, principal: alice_principal, after: std::time::Duration::ZERO };
    let deps = LifecycleDeps { sessions: &sessions, granter: &iam, ..world.deps(&settings) };
    let alices = granted_to_alice(&world, &deps, now).await;
    let bobs =
        decided_by("bob", "i-0123456789abcdef0", GrantMode::Attach, &world.store, RequestStatus::Approved, now).await;
    lifecycle::grant(&deps, &bobs.request_id, None, now).await.unwrap();
    let alice_shell = sessions.open(ALICE);
    let bob_shell = sessions.open("arn:aws:iam::123456789012:user/bob");

    // Act
    let report = sweep::sweep(&deps, now + Duration::minutes(31)).await.unwrap().grants;

    // Assert: bob's grant expired; alice's is recorded as failed, yet her shell was ended.
    assert_eq!(report.expired, [bobs.request_id.to_string()], "{report:?}");
    assert_eq!(report.item_failures.len(), 1, "{report:?}");
    assert_eq!(report.item_failures[0].item, alices.request_id.to_string());
    assert!(report.item_failures[0].error.contains("AccessDenied"), "{report:?}");
    let mut ended = sessions.ended.lock().unwrap().clone();
    ended.sort();
    assert_eq!(ended, [alice_shell, bob_shell]);
    let alices_now = world.store.get(&alices.request_id).await.unwrap().unwrap();
    assert_eq!(alices_now.status, RequestStatus::Approved, "not recorded as ended while its policy stays");
}

#[tokio::test]
async fn ending_one_request_spares_the_sessions_an_overlapping_live_request_covers() {
    // Arrange: alice holds two attach-mode grants on the same node, the second 10 minutes later.
    let now = Utc::now();
    let world = Lifecycle::default();
    let settings = settings();
    let sessions = LiveSessions::default();
    let deps = LifecycleDeps { sessions: &sessions, ..world.deps(&settings) };
    let first = granted_to_alice(&world, &deps, now).await;
    let later = now + Duration::minutes(10);
    let second = decided(&world.store, RequestStatus::Approved, later).await;
    lifecycle::grant(&deps, &second.request_id, None, later).await.unwrap();
    let shell = sessions.open(ALICE);

    // Act: the first expires while the second still runs; then the second expires.
    let at_first_deadline = now + Duration::minutes(30);
    let first_end =
        lifecycle::expire(&deps, world.store.get(&first.request_id).await.unwrap().unwrap(), at_first_deadline)
            .await
            .unwrap();
    let open_between = sessions.still_open();
    let second_end = lifecycle::expire(
        &deps,
        world.store.get(&second.request_id).await.unwrap().unwrap(),
        later + Duration::minutes(30),
    )
    .await
    .unwrap();

    // Assert
    assert_eq!(first_end.status, RequestStatus::Expired);
    assert!(first_end.terminated_sessions.is_empty(), "{first_end:?}");
    assert_eq!(open_between, std::slice::from_ref(&shell), "the second request still covers the shell");
    assert_eq!(second_end.terminated_sessions, [shell]);
    assert!(sessions.still_open().is_empty());
}

#[tokio::test]
async fn a_request_stuck_in_submitted_is_failed_with_a_reason_by_the_sweep() {
    // Arrange: one submission whose evaluation never came, one just made.
    let now = Utc::now();
    let world = Lifecycle::default();
    let settings = settings();
    let deps = world.deps(&settings);
    let submit_at = |at: DateTime<Utc>| {
        let settings = &settings;
        let store = &world.store;
        async move {
            let deps = SubmitDeps { store, directory: &Users, settings, administrators: &NO_ADMINISTRATORS };
            let body = r#"{"nodeId": "i-0123456789abcdef0", "reason": "disk full", "durationMinutes": 30}"#;
            submit::submit(&deps, &arn("alice"), body.as_bytes(), None, at).await.unwrap().request
        }
    };
    let stuck = submit_at(now - Duration::minutes(sweep::STUCK_SUBMITTED_MINUTES + 1)).await;
    let fresh = submit_at(now).await;

    // Act
    let report = sweep::sweep(&deps, now).await.unwrap().grants;

    // Assert
    assert_eq!(report.stuck_failed, [stuck.request_id.to_string()], "{report:?}");
    let stored = world.store.get(&stuck.request_id).await.unwrap().unwrap();
    assert_eq!(stored.status, RequestStatus::Failed);
    let trail = world.store.audit_trail(&stuck.request_id).await.unwrap();
    assert!(trail.last().unwrap().reason.contains("never evaluated"), "{trail:?}");
    assert_eq!(world.store.get(&fresh.request_id).await.unwrap().unwrap().status, RequestStatus::Submitted);
}

/// An `AWS_IAM`-signed API call as API Gateway hands it over.
fn api_call(method: &str, path: &str, caller: &CallerArn) -> jit_shared::http::ApiRequest {
    jit_shared::http::ApiRequest {
        method: method.into(),
        path: path.into(),
        caller: Some(caller.to_string()),
        api_account: Some("123456789012".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_request_cancelled_before_it_is_evaluated_stays_cancelled() {
    // Arrange: alice asks; evaluation has not run yet.
    let now = Utc::now();
    let w = Workflows::new(GrantMode::Attach);
    let submitted = submit::submit(&w.intake(), &ARN_ALICE, DEV_ASK.as_bytes(), None, now).await.unwrap().request;
    let k = key();
    let deps = approvals(&w.world.store, &k, &NO_ADMINISTRATORS);

    // Act: she cancels at once; then the Submitted event is evaluated.
    let cancelled = approve::cancel(&deps, &ARN_ALICE, submitted.request_id.as_str(), b"", now).await.unwrap();
    let evaluated = jit_shared::app::evaluate::evaluate(&w.evaluation(&DEV_NODES), &submitted.request_id, now).await;

    // Assert: cancelled, and the evaluation changed nothing.
    assert_eq!(cancelled.status, RequestStatus::Cancelled);
    assert_eq!(
        evaluated.unwrap(),
        jit_shared::app::evaluate::EvaluationOutcome::AlreadyDecided(RequestStatus::Cancelled)
    );
    assert_eq!(w.get(&submitted.request_id).await.status, RequestStatus::Cancelled);
}

#[tokio::test]
async fn the_audit_trail_is_read_by_the_requester_its_approvers_and_administrators_only() {
    // Arrange: alice's request waits on the two-level plan (lead, then c or d); admin is an
    // administrator.
    let now = Utc::now();
    let store = MemoryStore::default();
    let settings = settings();
    let admins = Administrators::parse(["arn:aws:iam::123456789012:user/admin"]).unwrap();
    let deps = SubmitDeps { store: &store, directory: &Users, settings: &settings, administrators: &admins };
    let request = decided(&store, RequestStatus::Pending, now).await;
    let path = format!("/requests/{}/audit", request.request_id);
    let cases = [("alice", 200), ("lead", 200), ("d", 200), ("admin", 200), ("mallory", 404)];
    for (who, status) in cases {
        // Act
        let response = jit_shared::http::submit::handle(&deps, &api_call("GET", &path, &arn(who)), now).await;
        // Assert: the whole trail, oldest first, or nothing at all for a stranger.
        assert_eq!(response.status, status, "{who}: {}", response.body_text());
        if status == 200 {
            let steps: Vec<(&str, &str)> = response.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| (r["to"].as_str().unwrap(), r["actor"].as_str().unwrap()))
                .collect();
            assert_eq!(
                steps,
                [("Submitted", "arn:aws:iam::123456789012:user/alice"), ("Pending", "system:evaluator")],
                "{who}"
            );
            assert_eq!(response.body["requestId"], request.request_id.as_str());
        } else {
            assert!(!response.body_text().contains("system:evaluator"), "{who}: {}", response.body_text());
        }
    }
}

#[tokio::test]
async fn an_administrator_revokes_every_live_grant_of_a_person_at_once_and_nothing_else() {
    // Arrange: alice holds two live grants (one attached, one not yet) and waits on a third;
    // bob holds one. admin is an administrator.
    let now = Utc::now();
    let world = Lifecycle::default();
    let settings = settings();
    let key = key();
    let admins = Administrators::parse(["arn:aws:iam::123456789012:user/admin"]).unwrap();
    let deps = approvals(&world.store, &key, &admins);
    let granted =
        decided_by("alice", "i-0123456789abcdef0", GrantMode::Attach, &world.store, RequestStatus::Approved, now).await;
    lifecycle::grant(&world.deps(&settings), &granted.request_id, None, now).await.unwrap();
    let approved =
        decided_by("alice", "i-0aaaaaaaaaaaaaaa1", GrantMode::Attach, &world.store, RequestStatus::Approved, now).await;
    let pending =
        decided_by("alice", "i-0bbbbbbbbbbbbbbb2", GrantMode::Attach, &world.store, RequestStatus::Pending, now).await;
    let bobs =
        decided_by("bob", "i-0123456789abcdef0", GrantMode::Attach, &world.store, RequestStatus::Approved, now).await;
    let status = |id: RequestId| {
        let store = &world.store;
        async move { store.get(&id).await.unwrap().unwrap().status }
    };
    let path = "/people/iam-user%23alice/revoke";

    // Act 1: someone who is not an administrator (alice's approver) tries.
    let refused = jit_shared::http::approve::handle(&deps, &api_call("POST", path, &arn("lead")), now).await;
    // Assert 1
    assert_eq!(refused.status, 403, "{}", refused.body_text());
    assert_eq!(status(granted.request_id.clone()).await, RequestStatus::Approved);

    // Act 2: the administrator.
    let done = jit_shared::http::approve::handle(&deps, &api_call("POST", path, &ARN_ADMIN), now).await;
    // Assert 2: both of alice's live requests are revoked, each one change with its event;
    // her pending request and bob's grant are untouched.
    assert_eq!(done.status, 200, "{}", done.body_text());
    let mut revoked: Vec<String> =
        done.body["revoked"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    revoked.sort();
    let mut expected = vec![granted.request_id.to_string(), approved.request_id.to_string()];
    expected.sort();
    assert_eq!(revoked, expected);
    assert_eq!(done.body["countedAs"], "iam-user#alice");
    for id in [&granted.request_id, &approved.request_id] {
        assert_eq!(status(id.clone()).await, RequestStatus::Revoked);
        let last = world.store.audit_trail(id).await.unwrap().pop().unwrap();
        assert_eq!(last.actor, ARN_ADMIN.to_string());
        assert!(last.reason.contains("every grant of IAM user alice"), "{}", last.reason);
    }
    let revoked_events = world
        .store
        .changes()
        .iter()
        .flat_map(ChangeRecord::events)
        .filter(|e| e.detail_type() == "Access Request Revoked")
        .count();
    assert_eq!(revoked_events, 2);
    assert_eq!(status(pending.request_id).await, RequestStatus::Pending);
    assert_eq!(status(bobs.request_id).await, RequestStatus::Approved);

    // Act 3: the call again (a retry). Assert 3: nothing left to revoke, nothing written.
    let changes_before = world.store.changes().len();
    let again = jit_shared::http::approve::handle(&deps, &api_call("POST", path, &ARN_ADMIN), now).await;
    assert_eq!(again.status, 200, "{}", again.body_text());
    assert_eq!(again.body["revoked"], serde_json::json!([]));
    assert_eq!(world.store.changes().len(), changes_before);
}

#[tokio::test]
async fn a_person_revoke_naming_no_person_is_refused_naming_the_field() {
    let store = MemoryStore::default();
    let key = key();
    let admins = Administrators::parse(["arn:aws:iam::123456789012:user/admin"]).unwrap();
    let deps = approvals(&store, &key, &admins);
    for path in [
        "/people/alice/revoke",
        "/people/iam-user%23/revoke",
        "/people/iam-user%2/revoke",
        "/people/iam-role-session%23OnCall/revoke",
    ] {
        let response = jit_shared::http::approve::handle(&deps, &api_call("POST", path, &ARN_ADMIN), Utc::now()).await;
        assert_eq!(response.status, 400, "{path}: {}", response.body_text());
        assert_eq!(response.body["error"]["field"], "person", "{path}");
    }
}

/// Every node carries `Environment` = this value.
struct NodesIn(&'static str);

/// Development nodes, which `auto_and_manual()` auto-approves.
const DEV_NODES: NodesIn = NodesIn("Development");

#[async_trait]
impl jit_shared::ports::NodeDirectory for NodesIn {
    async fn describe(&self, node: &NodeId) -> Result<jit_shared::policy::NodeInfo, DirectoryError> {
        Ok(jit_shared::policy::NodeInfo {
            node_id: node.clone(),
            location: jit_shared::domain::ids::NodeLocation {
                partition: "aws".into(),
                account: "123456789012".into(),
                region: "us-east-1".into(),
            },
            tags: [("Environment".to_owned(), self.0.to_owned())].into(),
        })
    }
}

#[tokio::test]
async fn a_requester_holding_the_most_live_requests_allowed_is_refused_one_more_and_may_ask_again_once_one_ends() {
    // Arrange: at most 2 live requests; alice holds one approved and one pending; an expired
    // one does not count.
    let now = Utc::now();
    let store = MemoryStore::default();
    let policies = auto_and_manual();
    let deps = jit_shared::app::evaluate::EvaluationDeps {
        store: &store,
        principals: &Users,
        nodes: &DEV_NODES,
        policies: &policies,
        pending_timeout_minutes: 60,
        seal: &*SEAL,
        max_active_requests: 2,
    };
    let approved = decided_on("i-0123456789abcdef0", GrantMode::Attach, &store, RequestStatus::Approved, now).await;
    decided_on("i-0aaaaaaaaaaaaaaa1", GrantMode::Attach, &store, RequestStatus::Pending, now).await;
    let long_ago = now - Duration::hours(3);
    decided_on("i-0bbbbbbbbbbbbbbb2", GrantMode::Attach, &store, RequestStatus::Approved, long_ago).await;
    let evaluate_new = |at: DateTime<Utc>| {
        let deps = &deps;
        let store = &store;
        async move {
            let settings = settings();
            let intake =
                SubmitDeps { store, directory: &Users, settings: &settings, administrators: &NO_ADMINISTRATORS };
            let body = br#"{"nodeId": "i-0ccccccccccccccc3", "reason": "disk full", "durationMinutes": 30}"#;
            let submitted = submit::submit(&intake, &arn("alice"), body, None, at).await.unwrap().request;
            jit_shared::app::evaluate::evaluate(deps, &submitted.request_id, at).await.unwrap();
            store.get(&submitted.request_id).await.unwrap().unwrap()
        }
    };

    // Act 1: a third request.
    let refused = evaluate_new(now).await;
    // Assert 1: Failed, saying why and which requests are live.
    assert_eq!(refused.status, RequestStatus::Failed);
    let decision = refused.decision.unwrap();
    assert_eq!(decision.failure_code.as_deref(), Some("TooManyActiveRequests"));
    assert!(decision.message.contains("at most 2") && decision.message.contains(approved.request_id.as_str()));

    // Act 2: the approved one is revoked; alice asks again.
    let revoked = Transition::status_change(&approved, RequestStatus::Revoked, "test", "revoked", now);
    store.transition(&revoked).await.unwrap();
    let granted = evaluate_new(now).await;
    // Assert 2
    assert_eq!(granted.status, RequestStatus::Approved, "{:?}", granted.decision);
}

#[tokio::test]
async fn an_approver_lists_the_requests_they_decided_newest_first_and_nobody_elses() {
    // Arrange: lead approves one request (level 1) and rejects another; alice's third waits.
    let now = Utc::now();
    let store = MemoryStore::default();
    let key = key();
    let deps = approvals(&store, &key, &NO_ADMINISTRATORS);
    let approved = decided_on("i-0123456789abcdef0", GrantMode::Attach, &store, RequestStatus::Pending, now).await;
    let rejected = decided_on("i-0aaaaaaaaaaaaaaa1", GrantMode::Attach, &store, RequestStatus::Pending, now).await;
    decided_on("i-0bbbbbbbbbbbbbbb2", GrantMode::Attach, &store, RequestStatus::Pending, now).await;
    let id = |r: &AccessRequest| r.request_id.to_string();
    approve::decide_as_caller(&deps, &ARN_LEAD, approved.request_id.as_str(), Verdict::Approve, b"", now)
        .await
        .unwrap();
    let later = now + Duration::minutes(1);
    approve::decide_as_caller(&deps, &ARN_LEAD, rejected.request_id.as_str(), Verdict::Reject, b"", later)
        .await
        .unwrap();
    let listed = |who: CallerArn, query: Vec<(String, String)>| {
        let deps = &deps;
        async move {
            let request = jit_shared::http::ApiRequest { query, ..api_call("GET", "/approvals", &who) };
            jit_shared::http::approve::handle(deps, &request, later).await
        }
    };
    let decided = || vec![("decided".to_owned(), "true".to_owned())];

    // Act
    let lead = listed(ARN_LEAD.clone(), decided()).await;
    let someone_else = listed(arn("c"), decided()).await;
    let bad = listed(ARN_LEAD.clone(), vec![("decided".to_owned(), "yes".to_owned())]).await;

    // Assert
    let ids = |r: &jit_shared::http::ApiResponse| -> Vec<String> {
        r.body["items"].as_array().unwrap().iter().map(|i| i["requestId"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(lead.status, 200, "{}", lead.body_text());
    assert_eq!(ids(&lead), [id(&rejected), id(&approved)]);
    assert_eq!(someone_else.status, 200);
    assert!(ids(&someone_else).is_empty());
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["error"]["field"], "decided");
}

/// Development nodes are auto-approved (window 45 minutes); production nodes need lead's
/// approval, for at most 240 minutes.
fn auto_and_manual() -> jit_shared::policy::PolicySet {
    let file = |path: &str, text: &str| jit_shared::policy::PolicyFile { path: path.into(), text: text.into() };
    jit_shared::policy::PolicySet::from_files(&[
        file(
            "auto.cedar",
            r#"@id("dev-auto")
@accessWindowMinutes("45")
permit (principal, action == AWS::SSM::Action::"getTokenForInstanceAccess", resource)
when { resource.hasTag("Environment") && resource.getTag("Environment") == "Development" };"#,
        ),
        file(
            "prod.yaml",
            "name: prod\ntargets: {tags: [{key: Environment, value: Production}]}\nmaxDurationMinutes: 240\nlevels:\n  - minApprovals: 1\n    approvers:\n      - iamUser: lead\n",
        ),
    ])
    .unwrap()
}

#[tokio::test]
async fn a_request_without_a_duration_lasts_the_deciding_policys_window_or_maximum() {
    // Arrange: alice asks for a development node and a production node, without a duration.
    let now = Utc::now();
    let settings = settings();
    let policies = auto_and_manual();
    let world = Lifecycle::default();
    let intake =
        SubmitDeps { store: &world.store, directory: &Users, settings: &settings, administrators: &NO_ADMINISTRATORS };
    let ask = |node: &'static str| {
        let intake = &intake;
        async move {
            let body = format!(r#"{{"nodeId": "{node}", "reason": "disk full"}}"#);
            submit::submit(intake, &arn("alice"), body.as_bytes(), None, now).await.unwrap().request
        }
    };
    let evaluate = |nodes: &'static NodesIn, id: RequestId| {
        let world = &world;
        let policies = &policies;
        async move {
            let deps = jit_shared::app::evaluate::EvaluationDeps {
                store: &world.store,
                principals: &Users,
                nodes,
                policies,
                pending_timeout_minutes: 60,
                seal: &*SEAL,
                max_active_requests: 5,
            };
            jit_shared::app::evaluate::evaluate(&deps, &id, now).await.unwrap();
            world.store.get(&id).await.unwrap().unwrap()
        }
    };
    static PROD_NODES: NodesIn = NodesIn("Production");
    let dev = ask("i-0123456789abcdef0").await;
    let prod = ask("i-0aaaaaaaaaaaaaaa1").await;
    assert!(dev.duration_from_policy);

    // Act
    let dev = evaluate(&DEV_NODES, dev.request_id).await;
    let prod = evaluate(&PROD_NODES, prod.request_id).await;
    let key = key();
    let deps = approvals(&world.store, &key, &NO_ADMINISTRATORS);
    let prod = approve::decide_as_caller(&deps, &ARN_LEAD, prod.request_id.as_str(), Verdict::Approve, b"", now)
        .await
        .unwrap();
    let granted = lifecycle::grant(&world.deps(&settings), &dev.request_id, None, now).await.unwrap().request;

    // Assert: the auto-approval window and the manual maximum, sealed as such (the grant
    // checks the seal), never the placeholder.
    assert_eq!((dev.status, dev.duration_minutes.get()), (RequestStatus::Approved, 45), "{:?}", dev.decision);
    assert_eq!((prod.status, prod.duration_minutes.get()), (RequestStatus::Approved, 240));
    assert_eq!(granted.grant.unwrap().deadline, dev.approved_at.unwrap() + Duration::minutes(45));
}

#[tokio::test]
async fn credentials_name_the_person_as_source_identity_and_a_shared_role_as_itself_not_a_session_name() {
    // Arrange: credentials mode; in this directory no role pins its session names, and
    // contacts.yaml says Identity Center user carol is also IAM user carol.smith.
    let now = Utc::now();
    let store = MemoryStore::default();
    let issuer = MemoryIssuer::default();
    let settings = credentials_settings();
    let contacts = jit_shared::policy::contacts::parse_contacts(
        "contacts:\n  - identityCenterUser: carol\n    email: carol@example.com\n    sameAs:\n      - iamUser: carol.smith\n",
    )
    .unwrap();
    let people = jit_shared::policy::contacts::People::from_contacts(&contacts);
    let deps = CredentialsDeps {
        store: &store,
        issuer: &issuer,
        settings: &settings,
        seal: &*SEAL,
        directory: &Users,
        people: &people,
    };
    let intake =
        SubmitDeps { store: &store, directory: &Users, settings: &settings, administrators: &NO_ADMINISTRATORS };
    let cases = [
        ("arn:aws:sts::123456789012:assumed-role/OnCall/alice", "role=OnCall"),
        ("arn:aws:iam::123456789012:user/carol.smith", "carol"),
        ("arn:aws:iam::123456789012:user/bob", "bob"),
    ];
    for (requester, source_identity) in cases {
        let caller = CallerArn::try_from(requester.to_owned()).unwrap();
        let body = br#"{"nodeId": "i-0123456789abcdef0", "reason": "disk full", "durationMinutes": 30}"#;
        let submitted = submit::submit(&intake, &caller, body, None, now).await.unwrap().request;
        let approve = Transition {
            decision: Some(decision(RequestStatus::Approved, None, now)),
            approval_seal: sealed_if_approved(&submitted, RequestStatus::Approved),
            ..Transition::status_change(&submitted, RequestStatus::Approved, "system:evaluator", "decided", now)
        };
        store.transition(&approve).await.unwrap();

        // Act
        credentials::issue(&deps, &caller, submitted.request_id.as_str(), now).await.unwrap();

        // Assert
        let spec = issuer.issued.lock().unwrap().last().cloned().unwrap();
        assert_eq!(spec.source_identity, source_identity, "{requester}");
    }
}

#[tokio::test]
async fn the_live_request_limit_leaves_credentials_mode_auto_approvals_alone() {
    // Arrange: at most 1 live request; alice already holds one; the stack grants credentials.
    let now = Utc::now();
    let store = MemoryStore::default();
    let policies = auto_and_manual();
    let settings = credentials_settings();
    let deps = jit_shared::app::evaluate::EvaluationDeps {
        store: &store,
        principals: &Users,
        nodes: &DEV_NODES,
        policies: &policies,
        pending_timeout_minutes: 60,
        seal: &*SEAL,
        max_active_requests: 1,
    };
    decided_in(GrantMode::Credentials, &store, RequestStatus::Approved, now).await;
    let intake =
        SubmitDeps { store: &store, directory: &Users, settings: &settings, administrators: &NO_ADMINISTRATORS };
    let body = br#"{"nodeId": "i-0ccccccccccccccc3", "reason": "disk full", "durationMinutes": 30}"#;
    let submitted = submit::submit(&intake, &arn("alice"), body, None, now).await.unwrap().request;

    // Act
    jit_shared::app::evaluate::evaluate(&deps, &submitted.request_id, now).await.unwrap();

    // Assert: it holds nothing on any principal and asks no approver, so it is not limited.
    let decided = store.get(&submitted.request_id).await.unwrap().unwrap();
    assert_eq!(decided.status, RequestStatus::Approved, "{:?}", decided.decision);
}

#[tokio::test]
async fn an_escalation_approver_may_decide_a_level_only_once_it_has_waited_its_time() {
    // Arrange: one level, lead approves; after 30 minutes bob may decide it too.
    let now = Utc::now();
    let store = MemoryStore::default();
    let key = key();
    let deps = approvals(&store, &key, &NO_ADMINISTRATORS);
    let intake =
        SubmitDeps { store: &store, directory: &Users, settings: &settings(), administrators: &NO_ADMINISTRATORS };
    let body = br#"{"nodeId": "i-0123456789abcdef0", "reason": "disk full", "durationMinutes": 30}"#;
    let submitted = submit::submit(&intake, &ARN_ALICE, body, None, now).await.unwrap().request;
    let plan = ApprovalPlan {
        policy_name: "prod".into(),
        levels: vec![ApprovalLevel {
            min_approvals: 1,
            approvers: vec![Approver::IamUser("lead".into())],
            escalate_after_minutes: Some(30),
            escalate_to: vec![Approver::IamUser("bob".into())],
            ..Default::default()
        }],
    };
    let pending = Transition {
        decision: Some(decision(RequestStatus::Pending, Some(plan), now)),
        progress: Some(ApprovalProgress::start(now + Duration::hours(2))),
        ..Transition::status_change(&submitted, RequestStatus::Pending, "system:evaluator", "decided", now)
    };
    store.transition(&pending).await.unwrap();
    let id = submitted.request_id.as_str();
    let deps = &deps;
    let waiting_for_bob =
        |at: DateTime<Utc>| async move { approve::waiting_for(deps, &arn("bob"), at).await.unwrap().len() };

    // Act + Assert: before the escalation, bob is no approver and the request does not wait on him.
    assert_eq!(waiting_for_bob(now + Duration::minutes(29)).await, 0);
    let early = approve::decide_as_caller(deps, &arn("bob"), id, Verdict::Approve, b"", now + Duration::minutes(29))
        .await
        .unwrap_err();
    assert_eq!(early.code(), "Forbidden", "{early}");

    // Act + Assert: after it, the request waits on him too and his approval completes the level.
    assert_eq!(waiting_for_bob(now + Duration::minutes(30)).await, 1);
    let approved = approve::decide_as_caller(deps, &arn("bob"), id, Verdict::Approve, b"", now + Duration::minutes(31))
        .await
        .unwrap();
    assert_eq!(approved.status, RequestStatus::Approved);
    let entry = &approved.progress.unwrap().entries[0];
    assert_eq!(entry.matched, "iam-user#bob");
}

#[tokio::test]
async fn a_waiting_level_is_reminded_then_escalated_once_each_and_the_escalation_is_mailed_to_its_approvers() {
    // Arrange: one level (lead), reminded after 10 minutes, escalated to bob after 30.
    let now = Utc::now();
    let world = Lifecycle::default();
    let plan = ApprovalPlan {
        policy_name: "prod".into(),
        levels: vec![ApprovalLevel {
            min_approvals: 1,
            approvers: vec![Approver::IamUser("lead".into())],
            remind_after_minutes: Some(10),
            escalate_after_minutes: Some(30),
            escalate_to: vec![Approver::IamUser("bob".into())],
        }],
    };
    pending_under(&world, plan, now).await;
    let settings = settings();
    let deps = world.deps(&settings);
    let notices_at = |minutes: i64| {
        let deps = &deps;
        let store = &world.store;
        async move {
            let before = store.changes().len();
            sweep::sweep(deps, now + Duration::minutes(minutes)).await.unwrap();
            store.changes()[before..].iter().flat_map(ChangeRecord::events).map(|e| e.detail_type()).collect::<Vec<_>>()
        }
    };

    // Act + Assert: nothing at 5 minutes; the reminder at 11, once; the escalation at 31, once.
    assert!(notices_at(5).await.is_empty());
    assert_eq!(notices_at(11).await, ["Access Request Approval Reminder"]);
    assert!(notices_at(12).await.is_empty());
    assert_eq!(notices_at(31).await, ["Access Request Level Escalated"]);
    assert!(notices_at(32).await.is_empty());

    // Act: the notifier gets both events. Assert: the reminder goes to lead, the escalation to bob.
    let contacts = jit_shared::policy::contacts::parse_contacts(
        "contacts:\n  - iamUser: lead\n    email: lead@example.com\n  - iamUser: bob\n    email: bob@example.com\n",
    )
    .unwrap();
    let (key, outbox) = (key(), Outbox::default());
    let links = links();
    let notify = mail_only(&world.store, &Users, &outbox, &contacts, &key, &links);
    let notices: Vec<StatusEvent> =
        world.store.changes().iter().flat_map(ChangeRecord::events).filter(|e| e.nudge.is_some()).collect();
    for notice in notices {
        jit_shared::app::notify::handle_event(&notify, &envelope(notice), now + Duration::minutes(33)).await.unwrap();
    }
    let sent: Vec<(String, String)> =
        outbox.0.lock().unwrap().iter().map(|m| (m.recipient.clone(), m.subject.clone())).collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0].0, "iam-user#lead");
    assert!(sent[0].1.starts_with("Reminder: Approval needed"), "{sent:?}");
    assert_eq!(sent[1].0, "iam-user#bob");
    assert!(sent[1].1.starts_with("Escalated to you: Approval needed"), "{sent:?}");
}

/// `Users`, but looking up `flaky` fails (as a throttled directory does) until `recovered`.
struct FlakyFor {
    flaky: Person,
    recovered: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl PrincipalDirectory for FlakyFor {
    async fn resolve(&self, caller: &CallerArn) -> Result<ResolvedPrincipal, DirectoryError> {
        Users.resolve(caller).await
    }
    async fn resolve_person(&self, person: &Person) -> Result<ResolvedPrincipal, DirectoryError> {
        if *person == self.flaky && !self.recovered.load(Ordering::SeqCst) {
            return Err(DirectoryError::Port(PortError::Transient("Rate exceeded".into())));
        }
        Users.resolve_person(person).await
    }
    async fn role_trust(&self, role: &str) -> Result<jit_shared::ports::RoleTrust, DirectoryError> {
        Users.role_trust(role).await
    }
}

#[tokio::test]
async fn a_lookup_that_fails_mails_no_approver_and_the_events_retry_mails_each_once() {
    // Arrange: a level of three approvers; looking up the last one fails once.
    let now = Utc::now();
    let world = Lifecycle::default();
    let approvers = ["lead", "bob", "carol"];
    let plan = ApprovalPlan {
        policy_name: "prod".into(),
        levels: vec![ApprovalLevel {
            min_approvals: 1,
            approvers: approvers.iter().map(|a| Approver::IamUser((*a).into())).collect(),
            remind_after_minutes: None,
            escalate_after_minutes: None,
            escalate_to: vec![],
        }],
    };
    pending_under(&world, plan, now).await;
    let opened = world.store.changes().iter().flat_map(ChangeRecord::events).last().unwrap();
    let contacts = jit_shared::policy::contacts::parse_contacts(
        "contacts:\n  - iamUser: lead\n    email: lead@example.com\n  - iamUser: bob\n    email: bob@example.com\n  - iamUser: carol\n    email: carol@example.com\n",
    )
    .unwrap();
    let directory = FlakyFor { flaky: Person::IamUser("carol".into()), recovered: false.into() };
    let (key, outbox) = (key(), Outbox::default());
    let links = links();
    let notify = mail_only(&world.store, &directory, &outbox, &contacts, &key, &links);

    // Act: the event fails on carol's lookup, then its retry runs after the directory recovered.
    let failed = jit_shared::app::notify::handle_event(&notify, &envelope(opened.clone()), now).await;
    let mailed_before_retry = outbox.0.lock().unwrap().len();
    directory.recovered.store(true, Ordering::SeqCst);
    let retried = jit_shared::app::notify::handle_event(&notify, &envelope(opened), now).await.unwrap();

    // Assert
    assert!(failed.is_err(), "the lookup's failure fails the event, so Lambda retries it");
    assert_eq!(mailed_before_retry, 0, "nobody is mailed before every lookup succeeded");
    let recipients: Vec<String> = outbox.0.lock().unwrap().iter().map(|m| m.recipient.clone()).collect();
    assert_eq!(retried, 3);
    assert_eq!(recipients, ["iam-user#lead", "iam-user#bob", "iam-user#carol"], "each approver once");
}

/// Development nodes are auto-approved for up to 45 minutes in all; beyond that, and for every
/// other node, `lead` approves (at most 240 minutes).
fn auto_then_lead() -> jit_shared::policy::PolicySet {
    auto_then_lead_with(45, 1)
}

/// `auto_then_lead()` with another auto-approval window and another number of approvals.
fn auto_then_lead_with(window_minutes: u32, min_approvals: u32) -> jit_shared::policy::PolicySet {
    let file = |path: &str, text: String| jit_shared::policy::PolicyFile { path: path.into(), text };
    jit_shared::policy::PolicySet::from_files(&[
        file(
            "auto.cedar",
            format!(
                r#"@id("dev-auto")
@accessWindowMinutes("{window_minutes}")
permit (principal, action == AWS::SSM::Action::"getTokenForInstanceAccess", resource)
when {{ resource.hasTag("Environment") && resource.getTag("Environment") == "Development" }};"#
            ),
        ),
        file(
            "everything.yaml",
            format!(
                "name: everything\ntargets: {{allNodes: true}}\nmaxDurationMinutes: 240\nlevels:\n  - minApprovals: {min_approvals}\n    approvers:\n      - iamUser: lead\n{}",
                // A second approval needs a second approver.
                if min_approvals > 1 { "      - iamUser: second-lead\n" } else { "" }
            ),
        ),
    ])
    .unwrap()
}

/// Submits, extends and decides requests of `alice` against `auto_then_lead()` on development
/// nodes, and runs their lifecycle tasks.
struct Workflows {
    world: Lifecycle,
    settings: GrantSettings,
    policies: jit_shared::policy::PolicySet,
}

const EXECUTION_1: &str = "arn:aws:states:us-east-1:123456789012:execution:jit-lifecycle:first";
const EXECUTION_2: &str = "arn:aws:states:us-east-1:123456789012:execution:jit-lifecycle:second";
const EXECUTION_3: &str = "arn:aws:states:us-east-1:123456789012:execution:jit-lifecycle:third";

impl Workflows {
    fn new(mode: GrantMode) -> Self {
        Self { world: Lifecycle::default(), settings: GrantSettings { mode, ..settings() }, policies: auto_then_lead() }
    }

    fn intake(&self) -> SubmitDeps<'_> {
        SubmitDeps {
            store: &self.world.store,
            directory: &Users,
            settings: &self.settings,
            administrators: &NO_ADMINISTRATORS,
        }
    }

    fn evaluation<'a>(
        &'a self,
        nodes: &'a dyn jit_shared::ports::NodeDirectory,
    ) -> jit_shared::app::evaluate::EvaluationDeps<'a> {
        self.evaluation_under(nodes, &self.policies)
    }

    fn evaluation_under<'a>(
        &'a self,
        nodes: &'a dyn jit_shared::ports::NodeDirectory,
        policies: &'a jit_shared::policy::PolicySet,
    ) -> jit_shared::app::evaluate::EvaluationDeps<'a> {
        jit_shared::app::evaluate::EvaluationDeps {
            store: &self.world.store,
            principals: &Users,
            nodes,
            policies,
            pending_timeout_minutes: 60,
            seal: &*SEAL,
            max_active_requests: 5,
        }
    }

    async fn evaluate(&self, id: &RequestId, now: DateTime<Utc>) -> AccessRequest {
        self.evaluate_on(id, &DEV_NODES, now).await
    }

    async fn evaluate_on(
        &self,
        id: &RequestId,
        nodes: &dyn jit_shared::ports::NodeDirectory,
        now: DateTime<Utc>,
    ) -> AccessRequest {
        jit_shared::app::evaluate::evaluate(&self.evaluation(nodes), id, now).await.unwrap();
        self.get(id).await
    }

    async fn get(&self, id: &RequestId) -> AccessRequest {
        self.world.store.get(id).await.unwrap().unwrap()
    }

    /// Alice asks with `body`; the request is decided at once.
    async fn ask(&self, body: &str, now: DateTime<Utc>) -> AccessRequest {
        let submitted = submit::submit(&self.intake(), &ARN_ALICE, body.as_bytes(), None, now).await.unwrap().request;
        self.evaluate(&submitted.request_id, now).await
    }

    /// Alice extends `id` by `minutes`; the extension is decided at once.
    async fn extend(&self, id: &RequestId, minutes: u32, now: DateTime<Utc>) -> AccessRequest {
        let body = format!(r#"{{"durationMinutes": {minutes}, "reason": "the fix needs longer"}}"#);
        let ext = submit::extend(&self.intake(), &ARN_ALICE, id.as_str(), body.as_bytes(), None, now).await.unwrap();
        self.evaluate(&ext.request.request_id, now).await
    }

    async fn grant(&self, id: &RequestId, execution: &str, now: DateTime<Utc>) -> lifecycle::GrantOutput {
        lifecycle::grant(&self.world.deps(&self.settings), id, Some(execution), now).await.unwrap()
    }

    /// What the state machine does at a scheduled request's start: RecheckAtStart (under
    /// `policies`), then GrantRechecked, here also when the recheck did not permit it (the state
    /// machine would stop), to show that the grant then refuses on its own.
    async fn recheck_and_grant(
        &self,
        id: &RequestId,
        nodes: &dyn jit_shared::ports::NodeDirectory,
        policies: &jit_shared::policy::PolicySet,
        execution: &str,
        now: DateTime<Utc>,
    ) -> (jit_shared::app::evaluate::RecheckOutput, lifecycle::GrantOutput) {
        let evaluation = self.evaluation_under(nodes, policies);
        let rechecked = jit_shared::app::evaluate::recheck_at_start(&evaluation, id, now).await.unwrap();
        let deps = self.world.deps(&self.settings);
        (rechecked, lifecycle::grant_rechecked(&deps, id, Some(execution), now).await.unwrap())
    }

    /// The deadline in alice's inline policy `jit-<id>` (attach mode), if it is attached.
    fn policy_deadline(&self, id: &RequestId) -> Option<String> {
        let policies = self.world.policies.0.lock().unwrap();
        let document = policies.get(&format!("IamUser {{ name: \"alice\" }}/jit-{id}"))?;
        let value: serde_json::Value = serde_json::from_str(document).unwrap();
        value.to_string().split("aws:CurrentTime").nth(1).and_then(|rest| rest.split('"').nth(2)).map(str::to_owned)
    }
}

const DEV_ASK: &str = r#"{"nodeId": "i-0123456789abcdef0", "reason": "disk full", "durationMinutes": 30}"#;

#[tokio::test]
async fn an_extension_within_the_auto_approval_window_moves_the_deadline_in_iam_and_the_first_execution_stands_down() {
    // Arrange: alice holds 30 minutes on a development node (auto-approved, granted by execution 1).
    let now = Utc::now();
    let w = Workflows::new(GrantMode::Attach);
    let original = w.ask(DEV_ASK, now).await;
    let granted = w.grant(&original.request_id, EXECUTION_1, now).await;
    let old_deadline = granted.request.access_deadline();
    assert_eq!(w.policy_deadline(&original.request_id), Some(jit_shared::domain::grant::deadline_text(&old_deadline)));

    // Act: ten minutes later she asks for 10 more (40 in all: within the 45-minute window); the
    // extension's own execution (2) runs its Grant task.
    let later = now + Duration::minutes(10);
    let extension = w.extend(&original.request_id, 10, later).await;
    let taken_over = w.grant(&extension.request_id, EXECUTION_2, later).await;

    // Assert: auto-approved and applied once; the deadline moved in the table and in IAM; the
    // extension itself ended, saying where it went; execution 1 was stopped, 2 waits in its place.
    let new_deadline = old_deadline + Duration::minutes(10);
    assert_eq!(extension.status, RequestStatus::Approved, "{:?}", extension.decision);
    assert_eq!(extension.extends.as_ref(), Some(&original.request_id));
    let stored = w.get(&original.request_id).await;
    assert_eq!(stored.access_deadline(), new_deadline);
    assert_eq!(w.policy_deadline(&original.request_id), Some(jit_shared::domain::grant::deadline_text(&new_deadline)));
    let ended = w.get(&extension.request_id).await;
    assert_eq!(ended.status, RequestStatus::Expired);
    assert!(w
        .world
        .store
        .audit_trail(&extension.request_id)
        .await
        .unwrap()
        .iter()
        .any(|a| a.reason.contains("applied to")));
    assert!(taken_over.granted);
    assert_eq!(taken_over.request.request_id, original.request_id, "execution 2 now waits on the original");
    assert_eq!(taken_over.deadline, jit_shared::domain::grant::deadline_text(&new_deadline));
    assert_eq!(*w.world.executions.stopped.lock().unwrap(), [EXECUTION_1]);
    let changes = w.world.store.changes();
    assert!(detail_types(&changes).contains(&"Access Request Extended".to_owned()), "{:?}", detail_types(&changes));

    // Act 2: execution 1's Expire still ran at the old deadline (its stop came too late);
    // execution 2's at the new one.
    let stale = lifecycle::expire(&w.world.deps(&w.settings), *granted.request, old_deadline).await.unwrap();
    let still = (w.get(&original.request_id).await.status, w.policy_deadline(&original.request_id));
    let end = lifecycle::expire(&w.world.deps(&w.settings), *taken_over.request, new_deadline).await.unwrap();

    // Assert 2: the stale expiry did not end the taken-over request, and put back the policy it
    // removed before finding the grant taken over; the new deadline ended it.
    assert_eq!(stale.status, RequestStatus::Approved);
    assert_eq!(still, (RequestStatus::Approved, Some(jit_shared::domain::grant::deadline_text(&new_deadline))));
    assert_eq!(end.status, RequestStatus::Expired);
    assert_eq!(w.policy_deadline(&original.request_id), None);
}

#[tokio::test]
async fn an_extension_revoked_before_it_is_applied_changes_nothing_and_one_applied_can_no_longer_be_revoked() {
    // Arrange: alice holds 30 minutes (execution 1) and two auto-approved extensions of 5.
    let now = Utc::now();
    let w = Workflows::new(GrantMode::Attach);
    let original = w.ask(DEV_ASK, now).await;
    let granted = w.grant(&original.request_id, EXECUTION_1, now).await;
    let deadline = granted.request.access_deadline();
    let later = now + Duration::minutes(10);
    let revoked_one = w.extend(&original.request_id, 5, later).await;
    let admins = Administrators::parse([ARN_ADMIN.as_str()]).unwrap();
    let k = key();
    let revoke = |id: RequestId| {
        let (store, k, admins) = (&w.world.store, &k, &admins);
        async move { approve::revoke(&approvals(store, k, admins), &ARN_ADMIN, id.as_str(), b"", later).await }
    };

    // Act: the extension's Grant task read it as Approved; the revoke lands before its write.
    revoke(revoked_one.request_id.clone()).await.unwrap();
    let deps = w.world.deps(&w.settings);
    let raced = jit_shared::app::extend::apply(&deps, &revoked_one, Some(EXECUTION_2), later).await.unwrap();

    // Assert: nothing applied, the grant and its execution untouched, the revoke stands.
    assert!(!raced.granted);
    assert_eq!(w.get(&original.request_id).await.access_deadline(), deadline);
    assert!(w.world.executions.stopped.lock().unwrap().is_empty());
    assert_eq!(w.get(&revoked_one.request_id).await.status, RequestStatus::Revoked);

    // Act 2: another extension is applied, then someone tries to revoke it.
    let applied_one = w.extend(&original.request_id, 5, later).await;
    let applied = w.grant(&applied_one.request_id, EXECUTION_3, later).await;
    let too_late = revoke(applied_one.request_id.clone()).await.unwrap_err();

    // Assert 2: it ended in the write that applied it, so the revoke is refused by status and
    // the extended access is what an approver must revoke.
    assert!(applied.granted);
    assert_eq!(w.get(&original.request_id).await.access_deadline(), deadline + Duration::minutes(5));
    assert_eq!(jit_shared::http::error::status(&too_late), 409, "{too_late}");
    assert!(too_late.to_string().contains("Expired"), "{too_late}");
}

#[tokio::test]
async fn a_retried_extension_grant_after_its_write_succeeded_takes_over_and_waits_for_the_new_deadline() {
    // Arrange: granted by execution 1; an extension of 10 minutes applied by execution 2 whose
    // reply was lost.
    let now = Utc::now();
    let w = Workflows::new(GrantMode::Attach);
    let original = w.ask(DEV_ASK, now).await;
    let granted = w.grant(&original.request_id, EXECUTION_1, now).await;
    let extension = w.extend(&original.request_id, 10, now).await;
    let first = w.grant(&extension.request_id, EXECUTION_2, now).await;

    // Act: Step Functions retries the task.
    let retried = w.grant(&extension.request_id, EXECUTION_2, now).await;

    // Assert: the retry still waits for the extended deadline in execution 2's place.
    let new_deadline = granted.request.access_deadline() + Duration::minutes(10);
    assert_eq!(w.get(&extension.request_id).await.status, RequestStatus::Expired);
    assert_eq!((first.granted, retried.granted), (true, true));
    assert_eq!(retried.request.request_id, original.request_id);
    assert_eq!(retried.deadline, jit_shared::domain::grant::deadline_text(&new_deadline));
    assert_eq!(w.policy_deadline(&original.request_id), Some(jit_shared::domain::grant::deadline_text(&new_deadline)));
}

#[tokio::test]
async fn an_extension_beyond_the_window_goes_to_manual_approval_and_a_rejected_one_leaves_the_grant_untouched() {
    // Arrange: 30 minutes granted.
    let now = Utc::now();
    let w = Workflows::new(GrantMode::Attach);
    let original = w.ask(DEV_ASK, now).await;
    let deadline = w.grant(&original.request_id, EXECUTION_1, now).await.request.access_deadline();
    let key = key();
    let approvals = approvals(&w.world.store, &key, &NO_ADMINISTRATORS);

    // Act: 30 more (60 in all, beyond the 45-minute window) twice; lead rejects the first and
    // approves the second.
    let rejected = w.extend(&original.request_id, 30, now + Duration::minutes(5)).await;
    let decided_at = now + Duration::minutes(6);
    approve::decide_as_caller(&approvals, &ARN_LEAD, rejected.request_id.as_str(), Verdict::Reject, b"", decided_at)
        .await
        .unwrap();
    let untouched = w.get(&original.request_id).await;
    let approved = w.extend(&original.request_id, 30, now + Duration::minutes(7)).await;
    let pending_status = approved.status;
    approve::decide_as_caller(&approvals, &ARN_LEAD, approved.request_id.as_str(), Verdict::Approve, b"", decided_at)
        .await
        .unwrap();
    w.grant(&approved.request_id, EXECUTION_2, now + Duration::minutes(8)).await;

    // Assert
    assert_eq!(
        rejected.decision.as_ref().map(|d| d.rule),
        Some(DecisionRule::ManualAllNodes),
        "{:?}",
        rejected.decision
    );
    assert!(rejected.decision.as_ref().unwrap().message.contains("manual approval decides"));
    assert_eq!(untouched.access_deadline(), deadline, "a refused extension changes nothing");
    assert_eq!(w.get(&rejected.request_id).await.status, RequestStatus::Rejected);
    assert_eq!(pending_status, RequestStatus::Pending);
    assert_eq!(w.get(&original.request_id).await.access_deadline(), deadline + Duration::minutes(30));
    assert_eq!(
        w.policy_deadline(&original.request_id),
        Some(jit_shared::domain::grant::deadline_text(&(deadline + Duration::minutes(30))))
    );
}

#[tokio::test]
async fn in_credentials_mode_the_next_credentials_end_at_the_extended_deadline() {
    // Arrange: 30 minutes granted in credentials mode.
    let now = Utc::now();
    let w = Workflows::new(GrantMode::Credentials);
    let issuer = MemoryIssuer::default();
    *issuer.at.lock().unwrap() = Some(now);
    let deps = issuing(&w.world.store, &issuer, &w.settings);
    let original = w.ask(DEV_ASK, now).await;
    let deadline = w.grant(&original.request_id, EXECUTION_1, now).await.request.access_deadline();
    let before = credentials::issue(&deps, &ARN_ALICE, original.request_id.as_str(), now).await.unwrap();

    // Act
    let extension = w.extend(&original.request_id, 15, now + Duration::minutes(1)).await;
    w.grant(&extension.request_id, EXECUTION_2, now + Duration::minutes(1)).await;
    let after = credentials::issue(&deps, &ARN_ALICE, original.request_id.as_str(), now + Duration::minutes(2)).await;
    let from_extension =
        credentials::issue(&deps, &ARN_ALICE, extension.request_id.as_str(), now + Duration::minutes(2)).await;

    // Assert
    assert_eq!(before.access_deadline, deadline);
    assert_eq!(after.unwrap().access_deadline, deadline + Duration::minutes(15));
    assert!(from_extension.is_err(), "credentials come from the extended request, not the extension");
}

#[tokio::test]
async fn only_the_requester_extends_a_started_approved_request_and_the_body_is_checked() {
    // Arrange
    let now = Utc::now();
    let w = Workflows::new(GrantMode::Attach);
    let original = w.ask(DEV_ASK, now).await;
    let not_started = w.ask(DEV_ASK, now).await;
    w.grant(&original.request_id, EXECUTION_1, now).await;
    let id = original.request_id.as_str();
    let good = br#"{"durationMinutes": 10, "reason": "longer"}"#;
    /// What, by whom, on which request, with which body, when: refused with (status, code).
    type Case<'a> = (&'a str, &'a CallerArn, &'a str, &'a [u8], DateTime<Utc>, (u16, &'a str));
    let cases: Vec<Case> = vec![
        ("someone else", &ARN_LEAD, id, good, now, (404, "NotFound")),
        ("before its grant", &ARN_ALICE, not_started.request_id.as_str(), good, now, (409, "NotExtendable")),
        ("after its deadline", &ARN_ALICE, id, good, now + Duration::minutes(30), (409, "NotExtendable")),
        ("no duration", &ARN_ALICE, id, br#"{"reason": "longer"}"#, now, (400, "MissingField")),
        ("no reason", &ARN_ALICE, id, br#"{"durationMinutes": 10}"#, now, (400, "MissingField")),
        (
            "an unknown field",
            &ARN_ALICE,
            id,
            br#"{"durationMinutes": 10, "reason": "x", "nodeId": "i-1"}"#,
            now,
            (400, "UnknownField"),
        ),
    ];
    for (what, caller, id, body, at, (status, code)) in cases {
        // Act
        let err = submit::extend(&w.intake(), caller, id, body, None, at).await.unwrap_err();
        // Assert
        assert_eq!((jit_shared::http::error::status(&err), err.code()), (status, code), "{what}: {err}");
    }
}

#[tokio::test]
async fn a_scheduled_request_is_granted_at_its_start_and_not_before_and_may_be_withdrawn_until_then() {
    // Arrange: alice schedules 30 minutes two hours ahead, in credentials mode (auto-approved).
    let now = Utc::now();
    let starts = now + Duration::hours(2);
    let w = Workflows::new(GrantMode::Credentials);
    let body = format!(
        r#"{{"nodeId": "i-0123456789abcdef0", "reason": "change window", "durationMinutes": 30, "startsAt": "{}"}}"#,
        starts.to_rfc3339()
    );
    let scheduled = w.ask(&body, now).await;
    let issuer = MemoryIssuer::default();
    let deps = issuing(&w.world.store, &issuer, &w.settings);

    // Act: the lifecycle's Grant at approval, credentials asked early, the sweep meanwhile, and
    // the Grant again at the start.
    let early = w.grant(&scheduled.request_id, EXECUTION_1, now).await;
    let refused = credentials::issue(&deps, &ARN_ALICE, scheduled.request_id.as_str(), now).await.unwrap_err();
    let swept = sweep::sweep(&w.world.deps(&w.settings), now + Duration::minutes(30)).await.unwrap();
    *issuer.at.lock().unwrap() = Some(starts);
    let unchecked = w.grant(&scheduled.request_id, EXECUTION_1, starts).await;
    let before_recheck =
        credentials::issue(&deps, &ARN_ALICE, scheduled.request_id.as_str(), starts).await.unwrap_err();
    let (_, at_start) = w.recheck_and_grant(&scheduled.request_id, &DEV_NODES, &w.policies, EXECUTION_1, starts).await;
    let issued = credentials::issue(&deps, &ARN_ALICE, scheduled.request_id.as_str(), starts).await.unwrap();

    // Assert
    assert_eq!(scheduled.status, RequestStatus::Approved, "decided at submission: {:?}", scheduled.decision);
    assert!(!early.granted);
    assert_eq!(early.starts_at, Some(jit_shared::domain::grant::deadline_text(&starts)), "the execution waits for it");
    assert_eq!(refused.code(), "AccessNotStarted");
    assert!(swept.grants.restarted.is_empty(), "a waiting schedule is not a lost lifecycle: {swept:?}");
    assert!(!unchecked.granted && unchecked.starts_at.is_some(), "not granted before its recheck: {unchecked:?}");
    assert_eq!(before_recheck.code(), "AccessNotStarted", "no credentials before the recheck: {before_recheck}");
    assert!(before_recheck.to_string().contains("checked against the policies again"), "{before_recheck}");
    assert!(at_start.granted && at_start.starts_at.is_none());
    assert_eq!(at_start.deadline, jit_shared::domain::grant::deadline_text(&(starts + Duration::minutes(30))));
    assert_eq!(issued.access_deadline, starts + Duration::minutes(30));

    // And: another scheduled request is withdrawn before its start, but not once it started.
    let other = w.ask(&body, now).await;
    let k = key();
    let approvals = approvals(&w.world.store, &k, &NO_ADMINISTRATORS);
    let late = approve::cancel(&approvals, &ARN_ALICE, scheduled.request_id.as_str(), b"", starts).await.unwrap_err();
    let withdrawn = approve::cancel(&approvals, &ARN_ALICE, other.request_id.as_str(), b"", now).await.unwrap();
    let after = w.grant(&other.request_id, EXECUTION_2, starts).await;
    assert_eq!(late.code(), "RequestNotPending");
    assert_eq!(withdrawn.status, RequestStatus::Cancelled);
    assert!(!after.granted, "a withdrawn schedule grants nothing at its start");
}

/// No node at all: it was terminated, or no longer carries what makes it visible.
struct NoNodes;

#[async_trait]
impl jit_shared::ports::NodeDirectory for NoNodes {
    async fn describe(&self, node: &NodeId) -> Result<jit_shared::policy::NodeInfo, DirectoryError> {
        Err(DirectoryError::NotFound(node.to_string()))
    }
}

#[tokio::test]
async fn a_scheduled_request_is_decided_again_at_its_start_and_revoked_there_when_the_policies_no_longer_grant_it() {
    const PRODUCTION: NodesIn = NodesIn("Production");
    /// What; the node when asked for; the duration asked for (`None`: the policy's); whether
    /// the lead approved it (production needs them); the node at the start (`None`: gone); the
    /// policies at the start (auto-approval window, approvals needed); still permitted.
    type Case = (&'static str, &'static NodesIn, Option<u32>, bool, Option<&'static NodesIn>, (u32, u32), bool);
    let cases: [Case; 8] = [
        ("still a development node", &DEV_NODES, Some(30), false, Some(&DEV_NODES), (45, 1), true),
        (
            "retagged to production: only people may approve it now",
            &DEV_NODES,
            Some(30),
            false,
            Some(&PRODUCTION),
            (45, 1),
            false,
        ),
        ("the node is gone", &DEV_NODES, Some(30), false, None, (45, 1), false),
        (
            "the policy's window, taken as its duration, shrank below it",
            &DEV_NODES,
            None,
            false,
            Some(&DEV_NODES),
            (20, 1),
            false,
        ),
        (
            "the policy's window, taken as its duration, is unchanged",
            &DEV_NODES,
            None,
            false,
            Some(&DEV_NODES),
            (45, 1),
            true,
        ),
        (
            "approved by the lead, and the same approval policy applies",
            &PRODUCTION,
            Some(30),
            true,
            Some(&PRODUCTION),
            (45, 1),
            true,
        ),
        (
            "approved by the lead, but the policy now needs two approvals",
            &PRODUCTION,
            Some(30),
            true,
            Some(&PRODUCTION),
            (45, 2),
            false,
        ),
        ("approved by the lead, and auto-approved now", &PRODUCTION, Some(30), true, Some(&DEV_NODES), (45, 1), true),
    ];
    for (what, asked_on, minutes, by_lead, at_start, (window, approvals_needed), expected) in cases {
        // Arrange: alice schedules access two hours ahead; the lifecycle waits for the start.
        let now = Utc::now();
        let starts = now + Duration::hours(2);
        let w = Workflows::new(GrantMode::Attach);
        let duration = minutes.map(|m| format!(r#", "durationMinutes": {m}"#)).unwrap_or_default();
        let body = format!(
            r#"{{"nodeId": "i-0123456789abcdef0", "reason": "change window"{duration}, "startsAt": "{}"}}"#,
            starts.to_rfc3339()
        );
        let submitted = submit::submit(&w.intake(), &ARN_ALICE, body.as_bytes(), None, now).await.unwrap().request;
        let decided = w.evaluate_on(&submitted.request_id, asked_on, now).await;
        let id = decided.request_id.clone();
        if by_lead {
            let k = key();
            approve::decide_as_caller(
                &approvals(&w.world.store, &k, &NO_ADMINISTRATORS),
                &ARN_LEAD,
                id.as_str(),
                Verdict::Approve,
                b"",
                now,
            )
            .await
            .unwrap();
        }
        assert_eq!(w.get(&id).await.status, RequestStatus::Approved, "{what}: approved before its start");
        assert!(!w.grant(&id, EXECUTION_1, now).await.granted, "{what}: nothing before the start");

        // Act: RecheckAtStart, then the Grant again, at the start.
        let nodes: &dyn jit_shared::ports::NodeDirectory = match at_start {
            Some(n) => n,
            None => &NoNodes,
        };
        let policies_then = auto_then_lead_with(window, approvals_needed);
        let (rechecked, at_start) = w.recheck_and_grant(&id, nodes, &policies_then, EXECUTION_1, starts).await;

        // Assert
        let stored = w.get(&id).await;
        assert_eq!(rechecked.permitted, expected, "{what}: {rechecked:?}");
        if expected {
            assert_eq!(stored.status, RequestStatus::Approved, "{what}");
            assert!(at_start.granted, "{what}: granted at its start");
            assert!(w.policy_deadline(&id).is_some(), "{what}: the policy is attached");
        } else {
            assert_eq!((rechecked.status, stored.status), (RequestStatus::Revoked, RequestStatus::Revoked), "{what}");
            let reason = rechecked.reason.unwrap();
            assert!(reason.starts_with("no longer permitted at its start"), "{what}: {reason}");
            let record = w.world.store.audit_trail(&id).await.unwrap().into_iter().last().unwrap();
            assert_eq!(
                (record.to, record.actor.as_str(), record.reason.as_str()),
                (RequestStatus::Revoked, "system:evaluator", reason.as_str()),
                "{what}"
            );
            assert!(!at_start.granted, "{what}: nothing granted");
            assert!(w.policy_deadline(&id).is_none(), "{what}: no policy attached");
        }
    }
}

#[test]
fn a_schedule_must_start_in_the_future_and_within_fourteen_days() {
    let now = Utc::now();
    let cases = [
        (now - Duration::minutes(1), Some("StartsInThePast")),
        (now, Some("StartsInThePast")),
        (now + Duration::minutes(5), None),
        (now + Duration::days(14), None),
        (now + Duration::days(14) + Duration::minutes(1), Some("StartsTooLate")),
    ];
    for (at, expected) in cases {
        let got = submit::check_schedule(Some(at), now).err().map(|e| e.code);
        assert_eq!(got.as_deref(), expected, "{at}");
    }
    let bad = br#"{"nodeId": "i-0123456789abcdef0", "reason": "x", "startsAt": "tomorrow"}"#;
    assert_eq!(submit::NewRequest::parse(bad).unwrap_err().field, "startsAt");
    let no_offset = br#"{"nodeId": "i-0123456789abcdef0", "reason": "x", "startsAt": "2026-12-24T08:00:00"}"#;
    assert_eq!(submit::NewRequest::parse(no_offset).unwrap_err().code, "InvalidStartsAt");
}

#[tokio::test]
async fn a_retry_after_the_scheduled_start_passed_returns_the_request_the_first_call_made() {
    // Arrange: alice schedules access two minutes ahead with an idempotency key.
    let now = Utc::now();
    let w = Workflows::new(GrantMode::Attach);
    let body = format!(
        r#"{{"nodeId": "i-0123456789abcdef0", "reason": "change window", "durationMinutes": 30, "startsAt": "{}"}}"#,
        (now + Duration::minutes(2)).to_rfc3339()
    );
    let first = submit::submit(&w.intake(), &ARN_ALICE, body.as_bytes(), Some("change-42"), now).await.unwrap();
    let later = now + Duration::minutes(5);

    // Act: her client retries after the start; then someone reuses the key with another body,
    // and a call without a key.
    let retried = submit::submit(&w.intake(), &ARN_ALICE, body.as_bytes(), Some("change-42"), later).await.unwrap();
    let other = body.replace("change window", "another window");
    let reused = submit::submit(&w.intake(), &ARN_ALICE, other.as_bytes(), Some("change-42"), later).await.unwrap_err();
    let keyless = submit::submit(&w.intake(), &ARN_ALICE, body.as_bytes(), None, later).await.unwrap_err();

    // Assert
    assert!(retried.replayed);
    assert_eq!(retried.request.request_id, first.request.request_id);
    assert_eq!(reused.code(), "IdempotencyKeyReused");
    assert_eq!(keyless.code(), "StartsInThePast");
}

/// Alice may break glass (60 minutes at most, reviewed within a day); never on Partner nodes;
/// `lead` approves every node, so `lead` is told and reviews.
fn with_break_glass() -> jit_shared::policy::PolicySet {
    let file = |path: &str, text: &str| jit_shared::policy::PolicyFile { path: path.into(), text: text.into() };
    jit_shared::policy::PolicySet::from_files(&[
        file("break-glass.yaml", "members:\n  - iamUser: alice\nsecurityContacts:\n  - iamUser: security\n"),
        file(
            "deny-access/no-break-glass.cedar",
            r#"@id("no-break-glass-partner")
forbid (principal, action == AWS::SSM::Action::"getTokenForInstanceAccess", resource)
when { resource.hasTag("Environment") && resource.getTag("Environment") == "Partner" && context.breakGlass };"#,
        ),
        file(
            "everything.yaml",
            "name: everything\ntargets: {allNodes: true}\nmaxDurationMinutes: 240\nlevels:\n  - minApprovals: 1\n    approvers:\n      - iamUser: lead\n",
        ),
    ])
    .unwrap()
}

static PARTNER_NODES: NodesIn = NodesIn("Partner");

/// `user` breaks glass on a node of `nodes` for `minutes`; the request as decided.
async fn break_glass(
    store: &MemoryStore,
    policies: &jit_shared::policy::PolicySet,
    nodes: &'static NodesIn,
    user: &str,
    minutes: u32,
    now: DateTime<Utc>,
) -> AccessRequest {
    let settings = settings();
    let intake = SubmitDeps { store, directory: &Users, settings: &settings, administrators: &NO_ADMINISTRATORS };
    let body = format!(
        r#"{{"nodeId": "i-0123456789abcdef0", "reason": "outage: payments down", "durationMinutes": {minutes}, "breakGlass": true}}"#
    );
    let submitted = submit::submit(&intake, &arn(user), body.as_bytes(), None, now).await.unwrap().request;
    let deps = jit_shared::app::evaluate::EvaluationDeps {
        store,
        principals: &Users,
        nodes,
        policies,
        pending_timeout_minutes: 60,
        seal: &*SEAL,
        max_active_requests: 5,
    };
    jit_shared::app::evaluate::evaluate(&deps, &submitted.request_id, now).await.unwrap();
    store.get(&submitted.request_id).await.unwrap().unwrap()
}

#[tokio::test]
async fn break_glass_is_granted_at_once_to_a_member_with_an_open_review_and_refused_otherwise() {
    // Arrange
    let now = Utc::now();
    let store = MemoryStore::default();
    let policies = with_break_glass();

    // Act
    let granted = break_glass(&store, &policies, &DEV_NODES, "alice", 30, now).await;
    let outsider = break_glass(&store, &policies, &DEV_NODES, "bob", 30, now).await;
    let forbidden = break_glass(&store, &policies, &PARTNER_NODES, "alice", 30, now).await;
    let too_long = break_glass(&store, &policies, &DEV_NODES, "alice", 61, now).await;

    // Assert: granted at once and sealed (the lifecycle grants it), the review open for a day,
    // the node's approvers named to tell and review.
    let decision = granted.decision.clone().unwrap();
    assert_eq!((granted.status, decision.rule), (RequestStatus::Approved, DecisionRule::BreakGlass));
    assert!(granted.break_glass && granted.approval_seal.is_some());
    let review = granted.review.clone().unwrap();
    assert!(review.is_open());
    assert_eq!(review.due, now + Duration::minutes(1440));
    assert_eq!(decision.approval_plan.unwrap().levels[0].approvers, [Approver::IamUser("lead".into())]);
    let code = |r: &AccessRequest| (r.status, r.decision.as_ref().and_then(|d| d.failure_code.clone()));
    assert_eq!(code(&outsider), (RequestStatus::Failed, Some("NotInBreakGlassGroup".into())));
    assert_eq!(code(&forbidden), (RequestStatus::Failed, Some("BreakGlassForbidden".into())));
    assert!(forbidden.decision.unwrap().message.contains("no-break-glass-partner"));
    assert_eq!(code(&too_long), (RequestStatus::Failed, Some("DurationExceedsMaximum".into())));
}

#[tokio::test]
async fn a_break_glass_review_is_decided_once_by_an_approver_never_the_requester_and_an_overdue_one_is_swept() {
    // Arrange: alice broke glass; the review is due in a day.
    let now = Utc::now();
    let world = Lifecycle::default();
    let settings = settings();
    let policies = with_break_glass();
    let granted = break_glass(&world.store, &policies, &DEV_NODES, "alice", 30, now).await;
    let id = granted.request_id.as_str();
    let k = key();
    let deps = approvals(&world.store, &k, &NO_ADMINISTRATORS);
    let body = br#"{"verdict": "flag", "comment": "no incident ticket"}"#;
    let due = granted.review.clone().unwrap().due;

    // Act
    let overdue = sweep::sweep(&world.deps(&settings), due + Duration::minutes(1)).await.unwrap();
    let before = world.store.get(&granted.request_id).await.unwrap().unwrap().status;
    let listed = |who: CallerArn| {
        let deps = &deps;
        async move { approve::reviews_for(deps, &who).await.unwrap().into_iter().map(|r| r.request_id).collect::<Vec<_>>() }
    };
    let to_review = (listed(ARN_LEAD.clone()).await, listed(ARN_ALICE.clone()).await, listed(arn("mallory")).await);
    let by_requester = approve::review(&deps, &ARN_ALICE, id, body, now).await.unwrap_err();
    let by_stranger = approve::review(&deps, &arn("mallory"), id, body, now).await.unwrap_err();
    let bad = approve::review(&deps, &ARN_LEAD, id, br#"{"verdict": "fine"}"#, now).await.unwrap_err();
    let flagged = approve::review(&deps, &ARN_LEAD, id, body, now).await.unwrap();
    let again = approve::review(&deps, &ARN_LEAD, id, br#"{"verdict": "acknowledge"}"#, now).await.unwrap_err();
    let later = sweep::sweep(&world.deps(&settings), due + Duration::minutes(20)).await.unwrap();
    let after = listed(ARN_LEAD.clone()).await;

    // Assert
    assert_eq!(overdue.unreviewed_break_glass, [id]);
    assert_eq!(to_review, (vec![granted.request_id.clone()], vec![], vec![]), "only an approver of the plan lists it");
    assert!(after.is_empty(), "a decided review leaves the list");
    assert_eq!((jit_shared::http::error::status(&by_requester), by_requester.code()), (403, "Forbidden"));
    assert_eq!(jit_shared::http::error::status(&by_stranger), 404);
    assert_eq!((bad.code(), jit_shared::http::error::status(&bad)), ("InvalidVerdict", 400));
    let review = flagged.review.clone().unwrap();
    assert_eq!(review.verdict, Some(jit_shared::domain::break_glass::ReviewVerdict::Flag));
    assert_eq!(review.by.as_deref(), Some(ARN_LEAD.as_str()));
    assert_eq!(flagged.status, before, "a review changes nothing else, whatever the status");
    assert_eq!(again.code(), "AlreadyReviewed");
    assert!(later.unreviewed_break_glass.is_empty(), "{later:?}");
    assert!(detail_types(&world.store.changes()).contains(&"Access Request Break-Glass Reviewed".to_owned()));
}

/// A contact with a mail address.
fn mail_contact(name: &str) -> jit_shared::policy::contacts::Contact {
    jit_shared::policy::contacts::Contact {
        person: Person::IamUser(name.into()),
        email: format!("{name}@example.com"),
        same_as: vec![],
        slack_user_id: None,
    }
}

/// The notifier on the last change `store` recorded, with `contacts` and the break-glass
/// security contacts of `policies`: what it counted as sent, the mails, and the event.
async fn notify_last_change(
    store: &MemoryStore,
    policies: &jit_shared::policy::PolicySet,
    contacts: &[jit_shared::policy::contacts::Contact],
    now: DateTime<Utc>,
) -> (usize, Vec<jit_shared::ports::Mail>, jit_shared::domain::events::StatusEvent) {
    let (key, outbox) = (key(), Outbox::default());
    let links = links();
    let security = policies.break_glass().map(|b| b.security_contacts.clone()).unwrap_or_default();
    let deps = jit_shared::app::notify::NotifyDeps {
        store,
        directory: &Users,
        mailer: &outbox,
        contacts,
        key: &key,
        links: &links,
        chat: None,
        teams: None,
        chat_topic: None,
        security_contacts: &security,
    };
    let event = store.changes().last().unwrap().events().pop().unwrap();
    let sent = jit_shared::app::notify::handle_event(&deps, &envelope(event.clone()), now).await.unwrap();
    let mails = outbox.0.lock().unwrap().clone();
    (sent, mails, event)
}

#[tokio::test]
async fn breaking_glass_mails_the_nodes_approvers_and_the_security_contacts_at_once_and_never_the_requester() {
    // Arrange: alice breaks glass; lead approves the node, security is the security contact,
    // bob is neither.
    let now = Utc::now();
    let store = MemoryStore::default();
    let policies = with_break_glass();
    let granted = break_glass(&store, &policies, &DEV_NODES, "alice", 30, now).await;
    let contacts = ["alice", "lead", "security", "bob"].map(mail_contact);

    // Act
    let (sent, mails, event) = notify_last_change(&store, &policies, &contacts, now).await;

    // Assert
    assert_eq!((event.detail_type(), event.break_glass), ("Access Request Approved".to_owned(), true));
    assert_eq!(sent, 2);
    let to: Vec<&str> = mails.iter().map(|m| m.recipient.as_str()).collect();
    assert_eq!(to, ["iam-user#lead", "iam-user#security"]);
    assert!(mails.iter().all(|m| m.subject == "BREAK-GLASS: IAM user alice took access to i-0123456789abcdef0"));
    assert!(mails[0].body.contains(&format!("jit review {} --acknowledge", granted.request_id)), "{}", mails[0].body);
    assert!(!mails[1].body.contains("jit review"), "the security contact is told, the approvers review");
    let rule = jit_shared::app::notify::rule_pattern().to_string();
    assert!(rule.contains(r#""breakGlass":[true]"#), "the bus rule brings break-glass approvals: {rule}");
}

#[tokio::test]
async fn a_scheduled_approval_for_the_same_node_does_not_spare_the_sessions_of_a_revoked_grant() {
    // Arrange: alice holds a granted request with a shell open, and an approved schedule for the
    // same node two days ahead; the administrator revokes the granted one.
    let now = Utc::now();
    let world = Lifecycle::default();
    let settings = settings();
    let sessions = LiveSessions::default();
    let deps = LifecycleDeps { sessions: &sessions, ..world.deps(&settings) };
    let granted = granted_to_alice(&world, &deps, now).await;
    let intake =
        SubmitDeps { store: &world.store, directory: &Users, settings: &settings, administrators: &NO_ADMINISTRATORS };
    let body = format!(
        r#"{{"nodeId": "i-0123456789abcdef0", "reason": "later", "durationMinutes": 30, "startsAt": "{}"}}"#,
        (now + Duration::days(2)).to_rfc3339()
    );
    let scheduled = submit::submit(&intake, &ARN_ALICE, body.as_bytes(), None, now).await.unwrap().request;
    let approve_it = Transition {
        decision: Some(decision(RequestStatus::Approved, None, now)),
        approval_seal: sealed_if_approved(&scheduled, RequestStatus::Approved),
        ..Transition::status_change(&scheduled, RequestStatus::Approved, "system:evaluator", "decided", now)
    };
    world.store.transition(&approve_it).await.unwrap();
    let shell = sessions.open(ALICE);
    revoked_by_the_administrator(&world, &granted, now).await;

    // Act
    let out = lifecycle::revoke(&deps, &granted.request_id, false, now).await.unwrap();

    // Assert: a schedule grants nothing yet, so it covers nothing.
    assert_eq!(out.terminated_sessions, [shell]);
}

#[tokio::test]
async fn extensions_decided_together_do_not_stack_past_what_their_decisions_allow() {
    // Arrange: 30 minutes granted; two extensions of 10 asked at once, each decided for 40 in all
    // (within the 45-minute window).
    let now = Utc::now();
    let w = Workflows::new(GrantMode::Attach);
    let original = w.ask(DEV_ASK, now).await;
    let deadline = w.grant(&original.request_id, EXECUTION_1, now).await.request.access_deadline();
    let first = w.extend(&original.request_id, 10, now + Duration::minutes(1)).await;
    let second = w.extend(&original.request_id, 10, now + Duration::minutes(1)).await;

    // Act
    w.grant(&first.request_id, EXECUTION_2, now + Duration::minutes(2)).await;
    let third_execution = "arn:aws:states:us-east-1:123456789012:execution:jit-lifecycle:third";
    let refused = w.grant(&second.request_id, third_execution, now + Duration::minutes(2)).await;

    // Assert: both were approved, only the first applied; the total stays within the window.
    assert_eq!((first.status, second.status), (RequestStatus::Approved, RequestStatus::Approved));
    assert!(!refused.granted);
    assert_eq!(w.get(&second.request_id).await.status, RequestStatus::Failed);
    assert_eq!(w.get(&original.request_id).await.access_deadline(), deadline + Duration::minutes(10));
}
