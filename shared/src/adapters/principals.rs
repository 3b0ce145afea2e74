//! Resolving the requester: IAM users (groups, tags), IAM role sessions (role tags) and, behind
//! `AWSReservedSSO_*` roles, IAM Identity Center users (Identity Store id and group ids).

use std::collections::BTreeMap;

use crate::adapters::classify;
use crate::domain::approval::Person;
use crate::domain::principal::{CallerArn, CallerKind, GroupRef, PrincipalIdentity, ResolvedPrincipal};
use crate::ports::{DirectoryError, PrincipalDirectory, RoleTrust};

/// How long a role's trust verdict is reused (`role_trust`).
const TRUST_CACHE_SECONDS: u64 = 300;
/// How long a resolved principal (its groups and tags) is reused: a burst of calls by one person
/// (listing, approving, a page and its form) costs one set of IAM or Identity Store lookups, and a
/// group change still counts within half a minute.
pub const GROUP_CACHE_SECONDS: u64 = 30;
/// Entries kept per cache at most (per Lambda environment); a full cache starts again.
const CACHE_ENTRIES: usize = 1024;

/// A few answers kept briefly, shared by the clones of one directory.
#[derive(Clone, Debug)]
struct Expiring<V> {
    fresh: std::time::Duration,
    entries: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, (V, std::time::Instant)>>>,
}

impl<V: Clone> Expiring<V> {
    fn new(seconds: u64) -> Self {
        Self { fresh: std::time::Duration::from_secs(seconds), entries: Default::default() }
    }

    fn get(&self, key: &str) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        entries.get(key).filter(|(_, at)| at.elapsed() < self.fresh).map(|(v, _)| v.clone())
    }

    fn put(&self, key: &str, value: V) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CACHE_ENTRIES {
                entries.clear();
            }
            entries.insert(key.to_owned(), (value, std::time::Instant::now()));
        }
    }
}

/// The path IAM Identity Center creates permission-set roles under (an optional Region segment
/// may follow).
const IDENTITY_CENTER_ROLE_PATH: &str = "/aws-reserved/sso.amazonaws.com/";

#[derive(Clone, Debug)]
pub struct AwsPrincipalDirectory {
    iam: aws_sdk_iam::Client,
    /// Roles' trust-policy verdicts, briefly: deciding and listing ask for each requester.
    trust: Expiring<RoleTrust>,
    /// Resolved callers and persons, for `GROUP_CACHE_SECONDS` (only successful lookups).
    resolved: Expiring<ResolvedPrincipal>,
    #[cfg(feature = "identitystore")]
    identity_store: Option<(aws_sdk_identitystore::Client, String)>,
}

impl AwsPrincipalDirectory {
    pub fn new(iam: aws_sdk_iam::Client) -> Self {
        Self {
            iam,
            trust: Expiring::new(TRUST_CACHE_SECONDS),
            resolved: Expiring::new(GROUP_CACHE_SECONDS),
            #[cfg(feature = "identitystore")]
            identity_store: None,
        }
    }

    /// Lets callers behind Identity Center permission-set roles resolve as Identity Center users.
    #[cfg(feature = "identitystore")]
    pub fn with_identity_store(
        mut self,
        client: aws_sdk_identitystore::Client,
        identity_store_id: impl Into<String>,
    ) -> Self {
        self.identity_store = Some((client, identity_store_id.into()));
        self
    }

    /// `GetUser` returns the user's tags with it (IAM allows at most 50), so no `ListUserTags`.
    async fn get_user(&self, name: &str) -> Result<aws_sdk_iam::types::User, DirectoryError> {
        let not_found = || DirectoryError::NotFound(format!("IAM user {name}"));
        let out = self.iam.get_user().user_name(name).send().await.map_err(|e| {
            if e.as_service_error().is_some_and(|s| s.is_no_such_entity_exception()) {
                not_found()
            } else {
                classify("GetUser", &e).into()
            }
        })?;
        out.user.ok_or_else(not_found)
    }

