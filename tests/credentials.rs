//! Credentials mode through the local stack with a real SigV4 client: an Identity Center user
//! (who could never be granted by attaching a policy) is approved, fetches credentials, and
//! they are the session role's, named after the request; what the `AssumeRole` carried is read
//! from the STS client's own record of the call, since the emulator neither echoes
//! `SourceIdentity` nor enforces session policies.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test (or bench) stops loudly on a broken expectation"
)]

use std::collections::BTreeMap;

use integration_tests::{client, local_stack, sdk, submit_with_reason, SharedStack};
use serde_json::Value;

/// The `AssumeRole` the stack sent for this request.
fn assume_role_for(stack: &SharedStack, id: &str) -> BTreeMap<String, String> {
    jit_cli::local::assume_role_calls(&stack.sts_requests)
        .into_iter()
        .find(|f| f.get("RoleSessionName").map(String::as_str) == Some(id))
        .unwrap_or_else(|| panic!("no AssumeRole was sent for {id}"))
}

async fn fetch(stack: &SharedStack, who: &str, id: &str) -> (u16, Value) {
    let reply = client(stack, who).send("POST", &format!("/requests/{id}/credentials"), None, &[]).await.unwrap();
    (reply.status, reply.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_center_user_gets_credentials_of_the_session_role_named_after_the_request() {
    // Arrange: carol signs in through a permission-set role; development nodes are auto-approved.
    let stack = local_stack();
    let decided = submit_with_reason(&client(stack, "carol"), "i-0123456789abcdef0", 30, "check the web logs").await;
    assert_eq!((decided["status"].as_str(), decided["grantMode"].as_str()), (Some("Approved"), Some("credentials")));
    let id = decided["requestId"].as_str().unwrap().to_owned();

    // Act
    let (status, creds) = fetch(stack, "carol", &id).await;

    // Assert: the credentials work, as the session role's session named after the request.
    assert_eq!(status, 200, "{creds}");
    let provider = aws_credential_types::Credentials::new(
        creds["accessKeyId"].as_str().unwrap(),
        creds["secretAccessKey"].as_str().unwrap(),
        creds["sessionToken"].as_str().map(str::to_owned),
        None,
        "jit",
    );
    let conf = aws_sdk_sts::config::Builder::from(&sdk().await).credentials_provider(provider).build();
    let me = aws_sdk_sts::Client::from_conf(conf).get_caller_identity().send().await.unwrap();
    let role = &stack.provisioned.session_role_name;
    assert_eq!(me.arn(), Some(format!("arn:aws:sts::123456789012:assumed-role/{role}/{id}").as_str()));
    // What the STS call carried: the person, the request, the session policy.
    let sent = assume_role_for(stack, &id);
    assert_eq!(sent["SourceIdentity"], "carol");
    assert_eq!(sent["RoleArn"], format!("arn:aws:iam::123456789012:role/{role}"));
    assert_eq!(
        (sent["Tags.member.1.Key"].as_str(), sent["Tags.member.1.Value"].as_str()),
        ("jit:request-id", id.as_str())
    );
    let seconds: i64 = sent["DurationSeconds"].parse().unwrap();
    assert!((900..=1800).contains(&seconds), "at most the 30 minutes that remain: {seconds}");
    let policy: Value = serde_json::from_str(&sent["Policy"]).unwrap();
    let statements = policy["Statement"].as_array().unwrap();
    assert_eq!(
        statements[0]["Resource"],
        serde_json::json!([
            "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0",
            "arn:aws:ssm:us-east-1:123456789012:document/jit-node-access-session"
        ])
    );
    // The stack's own document, a Session document that logs sessions, as the template makes it.
    let document = aws_sdk_ssm::Client::new(&sdk().await)
        .describe_document()
        .name("jit-node-access-session")
        .send()
        .await
        .unwrap();
    let kind = document.document().and_then(|d| d.document_type()).map(|t| t.as_str().to_owned());
    assert_eq!(kind.as_deref(), Some("Session"));
    assert_eq!(statements[0]["Condition"]["BoolIfExists"]["ssm:SessionDocumentAccessCheck"], "true");
    assert!(statements.iter().any(|s| s["Action"] == "ssmmessages:OpenDataChannel"));
    let deadline = chrono::DateTime::parse_from_rfc3339(creds["accessDeadline"].as_str().unwrap()).unwrap();
    for s in statements {
        let until = s["Condition"]["DateLessThan"]["aws:CurrentTime"].as_str().unwrap();
        assert_eq!(chrono::DateTime::parse_from_rfc3339(until).unwrap(), deadline, "{s}");
    }
    let expiration = chrono::DateTime::parse_from_rfc3339(creds["expiration"].as_str().unwrap()).unwrap();
    assert!(expiration <= deadline, "the credentials' reported end is never past the deadline");
    // Recorded: the request counts the issuance.
    let read = client(stack, "carol").send("GET", &format!("/requests/{id}"), None, &[]).await.unwrap().body;
    assert_eq!(read["credentials"]["issued"], 1, "{read}");
    assert_eq!(read["credentials"]["last"]["accessKeyId"], creds["accessKeyId"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_refused_to_anyone_but_the_requester_and_to_a_request_not_approved() {
    let stack = local_stack();
    let approved = submit_with_reason(&client(stack, "carol"), "i-0123456789abcdef0", 15, "read a config").await;
    let id = approved["requestId"].as_str().unwrap().to_owned();
    // Production needs approvals: it stays Pending.
    let pending = submit_with_reason(&client(stack, "carol"), "i-0fedcba9876543210", 15, "look at payments").await;
    assert_eq!(pending["status"], "Pending");
    let pending_id = pending["requestId"].as_str().unwrap().to_owned();

    let cases = [
        ("operator", id.as_str(), 404, "NotFound"),
        ("approver-c", id.as_str(), 404, "NotFound"),
        ("carol", pending_id.as_str(), 409, "RequestNotApproved"),
        ("carol", "req-00000000000000000000000000000000", 404, "NotFound"),
    ];
    for (who, request, status, code) in cases {
        let (got, body) = fetch(stack, who, request).await;
        assert_eq!((got, body["error"]["code"].as_str()), (status, Some(code)), "{who} on {request}: {body}");
    }
    let (_, body) = fetch(stack, "carol", &pending_id).await;
    assert!(body["error"]["message"].as_str().unwrap().contains("Pending"), "names the status: {body}");
}

/// The seed's nodes in member account 222233334444.
const MEMBER_DEV: &str = "arn:aws:ec2:us-east-1:222233334444:instance/i-0bbbbbbbbbbbbbbb1";
const MEMBER_LEDGER: &str = "arn:aws:ec2:us-east-1:222233334444:instance/i-0bbbbbbbbbbbbbbb2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_accounts_node_is_decided_with_its_account_and_reached_through_that_accounts_session_role() {
    // Arrange: an IAM user asks for a development node of the member account (auto-approved by
    // the development policy, which looks at tags only).
    let stack = local_stack();
    let decided = submit_with_reason(&client(stack, "operator"), MEMBER_DEV, 30, "partner deploy").await;
    assert_eq!((decided["status"].as_str(), decided["grantMode"].as_str()), (Some("Approved"), Some("credentials")));
    assert_eq!(decided["decision"]["nodeLocation"]["account"], "222233334444", "{decided}");
    let id = decided["requestId"].as_str().unwrap().to_owned();

    // Act
    let (status, creds) = fetch(stack, "operator", &id).await;

    // Assert: credentials of the member account's session role, for that account's node and document.
    assert_eq!(status, 200, "{creds}");
    let provider = aws_credential_types::Credentials::new(
        creds["accessKeyId"].as_str().unwrap(),
        creds["secretAccessKey"].as_str().unwrap(),
        creds["sessionToken"].as_str().map(str::to_owned),
        None,
        "jit",
    );
    let conf = aws_sdk_sts::config::Builder::from(&sdk().await).credentials_provider(provider).build();
    let me = aws_sdk_sts::Client::from_conf(conf).get_caller_identity().send().await.unwrap();
    let role = &stack.provisioned.session_role_name;
    assert_eq!(me.arn(), Some(format!("arn:aws:sts::222233334444:assumed-role/{role}/{id}").as_str()));
    let sent = assume_role_for(stack, &id);
    assert_eq!(sent["RoleArn"], format!("arn:aws:iam::222233334444:role/{role}"));
    assert_eq!(sent["SourceIdentity"], "operator");
    let policy: Value = serde_json::from_str(&sent["Policy"]).unwrap();
    assert_eq!(
        policy["Statement"][0]["Resource"],
        serde_json::json!([MEMBER_DEV, "arn:aws:ssm:us-east-1:222233334444:document/jit-node-access-session"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_policy_that_targets_an_account_applies_to_its_nodes_only_and_other_accounts_are_refused() {
    let stack = local_stack();
    // The partner account's all-nodes policy decides its node; the stack's own nodes are untouched.
    let ledger = submit_with_reason(&client(stack, "operator"), MEMBER_LEDGER, 30, "reconcile").await;
    assert_eq!(ledger["status"], "Pending", "{ledger}");
    assert_eq!(ledger["decision"]["decidingPolicyIds"], serde_json::json!(["manual/partner-account"]));
    let sandbox = submit_with_reason(&client(stack, "operator"), "i-0aaaaaaaaaaaaaaa1", 30, "try a thing").await;
    assert_eq!(sandbox["decision"]["failureCode"], "NoApplicablePolicy", "{sandbox}");
    // An account the stack was not deployed for is refused before anything is stored.
    let body = serde_json::json!({
        "nodeId": "arn:aws:ec2:us-east-1:999988887777:instance/i-0bbbbbbbbbbbbbbb1",
        "reason": "nope",
        "durationMinutes": 30
    });
    let reply = client(stack, "operator").send("POST", "/requests", Some(&body), &[]).await.unwrap();
    assert_eq!(
        (reply.status, reply.body["error"]["code"].as_str(), reply.body["error"]["field"].as_str()),
        (400, Some("NodeAccountNotMember"), Some("nodeId")),
        "{}",
        reply.body
    );
}
