//! Teardown races and injected faults, against the emulator's real IAM and DynamoDB. Its own test
//! binary (own emulator): the reconciliation sweep removes every `jit-` policy in the account
//! without a live request in its table, so it must not share an account with other tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test (or bench) stops loudly on a broken expectation"
)]

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{Duration, Utc};
use integration_tests::{sdk, unique};
use jit_cli::local::executions::{with_retry, NoLiveSessions};
use jit_shared::adapters::dynamodb::{create_table, DynamoStore};
use jit_shared::adapters::grants::IamGranter;
use jit_shared::adapters::memory::{MemoryExecutions, MemoryIssuer};
use jit_shared::adapters::principals::AwsPrincipalDirectory;
use jit_shared::app::approve::{self as approvals, ApprovalDeps};
use jit_shared::app::credentials::{self, CredentialsDeps};
use jit_shared::app::lifecycle::{self, GrantOutput, LifecycleDeps, Task};
use jit_shared::app::submit::{self as intake, SubmitDeps};
use jit_shared::app::sweep;
use jit_shared::domain::approval_token::SigningKey;

/// The deciding functions' seal (tests write approvals themselves).
static SEAL: std::sync::LazyLock<jit_shared::adapters::memory::MemorySeal> =
    std::sync::LazyLock::new(jit_shared::adapters::memory::MemorySeal::default);

/// Nobody has a second identity here.
static NO_PEOPLE: std::sync::LazyLock<jit_shared::policy::contacts::People> =
    std::sync::LazyLock::new(jit_shared::policy::contacts::People::default);
use jit_shared::domain::credentials::deny_policy_name;
use jit_shared::domain::grant::{policy_name, GrantSettings};
use jit_shared::domain::ids::RequestId;
use jit_shared::domain::principal::CallerArn;
use jit_shared::domain::request::AccessRequest;
use jit_shared::domain::status::RequestStatus;
use jit_shared::ports::{AccessGranter, GrantPrincipal, GrantWriteError, PortError, RequestStore, Transition};

const EXECUTION: &str = "arn:aws:states:us-east-1:123456789012:execution:jit-lifecycle:first";

