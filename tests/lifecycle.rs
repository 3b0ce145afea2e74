//! Grant and expiry on the local stack: the inline policy appears in the emulator's IAM after
//! approval, carries the node ARN, the deadline and (for roles) the session condition, and is
//! gone after the deadline or a revoke.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test (or bench) stops loudly on a broken expectation"
)]

use std::time::Duration;

use integration_tests::{client, local_stack, sdk, submit_with_reason, SharedStack};
use serde_json::Value;

async fn read(stack: &SharedStack, who: &str, id: &str) -> Value {
    client(stack, who).send("GET", &format!("/requests/{id}"), None, &[]).await.unwrap().body
}

async fn wait_for(
    stack: &SharedStack,
    who: &str,
    id: &str,
    what: &str,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let start = std::time::Instant::now();
    loop {
        let r = read(stack, who, id).await;
        if done(&r) {
            return r;
        }
        assert!(start.elapsed() < timeout, "{what} did not happen within {timeout:?}: {r}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn user_policy(iam: &aws_sdk_iam::Client, user: &str, name: &str) -> Option<Value> {
    match iam.get_user_policy().user_name(user).policy_name(name).send().await {
        Ok(out) => Some(serde_json::from_str(&urlencoding_decode(out.policy_document())).unwrap()),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_entity_exception()) => None,
        Err(e) => panic!("GetUserPolicy: {e:?}"),
    }
}

async fn role_policy(iam: &aws_sdk_iam::Client, role: &str, name: &str) -> Option<Value> {
    match iam.get_role_policy().role_name(role).policy_name(name).send().await {
        Ok(out) => Some(serde_json::from_str(&urlencoding_decode(out.policy_document())).unwrap()),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_entity_exception()) => None,
        Err(e) => panic!("GetRolePolicy: {e:?}"),
    }
}

/// IAM returns policy documents URL-encoded.
fn urlencoding_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or(""), 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_request_gets_its_node_policy_until_the_deadline() {
    let stack = local_stack();
    let iam = aws_sdk_iam::Client::new(&sdk().await);
    let decided =
        submit_with_reason(&client(stack, "operator"), "i-0123456789abcdef0", 1, "one minute of access").await;
    assert_eq!(decided["status"], "Approved", "{decided}");
    let id = decided["requestId"].as_str().unwrap().to_owned();
    let granted = wait_for(stack, "operator", &id, "the grant", Duration::from_secs(20), |r| {
        r["grant"]["policyName"].is_string()
    })
    .await;
    let name = format!("jit-{id}");
    assert_eq!(granted["grant"]["policyName"], name.as_str());
    let deadline = granted["grant"]["deadline"].as_str().unwrap().to_owned();
    let doc = user_policy(&iam, "operator", &name).await.expect("the policy is attached to the requester");
    assert_eq!(doc["Statement"][0]["Resource"][0], "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0");
    let in_policy = doc["Statement"][0]["Condition"]["DateLessThan"]["aws:CurrentTime"].as_str().unwrap().to_owned();
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(&in_policy).unwrap(),
        chrono::DateTime::parse_from_rfc3339(&deadline)
            .unwrap()
            .with_timezone(&chrono::Utc)
            .with_nanosecond(0)
            .unwrap()
    );

    let ended =
        wait_for(stack, "operator", &id, "expiry", Duration::from_secs(120), |r| r["status"] == "Expired").await;
    assert!(ended["grant"]["detachedAt"].is_string(), "{ended}");
    assert!(user_policy(&iam, "operator", &name).await.is_none(), "the policy is gone after the deadline");
}

use chrono::Timelike;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_grant_is_bound_to_the_requesting_session_and_a_revoke_removes_it() {
    let stack = local_stack();
    let iam = aws_sdk_iam::Client::new(&sdk().await);
    // oncall (OnCall=true) is auto-approved on staging for up to 120 minutes.
    let decided = submit_with_reason(&client(stack, "oncall"), "mi-0123456789abcdef0", 60, "db failover drill").await;
    assert_eq!(decided["status"], "Approved", "{decided}");
    let id = decided["requestId"].as_str().unwrap().to_owned();
    wait_for(stack, "oncall", &id, "the grant", Duration::from_secs(20), |r| r["grant"]["policyName"].is_string())
        .await;
    let name = format!("jit-{id}");
    let doc = role_policy(&iam, "oncall", &name).await.expect("attached to the role");
    let role_id = iam.get_role().role_name("oncall").send().await.unwrap().role().unwrap().role_id().to_owned();
    for s in doc["Statement"].as_array().unwrap() {
        assert_eq!(s["Condition"]["StringEquals"]["aws:userid"], format!("{role_id}:oncall").as_str());
    }
    assert_eq!(
        doc["Statement"][0]["Resource"][0],
        "arn:aws:ssm:us-east-1:123456789012:managed-instance/mi-0123456789abcdef0"
    );

    // No approvers on an auto-approved request, and no administrators locally: the requester
    // cannot revoke their own access (they simply stop using it).
    let reply = client(stack, "oncall").send("POST", &format!("/requests/{id}/revoke"), None, &[]).await.unwrap();
    assert_eq!(reply.status, 403, "{}", reply.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_revokes_manual_access_and_the_policy_goes() {
    let stack = local_stack();
    let iam = aws_sdk_iam::Client::new(&sdk().await);
    // sensitive-data: one approval (DevOps or approver-b), up to 120 minutes.
    let decided = submit_with_reason(&client(stack, "operator"), "i-00000000000000aa1", 60, "rotate credentials").await;
    assert_eq!(decided["status"], "Pending");
    let id = decided["requestId"].as_str().unwrap().to_owned();
    let reply = client(stack, "approver-b").send("POST", &format!("/requests/{id}/approve"), None, &[]).await.unwrap();
    assert_eq!(reply.body["status"], "Approved", "{}", reply.body);
    wait_for(stack, "operator", &id, "the grant", Duration::from_secs(20), |r| r["grant"]["policyName"].is_string())
        .await;
    let name = format!("jit-{id}");
    assert!(user_policy(&iam, "operator", &name).await.is_some());
    let reply = client(stack, "approver-a")
        .send("POST", &format!("/requests/{id}/revoke"), Some(&serde_json::json!({"comment": "done early"})), &[])
        .await
        .unwrap();
    assert_eq!((reply.status, reply.body["status"].as_str()), (200, Some("Revoked")), "{}", reply.body);
    let start = std::time::Instant::now();
    while user_policy(&iam, "operator", &name).await.is_some() {
        assert!(start.elapsed() < Duration::from_secs(20), "the policy is still attached after revoke");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let again = client(stack, "approver-a").send("POST", &format!("/requests/{id}/revoke"), None, &[]).await.unwrap();
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(read(stack, "operator", &id).await["status"], "Revoked");
}
