//! Teams and Amazon Q Developer in chat applications, as the notifier uses them, against the
//! in-memory store: a Teams card goes to an approver's own webhook with their own personal link,
//! and a chat-topic notice for the shared channel names the request without any link or token.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test stops loudly on a broken expectation"
)]

#[expect(dead_code, reason = "these tests use only the fakes' directory, not the fault gates")]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use jit_shared::adapters::memory::MemoryStore;
use jit_shared::app::notify::{self, LinkSettings, NotifyDeps};
use jit_shared::app::submit::{self, SubmitDeps};
use jit_shared::domain::administrators::NO_ADMINISTRATORS;
use jit_shared::domain::approval::{ApprovalProgress, Person};
use jit_shared::domain::approval_token::SigningKey;
use jit_shared::domain::events::{EventEnvelope, StatusEvent, EVENT_SOURCE};
use jit_shared::domain::grant::{GrantMode, GrantSettings, DEFAULT_SESSION_DOCUMENT};
use jit_shared::domain::request::{AccessRequest, ApprovalLevel, ApprovalPlan, Approver, Decision, DecisionRule};
use jit_shared::domain::status::RequestStatus;
use jit_shared::policy::contacts::{parse_contacts, Contact};
use jit_shared::ports::{ChatTopic, PortError, RequestStore, TeamsDelivery, TeamsNotifier, Transition};
use serde_json::Value;
use support::fakes::{arn, Outbox, Users};

const API: &str = "https://jit.example.com";
/// alice asks; lead and bob approve level 1 (two approvals needed); c approves level 2.
const CONTACTS: &str = "contacts:
  - iamUser: alice
    email: alice@example.com
  - iamUser: lead
    email: lead@example.com
  - iamUser: bob
    email: bob@example.com
  - iamUser: c
    email: c@example.com
";

fn plan() -> ApprovalPlan {
    let level = |min_approvals, names: &[&str]| ApprovalLevel {
        min_approvals,
        approvers: names.iter().map(|n| Approver::IamUser((*n).to_owned())).collect(),
        ..Default::default()
    };
    ApprovalPlan { policy_name: "prod".into(), levels: vec![level(2, &["lead", "bob"]), level(1, &["c"])] }
}

/// A request by alice, pending at level 1 of `plan()`.
async fn pending(store: &MemoryStore, now: DateTime<Utc>) -> AccessRequest {
    let settings = GrantSettings {
        partition: "aws".into(),
        region: "us-east-1".into(),
        account: "123456789012".into(),
        session_documents: vec![DEFAULT_SESSION_DOCUMENT.into()],
        mode: GrantMode::Credentials,
        session_role_name: "jit-node-access-session".into(),
        member_accounts: vec![],
    };
    let intake = SubmitDeps { store, directory: &Users, settings: &settings, administrators: &NO_ADMINISTRATORS };
    let body =
        br#"{"nodeId": "i-0123456789abcdef0", "reason": "disk full <!here> [click](https://evil.example)", "durationMinutes": 30}"#;
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
    store.transition(&change).await.unwrap()
}

fn envelope(detail: StatusEvent, id: &str, now: DateTime<Utc>) -> EventEnvelope {
    EventEnvelope {
        version: "0".into(),
        id: id.into(),
        detail_type: detail.detail_type(),
        source: EVENT_SOURCE.into(),
        account: "123456789012".into(),
        time: Some(now),
        region: "us-east-1".into(),
        resources: vec![],
        detail,
    }
}

/// Teams with a webhook for each of `people` (person keys), recording what each was sent; or
/// failing every post.
#[derive(Default)]
struct Teams {
    people: BTreeSet<String>,
    posted: Mutex<Vec<(Person, Value)>>,
    failing: bool,
}

#[async_trait]
impl TeamsNotifier for Teams {
    async fn post(&self, to: &Person, card: &Value) -> Result<TeamsDelivery, PortError> {
        if self.failing {
            return Err(PortError::Transient("Teams is down".into()));
        }
        if !self.people.contains(&to.key()) {
            return Ok(TeamsDelivery::NoWebhook);
        }
        self.posted.lock().unwrap().push((to.clone(), card.clone()));
        Ok(TeamsDelivery::Posted)
    }
}