/// The sweep treats every `jit-` policy in the account without a live request in its table as an
/// orphan, and each test here has its own table: the tests take turns.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// IAM with switches: deletes fail with a transient error while `failing_deletes` is above zero;
/// while `hold_puts` is set, a put waits (after saying so on `put_reached`) for `put_release`.
struct FlakyIam {
    inner: IamGranter,
    failing_deletes: AtomicU32,
    hold_puts: std::sync::atomic::AtomicBool,
    put_reached: tokio::sync::Notify,
    put_release: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl AccessGranter for FlakyIam {
    async fn role(&self, role: &str) -> Result<jit_shared::ports::RoleFacts, GrantWriteError> {
        self.inner.role(role).await
    }
    async fn put_policy(&self, p: &GrantPrincipal, name: &str, doc: &str) -> Result<(), GrantWriteError> {
        if self.hold_puts.load(Ordering::SeqCst) {
            self.put_reached.notify_one();
            self.put_release.notified().await;
        }
        self.inner.put_policy(p, name, doc).await
    }
    async fn delete_policy(&self, p: &GrantPrincipal, name: &str) -> Result<bool, PortError> {
        if self.failing_deletes.load(Ordering::SeqCst) > 0 {
            self.failing_deletes.fetch_sub(1, Ordering::SeqCst);
            return Err(PortError::Transient("injected: IAM throttling on DeleteUserPolicy".into()));
        }
        self.inner.delete_policy(p, name).await
    }
    async fn list_policies(&self, p: &GrantPrincipal) -> Result<Vec<String>, PortError> {
        self.inner.list_policies(p).await
    }
}

/// DynamoDB with a switch: status writes fail with a transient error while `failing` is above zero.
struct FlakyStore {
    inner: DynamoStore,
    failing: AtomicU32,
}

#[async_trait::async_trait]
impl RequestStore for FlakyStore {
    async fn create(
        &self,
        r: &jit_shared::domain::request::AccessRequest,
        a: &jit_shared::domain::request::AuditRecord,
        i: Option<&jit_shared::ports::IdempotencyRecord>,
    ) -> Result<jit_shared::ports::CreateOutcome, PortError> {
        self.inner.create(r, a, i).await
    }
    async fn replay(
        &self,
        record: &jit_shared::ports::IdempotencyRecord,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<jit_shared::ports::CreateOutcome>, PortError> {
        self.inner.replay(record, now).await
    }
    async fn get(&self, id: &RequestId) -> Result<Option<jit_shared::domain::request::AccessRequest>, PortError> {
        self.inner.get(id).await
    }
    async fn list_by_requester(
        &self,
        c: &CallerArn,
        q: &jit_shared::ports::ListQuery,
    ) -> Result<jit_shared::ports::Page, PortError> {
        self.inner.list_by_requester(c, q).await
    }
    async fn list_pending_by_approver(&self, k: &str, l: u32) -> Result<Vec<RequestId>, PortError> {
        self.inner.list_pending_by_approver(k, l).await
    }
    async fn transition(
        &self,
        t: &Transition,
    ) -> Result<jit_shared::domain::request::AccessRequest, jit_shared::ports::TransitionError> {
        if self.failing.load(Ordering::SeqCst) > 0 {
            self.failing.fetch_sub(1, Ordering::SeqCst);
            return Err(PortError::Transient("injected: DynamoDB 500 on TransactWriteItems".into()).into());
        }
        self.inner.transition(t).await
    }
    async fn audit_trail(&self, id: &RequestId) -> Result<Vec<jit_shared::domain::request::AuditRecord>, PortError> {
        self.inner.audit_trail(id).await
    }
    async fn hold_for_revoke(&self, id: &RequestId, at: chrono::DateTime<Utc>) -> Result<bool, PortError> {
        self.inner.hold_for_revoke(id, at).await
    }
    async fn list_pending_past_deadline(
        &self,
        now: chrono::DateTime<Utc>,
        l: u32,
    ) -> Result<Vec<RequestId>, PortError> {
        self.inner.list_pending_past_deadline(now, l).await
    }
    async fn list_grants_past_deadline(&self, now: chrono::DateTime<Utc>, l: u32) -> Result<Vec<RequestId>, PortError> {
        self.inner.list_grants_past_deadline(now, l).await
    }
    async fn list_awaiting_grant(&self, before: chrono::DateTime<Utc>, l: u32) -> Result<Vec<RequestId>, PortError> {
        self.inner.list_awaiting_grant(before, l).await
    }
    async fn list_ended_since(&self, since: chrono::DateTime<Utc>, l: u32) -> Result<Vec<RequestId>, PortError> {
        self.inner.list_ended_since(since, l).await
    }
    async fn list_reviews_past_due(&self, now: chrono::DateTime<Utc>, l: u32) -> Result<Vec<RequestId>, PortError> {
        self.inner.list_reviews_past_due(now, l).await
    }
    async fn list_submitted_before(&self, before: chrono::DateTime<Utc>, l: u32) -> Result<Vec<RequestId>, PortError> {
        self.inner.list_submitted_before(before, l).await
    }
}

/// Session Manager with a switch: DescribeSessions times out while `failing` is above zero.
struct FlakySessions {
    failing: AtomicU32,
}

#[async_trait::async_trait]
impl jit_shared::ports::SessionControl for FlakySessions {
    async fn live_sessions(
        &self,
        _node: &jit_shared::domain::ids::NodeId,
        _owner: &str,
    ) -> Result<Vec<String>, PortError> {
        if self.failing.load(Ordering::SeqCst) > 0 {
            self.failing.fetch_sub(1, Ordering::SeqCst);
            return Err(PortError::Transient("injected: DescribeSessions timed out".into()));
        }
        Ok(vec![])
    }
    async fn terminate(&self, _node: &jit_shared::domain::ids::NodeId, _id: &str) -> Result<(), PortError> {
        Ok(())
    }
}

struct World {
    store: DynamoStore,
    table: String,
    executions: MemoryExecutions,
    directory: AwsPrincipalDirectory,
    granter: FlakyIam,
    settings: GrantSettings,
    sessions: NoLiveSessions,
    user: String,
    caller: CallerArn,
    key: SigningKey,
    /// The caller may revoke: it is an administrator.
    administrators: jit_shared::domain::administrators::Administrators,
}

impl World {
    async fn new() -> Self {
        Self::granting_in(jit_shared::domain::grant::GrantMode::Attach).await
    }

    /// A world whose stack grants in `mode`, with its own session role in the emulator.
    async fn granting_in(mode: jit_shared::domain::grant::GrantMode) -> Self {
        let sdk = sdk().await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let table = unique("race");
        create_table(&dynamo, &table).await.unwrap();
        let iam = aws_sdk_iam::Client::new(&sdk);
        let user = unique("racer");
        let session_role = unique("session");
        iam.create_role()
            .role_name(&session_role)
            .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[]}"#)
            .send()
            .await
            .unwrap();
        let arn = iam.create_user().user_name(&user).send().await.unwrap().user().unwrap().arn().to_owned();
        Self {
            store: DynamoStore::new(dynamo, &table),
            table,
            executions: MemoryExecutions::default(),
            directory: AwsPrincipalDirectory::new(iam.clone()),
            granter: FlakyIam {
                inner: integration_tests::granter(&sdk),
                failing_deletes: AtomicU32::new(0),
                hold_puts: std::sync::atomic::AtomicBool::new(false),
                put_reached: tokio::sync::Notify::new(),
                put_release: tokio::sync::Notify::new(),
            },
            settings: integration_tests::grant_settings(mode, &session_role),
            sessions: NoLiveSessions::default(),
            user,
            key: SigningKey::from_secret("race-test-key-race-test-key-race-test-key").unwrap(),
            administrators: jit_shared::domain::administrators::Administrators::parse([arn.as_str()]).unwrap(),
            caller: CallerArn::try_from(arn).unwrap(),
        }
    }

    fn approvals(&self) -> ApprovalDeps<'_> {
        ApprovalDeps {
            store: &self.store,
            directory: &self.directory,
            key: &self.key,
            administrators: &self.administrators,
            people: &NO_PEOPLE,
            seal: &*SEAL,
        }
    }

