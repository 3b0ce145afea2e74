//! Errors at the domain boundary. `ServiceError` is the one enum every entry point returns; it is
//! mapped to an HTTP status in exactly one place (`http_status`) and to the stable Lambda error
//! types Step Functions and EventBridge retries match on (`lambda_error_type`).

use serde::Serialize;

/// A rejected input value, naming the offending field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub code: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), code: code.into(), message: message.into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    InvalidInput(#[from] FieldError),
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {message}")]
    Conflict { code: &'static str, message: String },
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// A dependency failed in a way that a retry may fix (throttling, 5xx, timeouts).
    #[error("dependency unavailable: {0}")]
    Unavailable(String),
    /// A bug or a misconfiguration: retrying will not help.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The stable error type names the Lambda runtime reports; ASL `Retry`/`Catch` match on them.
pub const RETRYABLE: &str = "Retryable";
pub const NON_RETRYABLE: &str = "NonRetryable";

impl ServiceError {
    pub fn http_status(&self) -> u16 {
        match self {
            Self::InvalidInput(_) => 400,
            Self::Unauthenticated(_) | Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::Conflict { .. } => 409,
            Self::UnsupportedMediaType(_) => 415,
            Self::Unavailable(_) => 503,
            Self::Internal(_) => 500,
        }
    }

    pub fn code(&self) -> &str {
        match self {
            Self::InvalidInput(e) => &e.code,
            Self::Unauthenticated(_) => "Unauthenticated",
            Self::Forbidden(_) => "Forbidden",
            Self::NotFound(_) => "NotFound",
            Self::Conflict { code, .. } => code,
            Self::UnsupportedMediaType(_) => "UnsupportedMediaType",
            Self::Unavailable(_) => "ServiceUnavailable",
            Self::Internal(_) => "InternalError",
        }
    }

    pub fn lambda_error_type(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => RETRYABLE,
            _ => NON_RETRYABLE,
        }
    }

    /// The `{"error": {"code", "message", "field"}}` body every failed API call returns. Internal
    /// details never reach the caller: they are logged by the entry point instead.
    pub fn to_body(&self) -> serde_json::Value {
        let (message, field) = match self {
            Self::InvalidInput(e) => (e.message.clone(), Some(e.field.clone())),
            Self::Internal(_) => ("internal error; the failure was logged".to_owned(), None),
            Self::Unavailable(_) => ("a dependency is unavailable; retry later (with the same Idempotency-Key)".to_owned(), None),
            Self::Unauthenticated(m) | Self::Forbidden(m) | Self::NotFound(m) | Self::UnsupportedMediaType(m) => (m.clone(), None),
            Self::Conflict { message, .. } => (message.clone(), None),
        };
        serde_json::json!({ "error": { "code": self.code(), "message": message, "field": field } })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_maps_to_its_status_and_lambda_type() {
        let cases: Vec<(ServiceError, u16, &str)> = vec![
            (FieldError::new("reason", "InvalidReason", "x").into(), 400, NON_RETRYABLE),
            (ServiceError::Unauthenticated("x".into()), 403, NON_RETRYABLE),
            (ServiceError::Forbidden("x".into()), 403, NON_RETRYABLE),
            (ServiceError::NotFound("x".into()), 404, NON_RETRYABLE),
            (ServiceError::Conflict { code: "C", message: "x".into() }, 409, NON_RETRYABLE),
            (ServiceError::UnsupportedMediaType("x".into()), 415, NON_RETRYABLE),
            (ServiceError::Unavailable("x".into()), 503, RETRYABLE),
            (ServiceError::Internal("x".into()), 500, NON_RETRYABLE),
        ];
        for (err, status, kind) in cases {
            assert_eq!(err.http_status(), status, "{err}");
            assert_eq!(err.lambda_error_type(), kind, "{err}");
        }
    }

    #[test]
    fn field_errors_name_the_field_and_internal_errors_hide_details() {
        let body = ServiceError::from(FieldError::new("nodeId", "InvalidNodeId", "bad")).to_body();
        assert_eq!(body["error"]["field"], "nodeId");
        assert_eq!(body["error"]["code"], "InvalidNodeId");
        let body = ServiceError::Internal("table jit-secret exploded".into()).to_body();
        assert!(!body.to_string().contains("jit-secret"));
    }
}
