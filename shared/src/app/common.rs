//! What the use cases share: reading a request, the read → decide → conditional write loop with
//! its one attempt bound, and who counts as an approver of a request.

use crate::app::error::ServiceError;
use crate::domain::approval_rules as approval;
use crate::domain::ids::RequestId;
use crate::domain::principal::{CallerArn, GroupRef, PrincipalIdentity, ResolvedPrincipal};
use crate::domain::request::{AccessRequest, Approver};
use crate::ports::{DirectoryError, PrincipalDirectory, RequestStore, Transition, TransitionError};

/// How often a write that lost to a concurrent one is decided again before giving up (503).
pub const MAX_ATTEMPTS: usize = 8;

/// The stored request, or `404` worded so that an id cannot be probed.
pub async fn load(store: &dyn RequestStore, id: &RequestId) -> Result<AccessRequest, ServiceError> {
    store.get(id).await?.ok_or_else(|| not_found(id.as_str()))
}

pub fn not_found(id: &str) -> ServiceError {
    ServiceError::NotFound(format!("no access request {id} visible to you"))
}

/// A request id from a path: a malformed one is as absent as an unknown one.
pub fn parse_id(id: &str) -> Result<RequestId, ServiceError> {
    RequestId::try_from(id.to_owned()).map_err(|_| not_found(id))
}

/// One round of a read → decide → write loop: done, or the write lost to a concurrent one.
pub enum Attempt<T> {
    Done(T),
    Conflict,
}

/// Applies a change: done with the stored request, or `Conflict` when the write's condition found
/// the request moved (decide again on what is stored now).
pub async fn write(store: &dyn RequestStore, change: &Transition) -> Result<Attempt<AccessRequest>, ServiceError> {
    match store.transition(change).await {
        Ok(updated) => Ok(Attempt::Done(updated)),
        Err(TransitionError::Conflict) => Ok(Attempt::Conflict),
        Err(e) => Err(e.into()),
    }
}

/// Runs `$body` (which reads, decides and writes, yielding `Result<Attempt<T>, ServiceError>`)
/// until it is done, at most `MAX_ATTEMPTS` times; `$attempt` is the round, from 0. Each round
/// decides again on what it reads, so a retry never counts anything twice. A macro rather than a
/// function taking an async closure: the body borrows the caller's state mutably, and futures of
/// async closures are not provably `Send` for the Lambda runtime.
macro_rules! until_written {
    ($what:expr, |$attempt:pat_param| $body:block) => {{
        let mut outcome = Err($crate::app::error::ServiceError::Unavailable(format!(
            "{}: the request kept changing concurrently; retry",
            $what
        )));
        for $attempt in 0..$crate::app::common::MAX_ATTEMPTS {
            let round: Result<$crate::app::common::Attempt<_>, $crate::app::error::ServiceError> =
                async { $body }.await;
            match round {
                Ok($crate::app::common::Attempt::Conflict) => continue,
                Ok($crate::app::common::Attempt::Done(value)) => outcome = Ok(value),
                Err(e) => outcome = Err(e),
            }
            break;
        }
        outcome
    }};
}
pub(crate) use until_written;

/// The keys under which a principal may appear in an approval plan: themself and their groups.
pub fn approver_keys(principal: &ResolvedPrincipal) -> Vec<String> {
    let own = match &principal.identity {
        PrincipalIdentity::IamUser { name, .. } => Approver::IamUser(name.clone()),
        PrincipalIdentity::IamRole { name, .. } => Approver::IamRole(name.clone()),
        PrincipalIdentity::IdentityCenterUser { user_name, .. } => Approver::IdentityCenterUser(user_name.clone()),
    };
    let groups = principal.groups.iter().map(|g| match g {
        GroupRef::IamGroup { name, .. } => Approver::IamGroup(name.clone()),
        GroupRef::IdentityCenterGroup { id, .. } => Approver::IdentityCenterGroup(id.clone()),
    });
    std::iter::once(own).chain(groups).map(|a| a.index_key()).collect()
}

/// The caller as the directory knows them now; `None` once they are gone.
pub async fn resolve_caller(
    directory: &dyn PrincipalDirectory,
    caller: &CallerArn,
) -> Result<Option<ResolvedPrincipal>, ServiceError> {
    match directory.resolve(caller).await {
        Ok(p) => Ok(Some(p)),
        Err(DirectoryError::NotFound(_)) => Ok(None),
        Err(DirectoryError::Port(e)) => Err(e.into()),
    }
}