    fn lifecycle(&self) -> LifecycleDeps<'_> {
        LifecycleDeps {
            store: &self.store,
            granter: &self.granter,
            sessions: &self.sessions,
            executions: &self.executions,
            settings: &self.settings,
            seal: &*SEAL,
        }
    }

    /// An approved request whose access window ends 10 s from now, with its grant attached.
    async fn granted(&self) -> RequestId {
        self.granted_by(None).await.request_id
    }

    /// The same, granted by the Grant task of `execution`; returns the request as its grant
    /// recorded it (what the Expire task of that execution receives).
    async fn granted_by(&self, execution: Option<&str>) -> AccessRequest {
        let now = Utc::now();
        let approved = self.approved("race", now).await;
        let out = lifecycle::grant(&self.lifecycle(), &approved.request_id, execution, now).await.unwrap();
        assert!(out.granted, "{out:?}");
        *out.request
    }

    /// A one-minute request by the caller, submitted and approved 50 s before `now`.
    async fn approved(&self, reason: &str, now: chrono::DateTime<Utc>) -> AccessRequest {
        let deps = SubmitDeps {
            store: &self.store,
            directory: &self.directory,
            settings: &self.settings,
            administrators: &jit_shared::domain::administrators::NO_ADMINISTRATORS,
        };
        let body = serde_json::json!({"nodeId": "i-0123456789abcdef0", "reason": reason, "durationMinutes": 1});
        let r = intake::submit(&deps, &self.caller, body.to_string().as_bytes(), None, now).await.unwrap().request;
        let approve = Transition {
            approval_seal: Some(SEAL.seal_now(&r.approval_message())),
            ..Transition::status_change(&r, RequestStatus::Approved, "test", "approved", now - Duration::seconds(50))
        };
        self.store.transition(&approve).await.unwrap()
    }

    async fn attached(&self, id: &RequestId) -> bool {
        self.granter
            .inner
            .list_policies(&GrantPrincipal::IamUser { name: self.user.clone() })
            .await
            .unwrap()
            .contains(&policy_name(id))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expiry_revoke_and_sweep_started_together_leave_one_outcome_and_nothing_attached() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let w = World::new().await;
    let approvals = w.approvals();
    for run in 0..100 {
        let recorded = w.granted_by(Some(EXECUTION)).await;
        let id = recorded.request_id.clone();
        assert!(w.attached(&id).await);
        let later = Utc::now() + Duration::seconds(11);
        let deps = w.lifecycle();
        // As the state machine runs it: on the request its Grant task recorded.
        let expire = lifecycle::expire(&deps, recorded, later);
        let revoke = async {
            // The API's status change, then the lifecycle function's teardown on its event.
            if approvals::revoke(&approvals, &w.caller, id.as_str(), b"", later).await.is_ok() {
                lifecycle::teardown(&deps, &id, RequestStatus::Revoked, w.caller.as_str(), "revoked", later)
                    .await
                    .unwrap();
            }
        };
        let sweep = sweep::reconcile(&deps, later);
        let (expired, (), swept) = tokio::join!(expire, revoke, sweep);
        expired.unwrap();
        swept.unwrap();

        assert!(!w.attached(&id).await, "run {run}: the policy is still attached");
        let stored = w.store.get(&id).await.unwrap().unwrap();
        assert!(
            matches!(stored.status, RequestStatus::Expired | RequestStatus::Revoked),
            "run {run}: {}",
            stored.status
        );
        let trail = w.store.audit_trail(&id).await.unwrap();
        let teardowns: Vec<_> = trail
            .iter()
            .filter(|a| a.from == Some(RequestStatus::Approved) && a.to != RequestStatus::Approved)
            .collect();
        assert_eq!(teardowns.len(), 1, "run {run}: {trail:#?}");
        assert_eq!(teardowns[0].to, stored.status);
    }
}

impl World {
    /// A granted credentials-mode request (nothing attached) whose requester fetched credentials
    /// from `issuer` at `now`.
    fn credentials<'a>(&'a self, issuer: &'a MemoryIssuer) -> CredentialsDeps<'a> {
        CredentialsDeps {
            store: &self.store,
            issuer,
            settings: &self.settings,
            seal: &*SEAL,
            directory: &self.directory,
            people: &NO_PEOPLE,
        }
    }

    async fn granted_and_fetched(&self, issuer: &MemoryIssuer, now: chrono::DateTime<Utc>) -> RequestId {
        let id = self.granted_by(Some(EXECUTION)).await.request_id;
        credentials::issue(&self.credentials(issuer), &self.caller, id.as_str(), now).await.unwrap();
        id
    }

