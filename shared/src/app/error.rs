//! The application error: what every use case returns. `http::error` maps it to a status and a
//! JSON body (the only place that does); `lambda_error_type` gives the stable error types that
//! Step Functions `Retry`/`Catch` and the Lambda retry policies match on.

pub use crate::domain::errors::FieldError;
use crate::ports::{PortError, TransitionError};

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
    /// The stable machine-readable code of the error body.
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

    pub fn is_retryable(&self) -> bool {
        self.lambda_error_type() == RETRYABLE
    }

    /// What the caller may read: internal details never reach them (the entry point logs them).
    pub fn public_message(&self) -> String {
        match self {
            Self::InvalidInput(e) => e.message.clone(),
            Self::Internal(_) => "internal error; the failure was logged".to_owned(),
            Self::Unavailable(_) => {
                "a dependency is unavailable; retry later (with the same Idempotency-Key)".to_owned()
            }
            Self::Unauthenticated(m) | Self::Forbidden(m) | Self::NotFound(m) | Self::UnsupportedMediaType(m) => {
                m.clone()
            }
            Self::Conflict { message, .. } => message.clone(),
        }
    }
}

impl From<PortError> for ServiceError {
    fn from(e: PortError) -> Self {
        match e {
            PortError::Transient(m) => Self::Unavailable(m),
            PortError::Permanent(m) => Self::Internal(m),
        }
    }
}

/// A write that kept losing to concurrent writers is worth retrying; a refused transition is a bug.
impl From<TransitionError> for ServiceError {
    fn from(e: TransitionError) -> Self {
        match e {
            TransitionError::Conflict => Self::Unavailable("the request changed concurrently; retry".into()),
            TransitionError::NotAllowed(e) => Self::Internal(e.to_string()),
            TransitionError::Port(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unavailable_dependencies_are_retryable() {
        let cases: Vec<(ServiceError, &str)> = vec![
            (FieldError::new("reason", "InvalidReason", "x").into(), NON_RETRYABLE),
            (ServiceError::Unauthenticated("x".into()), NON_RETRYABLE),
            (ServiceError::Forbidden("x".into()), NON_RETRYABLE),
            (ServiceError::NotFound("x".into()), NON_RETRYABLE),
            (ServiceError::Conflict { code: "C", message: "x".into() }, NON_RETRYABLE),
            (ServiceError::UnsupportedMediaType("x".into()), NON_RETRYABLE),
            (ServiceError::Unavailable("x".into()), RETRYABLE),
            (ServiceError::Internal("x".into()), NON_RETRYABLE),
            (TransitionError::Conflict.into(), RETRYABLE),
            (PortError::Transient("x".into()).into(), RETRYABLE),
            (PortError::Permanent("x".into()).into(), NON_RETRYABLE),
        ];
        for (err, kind) in cases {
            assert_eq!(err.lambda_error_type(), kind, "{err}");
        }
    }
}