    async fn iam_user(&self, name: &str) -> Result<ResolvedPrincipal, DirectoryError> {
        let not_found = || DirectoryError::NotFound(format!("IAM user {name}"));
        let user = self.get_user(name).await?;
        let groups = self.iam.list_groups_for_user().user_name(name).max_items(1000).send().await.map_err(|e| {
            if e.as_service_error().is_some_and(|s| s.is_no_such_entity_exception()) {
                not_found()
            } else {
                classify("ListGroupsForUser", &e).into()
            }
        })?;
        Ok(ResolvedPrincipal {
            identity: PrincipalIdentity::IamUser { arn: user.arn().to_owned(), name: name.to_owned() },
            groups: groups
                .groups()
                .iter()
                .map(|g| GroupRef::IamGroup { arn: g.arn().to_owned(), name: g.group_name().to_owned() })
                .collect(),
            attributes: BTreeMap::new(),
            principal_tags: user.tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect(),
        })
    }

    /// `GetRole` returns the role's tags with it, so no `ListRoleTags`.
    async fn role(&self, role_name: &str) -> Result<(String, BTreeMap<String, String>), DirectoryError> {
        let out = self.iam.get_role().role_name(role_name).send().await.map_err(|e| {
            if e.as_service_error().is_some_and(|s| s.is_no_such_entity_exception()) {
                DirectoryError::NotFound(format!("IAM role {role_name}"))
            } else {
                classify("GetRole", &e).into()
            }
        })?;
        let role = out.role().ok_or_else(|| DirectoryError::NotFound(format!("IAM role {role_name}")))?;
        Ok((role.arn().to_owned(), role.tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect()))
    }

    #[cfg(feature = "identitystore")]
    async fn identity_center_user(
        &self,
        client: &aws_sdk_identitystore::Client,
        store: &str,
        user_name: &str,
    ) -> Result<(PrincipalIdentity, Vec<GroupRef>), DirectoryError> {
        use aws_sdk_identitystore::types::MemberId;
        let user_id = Self::identity_center_user_id(client, store, user_name).await?;
        let mut groups = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = client
                .list_group_memberships_for_member()
                .identity_store_id(store)
                .member_id(MemberId::UserId(user_id.clone()))
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| DirectoryError::from(classify("ListGroupMembershipsForMember", &e)))?;
            groups.extend(
                out.group_memberships()
                    .iter()
                    .filter_map(|m| m.group_id())
                    .map(|id| GroupRef::IdentityCenterGroup { id: id.to_owned(), display_name: None }),
            );
            match out.next_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        Ok((PrincipalIdentity::IdentityCenterUser { user_id, user_name: user_name.to_owned() }, groups))
    }

    #[cfg(feature = "identitystore")]
    async fn identity_center_user_id(
        client: &aws_sdk_identitystore::Client,
        store: &str,
        user_name: &str,
    ) -> Result<String, DirectoryError> {
        use aws_sdk_identitystore::types::{AlternateIdentifier, UniqueAttribute};
        use aws_smithy_types::Document;
        let unique = UniqueAttribute::builder()
            .attribute_path("userName")
            .attribute_value(Document::String(user_name.to_owned()))
            .build()
            .map_err(|e| DirectoryError::NotFound(e.to_string()))?;
        let user_id = client
            .get_user_id()
            .identity_store_id(store)
            .alternate_identifier(AlternateIdentifier::UniqueAttribute(unique))
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) {
                    DirectoryError::NotFound(format!("Identity Center user {user_name}"))
                } else {
                    classify("GetUserId", &e).into()
                }
            })?
            .user_id
            .clone();
        Ok(user_id)
    }
}