    /// Whether a revoke's deny for `id` is on the session role.
    async fn denied(&self, id: &RequestId) -> bool {
        let role = GrantPrincipal::IamRole { name: self.settings.session_role_name.clone() };
        self.granter.inner.list_policies(&role).await.unwrap().contains(&deny_policy_name(id))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_credentials_mode_revoke_expiry_and_sweep_together_leave_one_outcome_and_no_deny_that_should_not_be() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let w = World::granting_in(jit_shared::domain::grant::GrantMode::Credentials).await;
    let approvals = w.approvals();
    let issuer = MemoryIssuer::default();
    let (mut revoked_runs, mut expired_runs) = (0, 0);
    for run in 0..100 {
        // Arrange: granted (nothing attached), credentials fetched while access lasts.
        let now = Utc::now();
        *issuer.at.lock().unwrap() = Some(now);
        let id = w.granted_and_fetched(&issuer, now).await;
        let recorded = w.store.get(&id).await.unwrap().unwrap();
        let deps = w.lifecycle();
        let later = now + Duration::seconds(11);

        // Act: a revoke before the deadline, the Expire task and a sweep at it, all at once. In
        // even runs the revoke's status write lands first and its teardown (the deny) races the
        // expiry's and the sweep's; in odd runs the status writes race too.
        let revoked_first =
            run % 2 == 0 && approvals::revoke(&approvals, &w.caller, id.as_str(), b"", now).await.is_ok();
        let expire = lifecycle::expire(&deps, recorded, later);
        let revoke = async {
            if revoked_first || approvals::revoke(&approvals, &w.caller, id.as_str(), b"", now).await.is_ok() {
                lifecycle::teardown(&deps, &id, RequestStatus::Revoked, w.caller.as_str(), "revoked", now)
                    .await
                    .unwrap();
            }
        };
        let sweep = sweep::reconcile(&deps, later);
        let (expired, (), swept) = tokio::join!(expire, revoke, sweep);
        expired.unwrap();
        let swept = swept.unwrap();

        // Assert: one outcome; a deny exactly when the revoke won; none once the sweep runs after it.
        let stored = w.store.get(&id).await.unwrap().unwrap();
        let deny_seen = w.denied(&id).await || swept.denies_removed.contains(&deny_policy_name(&id));
        match stored.status {
            RequestStatus::Revoked => {
                revoked_runs += 1;
                assert!(deny_seen, "run {run}: revoked with credentials out, but no deny was written");
            }
            RequestStatus::Expired => {
                expired_runs += 1;
                assert!(!deny_seen, "run {run}: expired, yet a deny was written");
            }
            other => panic!("run {run}: {other}"),
        }
        let trail = w.store.audit_trail(&id).await.unwrap();
        let ends = trail.iter().filter(|a| a.from == Some(RequestStatus::Approved) && a.to != RequestStatus::Approved);
        assert_eq!(ends.count(), 1, "run {run}: {trail:#?}");
        sweep::reconcile(&deps, later).await.unwrap();
        assert!(!w.denied(&id).await, "run {run}: the deny outlived the credentials it covers");
        assert!(!w.attached(&id).await, "run {run}: credentials mode attaches nothing");
    }
    assert_eq!(revoked_runs + expired_runs, 100);
    assert!(revoked_runs >= 50, "the revoke won only {revoked_runs} runs: the deny path was not exercised");
    assert!(expired_runs > 0, "the expiry never won");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requester_fetching_in_a_loop_cannot_keep_a_revoke_from_landing_and_what_they_got_is_denied() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let w = World::granting_in(jit_shared::domain::grant::GrantMode::Credentials).await;
    let approvals = w.approvals();
    let issuer = MemoryIssuer::default();
    for run in 0..20 {
        // Arrange: granted in credentials mode, nothing fetched yet.
        let now = Utc::now();
        *issuer.at.lock().unwrap() = Some(now);
        let id = w.granted_by(Some(EXECUTION)).await.request_id;
        let creds = w.credentials(&issuer);
        let handed_out = AtomicU32::new(0);

        // Act: the requester fetches back to back until refused; the revoke starts once the
        // first credentials are out, then its teardown.
        let fetching = async {
            // Bounded, so that a revoke that never lands fails the test instead of hanging it.
            for _ in 0..1000 {
                match credentials::issue(&creds, &w.caller, id.as_str(), now).await {
                    Ok(_) => handed_out.fetch_add(1, Ordering::SeqCst),
                    Err(e) => return Some(e),
                };
            }
            None
        };
        let revoking = async {
            while handed_out.load(Ordering::SeqCst) == 0 {
                tokio::task::yield_now().await;
            }
            approvals::revoke(&approvals, &w.caller, id.as_str(), b"", now).await
        };
        let (refused, revoked) = tokio::join!(fetching, revoking);
        revoked.unwrap_or_else(|e| panic!("run {run}: the revoke did not land: {e}"));
        lifecycle::teardown(&w.lifecycle(), &id, RequestStatus::Revoked, w.caller.as_str(), "revoked", now)
            .await
            .unwrap();

        // Assert: the fetches ended on the hold or the revoke; every credential handed out was
        // recorded, and the deny covers them.
        let refused = refused.unwrap_or_else(|| panic!("run {run}: 1,000 fetches went through"));
        assert!(["RevokeInProgress", "RequestNotApproved"].contains(&refused.code()), "run {run}: {refused}");
        let stored = w.store.get(&id).await.unwrap().unwrap();
        assert_eq!(stored.status, RequestStatus::Revoked, "run {run}");
        assert_eq!(stored.credentials.map(|c| c.issued), Some(handed_out.load(Ordering::SeqCst)), "run {run}");
        assert!(w.denied(&id).await, "run {run}: credentials were handed out, yet no deny");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_iam_a_revoke_past_the_session_roles_deny_budget_denies_by_issue_time_until_the_sweep_ends_it() {
    use jit_shared::domain::credentials::{deny_document, MAX_REQUEST_DENIES};
    let _turn = ONE_AT_A_TIME.lock().await;
    // Arrange: the session role already holds as many one-request denies as it may; a granted
    // request with credentials fetched, then revoked.
    let w = World::granting_in(jit_shared::domain::grant::GrantMode::Credentials).await;
    let role = GrantPrincipal::IamRole { name: w.settings.session_role_name.clone() };
    for _ in 0..MAX_REQUEST_DENIES {
        let other = RequestId::generate();
        w.granter.inner.put_policy(&role, &deny_policy_name(&other), &deny_document(&other).to_string()).await.unwrap();
    }
    let now = Utc::now();
    let issuer = MemoryIssuer::default();
    *issuer.at.lock().unwrap() = Some(now);
    let id = w.granted_and_fetched(&issuer, now).await;
    approvals::revoke(&w.approvals(), &w.caller, id.as_str(), b"", now).await.unwrap();

    // Act: the revoke's teardown, then a sweep an hour and two minutes later.
    let deps = w.lifecycle();
    lifecycle::teardown(&deps, &id, RequestStatus::Revoked, w.caller.as_str(), "revoked", now).await.unwrap();
    let after_revoke = w.granter.inner.list_policies(&role).await.unwrap();
    sweep::reconcile(&deps, now + Duration::minutes(62)).await.unwrap();

    // Assert: IAM took the deny by issue time in place of a 41st one-request deny; the sweep
    // removed every deny once nothing they cover could be used.
    let by_issue_time: Vec<&String> = after_revoke.iter().filter(|n| n.starts_with("jit-deny-before-")).collect();
    assert_eq!(by_issue_time.len(), 1, "{after_revoke:?}");
    assert!(!after_revoke.contains(&deny_policy_name(&id)));
    assert!(w.granter.inner.list_policies(&role).await.unwrap().is_empty());
}

/// A Grant task retried after its grant was recorded (Step Functions retries on timeouts) puts
/// the policy again; a revoke that tears the grant down while that put is in flight must not
/// leave the policy attached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_grant_racing_a_revoke_leaves_nothing_attached() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let w = World::new().await;
    let approvals = w.approvals();
    let id = w.granted().await;
    let deps = w.lifecycle();
    w.granter.hold_puts.store(true, Ordering::SeqCst);

    let retried = lifecycle::grant(&deps, &id, None, Utc::now());
    let revoke = async {
        w.granter.put_reached.notified().await;
        let now = Utc::now();
        approvals::revoke(&approvals, &w.caller, id.as_str(), b"", now).await.unwrap();
        lifecycle::teardown(&deps, &id, RequestStatus::Revoked, w.caller.as_str(), "revoked", now).await.unwrap();
        assert!(!w.attached(&id).await, "the teardown removed the policy");
        w.granter.put_release.notify_one();
    };
    let (granted, ()) = tokio::join!(retried, revoke);

    assert!(!granted.unwrap().granted);
    assert!(!w.attached(&id).await, "the retried grant put the policy back after the revoke");
    assert_eq!(w.store.get(&id).await.unwrap().unwrap().status, RequestStatus::Revoked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_iam_failures_on_expiry_are_retried() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let w = World::new().await;
    let recorded = w.granted_by(None).await;
    let id = recorded.request_id.clone();
    w.granter.failing_deletes.store(3, Ordering::SeqCst);
    let later = Utc::now() + Duration::seconds(11);
    let deps = w.lifecycle();
    let task = Task::Expire { grant: Box::new(GrantOutput::new(true, &later, recorded)) };
    let out = with_retry(10, || lifecycle::run_task(&deps, &task, later)).await.unwrap();
    assert_eq!(out["status"], "Expired");
    assert!(!w.attached(&id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanently_failing_detach_is_fixed_by_the_sweeper_once_the_fault_clears() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let w = World::new().await;
    let recorded = w.granted_by(None).await;
    let id = recorded.request_id.clone();
    let later = Utc::now() + Duration::seconds(11);
    let deps = w.lifecycle();
    w.granter.failing_deletes.store(u32::MAX, Ordering::SeqCst);
    let task = Task::Expire { grant: Box::new(GrantOutput::new(true, &later, recorded)) };
    let err = with_retry(3, || lifecycle::run_task(&deps, &task, later)).await.unwrap_err();
    assert_eq!(err.lambda_error_type(), "Retryable", "{err}");
    // Still attached, but IAM refuses it after the deadline anyway.
    assert!(w.attached(&id).await);
    let doc = w.granter.inner.list_policies(&GrantPrincipal::IamUser { name: w.user.clone() }).await.unwrap();
    assert!(doc.contains(&policy_name(&id)));
    let stored = w.store.get(&id).await.unwrap().unwrap();
    assert_eq!(stored.status, RequestStatus::Approved);
    assert!(stored.grant.as_ref().unwrap().deadline <= later);

    w.granter.failing_deletes.store(0, Ordering::SeqCst);
    let report = sweep::reconcile(&deps, later).await.unwrap();
    assert_eq!(report.expired, vec![id.to_string()]);
    assert!(!w.attached(&id).await);
    assert_eq!(w.store.get(&id).await.unwrap().unwrap().status, RequestStatus::Expired);
    let again = sweep::reconcile(&deps, later).await.unwrap();
    assert!(again.expired.is_empty() && again.orphans_removed.is_empty(), "idempotent: {again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jit_policy_without_a_live_request_on_a_principal_the_table_knows_is_removed_by_the_sweeper() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let w = World::new().await;
    // The user's request ended a moment ago: the sweep re-checks its principal's policies.
    let id = w.granted().await;
    lifecycle::teardown(&w.lifecycle(), &id, RequestStatus::Revoked, w.caller.as_str(), "revoked", Utc::now())
        .await
        .unwrap();
    let orphan = RequestId::generate();
    let principal = GrantPrincipal::IamUser { name: w.user.clone() };
    w.granter
        .inner
        .put_policy(
            &principal,
            &policy_name(&orphan),
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"ssm:StartSession","Resource":"*"}]}"#,
        )
        .await
        .unwrap();
    let report = sweep::reconcile(&w.lifecycle(), Utc::now()).await.unwrap();
    assert!(report.orphans_removed.contains(&policy_name(&orphan)), "{report:?}");
    assert!(!w.attached(&orphan).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_and_ssm_failures_on_grant_and_expiry_are_retried_and_the_deadline_is_always_in_the_policy() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let w = World::new().await;
    let store = FlakyStore { inner: w.store.clone(), failing: AtomicU32::new(0) };
    let sessions = FlakySessions { failing: AtomicU32::new(0) };
    let deps = LifecycleDeps {
        store: &store,
        granter: &w.granter,
        sessions: &sessions,
        executions: &w.executions,
        settings: &w.settings,
        seal: &*SEAL,
    };
    let now = Utc::now();
    let r = w.approved("faults", now).await;

    // Grant: the policy is put, recording it fails twice; the retry records it once.
    store.failing.store(2, Ordering::SeqCst);
    let grant = Task::Grant { request_id: r.request_id.clone(), execution: Some(EXECUTION.into()), rechecked: false };
    let out = with_retry(6, || lifecycle::run_task(&deps, &grant, now)).await.unwrap();
    assert_eq!(out["granted"], true);
    let iam = aws_sdk_iam::Client::new(&sdk().await);
    let doc = iam.get_user_policy().user_name(&w.user).policy_name(policy_name(&r.request_id)).send().await.unwrap();
    assert!(
        doc.policy_document().contains("aws%3ACurrentTime") || doc.policy_document().contains("aws:CurrentTime"),
        "the deadline condition is present"
    );
    let grants = w
        .store
        .audit_trail(&r.request_id)
        .await
        .unwrap()
        .iter()
        .filter(|a| a.reason.starts_with("access granted"))
        .count();
    assert_eq!(grants, 1, "the grant is recorded once");

    // Expire: DescribeSessions times out twice and the status write fails once; retried.
    sessions.failing.store(2, Ordering::SeqCst);
    store.failing.store(1, Ordering::SeqCst);
    let later = now + Duration::seconds(11);
    let expire = Task::Expire { grant: Box::new(serde_json::from_value(out).unwrap()) };
    let out = with_retry(10, || lifecycle::run_task(&deps, &expire, later)).await.unwrap();
    assert_eq!(out["status"], "Expired");
    assert!(!w.attached(&r.request_id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_execution_for_the_same_approval_ends_without_touching_the_grant() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let w = World::new().await;
    let deps = w.lifecycle();
    let id = w.granted_by(Some(EXECUTION)).await.request_id;
    let grants = |trail: &[jit_shared::domain::request::AuditRecord]| {
        trail.iter().filter(|a| a.reason.starts_with("access granted")).count()
    };

    // EventBridge redelivered the Approved event: a second execution's Grant.
    let second = lifecycle::grant(&deps, &id, Some(SECOND), Utc::now()).await.unwrap();
    // The first execution's Grant retried by Step Functions.
    let retried = lifecycle::grant(&deps, &id, Some(EXECUTION), Utc::now()).await.unwrap();

    assert!(!second.granted, "the second execution ends: {second:?}");
    assert!(retried.granted, "the execution the grant names keeps it: {retried:?}");
    assert!(w.attached(&id).await, "the second execution left the grant alone");
    let stored = w.store.get(&id).await.unwrap().unwrap();
    assert_eq!(stored.grant.unwrap().execution.as_deref(), Some(EXECUTION));
    assert_eq!(grants(&w.store.audit_trail(&id).await.unwrap()), 1, "one grant record");
}

const SECOND: &str = "arn:aws:states:us-east-1:123456789012:execution:jit-lifecycle:second";

/// The second execution's first Grant attempt put the policy after a revocation tore the grant
/// down, then failed to answer (a timeout); its retry must remove the policy even though the
/// grant belongs to the first execution.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_execution_on_a_revoked_request_removes_a_policy_its_earlier_attempt_put_back() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let w = World::new().await;
    let deps = w.lifecycle();
    let id = w.granted_by(Some(EXECUTION)).await.request_id;
    let now = Utc::now();
    approvals::revoke(&w.approvals(), &w.caller, id.as_str(), b"", now).await.unwrap();
    lifecycle::teardown(&deps, &id, RequestStatus::Revoked, w.caller.as_str(), "revoked", now).await.unwrap();
    let principal = GrantPrincipal::IamUser { name: w.user.clone() };
    w.granter
        .inner
        .put_policy(
            &principal,
            &policy_name(&id),
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ssm:StartSession","Resource":"*"}]}"#,
        )
        .await
        .unwrap();

    let retried = lifecycle::grant(&deps, &id, Some(SECOND), Utc::now()).await.unwrap();

    assert!(!retried.granted);
    assert!(!w.attached(&id).await, "a revoked request keeps no policy, whoever holds its grant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_grant_is_recorded_only_by_the_execution_that_holds_the_grant() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let w = World::new().await;
    let deps = w.lifecycle();
    let id = w.granted_by(Some(EXECUTION)).await.request_id;
    let failure = |execution: &str| Task::RecordFailure {
        request_id: id.clone(),
        failed_task: "grant".into(),
        error: serde_json::json!({"Error": "Lambda.TooManyRequestsException"}),
        execution: Some(execution.to_owned()),
    };

    lifecycle::run_task(&deps, &failure(SECOND), Utc::now()).await.unwrap();
    let after_duplicate = (w.store.get(&id).await.unwrap().unwrap().status, w.attached(&id).await);
    lifecycle::run_task(&deps, &failure(EXECUTION), Utc::now()).await.unwrap();
    let after_holder = (w.store.get(&id).await.unwrap().unwrap().status, w.attached(&id).await);

    assert_eq!(after_duplicate, (RequestStatus::Approved, true), "a duplicate's failure leaves the grant alone");
    assert_eq!(
        after_holder,
        (RequestStatus::Failed, false),
        "the holder's failure ends the request and removes the policy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_on_the_request_its_grant_recorded_reads_nothing_and_a_stale_or_altered_copy_is_corrected_from_the_table(
) {
    use jit_shared::adapters::api_calls::ApiCallLog;
    let _turn = ONE_AT_A_TIME.lock().await;
    let w = World::new().await;
    let log = ApiCallLog::default();
    let sdk = sdk().await;
    let counted = DynamoStore::new(
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(log.clone()).build(),
        ),
        &w.table,
    );
    let deps = LifecycleDeps {
        store: &counted,
        granter: &w.granter,
        sessions: &w.sessions,
        executions: &w.executions,
        settings: &w.settings,
        seal: &*SEAL,
    };
    type Alter = fn(AccessRequest) -> AccessRequest;
    let cases: [(&str, Alter, bool); 3] = [
        ("as recorded", |r| r, false),
        ("stale version", |r| AccessRequest { version: r.version - 1, ..r }, true),
        (
            "another node",
            |r| AccessRequest { node_id: "i-0fedcba9876543210".to_owned().try_into().unwrap(), ..r },
            true,
        ),
    ];
    for (case, alter, reads) in cases {
        let recorded = w.granted_by(Some(EXECUTION)).await;
        let id = recorded.request_id.clone();
        let later = Utc::now() + Duration::seconds(11);
        log.take();

        let out = lifecycle::expire(&deps, alter(recorded), later).await.unwrap();

        let calls = log.take();
        assert_eq!(out.status, RequestStatus::Expired, "{case}: {out:?}");
        assert_eq!(calls.contains_key("DynamoDB:GetItem"), reads, "{case}: {calls:?}");
        assert!(!w.attached(&id).await, "{case}: the policy is still attached");
        let stored = w.store.get(&id).await.unwrap().unwrap();
        assert_eq!(stored.status, RequestStatus::Expired, "{case}");
        assert_eq!(stored.node_id.as_str(), "i-0123456789abcdef0", "{case}: the table keeps its own node");
        let teardowns =
            w.store.audit_trail(&id).await.unwrap().iter().filter(|a| a.to == RequestStatus::Expired).count();
        assert_eq!(teardowns, 1, "{case}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_revoke_branch_tears_down_and_stops_the_execution_the_grant_recorded() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let w = World::new().await;
    let id = w.granted_by(Some(EXECUTION)).await.request_id;
    let now = Utc::now();
    approvals::revoke(&w.approvals(), &w.caller, id.as_str(), b"", now).await.unwrap();

    lifecycle::run_task(&w.lifecycle(), &Task::Revoke { request_id: id.clone(), second_pass: false }, now)
        .await
        .unwrap();

    assert!(!w.attached(&id).await, "the policy is gone");
    assert_eq!(*w.executions.stopped.lock().unwrap(), vec![EXECUTION.to_owned()]);
    assert_eq!(w.store.get(&id).await.unwrap().unwrap().status, RequestStatus::Revoked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_stops_only_executions_of_its_own_state_machine() {
    use jit_shared::adapters::executions::StepFunctionsExecutions;
    use jit_shared::ports::ExecutionControl;
    let sfn = aws_sdk_sfn::Client::new(&sdk().await);
    let definition = include_str!("../statemachine/lifecycle.asl.json")
        .replace("${LifecycleFunctionArn}", "arn:aws:lambda:us-east-1:123456789012:function:lifecycle")
        .replace("${EvaluateFunctionArn}", "arn:aws:lambda:us-east-1:123456789012:function:evaluate-request")
        .replace("${AlertTopicArn}", "arn:aws:sns:us-east-1:123456789012:alerts");
    let create = |name: String| {
        sfn.create_state_machine()
            .name(name)
            .definition(definition.clone())
            .role_arn("arn:aws:iam::123456789012:role/lifecycle-state-machine")
            .send()
    };
    let ours = create(unique("lifecycle")).await.unwrap().state_machine_arn.clone();
    let theirs = create(unique("other")).await.unwrap().state_machine_arn.clone();
    // What the Approved rule does: an execution with a generated name and {"requestId": ...}.
    let input = serde_json::json!({ "requestId": RequestId::generate().as_str() }).to_string();
    let start = |arn: String| sfn.start_execution().state_machine_arn(arn).input(input.clone()).send();
    let mine = start(ours.clone()).await.unwrap().execution_arn.clone();
    let foreign = start(theirs.clone()).await.unwrap().execution_arn.clone();
    let executions = StepFunctionsExecutions::new(sfn.clone(), &ours);

    executions.stop(&mine, "revoked").await.unwrap();
    let refused = executions.stop(&foreign, "revoked").await;
    executions.stop(&format!("{}:gone", ours.replacen(":stateMachine:", ":execution:", 1)), "revoked").await.unwrap();

    let status = |arn: String| async {
        sfn.describe_execution().execution_arn(arn).send().await.unwrap().status().as_str().to_owned()
    };
    assert_eq!(status(mine).await, "ABORTED");
    assert!(refused.is_err(), "an execution of another state machine is not stopped");
    assert_eq!(status(foreign).await, "RUNNING");
}

/// The delivery of the `Approved` event to Step Functions can fail for good: the sweep starts the
/// lifecycle itself within the access window, and fails the request once the window has passed
/// with nothing granted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_whose_lifecycle_never_started_is_restarted_by_the_sweep_and_failed_after_its_window() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let w = World::new().await;
    let deps = w.lifecycle();
    let intake_deps = SubmitDeps {
        store: &w.store,
        directory: &w.directory,
        settings: &w.settings,
        administrators: &jit_shared::domain::administrators::NO_ADMINISTRATORS,
    };
    let now = Utc::now();
    let approved_at = |at: chrono::DateTime<Utc>| {
        let intake_deps = &intake_deps;
        let store = &w.store;
        let caller = &w.caller;
        async move {
            let body =
                serde_json::json!({"nodeId": "i-0123456789abcdef0", "reason": "lost event", "durationMinutes": 60})
                    .to_string();
            let r = intake::submit(intake_deps, caller, body.as_bytes(), None, at).await.unwrap().request;
            let approve = Transition {
                approval_seal: Some(SEAL.seal_now(&r.approval_message())),
                ..Transition::status_change(&r, RequestStatus::Approved, "test", "approved", at)
            };
            store.transition(&approve).await.unwrap().request_id
        }
    };
    let stalled = approved_at(now - Duration::minutes(3)).await;
    let fresh = approved_at(now).await;

    let first = sweep::reconcile(&deps, now).await.unwrap();
    let started = w.executions.started.lock().unwrap().clone();

    assert_eq!(first.restarted, vec![stalled.to_string()], "only the request past the grace period: {first:?}");
    assert_eq!(started, vec![stalled.clone()], "the sweep started its execution");

    // The restarted lifecycle grants; a granted request is not restarted again.
    assert!(lifecycle::grant(&deps, &stalled, Some(EXECUTION), now).await.unwrap().granted);
    let second = sweep::reconcile(&deps, now).await.unwrap();
    assert!(second.restarted.is_empty(), "{second:?}");

    // The fresh request never gets a grant: after its window it fails, once, and says so.
    let after_window = now + Duration::minutes(61);
    let third = sweep::reconcile(&deps, after_window).await.unwrap();
    assert_eq!(third.failed, vec![fresh.to_string()], "{third:?}");
    assert_eq!(w.store.get(&fresh).await.unwrap().unwrap().status, RequestStatus::Failed);
    let trail = w.store.audit_trail(&fresh).await.unwrap();
    let told: Vec<_> = trail.iter().filter(|a| a.actor == sweep::SWEEPER_ACTOR).map(|a| (a.to, a.from)).collect();
    assert_eq!(
        told,
        vec![(RequestStatus::Failed, Some(RequestStatus::Approved))],
        "one change, which the stream publishes"
    );
    assert!(jit_shared::app::notify::requester_is_told(told[0].0, told[0].1), "the requester hears of it");
    let fourth = sweep::reconcile(&deps, after_window).await.unwrap();
    assert!(fourth.failed.is_empty() && fourth.restarted.is_empty() && fourth.fixed() == 0, "{fourth:?}");
}
