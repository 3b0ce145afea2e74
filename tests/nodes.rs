//! The node directory's EC2 path against the emulator: instances created through the EC2 Query
//! API resolve to their tags through the Resource Groups Tagging API.
//!
//! The SSM path (`mi-` hybrid managed nodes) is covered by mock-based unit tests in
//! `shared/src/adapters/nodes.rs`: moto cannot register hybrid managed nodes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test (or bench) stops loudly on a broken expectation"
)]

use std::collections::BTreeMap;
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use integration_tests::{emulator, sdk, unique};
use jit_cli::emulator::{ACCOUNT_ID, REGION};
use jit_shared::adapters::accounts::{AccountClients, READER_ROLE};
use jit_shared::adapters::nodes::{AwsNodeDirectory, NodeClients};
use jit_shared::domain::ids::NodeId;
use jit_shared::ports::{DirectoryError, NodeDirectory};

/// One of the AMIs moto ships in every region (`moto/ec2/resources/amis.json.gz`).
const AMI: &str = "ami-12c6146b";

/// Percent-encodes a form value (RFC 3986 unreserved characters pass through).
fn form_encode(value: &str) -> String {
    jit_shared::http::percent_encode(value)
}

/// Launches one instance with these tags through a SigV4-signed EC2 Query API `RunInstances`
/// call to the emulator (the credential scope `…/us-east-1/ec2/aws4_request` routes it to EC2),
/// and returns its id.
async fn run_instance(tags: &[(&str, &str)]) -> String {
    run_instance_as(&aws_credential_types::Credentials::new("testing", "testing", None, None, "moto"), tags).await
}

/// `run_instance`, signed with `credentials`: the emulator puts the instance in their account.
async fn run_instance_as(credentials: &aws_credential_types::Credentials, tags: &[(&str, &str)]) -> String {
    let endpoint = emulator().endpoint.trim_end_matches('/').to_owned();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "tests only talk to loopback");
    let mut form = vec![
        ("Action".to_owned(), "RunInstances".to_owned()),
        ("Version".to_owned(), "2016-11-15".to_owned()),
        ("ImageId".to_owned(), AMI.to_owned()),
        ("InstanceType".to_owned(), "t3.micro".to_owned()),
        ("MinCount".to_owned(), "1".to_owned()),
        ("MaxCount".to_owned(), "1".to_owned()),
    ];
    if !tags.is_empty() {
        form.push(("TagSpecification.1.ResourceType".to_owned(), "instance".to_owned()));
        for (i, (k, v)) in tags.iter().enumerate() {
            form.push((format!("TagSpecification.1.Tag.{}.Key", i + 1), (*k).to_owned()));
            form.push((format!("TagSpecification.1.Tag.{}.Value", i + 1), (*v).to_owned()));
        }
    }
    let body = form.iter().map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v))).collect::<Vec<_>>().join("&");

    let url = format!("{endpoint}/");
    let uri: hyper::Uri = url.parse().unwrap();
    let mut headers = vec![
        ("host".to_owned(), uri.authority().unwrap().to_string()),
        ("content-type".to_owned(), "application/x-www-form-urlencoded; charset=utf-8".to_owned()),
    ];
    headers.extend(sign_ec2(credentials, &url, &headers, body.as_bytes()));

    let mut request = hyper::Request::builder().method("POST").uri(uri);
    for (k, v) in &headers {
        request = request.header(k, v);
    }
    let request = request.body(Full::new(Bytes::from(body))).unwrap();
    let http: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let response = http.request(request).await.unwrap();
    let status = response.status();
    let xml = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(status.is_success(), "RunInstances answered {status}: {xml}");
    let start = xml.find("<instanceId>").unwrap_or_else(|| panic!("no <instanceId> in {xml}")) + "<instanceId>".len();
    let end = start + xml[start..].find("</instanceId>").unwrap();
    xml[start..end].to_owned()
}

