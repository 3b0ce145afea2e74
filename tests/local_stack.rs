//! The local stack end to end: SigV4 authentication like API Gateway, the four decision
//! outcomes through EventBridge envelopes, and who may read what.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test (or bench) stops loudly on a broken expectation"
)]

use jit_cli::client::ApiClient;

use jit_cli::sigv4::ProfileCredentials;
use serde_json::json;

use integration_tests::{client, local_stack as stack, submit_with_reason};

async fn submit(c: &ApiClient, node: &str, minutes: u32) -> serde_json::Value {
    submit_with_reason(c, node, minutes, "integration test").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_and_badly_signed_calls_are_refused_with_403() {
    let stack = stack();
    let unsigned = ApiClient::new(&stack.api_url, None).send("GET", "/requests", None, &[]).await.unwrap();
    assert_eq!(unsigned.status, 403);
    let mut forged = stack.provisioned.profile("operator").unwrap().credentials.clone();
    forged.secret_access_key.push('x');
    let bad = ApiClient::new(&stack.api_url, Some(forged)).send("GET", "/requests", None, &[]).await.unwrap();
    assert_eq!(bad.status, 403);
    let unknown =
        ProfileCredentials { access_key_id: "AKIAUNKNOWN".into(), secret_access_key: "x".into(), session_token: None };
    let bad =
        ApiClient::new(&stack.api_url, Some(unknown)).send("POST", "/requests", Some(&json!({})), &[]).await.unwrap();
    assert_eq!(bad.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_four_outcomes_are_decided_through_the_event_bus() {
    let stack = stack();
    let operator = client(stack, "operator");
    let cases = [
        ("i-0123456789abcdef0", 30, "Approved", "AutoApproval", vec!["development-auto-approval"]),
        ("i-0fedcba9876543210", 120, "Pending", "ManualTagSpecific", vec!["manual/production"]),
        ("i-00000000000000aa1", 30, "Pending", "ManualTagSpecific", vec!["manual/sensitive-data"]),
        ("i-0aaaaaaaaaaaaaaa1", 30, "Failed", "NoApplicablePolicy", vec![]),
        ("i-0fedcba9876543210", 500, "Failed", "DurationExceedsMaximum", vec!["manual/production"]),
        ("i-0123456789abc0000", 30, "Failed", "UnresolvableRequest", vec![]),
    ];
    let mut failed = Vec::new();
    for (node, minutes, status, rule, policies) in cases {
        let decided = submit(&operator, node, minutes).await;
        if status == "Failed" {
            failed.push(decided["requestId"].clone());
        }
        assert_eq!(decided["status"], status, "{node}: {decided}");
        assert_eq!(decided["decision"]["rule"], rule, "{node}");
        assert_eq!(decided["decision"]["decidingPolicyIds"], json!(policies), "{node}");
    }
    let listed = operator.send("GET", "/requests?status=Failed&limit=100", None, &[]).await.unwrap();
    let items = listed.body["items"].as_array().unwrap();
    assert!(items.iter().all(|r| r["status"] == "Failed"));
    for id in &failed {
        assert!(items.iter().any(|r| &r["requestId"] == id), "{id} is listed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_sessions_are_resolved_for_policies_and_identity_center_requesters_get_credentials_mode() {
    let stack = stack();
    // oncall carries the OnCall=true principal tag; staging auto-approval needs it.
    let decided = submit(&client(stack, "oncall"), "mi-0123456789abcdef0", 60).await;
    assert_eq!(decided["decision"]["decidingPolicyIds"], json!(["staging-on-call-auto-approval"]), "{decided}");
    assert_eq!(decided["grantMode"], "attach", "this stack attaches for IAM principals");
    let decided = submit(&client(stack, "operator"), "mi-0123456789abcdef0", 60).await;
    assert_eq!(decided["status"], "Failed");
    // Identity Center permission-set roles cannot carry a policy of ours (IAM refuses changes to
    // them), so their users are granted by credentials whatever the stack's mode.
    let decided = submit(&client(stack, "carol"), "i-0123456789abcdef0", 15).await;
    assert_eq!((decided["status"].as_str(), decided["grantMode"].as_str()), (Some("Approved"), Some("credentials")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_visible_to_its_requester_and_its_approvers_only() {
    let stack = stack();
    let pending = submit(&client(stack, "operator"), "i-0fedcba9876543210", 60).await;
    let path = format!("/requests/{}", pending["requestId"].as_str().unwrap());
    for (who, expected) in [
        ("operator", 200),
        ("approver-a", 200),
        ("approver-b", 200),
        ("carol", 200),
        ("approver-c", 200),
        ("oncall", 404),
    ] {
        assert_eq!(client(stack, who).send("GET", &path, None, &[]).await.unwrap().status, expected, "{who}");
    }
    let approved = submit(&client(stack, "operator"), "i-0123456789abcdef0", 10).await;
    let path = format!("/requests/{}", approved["requestId"].as_str().unwrap());
    assert_eq!(
        client(stack, "approver-a").send("GET", &path, None, &[]).await.unwrap().status,
        404,
        "no approval plan, no approvers"
    );
    let theirs = client(stack, "approver-a").send("GET", "/requests", None, &[]).await.unwrap();
    assert_eq!(theirs.body["items"], json!([]), "the list holds only the caller's own requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_over_http_is_a_4xx_json_error_naming_the_field() {
    let stack = stack();
    let operator = client(stack, "approver-b");
    let cases = [
        (json!({"nodeId": "web-1", "reason": "x", "durationMinutes": 5}), 400, "nodeId"),
        (json!({"nodeId": "i-0123abcd", "reason": "x", "durationMinutes": 0}), 400, "durationMinutes"),
        (json!({"nodeId": "i-0123abcd", "durationMinutes": 5}), 400, "reason"),
    ];
    for (body, status, field) in cases {
        let reply = operator.send("POST", "/requests", Some(&body), &[]).await.unwrap();
        assert_eq!((reply.status, reply.body["error"]["field"].as_str()), (status, Some(field)), "{body}");
    }
    let reply = operator.send("GET", "/requests?status=Nope", None, &[]).await.unwrap();
    assert_eq!((reply.status, reply.body["error"]["field"].as_str()), (400, Some("status")));
    let reply = operator.send("GET", "/requests", None, &[]).await.unwrap();
    assert_eq!(reply.body["items"], json!([]), "nothing was written");
}

/// Reads one of the local stack's chat stand-in records (`/teams.json`, `/chat-notifications.json`).
async fn recorded(stack: &integration_tests::SharedStack, path: &str) -> Vec<serde_json::Value> {
    let reply = ApiClient::new(&stack.api_url, None).send("GET", path, None, &[]).await.unwrap();
    assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    reply.body.as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_level_reaches_teams_with_the_approvers_own_link_and_the_chat_topic_with_none() {
    // Arrange: level 1 of production is DevOps (approver-a, who has a Teams webhook in the seed)
    // or approver-b (who has none).
    let stack = stack();
    let pending = submit(&client(stack, "operator"), "i-0fedcba9876543210", 60).await;
    let id = pending["requestId"].as_str().unwrap().to_owned();

    // Act: wait for the notifier (it runs off the bus) to have sent the card, the notice and the mail.
    let mut seen = None;
    for _ in 0..150 {
        let cards: Vec<_> =
            recorded(stack, "/teams.json").await.into_iter().filter(|p| p.to_string().contains(&id)).collect();
        let notices: Vec<_> = recorded(stack, "/chat-notifications.json")
            .await
            .into_iter()
            .filter(|n| n["metadata"]["threadId"] == id.as_str())
            .collect();
        let mail = stack
            .outbox
            .lock()
            .unwrap()
            .iter()
            .find(|m| m.email == "approver-a@example.com" && m.body.contains(&id))
            .cloned();
        if let (false, false, Some(mail)) = (cards.is_empty(), notices.is_empty(), mail) {
            seen = Some((cards, notices, mail));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (cards, notices, mail) = seen.expect("a Teams card, a chat notice and approver-a's mail");

    // Assert
    let people: Vec<&str> = cards.iter().filter_map(|c| c["person"].as_str()).collect();
    assert_eq!(people, ["iam-user#approver-a"], "only approvers of the level with a webhook");
    let button = &cards[0]["card"]["attachments"][0]["content"]["actions"][0]["url"];
    assert_eq!(button.as_str(), mail.links.first().map(String::as_str), "the link of approver-a's own mail");
    assert_eq!(notices.len(), 1, "{notices:?}");
    let notice = notices[0].to_string();
    assert!(!notice.contains("/decide/"), "no link in the shared channel: {notice}");
    assert!(notice.contains(&format!("jit approve {id}")), "{notice}");
}