#[derive(Default)]
struct Topic {
    published: Mutex<Vec<Value>>,
    failing: bool,
}

#[async_trait]
impl ChatTopic for Topic {
    async fn publish(&self, notification: &Value) -> Result<(), PortError> {
        if self.failing {
            return Err(PortError::Permanent("AuthorizationError".into()));
        }
        self.published.lock().unwrap().push(notification.clone());
        Ok(())
    }
}

struct World {
    store: MemoryStore,
    key: SigningKey,
    contacts: Vec<Contact>,
    links: LinkSettings,
    outbox: Outbox,
}

impl World {
    fn new() -> Self {
        Self {
            store: MemoryStore::new(),
            key: SigningKey::from_secret(&"k".repeat(48)).unwrap(),
            contacts: parse_contacts(CONTACTS).unwrap(),
            links: LinkSettings {
                api_base_url: API.into(),
                account: "123456789012".into(),
                region: "us-east-1".into(),
            },
            outbox: Outbox::default(),
        }
    }

    async fn notify(&self, teams: &Teams, topic: &Topic, event: &EventEnvelope, now: DateTime<Utc>) -> usize {
        let deps = NotifyDeps {
            store: &self.store,
            directory: &Users,
            mailer: &self.outbox,
            contacts: &self.contacts,
            key: &self.key,
            links: &self.links,
            chat: None,
            teams: Some(teams),
            chat_topic: Some(topic),
            security_contacts: &[],
        };
        notify::handle_event(&deps, event, now).await.unwrap()
    }

    /// The approval link in the mail to `user`.
    fn link_mailed_to(&self, user: &str) -> String {
        let mails = self.outbox.0.lock().unwrap();
        let mail = mails.iter().find(|m| m.recipient == format!("iam-user#{user}")).unwrap();
        mail.body.lines().find(|l| l.starts_with(&format!("{API}/decide/"))).unwrap().trim().to_owned()
    }
}

fn teams_for(people: &[&str]) -> Teams {
    Teams { people: people.iter().map(|p| format!("iam-user#{p}")).collect(), ..Teams::default() }
}

