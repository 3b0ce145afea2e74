//! Deciding in Slack (`POST /chat/slack`) and being asked there (the notifier's `ChatNotifier`),
//! against the in-memory store: only a callback Slack signed, recently, by a Slack user whom
//! `contacts.yaml` ties to a person decides, and then exactly as the API and mail links do.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test stops loudly on a broken expectation"
)]

#[expect(dead_code, reason = "the Slack tests use only the fakes' directory, not the fault gates")]
mod support;

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use jit_shared::adapters::memory::{MemorySeal, MemoryStore};
use jit_shared::app::approve::ApprovalDeps;
use jit_shared::app::notify::{self, LinkSettings, NotifyDeps};
use jit_shared::app::submit::{self, SubmitDeps};
use jit_shared::domain::administrators::NO_ADMINISTRATORS;
use jit_shared::domain::approval::{ApprovalProgress, Channel};
use jit_shared::domain::approval_token::SigningKey;
use jit_shared::domain::events::{EventEnvelope, StatusEvent, EVENT_SOURCE};
use jit_shared::domain::grant::{GrantMode, GrantSettings, DEFAULT_SESSION_DOCUMENT};
use jit_shared::domain::request::{AccessRequest, ApprovalLevel, ApprovalPlan, Approver, Decision, DecisionRule};
use jit_shared::domain::slack::{SlackSigningSecret, SlackUserId, APPROVE_ACTION, REJECT_ACTION};
use jit_shared::domain::status::RequestStatus;
use jit_shared::http::{ApiRequest, ApiResponse};
use jit_shared::policy::contacts::{parse_contacts, Contact, People};
use jit_shared::ports::{ChatNotifier, PortError, RequestStore, Transition};
use serde_json::{json, Value};
use support::fakes::{arn, Outbox, Users};

const SECRET: &str = "test-slack-signing-secret-0123456789";
/// alice asks; lead and bob approve level 1 (two approvals needed); c approves level 2. Everyone
/// but bob decides in Slack too; mallory's Slack user is nobody's.
const CONTACTS: &str = "contacts:
  - iamUser: alice
    email: alice@example.com
    slackUserId: U0ALICE
  - iamUser: lead
    email: lead@example.com
    slackUserId: U0LEAD
  - iamUser: bob
    email: bob@example.com
  - iamUser: c
    email: c@example.com
    slackUserId: U0C
";

struct World {
    store: MemoryStore,
    key: SigningKey,
    seal: MemorySeal,
    contacts: Vec<Contact>,
    people: People,
}

impl World {
    fn new() -> Self {
        let contacts = parse_contacts(CONTACTS).unwrap();
        Self {
            store: MemoryStore::new(),
            key: SigningKey::from_secret(&"k".repeat(48)).unwrap(),
            seal: MemorySeal::default(),
            people: People::from_contacts(&contacts),
            contacts,
        }
    }

    fn approvals(&self) -> ApprovalDeps<'_> {
        ApprovalDeps {
            store: &self.store,
            directory: &Users,
            key: &self.key,
            administrators: &NO_ADMINISTRATORS,
            people: &self.people,
            seal: &self.seal,
        }
    }

    /// A request by alice, pending at level 1 of `plan()`.
    async fn pending(&self, now: DateTime<Utc>) -> AccessRequest {
        let settings = GrantSettings {
            partition: "aws".into(),
            region: "us-east-1".into(),
            account: "123456789012".into(),
            session_documents: vec![DEFAULT_SESSION_DOCUMENT.into()],
            mode: GrantMode::Credentials,
            session_role_name: "jit-node-access-session".into(),
            member_accounts: vec![],
        };
        let intake = SubmitDeps {
            store: &self.store,
            directory: &Users,
            settings: &settings,
            administrators: &NO_ADMINISTRATORS,
        };
        let body = br#"{"nodeId": "i-0123456789abcdef0", "reason": "disk <full> & *bold*", "durationMinutes": 30}"#;
        let submitted = submit::submit(&intake, &arn("alice"), body, None, now).await.unwrap().request;
        let decision = Decision {
            outcome: RequestStatus::Pending,
            rule: DecisionRule::ManualTagSpecific,
            deciding_policy_ids: vec!["test".into()],
            deny_policy_ids: vec![],
            failure_code: None,
            message: "decided in a test".into(),
            max_duration_minutes: Some(60),
            approval_plan: Some(plan()),
            node_tags: BTreeMap::from([("env".to_owned(), "prod".to_owned())]),
            node_location: None,
            decided_at: now,
        };
        let change = Transition {
            decision: Some(decision),
            progress: Some(ApprovalProgress::start(now + Duration::hours(1))),
            ..Transition::status_change(&submitted, RequestStatus::Pending, "system:evaluator", "decided", now)
        };
        self.store.transition(&change).await.unwrap()
    }
}

