//! Manual approval end to end on the local stack: the repository's two-level production policy
//! (level 1: 1 of [DevOps group (approver-a), approver-b]; level 2: 2 of [approver-c,
//! approver-d, carol]), the approval API, mail through the emulator's SNS with the real filter
//! policies (each person's outbox is their filtered subscription), and the mail-link pages.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test (or bench) stops loudly on a broken expectation"
)]

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use integration_tests::{client, local_stack, sdk, submit_with_reason, SharedStack};
use jit_cli::client::ApiClient;
use jit_shared::adapters::dynamodb::DynamoStore;
use jit_shared::adapters::memory::FailsAfterCommit;
use jit_shared::adapters::principals::AwsPrincipalDirectory;
use jit_shared::app::approve::{self as approvals, ApprovalDeps};
use jit_shared::app::sweep;
use jit_shared::domain::approval::Person;
use jit_shared::domain::approval::{ApprovalProgress, Verdict};
use jit_shared::domain::approval_token::{self, SigningKey, TokenClaims};
use jit_shared::domain::ids::RequestId;
use jit_shared::domain::principal::CallerArn;
use jit_shared::domain::status::RequestStatus;
use jit_shared::ports::RequestStore;
use serde_json::{json, Value};

const PROD: &str = "i-0fedcba9876543210";

async fn pending_request(stack: &SharedStack, requester: &str, reason: &str) -> String {
    let decided = submit_with_reason(&client(stack, requester), PROD, 60, reason).await;
    assert_eq!(decided["status"], "Pending", "{decided}");
    decided["requestId"].as_str().unwrap().to_owned()
}

async fn act(stack: &SharedStack, who: &str, id: &str, action: &str, comment: Option<&str>) -> (u16, Value) {
    let body = comment.map(|c| json!({ "comment": c }));
    let reply = client(stack, who).send("POST", &format!("/requests/{id}/{action}"), body.as_ref(), &[]).await.unwrap();
    (reply.status, reply.body)
}

async fn read(stack: &SharedStack, id: &str) -> Value {
    client(stack, "operator").send("GET", &format!("/requests/{id}"), None, &[]).await.unwrap().body
}

fn mails_for(stack: &SharedStack, id: &str) -> Vec<jit_cli::local::OutboxMessage> {
    stack.outbox.lock().unwrap().iter().filter(|m| m.body.contains(id)).cloned().collect()
}