#[tokio::test]
async fn each_approver_of_the_level_with_a_webhook_gets_a_card_with_exactly_their_own_link() {
    // Arrange: lead and c have webhooks; bob has none; c approves level 2, not yet open.
    let now = Utc::now();
    let world = World::new();
    let request = pending(&world.store, now).await;
    let (teams, topic) = (teams_for(&["lead", "c"]), Topic::default());
    let event =
        envelope(StatusEvent::for_request(&request, Some(RequestStatus::Submitted), "system:evaluator"), "e1", now);

    // Act
    let mailed = world.notify(&teams, &topic, &event, now).await;

    // Assert: the card went to lead only, and its one button opens lead's own mailed link.
    assert_eq!(mailed, 2, "lead and bob are mailed");
    let posted = teams.posted.lock().unwrap();
    let people: Vec<&Person> = posted.iter().map(|(p, _)| p).collect();
    assert_eq!(people, [&Person::IamUser("lead".into())]);
    let card = &posted[0].1;
    assert_eq!(card["type"], "message");
    let attachment = &card["attachments"][0];
    assert_eq!(attachment["contentType"], "application/vnd.microsoft.card.adaptive");
    assert_eq!(attachment["content"]["type"], "AdaptiveCard");
    let actions = attachment["content"]["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(actions[0]["type"], "Action.OpenUrl");
    let (leads, bobs) = (world.link_mailed_to("lead"), world.link_mailed_to("bob"));
    assert_eq!(actions[0]["url"].as_str(), Some(leads.as_str()));
    let text = card.to_string();
    assert!(!text.contains(&bobs), "no one else's link");
    assert_eq!(text.matches("/decide/").count(), 1, "one link in all: {text}");
    for expected in [
        request.request_id.as_str(),
        "i-0123456789abcdef0",
        "env=prod",
        "disk full",
        "1 of 2",
        "arn:aws:iam::123456789012:user/alice",
    ] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
    assert!(!text.contains("[click](https://evil.example)"), "a reason makes no markdown link: {text}");
}

#[tokio::test]
async fn the_chat_topic_gets_one_notice_per_level_that_names_the_request_and_carries_no_link_or_token() {
    // Arrange
    let now = Utc::now();
    let world = World::new();
    let request = pending(&world.store, now).await;
    let (teams, topic) = (teams_for(&["lead"]), Topic::default());
    let event =
        envelope(StatusEvent::for_request(&request, Some(RequestStatus::Submitted), "system:evaluator"), "evt-7", now);

    // Act
    world.notify(&teams, &topic, &event, now).await;

    // Assert
    let published = topic.published.lock().unwrap();
    assert_eq!(published.len(), 1, "one notice for the channel, however many approvers: {published:?}");
    let notice = &published[0];
    assert_eq!((notice["version"].as_str(), notice["source"].as_str()), (Some("1.0"), Some("custom")));
    assert_eq!(notice["id"], "evt-7", "the bus event's id: a redelivery publishes the same id");
    assert_eq!(notice["content"]["textType"], "client-markdown");
    assert!(notice["content"]["title"].as_str().unwrap().contains("i-0123456789abcdef0"));
    assert_eq!(notice["metadata"]["threadId"], request.request_id.as_str());
    assert_eq!(notice["metadata"]["eventType"], "AccessRequestApprovalNeeded");
    assert_eq!(notice["metadata"]["relatedResources"], serde_json::json!(["i-0123456789abcdef0"]));
    let steps = notice["content"]["nextSteps"].to_string();
    assert!(steps.contains(&format!("jit approve {}", request.request_id)), "{steps}");
    let text = notice.to_string();
    assert!(!text.contains("/decide/") && !text.contains(API), "no link: {text}");
    for user in ["lead", "bob"] {
        let link = world.link_mailed_to(user);
        let token = link.rsplit('/').next().unwrap();
        assert!(!text.contains(token), "no token of {user}'s: {text}");
    }
    let description = notice["content"]["description"].as_str().unwrap();
    assert!(description.contains("‹!here›") && !description.contains("<!here>"), "no mention: {description}");
}

#[tokio::test]
async fn a_rejection_the_requester_is_told_of_is_also_a_notice_on_the_chat_topic() {
    // Arrange: the table records the rejection, as the genuine event's stream would.
    let now = Utc::now();
    let world = World::new();
    let request = pending(&world.store, now).await;
    let actor = "arn:aws:iam::123456789012:user/lead";
    let rejected = world
        .store
        .transition(&Transition::status_change(&request, RequestStatus::Rejected, actor, "rejected", now))
        .await
        .unwrap();
    let event = envelope(StatusEvent::for_request(&rejected, Some(RequestStatus::Pending), actor), "evt-9", now);
    let (teams, topic) = (teams_for(&["alice", "lead"]), Topic::default());

    // Act
    world.notify(&teams, &topic, &event, now).await;

    // Assert
    let published = topic.published.lock().unwrap();
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0]["metadata"]["eventType"], "AccessRequestRejected");
    assert_eq!(published[0]["metadata"]["threadId"], request.request_id.as_str());
    assert!(teams.posted.lock().unwrap().is_empty(), "Teams carries approval links only");
}

#[tokio::test]
async fn failing_chat_channels_are_logged_and_the_mail_still_goes() {
    let now = Utc::now();
    let world = World::new();
    let request = pending(&world.store, now).await;
    let teams = Teams { failing: true, ..teams_for(&["lead"]) };
    let topic = Topic { failing: true, ..Topic::default() };
    let event =
        envelope(StatusEvent::for_request(&request, Some(RequestStatus::Submitted), "system:evaluator"), "e", now);

    let mailed = world.notify(&teams, &topic, &event, now).await;

    assert_eq!((mailed, world.outbox.0.lock().unwrap().len()), (2, 2));
}
