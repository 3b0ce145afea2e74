//! The DynamoDB adapter and the intake service against the emulator: conditional writes,
//! idempotency under concurrency, the audit trail, and the access patterns.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test (or bench) stops loudly on a broken expectation"
)]

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use integration_tests::{envelope_of, sdk, unique};
use jit_shared::adapters::dynamodb::{create_table, DynamoStore};
use jit_shared::adapters::principals::AwsPrincipalDirectory;
use jit_shared::app::submit::{self as intake, SubmitDeps};
use jit_shared::domain::approval::ApprovalProgress;
use jit_shared::domain::principal::CallerArn;
use jit_shared::domain::request::{ApprovalLevel, ApprovalPlan, Approver, Decision, DecisionRule};
use jit_shared::domain::status::RequestStatus;
use jit_shared::ports::{CreateOutcome, ListQuery, RequestStore, Transition, TransitionError};
use proptest::prelude::*;
use serde_json::json;

struct Fixture {
    store: DynamoStore,
    directory: AwsPrincipalDirectory,
    dynamo: aws_sdk_dynamodb::Client,
    table: String,
    settings: jit_shared::domain::grant::GrantSettings,
}

impl Fixture {
    async fn new() -> Self {
        let sdk = sdk().await;
        let table = unique("store");
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        create_table(&dynamo, &table).await.unwrap();
        Self {
            store: DynamoStore::new(dynamo.clone(), &table),
            directory: AwsPrincipalDirectory::new(aws_sdk_iam::Client::new(&sdk)),
            dynamo,
            table,
            settings: integration_tests::grant_settings(jit_shared::domain::grant::GrantMode::Attach, "unused"),
        }
    }
    fn deps(&self) -> SubmitDeps<'_> {
        SubmitDeps {
            store: &self.store,
            directory: &self.directory,
            settings: &self.settings,
            administrators: &jit_shared::domain::administrators::NO_ADMINISTRATORS,
        }
    }
    async fn item_count(&self) -> usize {
        // A scan is fine here: it only checks what the tests wrote.
        self.dynamo.scan().table_name(&self.table).send().await.unwrap().items().len()
    }
}

fn caller(name: &str) -> CallerArn {
    CallerArn::try_from(format!("arn:aws:iam::123456789012:user/{name}")).unwrap()
}