fn plan() -> ApprovalPlan {
    let level = |min_approvals, names: &[&str]| ApprovalLevel {
        min_approvals,
        approvers: names.iter().map(|n| Approver::IamUser((*n).to_owned())).collect(),
        ..Default::default()
    };
    ApprovalPlan { policy_name: "prod".into(), levels: vec![level(2, &["lead", "bob"]), level(1, &["c"])] }
}

fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            b' ' => "+".to_owned(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A click by `user` on `action` for level `level` of `request`, as Slack posts it.
fn click_body(user: &str, action: &str, request: &AccessRequest, level: u8, comment: Option<&str>) -> Vec<u8> {
    let payload = json!({
        "type": "block_actions",
        "user": {"id": user, "username": user.to_lowercase()},
        "actions": [{"action_id": action, "block_id": "decision", "type": "button", "value": format!("{}:{level}", request.request_id)}],
        "state": {"values": {"comment": {"comment": {"type": "plain_text_input", "value": comment}}}},
    });
    format!("payload={}", form_encode(&payload.to_string())).into_bytes()
}

/// The callback as it reaches the function, signed with `secret` at `signed_at`.
fn callback(body: Vec<u8>, secret: &str, signed_at: DateTime<Utc>) -> ApiRequest {
    let timestamp = signed_at.timestamp().to_string();
    let signature = SlackSigningSecret::new(secret).unwrap().sign(&timestamp, &body);
    ApiRequest {
        method: "POST".into(),
        path: "/chat/slack".into(),
        headers: vec![
            ("content-type".into(), "application/x-www-form-urlencoded".into()),
            ("x-slack-request-timestamp".into(), timestamp),
            ("x-slack-signature".into(), signature),
        ],
        body,
        ..ApiRequest::default()
    }
}

async fn post(world: &World, req: &ApiRequest, now: DateTime<Utc>) -> ApiResponse {
    let secret = SlackSigningSecret::new(SECRET).unwrap();
    jit_shared::http::approve::handle_with_slack(&world.approvals(), Some(&secret), req, now).await
}

fn text(resp: &ApiResponse) -> String {
    resp.body["text"].as_str().map_or_else(|| resp.body.to_string(), str::to_owned)
}

#[tokio::test]
async fn a_callback_slack_did_not_sign_now_or_from_someone_who_may_not_decide_changes_nothing() {
    let now = Utc::now();
    let cases = [
        ("signed with another secret", "U0LEAD", "another-secret-of-enough-length", now, 401, "does not match"),
        ("signed six minutes ago", "U0LEAD", SECRET, now - Duration::minutes(6), 401, "seconds from now"),
        ("signed six minutes ahead", "U0LEAD", SECRET, now + Duration::minutes(6), 401, "seconds from now"),
        ("a Slack user in nobody's contact", "U0MALLORY", SECRET, now, 403, "add slackUserId: U0MALLORY"),
        ("the requester's own Slack user", "U0ALICE", SECRET, now, 200, "Refused: the requester cannot approve"),
    ];
    for (case, user, secret, signed_at, status, says) in cases {
        // Arrange
        let world = World::new();
        let request = world.pending(now).await;
        let before = world.store.audit_trail(&request.request_id).await.unwrap().len();
        let req = callback(click_body(user, APPROVE_ACTION, &request, 1, None), secret, signed_at);

        // Act
        let resp = post(&world, &req, now).await;

        // Assert
        assert_eq!(resp.status, status, "{case}: {}", resp.body);
        assert!(text(&resp).contains(says) || resp.body.to_string().contains(says), "{case}: {}", resp.body);
        let after = world.store.get(&request.request_id).await.unwrap().unwrap();
        assert_eq!(after, request, "{case}: the request is unchanged");
        assert_eq!(world.store.audit_trail(&request.request_id).await.unwrap().len(), before, "{case}: no record");
    }
}

#[tokio::test]
async fn a_click_decides_as_the_contact_once_and_a_second_click_is_refused_as_already_decided() {
    // Arrange
    let now = Utc::now();
    let world = World::new();
    let request = world.pending(now).await;
    let first = callback(click_body("U0LEAD", APPROVE_ACTION, &request, 1, Some("  looks fine ")), SECRET, now);
    let again = callback(click_body("U0LEAD", REJECT_ACTION, &request, 1, None), SECRET, now);

    // Act
    let approved = post(&world, &first, now).await;
    let refused = post(&world, &again, now).await;

    // Assert
    assert_eq!((approved.status, approved.body["response_type"].as_str()), (200, Some("ephemeral")));
    assert_eq!(approved.body["replace_original"], json!(false));
    assert!(text(&approved).contains("at level 1: 1 of 2 approvals so far"), "{}", approved.body);
    assert_eq!(refused.status, 200);
    assert!(text(&refused).contains("Refused") && text(&refused).contains("already decided"), "{}", refused.body);
    let stored = world.store.get(&request.request_id).await.unwrap().unwrap();
    let entries = &stored.progress.as_ref().unwrap().entries;
    assert_eq!(entries.len(), 1, "one person counts once");
    assert_eq!(
        (entries[0].approver.key(), entries[0].channel, entries[0].counted_as()),
        ("iam-user#lead".to_owned(), Channel::Slack, "iam-user#lead".to_owned())
    );
    assert_eq!(entries[0].comment.as_ref().map(|c| c.as_str()), Some("looks fine"));
    assert!(entries[0].actor.contains("Slack U0LEAD"), "{}", entries[0].actor);
    assert_eq!(stored.status, RequestStatus::Pending);
}

#[tokio::test]
async fn a_click_for_a_level_that_moved_on_is_refused_and_a_rejection_ends_the_request() {
    // Arrange: level 1 completes through the API (lead, bob); a stale level-1 message is clicked.
    let now = Utc::now();
    let world = World::new();
    let request = world.pending(now).await;
    let id = request.request_id.as_str();
    for who in ["lead", "bob"] {
        jit_shared::app::approve::decide_as_caller(
            &world.approvals(),
            &arn(who),
            id,
            jit_shared::domain::approval::Verdict::Approve,
            b"",
            now,
        )
        .await
        .unwrap();
    }

    // Act
    let stale = post(&world, &callback(click_body("U0C", APPROVE_ACTION, &request, 1, None), SECRET, now), now).await;
    let rejected =
        post(&world, &callback(click_body("U0C", REJECT_ACTION, &request, 2, Some("not today")), SECRET, now), now)
            .await;

    // Assert
    assert!(text(&stale).contains("Refused") && text(&stale).contains("level 1"), "{}", stale.body);
    assert!(text(&rejected).starts_with("Rejected"), "{}", rejected.body);
    let stored = world.store.get(&request.request_id).await.unwrap().unwrap();
    assert_eq!(stored.status, RequestStatus::Rejected);
}

#[tokio::test]
async fn without_a_signing_secret_the_route_does_not_exist_and_a_malformed_click_names_its_field() {
    // Arrange
    let now = Utc::now();
    let world = World::new();
    let request = world.pending(now).await;
    let signed = callback(click_body("U0LEAD", APPROVE_ACTION, &request, 1, None), SECRET, now);
    let mut not_a_form = callback(b"{\"payload\": 1}".to_vec(), SECRET, now);
    not_a_form.headers[0].1 = "application/json".into();
    let no_payload = callback(b"token=x".to_vec(), SECRET, now);

    // Act
    let disabled = jit_shared::http::approve::handle_with_slack(&world.approvals(), None, &signed, now).await;
    let json_body = post(&world, &not_a_form, now).await;
    let missing = post(&world, &no_payload, now).await;

    // Assert
    assert_eq!(disabled.status, 404);
    assert_eq!((json_body.status, json_body.body["error"]["field"].as_str()), (400, Some("content-type")));
    assert_eq!((missing.status, missing.body["error"]["field"].as_str()), (400, Some("payload")));
    assert!(jit_shared::http::approve::serves("/chat/slack"));
    assert_eq!(world.store.get(&request.request_id).await.unwrap().unwrap(), request);
}

/// Records what would be posted to Slack.
#[derive(Default)]
struct Posted(Mutex<Vec<(SlackUserId, Value)>>);

#[async_trait]
impl ChatNotifier for Posted {
    async fn post(&self, to: &SlackUserId, message: &Value) -> Result<(), PortError> {
        self.0.lock().unwrap().push((to.clone(), message.clone()));
        Ok(())
    }
}

#[tokio::test]
async fn each_approver_of_the_level_with_a_slack_user_is_asked_there_with_the_request_and_buttons() {
    // Arrange
    let now = Utc::now();
    let world = World::new();
    let request = world.pending(now).await;
    let (outbox, posted) = (Outbox::default(), Posted::default());
    let links = LinkSettings {
        api_base_url: "https://jit.example.com".into(),
        account: "123456789012".into(),
        region: "us-east-1".into(),
    };
    let deps = NotifyDeps {
        store: &world.store,
        directory: &Users,
        mailer: &outbox,
        contacts: &world.contacts,
        key: &world.key,
        links: &links,
        chat: Some(&posted),
        teams: None,
        chat_topic: None,
        security_contacts: &[],
    };
    let detail = StatusEvent::for_request(&request, Some(RequestStatus::Submitted), "system:evaluator");
    let envelope = EventEnvelope {
        version: "0".into(),
        id: "test".into(),
        detail_type: detail.detail_type(),
        source: EVENT_SOURCE.into(),
        account: "123456789012".into(),
        time: Some(now),
        region: "us-east-1".into(),
        resources: vec![],
        detail,
    };

    // Act
    let mailed = notify::handle_event(&deps, &envelope, now).await.unwrap();

    // Assert: lead and bob are mailed; only lead has a Slack user (alice asked, c is level 2).
    assert_eq!(mailed, 2);
    let posted = posted.0.lock().unwrap();
    assert_eq!(posted.len(), 1, "{posted:?}");
    let (to, message) = &posted[0];
    assert_eq!((to.as_str(), message["channel"].as_str()), ("U0LEAD", Some("U0LEAD")));
    let text = message.to_string();
    for expected in [request.request_id.as_str(), "i-0123456789abcdef0", "env=prod", "30 minutes", "level 1 of 2"] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
    assert!(text.contains("disk &lt;full&gt; &amp; *bold*"), "user text is escaped: {text}");
    let buttons = message["blocks"].as_array().unwrap().iter().find(|b| b["type"] == "actions").unwrap();
    let actions: Vec<(&str, &str)> = buttons["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["action_id"].as_str().unwrap(), b["value"].as_str().unwrap()))
        .collect();
    let value = format!("{}:1", request.request_id);
    assert_eq!(actions, [(APPROVE_ACTION, value.as_str()), (REJECT_ACTION, value.as_str())]);
    assert!(message["blocks"].as_array().unwrap().iter().any(|b| b["type"] == "input" && b["block_id"] == "comment"));
}