#[async_trait::async_trait]
impl PrincipalDirectory for AwsPrincipalDirectory {
    async fn resolve_person(&self, person: &Person) -> Result<ResolvedPrincipal, DirectoryError> {
        let key = format!("person {}", person.key());
        if let Some(hit) = self.resolved.get(&key) {
            return Ok(hit);
        }
        let resolved = self.resolve_person_now(person).await?;
        self.resolved.put(&key, resolved.clone());
        Ok(resolved)
    }

    async fn role_trust(&self, role: &str) -> Result<RoleTrust, DirectoryError> {
        if let Some(trust) = self.trust.get(role) {
            return Ok(trust);
        }
        let out = self.iam.get_role().role_name(role).send().await.map_err(|e| {
            if e.as_service_error().is_some_and(|s| s.is_no_such_entity_exception()) {
                DirectoryError::NotFound(format!("IAM role {role}"))
            } else {
                classify("GetRole", &e).into()
            }
        })?;
        let found = out.role().ok_or_else(|| DirectoryError::NotFound(format!("IAM role {role}")))?;
        let trust = RoleTrust {
            pins_session_names: found
                .assume_role_policy_document()
                .and_then(crate::adapters::policy_document)
                .is_some_and(|doc| crate::domain::principal::trust_pins_session_names(&doc)),
            identity_center: role.starts_with(crate::domain::principal::IDENTITY_CENTER_ROLE_PREFIX)
                && found.path().starts_with(IDENTITY_CENTER_ROLE_PATH),
        };
        self.trust.put(role, trust);
        Ok(trust)
    }

    /// One call: `GetUser`, `GetRole` or `GetUserId`, without the group lookups.
    async fn check_exists(&self, person: &Person) -> Result<(), DirectoryError> {
        match person {
            Person::IamUser(name) => self.get_user(name).await.map(|_| ()),
            Person::IamRoleSession { role, .. } => self.role(role).await.map(|_| ()),
            Person::IdentityCenterUser(user_name) => {
                #[cfg(feature = "identitystore")]
                if let Some((client, store)) = &self.identity_store {
                    return Self::identity_center_user_id(client, store, user_name).await.map(|_| ());
                }
                Err(DirectoryError::NotFound(format!(
                    "Identity Center user {user_name} (no Identity Store is configured)"
                )))
            }
        }
    }

    async fn resolve(&self, caller: &CallerArn) -> Result<ResolvedPrincipal, DirectoryError> {
        let key = format!("caller {caller}");
        if let Some(hit) = self.resolved.get(&key) {
            return Ok(hit);
        }
        let resolved = self.resolve_now(caller).await?;
        self.resolved.put(&key, resolved.clone());
        Ok(resolved)
    }
}

impl AwsPrincipalDirectory {
    async fn resolve_person_now(&self, person: &Person) -> Result<ResolvedPrincipal, DirectoryError> {
        match person {
            Person::IamUser(name) => self.iam_user(name).await,
            Person::IamRoleSession { role, session } => {
                let (role_arn, principal_tags) = self.role(role).await?;
                Ok(ResolvedPrincipal {
                    identity: PrincipalIdentity::IamRole {
                        arn: role_arn,
                        name: role.clone(),
                        session_name: session.clone(),
                    },
                    groups: vec![],
                    attributes: BTreeMap::new(),
                    principal_tags,
                })
            }
            Person::IdentityCenterUser(user_name) => {
                #[cfg(feature = "identitystore")]
                if let Some((client, store)) = &self.identity_store {
                    let (identity, groups) = self.identity_center_user(client, store, user_name).await?;
                    return Ok(ResolvedPrincipal {
                        identity,
                        groups,
                        attributes: BTreeMap::new(),
                        principal_tags: BTreeMap::new(),
                    });
                }
                Err(DirectoryError::NotFound(format!(
                    "Identity Center user {user_name} (no Identity Store is configured)"
                )))
            }
        }
    }

