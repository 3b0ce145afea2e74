//! AWS adapters for the ports. Each lives behind the cargo feature of the SDK client it uses.

#[cfg(feature = "sdk")]
pub mod accounts;
#[cfg(feature = "sns")]
pub mod amazon_q;
#[cfg(feature = "sdk")]
pub mod api_calls;
#[cfg(feature = "apigw")]
pub mod apigw;
#[cfg(any(feature = "sns", feature = "eventbridge"))]
mod batch;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "eventbridge")]
pub mod eventbridge;
#[cfg(feature = "sfn")]
pub mod executions;
#[cfg(feature = "iam")]
pub mod grants;
#[cfg(feature = "https")]
pub mod https;
#[cfg(feature = "kms")]
pub mod kms;
#[cfg(feature = "logging")]
pub mod logging;
#[cfg(feature = "sns")]
pub mod mail;
pub mod memory;

/// The order a store lists a by-time index in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    OldestFirst,
    NewestFirst,
}
#[cfg(all(feature = "tagging", feature = "ssm"))]
pub mod nodes;
#[cfg(feature = "iam")]
pub mod principals;
#[cfg(feature = "runtime")]
pub mod runtime;
#[cfg(feature = "sdk")]
pub mod sdk_http;
#[cfg(feature = "ssm")]
pub mod secrets;
#[cfg(feature = "ssm")]
pub mod sessions;
#[cfg(feature = "slack")]
pub mod slack;
pub mod stream;
#[cfg(feature = "sts")]
pub mod sts;
#[cfg(feature = "teams")]
pub mod teams;
pub mod wiring;

use std::fmt::Debug;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::ports::PortError;

#[cfg_attr(not(feature = "sdk"), allow(dead_code, reason = "only the SDK adapters classify errors"))]
const TRANSIENT_CODES: [&str; 9] = [
    // DynamoDB: another transaction is writing the item; the same call may succeed a moment later.
    "TransactionConflictException",
    "ThrottledException",
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "InternalServerError",
    "InternalFailure",
];

/// Sorts an SDK failure into retryable or not, once, for every adapter.
#[cfg_attr(not(feature = "sdk"), allow(dead_code, reason = "only the SDK adapters classify errors"))]
pub(crate) fn classify<E>(operation: &str, err: &SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Debug + Send + Sync + 'static,
{
    let transient = match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(se) => {
            se.raw().status().is_server_error() || se.err().code().is_some_and(|c| TRANSIENT_CODES.contains(&c))
        }
        _ => false,
    };
    let message = format!("{operation}: {}", DisplayErrorContext(err));
    if transient {
        PortError::Transient(message)
    } else {
        PortError::Permanent(message)
    }
}

/// An IAM policy document as IAM's API returns it (URL-encoded JSON) or as plain JSON; `None`
/// when it is neither.
#[cfg_attr(not(feature = "iam"), allow(dead_code, reason = "only the IAM adapters read policy documents"))]
pub(crate) fn policy_document(text: &str) -> Option<serde_json::Value> {
    if let Ok(v) = serde_json::from_str(text) {
        return Some(v);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    serde_json::from_slice(&out).ok()
}

/// An AWS service's HTTP answer, as `aws_smithy_mocks` rules hand it to an adapter under test:
/// the status, the protocol's content type (`application/x-amz-json-1.0` for DynamoDB, `-1.1` for
/// SSM, Tagging and EventBridge, `text/xml` for SNS) and the body the service sends.
#[cfg(all(test, feature = "sdk"))]
pub(crate) fn aws_answer(
    status: u16,
    content_type: &'static str,
    body: impl Into<aws_smithy_types::body::SdkBody>,
) -> HttpResponse {
    #[expect(clippy::unwrap_used, reason = "a test's own status code")]
    let status = aws_smithy_runtime_api::http::StatusCode::try_from(status).unwrap();
    let mut response = HttpResponse::new(status, body.into());
    response.headers_mut().insert("content-type", content_type);
    response.headers_mut().insert("x-amzn-requestid", "3f1c6a8e-0000-4000-8000-000000000000");
    response
}

#[cfg(test)]
mod policy_document_tests {
    #[test]
    fn a_url_encoded_or_plain_policy_document_is_read_and_anything_else_is_not() {
        let plain = r#"{"Version":"2012-10-17","Statement":[]}"#;
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D";
        assert_eq!(super::policy_document(plain), super::policy_document(encoded));
        assert!(super::policy_document(plain).is_some());
        assert_eq!(super::policy_document("%7"), None);
        assert_eq!(super::policy_document("nope"), None);
    }
}