/// Waits until `email` has a mail about `id` whose body contains `marker`.
async fn wait_mail(stack: &SharedStack, email: &str, id: &str, marker: &str) -> jit_cli::local::OutboxMessage {
    for _ in 0..150 {
        if let Some(m) = mails_for(stack, id).into_iter().find(|m| m.email == email && m.body.contains(marker)) {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no mail to {email} about {id} containing '{marker}'; outbox: {:#?}", mails_for(stack, id));
}

fn link_path(m: &jit_cli::local::OutboxMessage) -> String {
    let link = m.links.first().expect("the mail has a link");
    format!("/decide/{}", link.split_once("/decide/").unwrap().1)
}

fn claims_of(path: &str) -> TokenClaims {
    let token = path.trim_start_matches("/decide/");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split_once('.').unwrap().0).unwrap()).unwrap()
}

fn browser(stack: &SharedStack) -> ApiClient {
    ApiClient::new(&stack.api_url, None)
}

async fn signing_key(stack: &SharedStack) -> SigningKey {
    let ssm = aws_sdk_ssm::Client::new(&sdk().await);
    jit_shared::adapters::secrets::read_signing_key(&ssm, &stack.provisioned.signing_key_parameter).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_levels_approve_only_after_the_right_approvals_in_order() {
    let stack = local_stack();
    let id = pending_request(stack, "operator", "two-level walk").await;

    // Level 1 mail goes to its two approvers only; level-2 approvers get nothing yet.
    let a = wait_mail(stack, "approver-a@example.com", &id, "level 1 of 2").await;
    wait_mail(stack, "approver-b@example.com", &id, "level 1 of 2").await;
    assert_eq!(claims_of(&link_path(&a)).approver.key(), "iam-user#approver-a", "each link is made for its recipient");
    let (status, body) = act(stack, "approver-c", &id, "approve", None).await;
    assert_eq!(status, 403, "a level-2 approver cannot act at level 1: {body}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let early: Vec<_> = mails_for(stack, &id)
        .into_iter()
        .filter(|m| m.email != "approver-a@example.com" && m.email != "approver-b@example.com")
        .collect();
    assert!(early.is_empty(), "no level-2 mail before level 1 completes: {early:#?}");

    let (status, body) = act(stack, "approver-a", &id, "approve", Some("ok from DevOps")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("Pending")), "{body}");
    assert_eq!(body["approval"]["currentLevel"], 2);
    assert_eq!(body["approval"]["entries"][0]["matched"], "iam-group#DevOps");

    for email in ["approver-c@example.com", "approver-d@example.com", "carol@example.com"] {
        wait_mail(stack, email, &id, "level 2 of 2").await;
    }
    assert!(
        mails_for(stack, &id).iter().all(|m| m.email != "operator@example.com" || m.topic.contains("requester")),
        "the requester gets no approval link"
    );
    let (status, body) = act(stack, "approver-b", &id, "approve", None).await;
    assert_eq!(status, 403, "level 1 is done: {body}");

    let (status, body) = act(stack, "approver-c", &id, "approve", None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("Pending")), "one of two at level 2: {body}");
    let carol = wait_mail(stack, "carol@example.com", &id, "level 2 of 2").await;
    let (status, page) =
        browser(stack).post_form(&link_path(&carol), &[("decision", "approve"), ("comment", "fine")]).await.unwrap();
    assert_eq!(status, 200, "{page}");
    let done = read(stack, &id).await;
    assert_eq!(done["status"], "Approved", "{done}");
    let channels: Vec<&str> =
        done["approval"]["entries"].as_array().unwrap().iter().map(|e| e["channel"].as_str().unwrap()).collect();
    assert_eq!(channels, ["Api", "Api", "EmailLink"]);
    let notice = wait_mail(stack, "operator@example.com", &id, "is Approved").await;
    assert!(notice.topic.contains("requester-notices"));

    // Every link in every inbox was made for that inbox's owner: the filter policies held.
    let mails = mails_for(stack, &id);
    assert!(mails.iter().filter(|m| !m.links.is_empty()).count() >= 5, "{mails:#?}");
    for m in mails.iter().filter(|m| !m.links.is_empty()) {
        assert_eq!(claims_of(&link_path(m)).approver.key(), m.recipient, "{} got someone else's link", m.email);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_requester_named_as_an_approver_is_refused() {
    let stack = local_stack();
    // approver-b is a level-1 approver of production, and here the requester.
    let id = pending_request(stack, "approver-b", "my own request").await;
    let (status, body) = act(stack, "approver-b", &id, "approve", None).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("own request"));
    wait_mail(stack, "approver-a@example.com", &id, "level 1 of 2").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        mails_for(stack, &id).iter().all(|m| m.email != "approver-b@example.com"),
        "no approval mail to the requester"
    );
    assert_eq!(read_as(stack, "approver-b", &id).await["status"], "Pending");
}

async fn read_as(stack: &SharedStack, who: &str, id: &str) -> Value {
    client(stack, who).send("GET", &format!("/requests/{id}"), None, &[]).await.unwrap().body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_approvals_by_one_approver_count_once() {
    let stack = local_stack();
    let id = pending_request(stack, "operator", "concurrency").await;
    assert_eq!(act(stack, "approver-b", &id, "approve", None).await.0, 200);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let id = id.clone();
        tasks.push(tokio::spawn(async move { act(local_stack(), "approver-d", &id, "approve", None).await }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap().0);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 409), "{statuses:?}");
    let now = read(stack, &id).await;
    assert_eq!(now["status"], "Pending", "2 of 3 needed at level 2, one person counted once");
    let level2: Vec<&Value> =
        now["approval"]["entries"].as_array().unwrap().iter().filter(|e| e["level"] == 2).collect();
    assert_eq!(level2.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_approve_and_reject_leave_exactly_one_terminal_outcome() {
    let stack = local_stack();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk().await), &stack.provisioned.table);
    for round in 0..4 {
        let id = pending_request(stack, "operator", &format!("race {round}")).await;
        assert_eq!(act(stack, "approver-a", &id, "approve", None).await.0, 200);
        assert_eq!(act(stack, "approver-c", &id, "approve", None).await.0, 200);
        let (i1, i2) = (id.clone(), id.clone());
        let approve = tokio::spawn(async move { act(local_stack(), "approver-d", &i1, "approve", None).await.0 });
        let reject = tokio::spawn(async move { act(local_stack(), "carol", &i2, "reject", Some("not now")).await.0 });
        let (a, r) = (approve.await.unwrap(), reject.await.unwrap());
        let final_status = read(stack, &id).await["status"].as_str().unwrap().to_owned();
        match (a, r) {
            (200, 409) => assert_eq!(final_status, "Approved"),
            (409, 200) => assert_eq!(final_status, "Rejected"),
            other => panic!("both or neither won: {other:?}, status {final_status}"),
        }
        let trail = store.audit_trail(&RequestId::try_from(id.clone()).unwrap()).await.unwrap();
        // Status changes only: the lifecycle may already have recorded the grant (Approved → Approved).
        let terminal: Vec<_> = trail
            .iter()
            .filter(|r| r.from != Some(r.to) && (r.to.is_terminal() || r.to == RequestStatus::Approved))
            .collect();
        assert_eq!(terminal.len(), 1, "{trail:#?}");
        assert_eq!(terminal[0].to.as_str(), final_status);
        assert_eq!(trail.last().unwrap().to.as_str(), final_status);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_after_reject_cancel_or_expiry_are_409_and_change_nothing() {
    let stack = local_stack();
    let rejected = pending_request(stack, "operator", "to be rejected").await;
    let (status, body) = act(stack, "approver-a", &rejected, "reject", Some("no change window")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("Rejected")));
    let notice = wait_mail(stack, "operator@example.com", &rejected, "is Rejected").await;
    assert!(notice.body.contains("no change window"), "the requester is told the comment: {}", notice.body);
    assert_eq!(act(stack, "approver-b", &rejected, "approve", None).await.0, 409);

    let cancelled = pending_request(stack, "operator", "to be cancelled").await;
    assert_eq!(act(stack, "approver-a", &cancelled, "cancel", None).await.0, 404, "only the requester cancels");
    let (status, body) = act(stack, "operator", &cancelled, "cancel", Some("fixed it myself")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("Cancelled")));
    assert_eq!(act(stack, "approver-a", &cancelled, "approve", None).await.0, 409);
    assert_eq!(act(stack, "operator", &cancelled, "cancel", None).await.0, 409);

    // Expiry: the deadline is a condition of the write, so shift the clock past it.
    let overdue = pending_request(stack, "operator", "nobody looks").await;
    let sdk = sdk().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &stack.provisioned.table);
    let directory = AwsPrincipalDirectory::new(aws_sdk_iam::Client::new(&sdk));
    let key = signing_key(stack).await;
    let deps = ApprovalDeps {
        store: &store,
        directory: &directory,
        key: &key,
        administrators: &jit_shared::domain::administrators::Administrators::none(),
        people: &jit_shared::policy::contacts::People::default(),
        seal: &integration_tests::stack_seal(stack, &sdk),
    };
    let later = Utc::now() + chrono::Duration::minutes(61);
    let approver = CallerArn::try_from(stack.provisioned.profile("approver-a").unwrap().caller_arn.clone()).unwrap();
    let err = approvals::decide_as_caller(&deps, &approver, &overdue, Verdict::Approve, b"", later).await.unwrap_err();
    assert_eq!((jit_shared::http::error::status(&err), err.code()), (409, "ApprovalDeadlinePassed"));
    assert_eq!(read(stack, &overdue).await["status"], "Expired");
    assert_eq!(act(stack, "approver-a", &overdue, "approve", None).await.0, 409);
    wait_mail(stack, "operator@example.com", &overdue, "is Expired").await;
    // Their own cancel, made before the expiry above, is not mailed to the requester (the notifier's
    // rule does not route it; had it, that mail would most likely be in by now).
    let to_requester: Vec<_> =
        mails_for(stack, &cancelled).into_iter().filter(|m| m.topic.contains("requester")).collect();
    assert!(to_requester.is_empty(), "{to_requester:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_expires_only_requests_past_their_deadline() {
    // Its own table: a sweep with a shifted clock would expire the other tests' requests.
    let stack = local_stack();
    let sdk = sdk().await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = integration_tests::unique("sweep");
    jit_shared::adapters::dynamodb::create_table(&ddb, &table).await.unwrap();
    let store = DynamoStore::new(ddb, &table);
    let directory = AwsPrincipalDirectory::new(aws_sdk_iam::Client::new(&sdk));
    let requester = CallerArn::try_from(stack.provisioned.profile("operator").unwrap().caller_arn.clone()).unwrap();
    let settings = integration_tests::grant_settings(jit_shared::domain::grant::GrantMode::Attach, "unused");
    let intake = jit_shared::app::submit::SubmitDeps {
        store: &store,
        directory: &directory,
        settings: &settings,
        administrators: &jit_shared::domain::administrators::NO_ADMINISTRATORS,
    };
    let mut ids = Vec::new();
    for minutes in [10, 120] {
        let body = json!({"nodeId": PROD, "reason": "sweep", "durationMinutes": 30}).to_string();
        let r = jit_shared::app::submit::submit(&intake, &requester, body.as_bytes(), None, Utc::now())
            .await
            .unwrap()
            .request;
        let to_pending = jit_shared::ports::Transition {
            progress: Some(ApprovalProgress::start(Utc::now() + chrono::Duration::minutes(minutes))),
            ..jit_shared::ports::Transition::status_change(&r, RequestStatus::Pending, "test", "test", Utc::now())
        };
        store.transition(&to_pending).await.unwrap();
        ids.push(r.request_id);
    }
    let status = |id: RequestId| {
        let store = store.clone();
        async move { store.get(&id).await.unwrap().unwrap().status }
    };
    assert!(sweep::expire_overdue(&store, Utc::now(), &mut vec![]).await.unwrap().is_empty(), "nothing is overdue yet");
    let in_an_hour = Utc::now() + chrono::Duration::minutes(60);
    assert_eq!(sweep::expire_overdue(&store, in_an_hour, &mut vec![]).await.unwrap(), vec![ids[0].clone()]);
    assert_eq!(status(ids[0].clone()).await, RequestStatus::Expired);
    assert_eq!(status(ids[1].clone()).await, RequestStatus::Pending, "its deadline is later");
    assert!(sweep::expire_overdue(&store, in_an_hour, &mut vec![]).await.unwrap().is_empty(), "idempotent");
    let trail = store.audit_trail(&ids[0]).await.unwrap();
    assert_eq!(trail.last().unwrap().actor, approvals::PENDING_EXPIRY_ACTOR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_links_refuse_every_bad_token_and_a_get_never_decides() {
    let stack = local_stack();
    let id = pending_request(stack, "operator", "token tests").await;
    let other = pending_request(stack, "operator", "the other request").await;
    let mail = wait_mail(stack, "approver-a@example.com", &id, "level 1 of 2").await;
    let path = link_path(&mail);
    let version = read(stack, &id).await["version"].clone();

    // A GET (a mail scanner following the link) shows the page and changes nothing.
    for _ in 0..3 {
        let (status, page) = browser(stack).get_text(&path).await.unwrap();
        assert_eq!(status, 200);
        assert!(page.contains("Approve") && page.contains(&id));
    }
    assert_eq!(read(stack, &id).await["version"], version);

    let key = signing_key(stack).await;
    let claims = claims_of(&path);
    let forged = |c: TokenClaims| format!("/decide/{}", approval_token::sign(&key, &c).unwrap());
    let token = path.trim_start_matches("/decide/").to_owned();
    let bad: Vec<(&str, String)> = vec![
        ("tampered", format!("/decide/{}", flip(&token, token.len() / 3))),
        ("truncated", format!("/decide/{}", &token[..token.len() - 4])),
        ("expired", forged(TokenClaims { expires: Utc::now().timestamp() - 5, ..claims.clone() })),
        ("other approver", forged(TokenClaims { approver: Person::IamUser("approver-c".into()), ..claims.clone() })),
        (
            "other request",
            resigned_without_key(
                &token,
                &TokenClaims { request_id: RequestId::try_from(other.clone()).unwrap(), ..claims.clone() },
            ),
        ),
        ("other level", forged(TokenClaims { level: 2, ..claims.clone() })),
        ("unknown person", forged(TokenClaims { approver: Person::IamUser("nobody".into()), ..claims.clone() })),
    ];
    for (what, p) in &bad {
        let (status, page) = browser(stack).post_form(p, &[("decision", "approve")]).await.unwrap();
        assert_eq!(status, 403, "{what}: {page}");
        let (status, _) = browser(stack).get_text(p).await.unwrap();
        assert_eq!(status, 403, "{what} (GET)");
    }
    assert_eq!(read(stack, &id).await["version"], version, "nothing changed");
    assert_eq!(read(stack, &other).await["approval"]["entries"], json!([]));

    // The genuine link works once; a replay is refused.
    let (status, page) = browser(stack).post_form(&path, &[("decision", "approve")]).await.unwrap();
    assert_eq!(status, 200, "{page}");
    let (status, _) = browser(stack).post_form(&path, &[("decision", "approve")]).await.unwrap();
    assert_eq!(status, 403, "replayed");
    let (status, _) = browser(stack).post_form(&path, &[("decision", "reject")]).await.unwrap();
    assert_eq!(status, 403, "replayed as a rejection");
    assert_eq!(read(stack, &id).await["status"], "Pending", "now at level 2");
}

/// New claims under the original signature: what someone without the key can produce.
fn resigned_without_key(token: &str, claims: &TokenClaims) -> String {
    let sig = token.split_once('.').unwrap().1;
    format!("/decide/{}.{sig}", URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap()))
}

fn flip(token: &str, at: usize) -> String {
    let mut b = token.as_bytes().to_vec();
    b[at] = if b[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(b).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_mutated_tokens_are_all_refused_over_http() {
    let stack = local_stack();
    let id = pending_request(stack, "operator", "mutations").await;
    let path = link_path(&wait_mail(stack, "approver-b@example.com", &id, "level 1 of 2").await);
    let token = path.trim_start_matches("/decide/").to_owned();
    let version = read(stack, &id).await["version"].clone();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut tried = 0;
    let mut i = 0usize;
    while tried < 1000 {
        let pos = (i * 7919) % token.len();
        let ch = alphabet[(i * 31) % alphabet.len()];
        i += 1;
        if token.as_bytes()[pos] == ch {
            continue;
        }
        let mut b = token.clone().into_bytes();
        b[pos] = ch;
        let mutated = String::from_utf8(b).unwrap();
        let (status, _) =
            browser(stack).post_form(&format!("/decide/{mutated}"), &[("decision", "approve")]).await.unwrap();
        assert_eq!(status, 403, "mutation {tried} accepted: {mutated}");
        tried += 1;
    }
    assert_eq!(read(stack, &id).await["version"], version, "1,000 refused tokens changed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_confirmation_page_renders_markup_in_the_reason_as_text() {
    let stack = local_stack();
    let id = pending_request(stack, "operator", "<script>alert('x')</script> & <b>bold</b>").await;
    let mail = wait_mail(stack, "approver-b@example.com", &id, "level 1 of 2").await;
    assert!(mail.body.contains("<script>alert('x')</script>"), "mail is plain text, shown as written");
    let (status, page) = browser(stack).get_text(&link_path(&mail)).await.unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"), "{page}");
    assert!(!page.contains("<script>") && !page.contains("<b>bold"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_approvals_lists_what_waits_on_the_caller_at_the_current_level() {
    let stack = local_stack();
    let id = pending_request(stack, "operator", "queue").await;
    let listed = |who: &'static str| {
        let id = id.clone();
        async move {
            let reply = client(local_stack(), who).send("GET", "/approvals", None, &[]).await.unwrap();
            assert_eq!(reply.status, 200, "{}", reply.body);
            reply.body["items"].as_array().unwrap().iter().any(|r| r["requestId"] == id.as_str())
        }
    };
    assert!(listed("approver-a").await, "group member at level 1");
    assert!(listed("approver-b").await);
    assert!(!listed("approver-c").await, "level 2 is not open yet");
    assert!(!listed("operator").await, "never the requester");
    assert_eq!(act(stack, "approver-b", &id, "approve", None).await.0, 200);
    assert!(!listed("approver-a").await, "level 1 is done");
    assert!(listed("approver-c").await);
    assert!(listed("carol").await, "Identity Center user at level 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_decision_bodies_get_a_400_naming_the_field() {
    let stack = local_stack();
    let id = pending_request(stack, "operator", "bad bodies").await;
    let long = "x".repeat(1001);
    for (body, field) in [
        (json!({ "comment": long }), "comment"),
        (json!({ "comment": 5 }), "comment"),
        (json!({ "note": "x" }), "note"),
    ] {
        let reply = client(stack, "approver-a")
            .send("POST", &format!("/requests/{id}/approve"), Some(&body), &[])
            .await
            .unwrap();
        assert_eq!((reply.status, reply.body["error"]["field"].as_str()), (400, Some(field)), "{}", reply.body);
    }
    assert_eq!(read(stack, &id).await["approval"]["entries"], json!([]), "nothing written");
}

/// The outbox guarantee against the emulator: a decision whose function fails right after its
/// transaction committed (the caller gets a 503-class error) still becomes its events, read from
/// the table's stream; the notifier then mails the next level, and the requester the rejection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_whose_function_fails_after_the_commit_still_reach_the_notifier() {
    // Arrange: a pending two-level request, and the approval use case on a store that loses the
    // reply of every committed write.
    let stack = local_stack();
    let id = pending_request(stack, "operator", "fails after commit").await;
    let sdk = sdk().await;
    let store = FailsAfterCommit(DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &stack.provisioned.table));
    let directory = AwsPrincipalDirectory::new(aws_sdk_iam::Client::new(&sdk));
    let key = signing_key(stack).await;
    let deps = ApprovalDeps {
        store: &store,
        directory: &directory,
        key: &key,
        administrators: &jit_shared::domain::administrators::Administrators::none(),
        people: &jit_shared::policy::contacts::People::default(),
        seal: &integration_tests::stack_seal(stack, &sdk),
    };
    let arn_of = |who: &str| CallerArn::try_from(stack.provisioned.profile(who).unwrap().caller_arn.clone()).unwrap();

    // Act: an approval that completes level 1 (an approval record), then a rejection at level 2
    // (a status change), each failing after its commit.
    let approval =
        approvals::decide_as_caller(&deps, &arn_of("approver-a"), &id, Verdict::Approve, b"", Utc::now()).await;
    let level_two = wait_mail(stack, "approver-c@example.com", &id, "level 2 of 2").await;
    let rejection =
        approvals::decide_as_caller(&deps, &arn_of("approver-c"), &id, Verdict::Reject, b"", Utc::now()).await;

    // Assert: the callers were told to retry, yet each change went out through the stream.
    assert!(approval.as_ref().is_err_and(|e| e.is_retryable()), "{approval:?}");
    assert!(rejection.as_ref().is_err_and(|e| e.is_retryable()), "{rejection:?}");
    assert!(!level_two.links.is_empty(), "the level-2 approver got a link: the Level Completed event was published");
    wait_mail(stack, "operator@example.com", &id, "Rejected by").await;
    assert_eq!(read(stack, &id).await["status"], "Rejected");
}

/// The directory and the granter read a role's trust policy from IAM (the emulator returns it as
/// IAM does) to tell whether its session names are pinned to the assuming user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whether_a_role_pins_session_names_is_read_from_its_trust_policy() {
    use jit_shared::ports::{AccessGranter, PrincipalDirectory};
    let sdk = sdk().await;
    let iam = aws_sdk_iam::Client::new(&sdk);
    let allow = |condition: Value| {
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole", "Condition": condition}]})
    };
    let cases = [
        (allow(json!({"StringEquals": {"sts:RoleSessionName": "${aws:username}"}})), true),
        (allow(json!({"StringLike": {"sts:RoleSessionName": "*"}})), false),
        (
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}]}),
            false,
        ),
    ];
    let directory = AwsPrincipalDirectory::new(iam.clone());
    let granter = integration_tests::granter(&sdk);
    for (trust, pinned) in cases {
        let role = integration_tests::unique("trust");
        iam.create_role().role_name(&role).assume_role_policy_document(trust.to_string()).send().await.unwrap();
        assert_eq!(directory.role_trust(&role).await.unwrap().pins_session_names, pinned, "{trust}");
        assert_eq!(granter.role(&role).await.unwrap().pins_session_names, pinned, "{trust}");
    }
}

/// Seals are KMS HMACs: they verify for the message they were made for, under the key they were
/// made with, and for nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_seals_are_made_and_checked_with_a_kms_hmac_key() {
    use jit_shared::ports::ApprovalSeal;
    let sdk = sdk().await;
    let kms = aws_sdk_kms::Client::new(&sdk);
    let key = || async {
        kms.create_key()
            .key_spec(aws_sdk_kms::types::KeySpec::Hmac256)
            .key_usage(aws_sdk_kms::types::KeyUsageType::GenerateVerifyMac)
            .send()
            .await
            .unwrap()
            .key_metadata()
            .unwrap()
            .key_id()
            .to_owned()
    };
    let (ours, theirs) = (key().await, key().await);
    let seal = jit_shared::adapters::kms::KmsSeal::new(kms.clone(), &ours);
    let other = jit_shared::adapters::kms::KmsSeal::new(kms.clone(), &theirs);
    let mac = seal.seal(b"approval of req-1").await.unwrap();
    let cases: [(&[u8], &str, bool); 4] = [
        (b"approval of req-1", &mac, true),
        (b"approval of req-2", &mac, false),
        (b"approval of req-1", "bm90IGEgbWFj", false),
        (b"approval of req-1", "not base64!", false),
    ];
    for (message, given, valid) in cases {
        assert_eq!(seal.check(message, given).await.unwrap(), valid, "{given}");
    }
    assert!(!other.check(b"approval of req-1", &mac).await.unwrap(), "another key's check refuses it");
}