/// Whether the caller is one of the stack's administrators: named by ARN, or (only looked up when
/// some administrator is a group) a member of an administrators' Identity Center group.
pub async fn is_administrator(
    administrators: &crate::domain::administrators::Administrators,
    directory: &dyn PrincipalDirectory,
    caller: &CallerArn,
) -> Result<bool, ServiceError> {
    if administrators.names_caller(caller) {
        return Ok(true);
    }
    if !administrators.needs_groups() {
        return Ok(false);
    }
    Ok(resolve_caller(directory, caller).await?.as_ref().is_some_and(|p| administrators.names_member(p)))
}

/// Whether the request's approval plan names any of `keys` (at any level).
pub fn plan_names_any(request: &AccessRequest, keys: &[String]) -> bool {
    approval::plan_of(request).is_some_and(|plan| plan.all_approvers().any(|a| keys.contains(&a.index_key())))
}

/// Whom `person` counts as: `Person::counted_as` (asking the directory whether a role session's
/// role pins session names; a role that no longer exists pins nothing), then the person the
/// people directory (`contacts.yaml`'s `sameAs`) says that identity belongs to.
pub async fn counted_as(
    directory: &dyn PrincipalDirectory,
    people: &crate::policy::contacts::People,
    person: &crate::domain::approval::Person,
) -> Result<String, ServiceError> {
    let key = match person {
        crate::domain::approval::Person::IamRoleSession { role, .. } => {
            person.counted_as(role_trust(directory, role).await?.pins_session_names)
        }
        _ => person.counted_as(false),
    };
    Ok(people.person_of(key))
}

/// What the directory says of a role; a role that no longer exists vouches for nothing.
async fn role_trust(directory: &dyn PrincipalDirectory, role: &str) -> Result<crate::ports::RoleTrust, ServiceError> {
    match directory.role_trust(role).await {
        Ok(trust) => Ok(trust),
        Err(DirectoryError::NotFound(_)) => Ok(crate::ports::RoleTrust::default()),
        Err(DirectoryError::Port(e)) => Err(e.into()),
    }
}

/// The person behind a caller: `Person::from_caller`, except that a session of a role merely
/// named like an Identity Center one (`AWSReservedSSO_*` outside Identity Center's path) is that
/// role's session, not the Identity Center user its session name claims.
pub async fn person_of_caller(
    directory: &dyn PrincipalDirectory,
    caller: &CallerArn,
) -> Result<crate::domain::approval::Person, ServiceError> {
    let person = crate::domain::approval::Person::from_caller(caller);
    match (caller.kind(), &person) {
        (
            crate::domain::principal::CallerKind::AssumedRole { role_name, session_name },
            crate::domain::approval::Person::IdentityCenterUser(_),
        ) if !role_trust(directory, role_name).await?.identity_center => {
            Ok(crate::domain::approval::Person::IamRoleSession {
                role: role_name.clone(),
                session: session_name.clone(),
            })
        }
        _ => Ok(person),
    }
}

/// Whom a caller counts as (`person_of_caller`, then `counted_as`).
pub async fn caller_counted_as(
    directory: &dyn PrincipalDirectory,
    people: &crate::policy::contacts::People,
    caller: &CallerArn,
) -> Result<String, ServiceError> {
    let person = person_of_caller(directory, caller).await?;
    counted_as(directory, people, &person).await
}

/// Whether the request's approval carries a valid seal (`AccessRequest::approval_message`). A
/// request without one was not approved by a deciding function: it is logged for the
/// `UnsealedApprovals` alarm, and the caller refuses to act on it.
pub async fn approval_is_sealed(
    seal: &dyn crate::ports::ApprovalSeal,
    request: &AccessRequest,
) -> Result<bool, ServiceError> {
    let valid = match &request.approval_seal {
        Some(mac) => seal.check(&request.approval_message(), mac).await?,
        None => false,
    };
    if !valid {
        tracing::error!(
            request_id = %request.request_id,
            alarm = "UnsealedApproval",
            "an Approved request without a valid approval seal: refused (was it written outside the stack?)"
        );
    }
    Ok(valid)
}

/// The message of the refusal recorded when an approval is not sealed.
pub const UNSEALED_APPROVAL: &str = "the approval carries no valid seal from the deciding functions, so it was not made by this stack's policies or approvers; nothing was granted";