    async fn resolve_now(&self, caller: &CallerArn) -> Result<ResolvedPrincipal, DirectoryError> {
        match caller.kind() {
            CallerKind::IamUser { name } => {
                let resolved = self.iam_user(name).await?;
                // Policies see the caller's own ARN (as signed), not a re-spelling of it.
                Ok(ResolvedPrincipal {
                    identity: PrincipalIdentity::IamUser { arn: caller.to_string(), name: name.clone() },
                    ..resolved
                })
            }
            CallerKind::AssumedRole { role_name, session_name } => {
                let (role_arn, principal_tags) = self.role(role_name).await?;
                // Only a role Identity Center made stands for an Identity Center user: anyone may
                // create a role named AWSReservedSSO_* elsewhere and name its session after one.
                #[cfg(feature = "identitystore")]
                if caller.is_identity_center() && self.role_trust(role_name).await?.identity_center {
                    if let Some((client, store)) = &self.identity_store {
                        let (identity, groups) = self.identity_center_user(client, store, session_name).await?;
                        return Ok(ResolvedPrincipal { identity, groups, attributes: BTreeMap::new(), principal_tags });
                    }
                }
                Ok(ResolvedPrincipal {
                    identity: PrincipalIdentity::IamRole {
                        arn: role_arn,
                        name: role_name.clone(),
                        session_name: session_name.clone(),
                    },
                    groups: vec![],
                    attributes: BTreeMap::new(),
                    principal_tags,
                })
            }
        }
    }
}

// IAM is in the emulator, but counting lookups is plainest with `aws-smithy-mocks` (typed
// outputs: the cache sits above the SDK's deserialization).
#[cfg(test)]
mod tests {
    use aws_sdk_iam::operation::get_user::GetUserOutput;
    use aws_sdk_iam::operation::list_groups_for_user::ListGroupsForUserOutput;
    use aws_sdk_iam::types::{Group, User};
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    use super::*;

    fn alice() -> CallerArn {
        CallerArn::try_from("arn:aws:iam::123456789012:user/alice".to_owned()).unwrap()
    }

    #[tokio::test]
    async fn a_burst_of_calls_by_one_person_looks_their_groups_up_once() {
        // Arrange
        let created = aws_smithy_types::DateTime::from_secs(1_700_000_000);
        let get_user = mock!(aws_sdk_iam::Client::get_user).then_output(move || {
            GetUserOutput::builder()
                .user(
                    User::builder()
                        .path("/")
                        .user_name("alice")
                        .user_id("AIDAEXAMPLEALICE00001")
                        .arn("arn:aws:iam::123456789012:user/alice")
                        .create_date(created)
                        .build()
                        .unwrap(),
                )
                .build()
        });
        let groups = mock!(aws_sdk_iam::Client::list_groups_for_user).then_output(move || {
            ListGroupsForUserOutput::builder()
                .groups(
                    Group::builder()
                        .path("/")
                        .group_name("oncall")
                        .group_id("AGPAEXAMPLEONCALL0001")
                        .arn("arn:aws:iam::123456789012:group/oncall")
                        .create_date(created)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap()
        });
        let directory = AwsPrincipalDirectory::new(mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&get_user, &groups]));

        // Act: five calls, from clones of the directory as concurrent handlers hold it.
        for _ in 0..5 {
            let resolved = directory.clone().resolve(&alice()).await.unwrap();
            // Assert: the same answer every time...
            assert!(matches!(&resolved.groups[..], [GroupRef::IamGroup { name, .. }] if name == "oncall"));
        }
        // ...from one set of lookups.
        assert_eq!((get_user.num_calls(), groups.num_calls()), (1, 1));
    }

    #[test]
    fn an_answer_is_not_reused_once_stale() {
        let cache = Expiring::new(0);
        cache.put("k", 1);
        assert_eq!(cache.get("k"), None);
        let cache = Expiring::new(60);
        cache.put("k", 1);
        assert_eq!(cache.get("k"), Some(1));
    }
}