fn body(node: &str, reason: &str, minutes: u32) -> Vec<u8> {
    json!({ "nodeId": node, "reason": reason, "durationMinutes": minutes }).to_string().into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_submissions_with_one_idempotency_key_create_exactly_one_request() {
    let f = Fixture::new().await;
    let alice = caller("alice");
    let b = body("i-0123456789abcdef0", "disk full", 30);
    let deps = f.deps();
    let results =
        futures::future::join_all((0..50).map(|_| intake::submit(&deps, &alice, &b, Some("same-key"), Utc::now())))
            .await;
    let ids: BTreeSet<String> = results.into_iter().map(|r| r.unwrap().request.request_id.to_string()).collect();
    assert_eq!(ids.len(), 1, "every call answers with the same request");
    let page = f.store.list_by_requester(&alice, &ListQuery { status: None, limit: 100, after: None }).await.unwrap();
    assert_eq!(page.items.len(), 1, "exactly one request is stored");
}

#[tokio::test]
async fn reusing_a_key_with_another_body_is_a_conflict_and_writes_nothing() {
    let f = Fixture::new().await;
    let alice = caller("alice");
    let first =
        intake::submit(&f.deps(), &alice, &body("i-0123abcd", "one", 30), Some("k1"), Utc::now()).await.unwrap();
    let before = f.item_count().await;
    let err =
        intake::submit(&f.deps(), &alice, &body("i-0123abcd", "two", 30), Some("k1"), Utc::now()).await.unwrap_err();
    assert_eq!(jit_shared::http::error::status(&err), 409);
    let again =
        intake::submit(&f.deps(), &alice, &body("i-0123abcd", "  one ", 30), Some("k1"), Utc::now()).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.request.request_id, first.request.request_id);
    assert_eq!(f.item_count().await, before);
    // The same key from another caller is another request.
    let bob = intake::submit(&f.deps(), &caller("bob"), &body("i-0123abcd", "two", 30), Some("k1"), Utc::now())
        .await
        .unwrap();
    assert_ne!(bob.request.request_id, first.request.request_id);
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_writes_nothing() {
    let f = Fixture::new().await;
    let cases: [(&[u8], Option<&str>, &str); 4] = [
        (br#"{"nodeId":"nope","reason":"x","durationMinutes":5}"#, None, "nodeId"),
        (br#"{"nodeId":"i-0123abcd","reason":"x","durationMinutes":20161}"#, None, "durationMinutes"),
        (br#"{"nodeId":"i-0123abcd","reason":"","durationMinutes":5}"#, Some("k"), "reason"),
        (br#"{"nodeId":"i-0123abcd","reason":"x","durationMinutes":5}"#, Some("has space"), "Idempotency-Key"),
    ];
    for (b, key, field) in cases {
        let err = intake::submit(&f.deps(), &caller("alice"), b, key, Utc::now()).await.unwrap_err();
        assert_eq!(jit_shared::http::error::status(&err), 400);
        assert_eq!(jit_shared::http::error::body(&err)["error"]["field"], field);
    }
    assert_eq!(f.item_count().await, 0);
}

#[tokio::test]
async fn listing_is_newest_first_paginated_and_filtered_by_status() {
    let f = Fixture::new().await;
    let alice = caller("alice");
    let t0 = Utc::now();
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = intake::submit(
            &f.deps(),
            &alice,
            &body("i-0123abcd", &format!("r{i}"), 10),
            None,
            t0 + Duration::seconds(i),
        )
        .await
        .unwrap();
        ids.push(r.request.request_id);
    }
    intake::submit(&f.deps(), &caller("bob"), &body("i-0123abcd", "not alice's", 10), None, t0).await.unwrap();
    let first = f.store.list_by_requester(&alice, &ListQuery { status: None, limit: 3, after: None }).await.unwrap();
    let second = f
        .store
        .list_by_requester(&alice, &ListQuery { status: None, limit: 3, after: first.next.clone() })
        .await
        .unwrap();
    let listed: Vec<_> = first.items.iter().chain(second.items.iter()).map(|r| r.request_id.clone()).collect();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(listed, newest_first);
    let r = f.store.get(&ids[0]).await.unwrap().unwrap();
    f.store.transition(&transition(&r, RequestStatus::Failed, None)).await.unwrap();
    let failed = f
        .store
        .list_by_requester(&alice, &ListQuery { status: Some(RequestStatus::Failed), limit: 100, after: None })
        .await
        .unwrap();
    assert_eq!(failed.items.iter().map(|r| r.request_id.clone()).collect::<Vec<_>>(), vec![ids[0].clone()]);
}

fn plan() -> ApprovalPlan {
    ApprovalPlan {
        policy_name: "prod".into(),
        levels: vec![ApprovalLevel {
            min_approvals: 1,
            approvers: vec![Approver::IamGroup("DevOps".into()), Approver::IamUser("lead".into())],
            ..Default::default()
        }],
    }
}

fn transition(
    r: &jit_shared::domain::request::AccessRequest,
    to: RequestStatus,
    plan: Option<ApprovalPlan>,
) -> Transition {
    let decision = Decision {
        outcome: to,
        rule: DecisionRule::ManualTagSpecific,
        deciding_policy_ids: vec!["manual/prod".into()],
        deny_policy_ids: vec![],
        failure_code: None,
        message: "test".into(),
        max_duration_minutes: Some(60),
        approval_plan: plan,
        node_tags: Default::default(),
        node_location: None,
        decided_at: Utc::now(),
    };
    Transition {
        decision: Some(decision),
        progress: (to == RequestStatus::Pending)
            .then(|| ApprovalProgress::start(Utc::now() + chrono::Duration::hours(1))),
        ..Transition::status_change(r, to, "test", "test", Utc::now())
    }
}

/// A change recording one issuance of credentials on `r` (in place, `Approved`).
fn issuance(r: &jit_shared::domain::request::AccessRequest, key: &str) -> Transition {
    let now = Utc::now();
    Transition {
        credentials: Some(jit_shared::domain::credentials::CredentialsIssue {
            access_key_id: key.into(),
            role_arn: "arn:aws:iam::123456789012:role/jit-node-access-session".into(),
            issued_at: now,
            expiration: now + Duration::minutes(30),
        }),
        ..Transition::status_change(r, RequestStatus::Approved, "alice", "credentials issued", now)
    }
}

#[tokio::test]
async fn a_request_held_for_its_revoke_records_no_more_credentials_but_can_still_be_revoked() {
    // Arrange: approved, one issuance recorded; then read as a fetch would, before the hold.
    let f = Fixture::new().await;
    let r = intake::submit(&f.deps(), &caller("alice"), &body("i-0123abcd", "x", 10), None, Utc::now())
        .await
        .unwrap()
        .request;
    let approved = f.store.transition(&transition(&r, RequestStatus::Approved, None)).await.unwrap();
    let fetched = f.store.transition(&issuance(&approved, "ASIAFIRST")).await.unwrap();
    let read_before_the_hold = f.store.get(&r.request_id).await.unwrap().unwrap();
    assert_eq!(read_before_the_hold.revoke_held_at, None);

    // Act: the revoke's hold (twice: the first time stays), a fetch's write on the earlier read,
    // then the revoke's write on that same read.
    let first_hold = Utc::now();
    assert!(f.store.hold_for_revoke(&r.request_id, first_hold).await.unwrap());
    assert!(f.store.hold_for_revoke(&r.request_id, first_hold + Duration::seconds(5)).await.unwrap());
    let late_fetch = f.store.transition(&issuance(&read_before_the_hold, "ASIALATE")).await;
    let revoke =
        Transition::status_change(&read_before_the_hold, RequestStatus::Revoked, "admin", "revoked", Utc::now());
    let revoked = f.store.transition(&revoke).await;

    // Assert: the hold is no status change (same version, no audit record); the late issuance
    // is refused and left no trace; the revoke landed; a request no longer Approved cannot be held.
    assert_eq!(late_fetch.unwrap_err(), TransitionError::Conflict);
    assert_eq!(revoked.unwrap().status, RequestStatus::Revoked);
    let stored = f.store.get(&r.request_id).await.unwrap().unwrap();
    assert_eq!(stored.version, fetched.version + 1);
    assert_eq!(stored.credentials.as_ref().map(|c| (c.issued, c.last.access_key_id.as_str())), Some((1, "ASIAFIRST")));
    assert_eq!(stored.revoke_held_at.map(|t| t.timestamp_millis()), Some(first_hold.timestamp_millis()));
    let trail = f.store.audit_trail(&r.request_id).await.unwrap();
    assert_eq!(trail.iter().filter(|a| a.credentials.is_some()).count(), 1);
    assert_eq!(trail.last().unwrap().to, RequestStatus::Revoked);
    assert!(!f.store.hold_for_revoke(&r.request_id, Utc::now()).await.unwrap());
}

#[tokio::test]
async fn pending_requests_are_found_by_approver_until_they_leave_pending() {
    let f = Fixture::new().await;
    let r = intake::submit(&f.deps(), &caller("alice"), &body("i-0123abcd", "x", 10), None, Utc::now())
        .await
        .unwrap()
        .request;
    let pending = f.store.transition(&transition(&r, RequestStatus::Pending, Some(plan()))).await.unwrap();
    assert_eq!(f.store.list_pending_by_approver("iam-group#DevOps", 10).await.unwrap(), vec![r.request_id.clone()]);
    assert_eq!(f.store.list_pending_by_approver("iam-user#lead", 10).await.unwrap(), vec![r.request_id.clone()]);
    assert!(f.store.list_pending_by_approver("iam-user#alice", 10).await.unwrap().is_empty());
    let mut cancel = transition(&pending, RequestStatus::Cancelled, None);
    cancel.decision = None;
    f.store.transition(&cancel).await.unwrap();
    assert!(f.store.list_pending_by_approver("iam-group#DevOps", 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_stale_transition_is_refused_and_changes_nothing() {
    let f = Fixture::new().await;
    let r = intake::submit(&f.deps(), &caller("alice"), &body("i-0123abcd", "x", 10), None, Utc::now())
        .await
        .unwrap()
        .request;
    f.store.transition(&transition(&r, RequestStatus::Approved, None)).await.unwrap();
    let err = f.store.transition(&transition(&r, RequestStatus::Failed, None)).await.unwrap_err();
    assert_eq!(err, TransitionError::Conflict);
    assert_eq!(f.store.get(&r.request_id).await.unwrap().unwrap().status, RequestStatus::Approved);
    assert_eq!(f.store.audit_trail(&r.request_id).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_companion_change_is_written_with_its_transition_or_neither_is() {
    // Arrange: two approved requests of alice; `b` is read, then changed by someone else.
    let f = Fixture::new().await;
    let submit = |reason: &'static str| {
        let f = &f;
        async move {
            intake::submit(&f.deps(), &caller("alice"), &body("i-0123abcd", reason, 10), None, Utc::now())
                .await
                .unwrap()
                .request
        }
    };
    let a = f.store.transition(&transition(&submit("a").await, RequestStatus::Approved, None)).await.unwrap();
    let b = f.store.transition(&transition(&submit("b").await, RequestStatus::Approved, None)).await.unwrap();
    let ended = |r: &jit_shared::domain::request::AccessRequest, to| {
        Box::new(Transition::status_change(r, to, "test", "companion", Utc::now()))
    };
    let with = |companion| Transition {
        companion: Some(companion),
        ..Transition::status_change(&a, RequestStatus::Expired, "test", "primary", Utc::now())
    };
    f.store
        .transition(&Transition::status_change(&b, RequestStatus::Revoked, "admin", "revoked", Utc::now()))
        .await
        .unwrap();

    // Act: one write on a stale `b`, then one on `b` as stored.
    let stale = f.store.transition(&with(ended(&b, RequestStatus::Expired))).await;
    let a_after_stale = f.store.get(&a.request_id).await.unwrap().unwrap();
    let c = f.store.transition(&transition(&submit("c").await, RequestStatus::Approved, None)).await.unwrap();
    let both = f.store.transition(&with(ended(&c, RequestStatus::Expired))).await;

    // Assert: the stale companion refused the whole write; the fresh one wrote both, each with
    // its audit record.
    assert_eq!(stale.unwrap_err(), TransitionError::Conflict);
    assert_eq!(a_after_stale.status, RequestStatus::Approved, "nothing of the refused write landed");
    assert_eq!(both.unwrap().status, RequestStatus::Expired);
    assert_eq!(f.store.get(&c.request_id).await.unwrap().unwrap().status, RequestStatus::Expired);
    let reasons = |id| {
        let f = &f;
        async move { f.store.audit_trail(id).await.unwrap().into_iter().map(|r| r.reason).collect::<Vec<_>>() }
    };
    assert_eq!(reasons(&a.request_id).await.last().map(String::as_str), Some("primary"));
    assert_eq!(reasons(&c.request_id).await.last().map(String::as_str), Some("companion"));
}

#[tokio::test]
async fn a_request_cancelled_before_evaluation_leaves_the_sweepers_submitted_index() {
    // Arrange
    let f = Fixture::new().await;
    let r = intake::submit(&f.deps(), &caller("alice"), &body("i-0123abcd", "x", 10), None, Utc::now())
        .await
        .unwrap()
        .request;
    let later = Utc::now() + Duration::hours(2);
    let listed_before = f.store.list_submitted_before(later, 10).await.unwrap();

    // Act
    f.store
        .transition(&Transition::status_change(&r, RequestStatus::Cancelled, "alice", "cancelled", Utc::now()))
        .await
        .unwrap();

    // Assert: the sweeper will not fail a cancelled request as never evaluated.
    assert!(listed_before.contains(&r.request_id));
    assert!(!f.store.list_submitted_before(later, 10).await.unwrap().contains(&r.request_id));
}

#[tokio::test]
async fn ended_requests_are_listed_newest_first_for_the_sweeper() {
    // Arrange: two approved requests, ended a minute apart.
    let f = Fixture::new().await;
    let t0 = Utc::now();
    let mut ended = Vec::new();
    for (reason, at) in [("first", t0), ("second", t0 + Duration::minutes(1))] {
        let r = intake::submit(&f.deps(), &caller("alice"), &body("i-0123abcd", reason, 10), None, t0)
            .await
            .unwrap()
            .request;
        let approved = f.store.transition(&transition(&r, RequestStatus::Approved, None)).await.unwrap();
        f.store
            .transition(&Transition::status_change(&approved, RequestStatus::Revoked, "admin", "revoked", at))
            .await
            .unwrap();
        ended.push(r.request_id);
    }

    // Act
    let listed = f.store.list_ended_since(t0 - Duration::minutes(5), 10).await.unwrap();
    let one = f.store.list_ended_since(t0 - Duration::minutes(5), 1).await.unwrap();

    // Assert
    assert_eq!(listed, [ended[1].clone(), ended[0].clone()]);
    assert_eq!(one, [ended[1].clone()], "a limit keeps the newest");
}

#[tokio::test]
async fn the_sweepers_deadline_lists_come_newest_first_so_old_failures_cannot_hold_back_new_items() {
    // Arrange: two requests submitted a minute apart and never evaluated; two approved a minute
    // apart, neither granted.
    let f = Fixture::new().await;
    let t0 = Utc::now() - Duration::hours(2);
    let mut submitted = Vec::new();
    let mut approved = Vec::new();
    for (i, at) in [t0, t0 + Duration::minutes(1)].into_iter().enumerate() {
        for (kind, ids) in [("stuck", &mut submitted), ("approved", &mut approved)] {
            let reason = format!("{kind} {i}");
            let r = intake::submit(&f.deps(), &caller("alice"), &body("i-0123abcd", &reason, 10), None, at)
                .await
                .unwrap()
                .request;
            if kind == "approved" {
                let decided = Transition::status_change(&r, RequestStatus::Approved, "test", "approved", at);
                let decision = transition(&r, RequestStatus::Approved, None).decision;
                f.store.transition(&Transition { decision, ..decided }).await.unwrap();
            }
            ids.push(r.request_id);
        }
    }
    let now = Utc::now();

    // Act
    let stuck = f.store.list_submitted_before(now, 10).await.unwrap();
    let awaiting = f.store.list_awaiting_grant(now, 10).await.unwrap();
    let one = f.store.list_submitted_before(now, 1).await.unwrap();

    // Assert
    assert_eq!(stuck, [submitted[1].clone(), submitted[0].clone()]);
    assert_eq!(awaiting, [approved[1].clone(), approved[0].clone()]);
    assert_eq!(one, [submitted[1].clone()], "a limit keeps the newest");
}

/// The TTL value of one item (epoch seconds), or None.
async fn expires_at(f: &Fixture, pk: &str, sk: &str) -> Option<i64> {
    let item = f
        .dynamo
        .get_item()
        .table_name(&f.table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.to_owned()))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(sk.to_owned()))
        .send()
        .await
        .unwrap()
        .item
        .expect("the item exists");
    item.get("expiresAt").map(|v| v.as_n().unwrap().parse().unwrap())
}

#[tokio::test]
async fn records_expire_a_retention_after_their_change_and_a_request_only_once_final() {
    // Arrange: a store keeping records 400 days, on a table whose TTL is on.
    let f = Fixture::new().await;
    let store = DynamoStore::new(f.dynamo.clone(), &f.table).with_retention_days(400);
    let deps = SubmitDeps {
        store: &store,
        directory: &f.directory,
        settings: &f.settings,
        administrators: &jit_shared::domain::administrators::NO_ADMINISTRATORS,
    };
    let ttl = f.dynamo.describe_time_to_live().table_name(&f.table).send().await.unwrap();
    let ttl = ttl.time_to_live_description.unwrap();
    assert_eq!(ttl.attribute_name(), Some("expiresAt"));
    assert_eq!(ttl.time_to_live_status().map(|s| s.as_str()), Some("ENABLED"));
    let created = Utc::now();
    let r = intake::submit(&deps, &caller("alice"), &body("i-0123abcd", "x", 10), None, created).await.unwrap().request;
    let pk = format!("REQ#{}", r.request_id);
    let days = |n: i64, from: chrono::DateTime<Utc>| (from + Duration::days(n)).timestamp();

    // Act 1: approve. Assert: the audit records expire 400 days after their change, the
    // request (which can still change) never.
    let approved = store.transition(&transition(&r, RequestStatus::Approved, None)).await.unwrap();
    assert_eq!(expires_at(&f, &pk, "AUDIT#000001").await, Some(days(400, created)));
    assert_eq!(expires_at(&f, &pk, "AUDIT#000002").await, Some(days(400, approved.updated_at)));
    assert_eq!(expires_at(&f, &pk, "META").await, None, "an Approved request is never expired");

    // Act 2: it fails (a final status). Assert: the request now expires 400 days later.
    let failed = store.transition(&transition(&approved, RequestStatus::Failed, None)).await.unwrap();
    assert_eq!(expires_at(&f, &pk, "META").await, Some(days(400, failed.updated_at)));
}

#[tokio::test]
async fn an_idempotency_key_is_honoured_for_24_hours_and_may_be_used_again_after() {
    let f = Fixture::new().await;
    let alice = caller("alice");
    let t0 = Utc::now();
    let first = intake::submit(&f.deps(), &alice, &body("i-0123abcd", "one", 30), Some("k"), t0).await.unwrap();
    let within = intake::submit(&f.deps(), &alice, &body("i-0123abcd", "one", 30), Some("k"), t0 + Duration::hours(23))
        .await
        .unwrap();
    assert!(within.replayed, "the key is honoured within 24 hours");
    assert_eq!(within.request.request_id, first.request.request_id);
    // After 24 hours the key is free again (TTL deletes lazily: the item may still be there).
    let after = intake::submit(&f.deps(), &alice, &body("i-0123abcd", "two", 30), Some("k"), t0 + Duration::hours(25))
        .await
        .unwrap();
    assert!(!after.replayed, "a key past its 24 hours is a new request, even with another body");
    assert_ne!(after.request.request_id, first.request.request_id);
}

#[tokio::test]
async fn a_replay_reads_what_an_earlier_call_with_the_key_made_and_creates_nothing() {
    // Arrange
    let f = Fixture::new().await;
    let alice = caller("alice");
    let t0 = Utc::now();
    let first = intake::submit(&f.deps(), &alice, &body("i-0123abcd", "one", 30), Some("k"), t0).await.unwrap();
    let record = |key: &str, hash: String| jit_shared::ports::IdempotencyRecord {
        caller: alice.clone(),
        key: key.into(),
        body_hash: hash,
    };
    let hash = |reason: &str| intake::NewRequest::parse(&body("i-0123abcd", reason, 30)).unwrap().fingerprint();
    let items = f.item_count().await;

    // Act
    let same = f.store.replay(&record("k", hash("one")), t0).await.unwrap();
    let other_body = f.store.replay(&record("k", hash("two")), t0).await.unwrap();
    let unused = f.store.replay(&record("never-used", hash("one")), t0).await.unwrap();
    let expired = f.store.replay(&record("k", hash("one")), t0 + Duration::hours(25)).await.unwrap();

    // Assert
    assert!(matches!(same, Some(CreateOutcome::Replayed(r)) if r.request_id == first.request.request_id));
    assert_eq!(other_body, Some(CreateOutcome::KeyReused));
    assert_eq!((unused, expired), (None, None));
    assert_eq!(f.item_count().await, items, "a replay writes nothing");
}

#[tokio::test]
async fn a_decision_is_listed_under_whom_it_counted_as_newest_first() {
    // Arrange: two pending requests.
    let f = Fixture::new().await;
    let submit = |node: &'static str| {
        let f = &f;
        async move {
            let r = intake::submit(&f.deps(), &caller("alice"), &body(node, "x", 10), None, Utc::now())
                .await
                .unwrap()
                .request;
            f.store.transition(&transition(&r, RequestStatus::Pending, Some(plan()))).await.unwrap()
        }
    };
    let first = submit("i-0123abcd").await;
    let second = submit("i-0456abcd").await;
    let decide = |r: jit_shared::domain::request::AccessRequest, verdict, to, minutes| {
        let f = &f;
        async move {
            let at = Utc::now() + Duration::minutes(minutes);
            let entry = jit_shared::domain::approval::ApprovalEntry {
                level: 1,
                verdict,
                approver: jit_shared::domain::approval::Person::IamUser("lead".into()),
                actor: "arn:aws:iam::123456789012:user/lead".into(),
                matched: "iam-user#lead".into(),
                channel: jit_shared::domain::approval::Channel::Api,
                at,
                comment: None,
                counted_as: Some("iam-user#lead".into()),
            };
            let mut progress = r.progress.clone().unwrap();
            progress.entries.push(entry.clone());
            let change = Transition {
                approval: Some(entry),
                progress: Some(progress),
                ..Transition::status_change(&r, to, "arn:aws:iam::123456789012:user/lead", "decided", at)
            };
            f.store.transition(&change).await.unwrap();
        }
    };

    // Act: lead approves the first (one approval completes it), then rejects the second a
    // minute later.
    decide(first.clone(), jit_shared::domain::approval::Verdict::Approve, RequestStatus::Approved, 0).await;
    decide(second.clone(), jit_shared::domain::approval::Verdict::Reject, RequestStatus::Rejected, 1).await;

    // Assert
    let ids = f.store.list_decided_by("iam-user#lead", 10).await.unwrap();
    assert_eq!(ids, [second.request_id, first.request_id]);
    assert!(f.store.list_decided_by("iam-user#someone", 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_request_without_a_duration_gets_the_one_its_decision_sets_and_only_then() {
    // Arrange
    let f = Fixture::new().await;
    let r = intake::submit(&f.deps(), &caller("alice"), br#"{"nodeId":"i-0123abcd","reason":"x"}"#, None, Utc::now())
        .await
        .unwrap()
        .request;
    let stored = f.store.get(&r.request_id).await.unwrap().unwrap();
    assert!(stored.duration_from_policy);
    let decided =
        Transition { duration: Some(45.try_into().unwrap()), ..transition(&r, RequestStatus::Approved, None) };

    // Act
    let approved = f.store.transition(&decided).await.unwrap();
    let again =
        Transition { duration: Some(60.try_into().unwrap()), ..transition(&approved, RequestStatus::Expired, None) };

    // Assert: stored as decided; a later change may not set it again.
    let stored = f.store.get(&r.request_id).await.unwrap().unwrap();
    assert_eq!((stored.duration_minutes.get(), stored.duration_from_policy), (45, true));
    assert_eq!(approved.duration_minutes, stored.duration_minutes, "what the write returned is what it stored");
    assert!(matches!(f.store.transition(&again).await, Err(TransitionError::NotAllowed(_))));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random transition attempts, some of them stale or concurrent, against the real
    /// conditional writes: the stored path stays in the graph, and each applied transition has
    /// exactly one audit record.
    #[test]
    fn random_transition_attempts_stay_in_the_graph_with_one_audit_record_each(
        attempts in proptest::collection::vec((0usize..8, proptest::bool::ANY), 1..10)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let f = Fixture::new().await;
            let mut current = intake::submit(&f.deps(), &caller("alice"), &body("i-0123abcd", "x", 10), None, Utc::now()).await.unwrap().request;
            let mut applied = vec![(None, RequestStatus::Submitted)];
            for (target, stale) in attempts {
                let to = RequestStatus::ALL[target];
                let mut t = transition(&current, to, if to == RequestStatus::Pending { Some(plan()) } else { None });
                if stale {
                    t.basis.version = current.version.saturating_sub(1);
                }
                match f.store.transition(&t).await {
                    Ok(next) => {
                        prop_assert!(!stale, "a stale transition was applied");
                        prop_assert!(!(current.status == RequestStatus::Pending && to == RequestStatus::Expired), "expired before its deadline");
                        prop_assert!(current.status.successors().contains(&to));
                        prop_assert!(t.check().is_ok());
                        applied.push((Some(current.status), to));
                        current = next;
                    }
                    // The domain's check is the oracle: the graph, and the rules on some edges (an
                    // approval is withdrawn only before its scheduled start, say).
                    Err(TransitionError::NotAllowed(_)) => prop_assert!(t.check().is_err()),
                    // Pending -> Expired is also conditioned on the approval deadline, an hour away here.
                    Err(TransitionError::Conflict) => prop_assert!(stale || (current.status == RequestStatus::Pending && to == RequestStatus::Expired)),
                    Err(e) => prop_assert!(false, "unexpected error {e}"),
                }
            }
            let stored = f.store.get(&current.request_id).await.unwrap().unwrap();
            prop_assert_eq!(stored.status, current.status);
            let trail = f.store.audit_trail(&current.request_id).await.unwrap();
            let trail_steps: Vec<_> = trail.iter().map(|a| (a.from, a.to)).collect();
            prop_assert_eq!(trail_steps, applied);
            let versions: Vec<u32> = trail.iter().map(|a| a.version).collect();
            prop_assert_eq!(versions, (1..=u32::try_from(trail.len()).unwrap()).collect::<Vec<_>>());
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn a_write_decided_on_another_request_than_the_stored_one_is_refused() {
    // Arrange: a stored request, and a basis that agrees on id, status and version only.
    let f = Fixture::new().await;
    let r = intake::submit(&f.deps(), &caller("alice"), &body("i-0123abcd", "x", 10), None, Utc::now())
        .await
        .unwrap()
        .request;
    let cases = [
        (
            "nodeId",
            jit_shared::domain::request::AccessRequest {
                node_id: "i-0fff0000aaaa11112".to_owned().try_into().unwrap(),
                ..r.clone()
            },
        ),
        ("requester", jit_shared::domain::request::AccessRequest { requester: caller("mallory"), ..r.clone() }),
        (
            "durationMinutes",
            jit_shared::domain::request::AccessRequest { duration_minutes: 60.try_into().unwrap(), ..r.clone() },
        ),
        (
            "reason",
            jit_shared::domain::request::AccessRequest { reason: "y".to_owned().try_into().unwrap(), ..r.clone() },
        ),
    ];
    for (field, other) in cases {
        // Act
        let err = f.store.transition(&transition(&other, RequestStatus::Approved, None)).await.unwrap_err();
        // Assert
        assert_eq!(err, TransitionError::Conflict, "a basis with another {field} must not be written");
    }
    let stored = f.store.get(&r.request_id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.version, stored.node_id),
        (RequestStatus::Submitted, 1, r.node_id),
        "the stored request is unchanged"
    );
    assert_eq!(f.store.audit_trail(&r.request_id).await.unwrap().len(), 1);
}

/// The envelope EventBridge would deliver for `event`.
#[tokio::test]
async fn an_evaluation_event_that_does_not_match_the_table_is_decided_on_what_is_stored() {
    // Arrange: a request for the production node (manual approval in policies/), and its
    // Submitted event altered to name a development node (auto-approved there).
    let f = Fixture::new().await;
    let name = unique("alice");
    aws_sdk_iam::Client::new(&sdk().await).create_user().user_name(&name).send().await.unwrap();
    let prod = "i-0fedcba9876543210";
    let dev = "i-0123456789abcdef0";
    let r = intake::submit(&f.deps(), &caller(&name), &body(prod, "fix the payments outage", 30), None, Utc::now())
        .await
        .unwrap()
        .request;
    let mut event = jit_shared::domain::events::StatusEvent::for_request(&r, None, r.requester.as_str());
    event.node_id = dev.to_owned().try_into().unwrap();
    let envelope = envelope_of(event);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let policies = jit_shared::policy::PolicySet::load_dir(&root.join("policies")).unwrap();
    let nodes = jit_cli::local::SeedNodeDirectory {
        nodes: [
            (prod.to_owned(), [("Environment".to_owned(), "Production".to_owned())].into()),
            (dev.to_owned(), [("Environment".to_owned(), "Development".to_owned())].into()),
        ]
        .into(),
        home: integration_tests::home(),
        calls: Default::default(),
    };
    let deps = jit_shared::app::evaluate::EvaluationDeps {
        store: &f.store,
        principals: &f.directory,
        nodes: &nodes,
        policies: &policies,
        pending_timeout_minutes: 60,
        seal: &jit_shared::adapters::memory::MemorySeal::default(),
        max_active_requests: 5,
    };
    // Act
    let outcome = jit_shared::app::evaluate::handle_submitted_event(&deps, &envelope, Utc::now()).await.unwrap();
    // Assert: decided once, on the stored production request.
    let stored = f.store.get(&r.request_id).await.unwrap().unwrap();
    assert_eq!(stored.status, RequestStatus::Pending, "the production node needs approval: {outcome:?}");
    assert_eq!(stored.node_id.as_str(), prod);
    let tags = &stored.decision.unwrap().node_tags;
    assert_eq!(tags.get("Environment").map(String::as_str), Some("Production"));
    assert_eq!(f.store.audit_trail(&r.request_id).await.unwrap().len(), 2);
}

#[tokio::test]
async fn an_iam_user_resolves_with_its_groups_and_tags_whichever_way_it_is_named() {
    // Arrange: a user in one group with one tag (GetUser carries the tags; no ListUserTags).
    let f = Fixture::new().await;
    let iam = aws_sdk_iam::Client::new(&sdk().await);
    let (name, group) = (unique("tagged"), unique("Oncall"));
    let tag = aws_sdk_iam::types::Tag::builder().key("Team").value("payments").build().unwrap();
    iam.create_user().user_name(&name).tags(tag).send().await.unwrap();
    iam.create_group().group_name(&group).send().await.unwrap();
    iam.add_user_to_group().group_name(&group).user_name(&name).send().await.unwrap();
    use jit_shared::ports::PrincipalDirectory;
    // Act
    let by_caller = f.directory.resolve(&caller(&name)).await.unwrap();
    let by_person =
        f.directory.resolve_person(&jit_shared::domain::approval::Person::IamUser(name.clone())).await.unwrap();
    // Assert
    for resolved in [by_caller, by_person] {
        assert_eq!(resolved.principal_tags.get("Team").map(String::as_str), Some("payments"));
        assert_eq!(resolved.groups.len(), 1, "{:?}", resolved.groups);
    }
}

/// Keeps the mails it is given.
#[derive(Default)]
struct Outbox(std::sync::Mutex<Vec<jit_shared::ports::Mail>>);

#[async_trait::async_trait]
impl jit_shared::ports::Mailer for Outbox {
    async fn send_all(&self, mails: &[jit_shared::ports::Mail]) -> Result<(), jit_shared::ports::PortError> {
        self.0.lock().unwrap().extend_from_slice(mails);
        Ok(())
    }
}

#[tokio::test]
async fn approval_mail_skips_a_contact_who_no_longer_exists_even_when_the_plan_names_them() {
    // Arrange: a level naming two IAM users directly (no groups, so no group lookup), one of whom
    // was offboarded (no IAM user) but is still in the contacts.
    use jit_shared::domain::approval::Person;
    let f = Fixture::new().await;
    let (present, gone) = (unique("present"), unique("gone"));
    aws_sdk_iam::Client::new(&sdk().await).create_user().user_name(&present).send().await.unwrap();
    let r = intake::submit(&f.deps(), &caller("alice"), &body("i-0123abcd", "x", 10), None, Utc::now())
        .await
        .unwrap()
        .request;
    let plan = ApprovalPlan {
        policy_name: "direct".into(),
        levels: vec![ApprovalLevel {
            min_approvals: 1,
            approvers: vec![Approver::IamUser(present.clone()), Approver::IamUser(gone.clone())],
            ..Default::default()
        }],
    };
    let pending = f.store.transition(&transition(&r, RequestStatus::Pending, Some(plan))).await.unwrap();
    let contacts = [&present, &gone].map(|name| jit_shared::policy::contacts::Contact {
        person: Person::IamUser(name.clone()),
        email: format!("{name}@example.com"),
        same_as: vec![],
        slack_user_id: None,
    });
    let outbox = Outbox::default();
    let key = jit_shared::domain::approval_token::SigningKey::from_secret(&"k".repeat(48)).unwrap();
    let links = jit_shared::app::notify::LinkSettings {
        api_base_url: "http://127.0.0.1:1".into(),
        account: "123456789012".into(),
        region: "us-east-1".into(),
    };
    let deps = jit_shared::app::notify::NotifyDeps {
        store: &f.store,
        directory: &f.directory,
        mailer: &outbox,
        contacts: &contacts,
        key: &key,
        links: &links,
        chat: None,
        teams: None,
        chat_topic: None,
        security_contacts: &[],
    };
    let event = jit_shared::domain::events::StatusEvent::for_request(
        &pending,
        Some(RequestStatus::Submitted),
        "system:evaluator",
    );
    let envelope = envelope_of(event);
    // Act
    let sent = jit_shared::app::notify::handle_event(&deps, &envelope, Utc::now()).await.unwrap();
    // Assert
    let recipients: Vec<String> = outbox.0.lock().unwrap().iter().map(|m| m.recipient.clone()).collect();
    assert_eq!((sent, recipients), (1, vec![Person::IamUser(present).key()]));
}

#[tokio::test]
async fn the_new_request_fields_round_trip_and_an_open_break_glass_review_is_found_until_it_is_decided() {
    // Arrange: a break-glass request, a scheduled one, and an extension, as stored.
    let f = Fixture::new().await;
    let now = Utc::now();
    let ask = |extra: serde_json::Value| {
        let mut b = json!({ "nodeId": "i-0123abcd", "reason": "x", "durationMinutes": 10 });
        if let (Some(b), Some(extra)) = (b.as_object_mut(), extra.as_object()) {
            b.extend(extra.clone());
        }
        b.to_string().into_bytes()
    };
    let glass = intake::submit(&f.deps(), &caller("alice"), &ask(json!({ "breakGlass": true })), None, now)
        .await
        .unwrap()
        .request;
    let starts = now + chrono::Duration::hours(2);
    let scheduled =
        intake::submit(&f.deps(), &caller("alice"), &ask(json!({ "startsAt": starts.to_rfc3339() })), None, now)
            .await
            .unwrap()
            .request;
    let due = now + chrono::Duration::hours(1);
    let open = Transition {
        review: Some(jit_shared::domain::break_glass::Review::open(due)),
        ..transition(&glass, RequestStatus::Approved, None)
    };

    // Act: approved with its review open; then the review decided.
    let approved = f.store.transition(&open).await.unwrap();
    let before_due = f.store.list_reviews_past_due(due - chrono::Duration::minutes(1), 10).await.unwrap();
    let past_due = f.store.list_reviews_past_due(due, 10).await.unwrap();
    let decided = approved.review.clone().unwrap().decide(
        jit_shared::domain::break_glass::ReviewVerdict::Acknowledge,
        caller("lead").as_str(),
        None,
        now,
    );
    let review = Transition {
        review: decided,
        ..Transition::status_change(&approved, RequestStatus::Approved, "lead", "reviewed", now)
    };
    f.store.transition(&review).await.unwrap();
    let after_review = f.store.list_reviews_past_due(due, 10).await.unwrap();
    f.store.transition(&transition(&scheduled, RequestStatus::Approved, None)).await.unwrap();
    let awaiting_before_start = f.store.list_awaiting_grant(now + chrono::Duration::hours(1), 10).await.unwrap();
    let awaiting_after_start = f.store.list_awaiting_grant(starts + chrono::Duration::minutes(1), 10).await.unwrap();

    // Assert
    let stored = f.store.get(&glass.request_id).await.unwrap().unwrap();
    assert!(stored.break_glass);
    assert_eq!(
        stored.review.as_ref().and_then(|r| r.verdict),
        Some(jit_shared::domain::break_glass::ReviewVerdict::Acknowledge)
    );
    let stored = f.store.get(&scheduled.request_id).await.unwrap().unwrap();
    assert_eq!(stored.starts_at.map(|t| t.timestamp()), Some(starts.timestamp()));
    assert!(before_due.is_empty());
    assert_eq!(past_due, std::slice::from_ref(&glass.request_id));
    assert!(after_review.is_empty(), "the marker goes with the review");
    assert!(!awaiting_before_start.contains(&scheduled.request_id), "a scheduled approval awaits from its start");
    assert!(awaiting_after_start.contains(&scheduled.request_id));
    let trail = f.store.audit_trail(&glass.request_id).await.unwrap();
    assert!(trail.last().and_then(|a| a.review.as_ref()).is_some_and(|r| !r.is_open()));
}