/// Only a role under Identity Center's own path stands for an Identity Center user: a role
/// merely named `AWSReservedSSO_*` elsewhere is a plain role, its sessions no one in particular.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_named_like_identity_centers_outside_its_path_is_not_identity_center() {
    use jit_shared::ports::PrincipalDirectory;
    let sdk = sdk().await;
    let iam = aws_sdk_iam::Client::new(&sdk);
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}"#;
    let directory = AwsPrincipalDirectory::new(iam.clone());
    for (path, identity_center) in [("/aws-reserved/sso.amazonaws.com/", true), ("/", false), ("/aws-reserved/", false)]
    {
        let role = format!("AWSReservedSSO_{}", integration_tests::unique("fake").replace('-', "_"));
        iam.create_role().role_name(&role).path(path).assume_role_policy_document(trust).send().await.unwrap();
        assert_eq!(directory.role_trust(&role).await.unwrap().identity_center, identity_center, "{path}");
        // Resolving a session of it: an Identity Center user only under Identity Center's path.
        let caller = CallerArn::try_from(format!("arn:aws:sts::123456789012:assumed-role/{role}/carol")).unwrap();
        let resolved = directory.resolve(&caller).await;
        if !identity_center {
            let identity = resolved.unwrap().identity;
            assert!(
                matches!(identity, jit_shared::domain::principal::PrincipalIdentity::IamRole { .. }),
                "{path}: {identity:?}"
            );
        }
    }
}
