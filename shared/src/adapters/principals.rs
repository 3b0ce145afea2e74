//! Resolving the requester: IAM users (groups, tags), IAM role sessions (role tags) and, behind
//! `AWSReservedSSO_*` roles, IAM Identity Center users (Identity Store id and group ids).

use std::collections::BTreeMap;

use crate::adapters::classify;
use crate::domain::approval::Person;
use crate::domain::principal::{CallerArn, CallerKind, GroupRef, PrincipalIdentity, ResolvedPrincipal};
use crate::ports::{DirectoryError, PrincipalDirectory, RoleTrust};

/// How long a role's trust verdict is reused (`role_trust`).
const TRUST_CACHE_SECONDS: u64 = 300;

type TrustCache = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, (RoleTrust, std::time::Instant)>>>;

/// The path IAM Identity Center creates permission-set roles under (an optional Region segment
/// may follow).
const IDENTITY_CENTER_ROLE_PATH: &str = "/aws-reserved/sso.amazonaws.com/";

#[derive(Clone, Debug)]
pub struct AwsPrincipalDirectory {
    iam: aws_sdk_iam::Client,
    /// Roles' trust-policy verdicts, briefly: deciding and listing ask for each requester.
    trust: TrustCache,
    #[cfg(feature = "identitystore")]
    identity_store: Option<(aws_sdk_identitystore::Client, String)>,
}

impl AwsPrincipalDirectory {
    pub fn new(iam: aws_sdk_iam::Client) -> Self {
        Self {
            iam,
            trust: TrustCache::default(),
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

    async fn role_trust(&self, role: &str) -> Result<RoleTrust, DirectoryError> {
        let fresh = std::time::Duration::from_secs(TRUST_CACHE_SECONDS);
        if let Ok(cache) = self.trust.lock() {
            if let Some((trust, at)) = cache.get(role) {
                if at.elapsed() < fresh {
                    return Ok(*trust);
                }
            }
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
        if let Ok(mut cache) = self.trust.lock() {
            cache.insert(role.to_owned(), (trust, std::time::Instant::now()));
        }
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
