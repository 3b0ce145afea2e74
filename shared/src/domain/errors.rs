//! A rejected input value, naming the field: what every validating constructor returns.

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

/// A setting or secret the stack was configured with that cannot be used: what the validating
/// constructors of configuration values return (the caller names the variable or parameter).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    #[error("'{0}' is not an IANA time zone name (for example Europe/Berlin, America/New_York or UTC)")]
    UnknownTimeZone(String),
    #[error("the {what} must be at least {min} {unit} (it has {len})")]
    TooShort { what: &'static str, min: usize, unit: &'static str, len: usize },
    #[error("'{0}' names no group")]
    EmptyGroup(String),
    #[error("'{0}' is not an IAM user, IAM role or role session ARN, nor identity-center-group:<id or name>")]
    NotAnAdministrator(String),
}
