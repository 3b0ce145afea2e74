//! Credentials mode's one AWS call: `sts:AssumeRole` of the session role, with the session
//! policy, the request id as session name, the person as `SourceIdentity` and the request id as
//! a session tag. Only the credentials function holds this client.

use chrono::{DateTime, Utc};

use crate::adapters::classify;
use crate::domain::credentials::{CredentialsSpec, IssuedCredentials, Secret};
use crate::ports::{CredentialIssuer, PortError};

#[derive(Clone, Debug)]
pub struct StsIssuer {
    sts: aws_sdk_sts::Client,
}

impl StsIssuer {
    pub fn new(sts: aws_sdk_sts::Client) -> Self {
        Self { sts }
    }
}

#[async_trait::async_trait]
impl CredentialIssuer for StsIssuer {
    async fn issue(&self, spec: &CredentialsSpec) -> Result<IssuedCredentials, PortError> {
        let mut call = self
            .sts
            .assume_role()
            .role_arn(&spec.role_arn)
            .role_session_name(&spec.session_name)
            .source_identity(&spec.source_identity)
            .policy(&spec.policy)
            .duration_seconds(spec.duration_seconds);
        for (key, value) in &spec.tags {
            let tag = aws_sdk_sts::types::Tag::builder()
                .key(key)
                .value(value)
                .build()
                .map_err(|e| PortError::Permanent(format!("AssumeRole: building a session tag: {e}")))?;
            call = call.tags(tag);
        }
        let out = call.send().await.map_err(|e| classify("AssumeRole", &e))?;
        let creds =
            out.credentials().ok_or_else(|| PortError::Permanent("AssumeRole returned no credentials".into()))?;
        let expiration = DateTime::<Utc>::from_timestamp(creds.expiration().secs(), 0)
            .ok_or_else(|| PortError::Permanent("AssumeRole returned an expiration out of range".into()))?;
        Ok(IssuedCredentials {
            access_key_id: creds.access_key_id().to_owned(),
            secret_access_key: Secret::new(creds.secret_access_key()),
            session_token: Secret::new(creds.session_token()),
            expiration,
        })
    }
}
