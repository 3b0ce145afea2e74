//! Inline IAM policies for grants (`Put/Delete/List{User,Role}Policy`). The grant/expiry function
//! is the only one whose IAM role allows these calls, and only on eligible principals. A member
//! account's session role (a revoke's deny) is written through that account's teardown role.

use crate::adapters::accounts::AccountClients;
use crate::adapters::classify;
use crate::domain::ids::NodeLocation;
use crate::ports::{AccessGranter, GrantPrincipal, GrantWriteError, PortError, RoleFacts};

pub struct IamGranter {
    iam: aws_sdk_iam::Client,
    home: NodeLocation,
    members: AccountClients<aws_sdk_iam::Client>,
}

/// Users and roles are written by different IAM calls.
enum Holder<'a> {
    User(&'a str),
    Role(&'a str),
}

impl IamGranter {
    pub fn new(iam: aws_sdk_iam::Client, home: NodeLocation, members: AccountClients<aws_sdk_iam::Client>) -> Self {
        Self { iam, home, members }
    }

    /// The client of the principal's account and the principal in it.
    async fn locate<'a>(&self, principal: &'a GrantPrincipal) -> (aws_sdk_iam::Client, Holder<'a>) {
        match principal {
            GrantPrincipal::IamUser { name } => (self.iam.clone(), Holder::User(name)),
            GrantPrincipal::IamRole { name } => (self.iam.clone(), Holder::Role(name)),
            GrantPrincipal::SessionRole { account, .. } if *account == self.home.account => {
                (self.iam.clone(), Holder::Role(role_name(principal)))
            }
            GrantPrincipal::SessionRole { account, .. } => {
                let location = NodeLocation { account: account.clone(), ..self.home.clone() };
                (self.members.at(&location).await, Holder::Role(role_name(principal)))
            }
        }
    }
}

fn role_name(principal: &GrantPrincipal) -> &str {
    match principal {
        GrantPrincipal::IamUser { name }
        | GrantPrincipal::IamRole { name }
        | GrantPrincipal::SessionRole { name, .. } => name,
    }
}

fn no_such(principal: &GrantPrincipal) -> GrantWriteError {
    match principal {
        GrantPrincipal::IamUser { name } => GrantWriteError::NoSuchPrincipal(format!("IAM user {name}")),
        GrantPrincipal::IamRole { name } => GrantWriteError::NoSuchPrincipal(format!("IAM role {name}")),
        GrantPrincipal::SessionRole { account, name } => {
            GrantWriteError::NoSuchPrincipal(format!("session role {name} of account {account}"))
        }
    }
}

#[async_trait::async_trait]
impl AccessGranter for IamGranter {
    async fn role(&self, role: &str) -> Result<RoleFacts, GrantWriteError> {
        let out = self.iam.get_role().role_name(role).send().await.map_err(|e| {
            if e.as_service_error().is_some_and(|s| s.is_no_such_entity_exception()) {
                GrantWriteError::NoSuchPrincipal(format!("IAM role {role}"))
            } else {
                classify("GetRole", &e).into()
            }
        })?;
        let found = out.role().ok_or_else(|| GrantWriteError::NoSuchPrincipal(format!("IAM role {role}")))?;
        let pins_session_names = found
            .assume_role_policy_document()
            .and_then(crate::adapters::policy_document)
            .is_some_and(|doc| crate::domain::principal::trust_pins_session_names(&doc));
        Ok(RoleFacts { role_id: found.role_id().to_owned(), pins_session_names })
    }

    async fn put_policy(&self, principal: &GrantPrincipal, name: &str, document: &str) -> Result<(), GrantWriteError> {
        let (iam, holder) = self.locate(principal).await;
        match holder {
            Holder::User(user) => {
                iam.put_user_policy()
                    .user_name(user)
                    .policy_name(name)
                    .policy_document(document)
                    .send()
                    .await
                    .map_err(|e| match e.as_service_error() {
                        Some(s) if s.is_no_such_entity_exception() => no_such(principal),
                        Some(s) if s.is_limit_exceeded_exception() => GrantWriteError::TooLarge(s.to_string()),
                        _ => classify("PutUserPolicy", &e).into(),
                    })?;
            }
            Holder::Role(role) => {
                iam.put_role_policy()
                    .role_name(role)
                    .policy_name(name)
                    .policy_document(document)
                    .send()
                    .await
                    .map_err(|e| match e.as_service_error() {
                        Some(s) if s.is_no_such_entity_exception() => no_such(principal),
                        Some(s) if s.is_limit_exceeded_exception() => GrantWriteError::TooLarge(s.to_string()),
                        _ => classify("PutRolePolicy", &e).into(),
                    })?;
            }
        }
        Ok(())
    }

    async fn delete_policy(&self, principal: &GrantPrincipal, name: &str) -> Result<bool, PortError> {
        let (iam, holder) = self.locate(principal).await;
        let result = match holder {
            Holder::User(user) => match iam.delete_user_policy().user_name(user).policy_name(name).send().await {
                Ok(_) => Ok(true),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_entity_exception()) => Ok(false),
                Err(e) => Err(classify("DeleteUserPolicy", &e)),
            },
            Holder::Role(role) => match iam.delete_role_policy().role_name(role).policy_name(name).send().await {
                Ok(_) => Ok(true),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_entity_exception()) => Ok(false),
                Err(e) => Err(classify("DeleteRolePolicy", &e)),
            },
        };
        result
    }

    async fn list_policies(&self, principal: &GrantPrincipal) -> Result<Vec<String>, PortError> {
        let (iam, holder) = self.locate(principal).await;
        let mut names = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let (page, next) = match holder {
                Holder::User(name) => {
                    let out = match iam.list_user_policies().user_name(name).set_marker(marker.take()).send().await {
                        Ok(o) => o,
                        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_entity_exception()) => {
                            return Ok(vec![])
                        }
                        Err(e) => return Err(classify("ListUserPolicies", &e)),
                    };
                    (out.policy_names, if out.is_truncated { out.marker } else { None })
                }
                Holder::Role(name) => {
                    let out = match iam.list_role_policies().role_name(name).set_marker(marker.take()).send().await {
                        Ok(o) => o,
                        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_entity_exception()) => {
                            return Ok(vec![])
                        }
                        Err(e) => return Err(classify("ListRolePolicies", &e)),
                    };
                    (out.policy_names, if out.is_truncated { out.marker } else { None })
                }
            };
            names.extend(page);
            match next {
                Some(m) => marker = Some(m),
                None => return Ok(names),
            }
        }
    }
}
