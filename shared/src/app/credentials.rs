//! `POST /requests/{id}/credentials`: the requester of an `Approved` credentials-mode request
//! gets STS credentials of the session role, scoped to the node and the deadline. Each
//! issuance is recorded with one conditional write (audit record and a `Credentials Issued`
//! event naming the access key id), made only while the request is still `Approved`.

use chrono::{DateTime, Utc};

use crate::app::common::{load, not_found, parse_id, until_written, write};
use crate::app::error::ServiceError;
use crate::domain::credentials::{self, CredentialsIssue, CredentialsRefusal, IssuedCredentials};
use crate::domain::grant::{GrantMode, GrantSettings};
use crate::domain::ids::{NodeId, RequestId};
use crate::domain::principal::CallerArn;
use crate::domain::status::RequestStatus;
use crate::ports::{CredentialIssuer, RequestStore, Transition};

pub const CREDENTIALS_ACTOR_REASON: &str = "credentials issued";

pub struct CredentialsDeps<'a> {
    pub store: &'a dyn RequestStore,
    pub issuer: &'a dyn CredentialIssuer,
    pub settings: &'a GrantSettings,
    /// Checks the approval's seal before anything is issued (`ApprovalSeal`).
    pub seal: &'a dyn crate::ports::ApprovalSeal,
    /// Whom the requester counts as, for the credentials' `SourceIdentity`: whether a role pins
    /// its session names (`role_trust`, one cached `GetRole`), and the people directory.
    pub directory: &'a dyn crate::ports::PrincipalDirectory,
    pub people: &'a crate::policy::contacts::People,
}

/// What the requester receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub request_id: RequestId,
    pub node_id: NodeId,
    pub credentials: IssuedCredentials,
    /// When what the credentials allow ends: never after the deadline, at most an hour away.
    pub expiration: DateTime<Utc>,
    pub access_deadline: DateTime<Utc>,
    pub role_arn: String,
    pub region: String,
    /// The session document to name in `start-session` (the first the stack allows).
    pub document_name: String,
}

fn revoke_in_progress() -> ServiceError {
    ServiceError::Conflict {
        code: "RevokeInProgress",
        message: "the request is being revoked; no more credentials are issued for it".into(),
    }
}

fn not_approved(status: RequestStatus) -> ServiceError {
    ServiceError::Conflict {
        code: "RequestNotApproved",
        message: format!("the request is {status}; credentials are issued only while it is Approved"),
    }
}

pub async fn issue(
    deps: &CredentialsDeps<'_>,
    caller: &CallerArn,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Issued, ServiceError> {
    let id = parse_id(id)?;
    let request = load(deps.store, &id).await?;
    // Only the requester: anyone else learns nothing, not even that the request exists.
    if &request.requester != caller {
        return Err(not_found(id.as_str()));
    }
    if request.status != RequestStatus::Approved {
        return Err(not_approved(request.status));
    }
    if request.revoke_held_at.is_some() {
        return Err(revoke_in_progress());
    }
    if let Some(of) = &request.extends {
        return Err(ServiceError::Conflict {
            code: "ExtensionRequest",
            message: format!("this request extends {of}: fetch credentials for {of}, whose deadline it moves"),
        });
    }
    // A scheduled request is decided again at its start, and its grant is recorded only once that
    // recheck permits it: until then there is nothing to issue, even a moment after the start.
    if let Some(starts_at) = request.starts_at.filter(|_| request.not_started(now) || request.grant.is_none()) {
        let starts = crate::domain::grant::deadline_text(&starts_at);
        return Err(ServiceError::Conflict {
            code: "AccessNotStarted",
            message: match request.not_started(now) {
                true => format!("the scheduled access starts at {starts}; credentials are issued from then on"),
                false => format!(
                    "the scheduled access started at {starts} and is being checked against the policies again; ask again in a few seconds"
                ),
            },
        });
    }
    if request.grant_mode != GrantMode::Credentials {
        return Err(ServiceError::Conflict {
            code: "AttachModeGrant",
            message: "this request's access is a policy on your own IAM principal (attach mode): start the session with your own credentials".into(),
        });
    }
    if !crate::app::common::approval_is_sealed(deps.seal, &request).await? {
        return Err(ServiceError::Forbidden(crate::app::common::UNSEALED_APPROVAL.to_owned()));
    }
    let deadline = request.access_deadline();
    let person = crate::app::common::caller_counted_as(deps.directory, deps.people, &request.requester).await?;
    let spec = credentials::spec(deps.settings, &request, &person, &deadline, now).map_err(|e| match e {
        CredentialsRefusal::AccessEnded(_) => ServiceError::Conflict {
            code: "AccessEnded",
            message: format!("the request's access {e}; request access again"),
        },
        CredentialsRefusal::PolicyTooLarge { .. } => ServiceError::Internal(e.to_string()),
    })?;
    let issued = deps.issuer.issue(&spec).await?;
    let issue = CredentialsIssue {
        access_key_id: issued.access_key_id.clone(),
        role_arn: spec.role_arn.clone(),
        issued_at: now,
        expiration: issued.expiration,
    };
    // Recorded before they are handed out: credentials that were not recorded are never
    // returned. If a revoke or expiry won the race, these are not returned (409), and nothing
    // else denies them: the revoke wrote a deny only if earlier credentials were recorded, and
    // they stay valid at STS until they expire. Never return them from any other path.
    until_written!("recording issued credentials", |attempt| {
        let current = if attempt == 0 { request.clone() } else { load(deps.store, &id).await? };
        if current.status != RequestStatus::Approved {
            return Err(not_approved(current.status));
        }
        if current.revoke_held_at.is_some() {
            return Err(revoke_in_progress());
        }
        let change = Transition {
            credentials: Some(issue.clone()),
            ..Transition::status_change(
                &current,
                RequestStatus::Approved,
                caller.as_str(),
                format!("{CREDENTIALS_ACTOR_REASON}: {} until {}", issue.access_key_id, spec.not_after),
                now,
            )
        };
        write(deps.store, &change).await
    })?;
    tracing::info!(request_id = %id, access_key_id = %issued.access_key_id, "credentials issued");
    Ok(Issued {
        request_id: id,
        node_id: request.node_id.clone(),
        expiration: spec.not_after.min(issued.expiration),
        credentials: issued,
        access_deadline: deadline,
        role_arn: spec.role_arn,
        // Where the node is: a member account's node may be in another Region than the stack.
        region: deps.settings.node_location(&request.node_id).region,
        document_name: deps.settings.session_documents.first().cloned().unwrap_or_default(),
    })
}