/// SigV4 headers for an EC2 request with the emulator's dummy credentials.
fn sign_ec2(
    credentials: &aws_credential_types::Credentials,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Vec<(String, String)> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("ec2")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        "POST",
        url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    instructions.headers().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

/// The directory the deployed functions build: this account's clients, member accounts' through
/// their reader role.
async fn directory() -> AwsNodeDirectory {
    let sdk = sdk().await;
    let clients = AccountClients::new(&sdk, integration_tests::home(), READER_ROLE, NodeClients::from_sdk);
    AwsNodeDirectory::new(clients, integration_tests::home())
}

fn node(raw: &str) -> NodeId {
    NodeId::try_from(raw.to_owned()).unwrap()
}

#[tokio::test]
async fn a_tagged_instance_resolves_to_its_tags() {
    let name = unique("node");
    let id = run_instance(&[("Environment", "Development"), ("Team", "platform team"), ("Name", &name)]).await;
    assert!(id.starts_with("i-"), "{id}");

    let info = directory().await.describe(&node(&id)).await.unwrap();

    assert_eq!(info.node_id.as_str(), id);
    let expected = BTreeMap::from([
        ("Environment".to_owned(), "Development".to_owned()),
        ("Team".to_owned(), "platform team".to_owned()),
        ("Name".to_owned(), name),
    ]);
    assert_eq!(info.tags, expected);
}

#[tokio::test]
async fn each_instance_gets_only_its_own_tags() {
    let a = run_instance(&[("Environment", "Production")]).await;
    let b = run_instance(&[("Environment", "Staging")]).await;
    let directory = directory().await;
    assert_eq!(directory.describe(&node(&a)).await.unwrap().tags["Environment"], "Production");
    assert_eq!(directory.describe(&node(&b)).await.unwrap().tags["Environment"], "Staging");
}

#[tokio::test]
async fn an_unknown_instance_is_not_found() {
    // Launch one so the Tagging API has EC2 resources to answer with, just not this one.
    run_instance(&[("Environment", "Development")]).await;
    let err = directory().await.describe(&node("i-0fedcba9876543210")).await.unwrap_err();
    assert!(matches!(&err, DirectoryError::NotFound(m) if m.contains("i-0fedcba9876543210")), "{err:?}");
}

#[tokio::test]
async fn an_untagged_instance_is_not_found() {
    // The Tagging API only lists tagged (or once tagged) resources, as the adapter documents.
    let id = run_instance(&[]).await;
    let err = directory().await.describe(&node(&id)).await.unwrap_err();
    assert!(matches!(&err, DirectoryError::NotFound(_)), "{err:?}");
}

#[tokio::test]
async fn a_member_accounts_instance_is_read_through_that_accounts_reader_role() {
    // Arrange: an instance launched in account 222233334444 (the emulator serves any account to
    // credentials assumed in it).
    let member = "222233334444";
    let sts = aws_sdk_sts::Client::new(&sdk().await);
    let assumed = sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{member}:role/{}", unique("bootstrap")))
        .role_session_name("test")
        .send()
        .await
        .unwrap();
    let c = assumed.credentials().unwrap();
    let credentials = aws_credential_types::Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "member",
    );
    let id = run_instance_as(&credentials, &[("Environment", "Partner")]).await;
    let arn = format!("arn:aws:ec2:{REGION}:{member}:instance/{id}");

    // Act
    let directory = directory().await;
    let there = directory.describe(&node(&arn)).await.unwrap();
    let here = directory.describe(&node(&id)).await;

    // Assert: found where the ARN says, with its location; the bare id names this account's.
    assert_eq!(there.tags["Environment"], "Partner");
    assert_eq!((there.location.account.as_str(), there.location.region.as_str()), (member, REGION));
    assert!(matches!(here, Err(DirectoryError::NotFound(_))), "the stack's own account has no such instance: {here:?}");
    assert_ne!(member, ACCOUNT_ID);
}
