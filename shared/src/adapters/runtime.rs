//! Lambda error reporting for event- and Step Functions-driven functions.

use lambda_runtime::Diagnostic;

use crate::app::error::ServiceError;

/// Reports the stable error type (`Retryable` / `NonRetryable`) that EventBridge retry policies
/// and Step Functions `Retry`/`Catch` match on, and logs the failure once.
pub fn diagnostic(e: &ServiceError, what: &str) -> Diagnostic {
    tracing::error!(error = %e, kind = e.lambda_error_type(), "{what} failed");
    Diagnostic { error_type: e.lambda_error_type().to_owned(), error_message: e.to_string() }
}
