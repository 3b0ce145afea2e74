//! Node tags: EC2 instances through the Resource Groups Tagging API (a far smaller client than
//! EC2's), hybrid managed nodes (`mi-`) through SSM `ListTagsForResource`.
//!
//! The Tagging API only lists resources that carry (or carried) a tag, so an untagged instance
//! is reported as not found: tag nodes to make them requestable.
//!
//! A member account's node is read through that account's reader role, in the node's Region
//! (`adapters::accounts`).

use std::collections::BTreeMap;

use aws_sdk_ssm::types::ResourceTypeForTagging;

use crate::adapters::accounts::AccountClients;
use crate::adapters::classify;
use crate::domain::grant::node_arn;
use crate::domain::ids::{NodeId, NodeKind, NodeLocation};
use crate::policy::NodeInfo;
use crate::ports::{DirectoryError, NodeDirectory};

/// The two clients a node's tags are read with, for one account and Region.
#[derive(Clone, Debug)]
pub struct NodeClients {
    pub tagging: aws_sdk_resourcegroupstagging::Client,
    pub ssm: aws_sdk_ssm::Client,
}

impl NodeClients {
    pub fn from_sdk(sdk: &aws_config::SdkConfig) -> Self {
        Self { tagging: aws_sdk_resourcegroupstagging::Client::new(sdk), ssm: aws_sdk_ssm::Client::new(sdk) }
    }
}

pub struct AwsNodeDirectory {
    clients: AccountClients<NodeClients>,
    home: NodeLocation,
}

impl AwsNodeDirectory {
    pub fn new(clients: AccountClients<NodeClients>, home: NodeLocation) -> Self {
        Self { clients, home }
    }
}

#[async_trait::async_trait]
impl NodeDirectory for AwsNodeDirectory {
    async fn describe(&self, node: &NodeId) -> Result<NodeInfo, DirectoryError> {
        let location = node.resolve(&self.home);
        let clients = self.clients.at(&location).await;
        let tags: BTreeMap<String, String> = match node.kind() {
            NodeKind::Ec2Instance => {
                let arn = node_arn(&location, node);
                let out = clients
                    .tagging
                    .get_resources()
                    .resource_arn_list(&arn)
                    .send()
                    .await
                    .map_err(|e| DirectoryError::from(classify("GetResources", &e)))?;
                let mapping = out
                    .resource_tag_mapping_list()
                    .iter()
                    .find(|m| m.resource_arn() == Some(arn.as_str()))
                    .ok_or_else(|| DirectoryError::NotFound(format!("EC2 instance {node}")))?;
                mapping.tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect()
            }
            NodeKind::ManagedInstance => {
                let out = clients
                    .ssm
                    .list_tags_for_resource()
                    .resource_type(ResourceTypeForTagging::ManagedInstance)
                    .resource_id(node.instance_id())
                    .send()
                    .await
                    .map_err(|e| {
                        if e.as_service_error().is_some_and(|s| s.is_invalid_resource_id()) {
                            DirectoryError::NotFound(format!("managed node {node}"))
                        } else {
                            classify("ListTagsForResource", &e).into()
                        }
                    })?;
                out.tag_list().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect()
            }
        };
        Ok(NodeInfo { node_id: node.clone(), location, tags })
    }
}

// moto cannot register hybrid managed nodes (there is no activation/registration flow in the
// emulator), so the SSM path is tested here with `aws-smithy-mocks`, answering with HTTP
// responses shaped like the real services' (awsJson 1.1 bodies and error `__type`s) so the SDK's
// own deserialization runs. The EC2 path is also tested against moto in `tests/nodes.rs`.
#[cfg(test)]
mod tests {
    use aws_sdk_resourcegroupstagging::operation::get_resources::GetResourcesInput;
    use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_types::retry::RetryConfig;

    use super::*;
    use crate::ports::PortError;

    const INSTANCE: &str = "i-0123456789abcdef0";
    const MANAGED: &str = "mi-0123456789abcdef0";
    const INSTANCE_ARN: &str = "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0";

    fn node(raw: &str) -> NodeId {
        NodeId::try_from(raw.to_owned()).unwrap()
    }

    /// An awsJson 1.1 response as SSM and the Tagging API send it.
    fn json_response(status: u16, body: &'static str) -> HttpResponse {
        crate::adapters::aws_answer(status, "application/x-amz-json-1.1", body)
    }

    fn is_our_instance(input: &GetResourcesInput) -> bool {
        input.resource_arn_list() == [INSTANCE_ARN]
    }

    /// SDK retries are off so each case sees exactly one answer: what is under test is how the
    /// adapter sorts the final failure, not the SDK's retry loop.
    fn directory(tagging_rules: &[&Rule], ssm_rules: &[&Rule]) -> AwsNodeDirectory {
        let tagging =
            mock_client!(aws_sdk_resourcegroupstagging, RuleMode::MatchAny, tagging_rules.iter().copied(), |c| c
                .retry_config(RetryConfig::disabled()));
        let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, ssm_rules.iter().copied(), |c| c
            .retry_config(RetryConfig::disabled()));
        let home = NodeLocation { partition: "aws".into(), account: "123456789012".into(), region: "us-east-1".into() };
        AwsNodeDirectory::new(AccountClients::fixed(NodeClients { tagging, ssm }), home)
    }

    /// Fails the test if the EC2 path is taken for a managed node.
    fn tagging_never_called() -> Rule {
        mock!(aws_sdk_resourcegroupstagging::Client::get_resources).then_http_response(|| json_response(500, "{}"))
    }

    /// Fails the test if the SSM path is taken for an EC2 instance.
    fn ssm_never_called() -> Rule {
        mock!(aws_sdk_ssm::Client::list_tags_for_resource).then_http_response(|| json_response(500, "{}"))
    }

    fn list_tags_for_our_node() -> aws_smithy_mocks::RuleBuilder<
        aws_sdk_ssm::operation::list_tags_for_resource::ListTagsForResourceInput,
        aws_sdk_ssm::operation::list_tags_for_resource::ListTagsForResourceOutput,
        aws_sdk_ssm::operation::list_tags_for_resource::ListTagsForResourceError,
    > {
        mock!(aws_sdk_ssm::Client::list_tags_for_resource).match_requests(|req| {
            req.resource_type() == Some(&ResourceTypeForTagging::ManagedInstance) && req.resource_id() == Some(MANAGED)
        })
    }

    #[tokio::test]
    async fn a_managed_node_resolves_to_its_ssm_tags() {
        let list = list_tags_for_our_node().then_http_response(|| {
            json_response(
                200,
                r#"{"TagList":[{"Key":"Environment","Value":"Production"},{"Key":"Team","Value":"payments"}]}"#,
            )
        });
        let unused = tagging_never_called();
        let info = directory(&[&unused], &[&list]).describe(&node(MANAGED)).await.unwrap();
        assert_eq!(info.node_id.as_str(), MANAGED);
        let expected = BTreeMap::from([
            ("Environment".to_owned(), "Production".to_owned()),
            ("Team".to_owned(), "payments".to_owned()),
        ]);
        assert_eq!(info.tags, expected);
        assert_eq!(list.num_calls(), 1);
        assert_eq!(unused.num_calls(), 0, "managed nodes never go to the Tagging API");
    }

    #[tokio::test]
    async fn a_managed_node_without_tags_resolves_with_none() {
        let list = list_tags_for_our_node().then_http_response(|| json_response(200, r#"{"TagList":[]}"#));
        let info = directory(&[], &[&list]).describe(&node(MANAGED)).await.unwrap();
        assert!(info.tags.is_empty());
    }

    #[tokio::test]
    async fn an_unknown_managed_node_is_not_found() {
        // What SSM answers for an `mi-` id that is not registered in the account and region.
        let list =
            list_tags_for_our_node().then_http_response(|| json_response(400, r#"{"__type":"InvalidResourceId"}"#));
        let err = directory(&[], &[&list]).describe(&node(MANAGED)).await.unwrap_err();
        assert!(matches!(&err, DirectoryError::NotFound(m) if m.contains(MANAGED)), "{err:?}");
    }

    #[tokio::test]
    async fn ssm_throttling_is_transient() {
        let list = list_tags_for_our_node()
            .then_http_response(|| json_response(400, r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#));
        let err = directory(&[], &[&list]).describe(&node(MANAGED)).await.unwrap_err();
        assert!(
            matches!(&err, DirectoryError::Port(PortError::Transient(m)) if m.contains("ListTagsForResource")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn ssm_access_denied_is_permanent() {
        let list = list_tags_for_our_node().then_http_response(|| {
            json_response(400, r#"{"__type":"AccessDeniedException","Message":"User is not authorized to perform: ssm:ListTagsForResource"}"#)
        });
        let err = directory(&[], &[&list]).describe(&node(MANAGED)).await.unwrap_err();
        assert!(matches!(&err, DirectoryError::Port(PortError::Permanent(_))), "{err:?}");
    }

    #[tokio::test]
    async fn an_instance_resolves_to_the_tags_of_its_own_arn() {
        let get = mock!(aws_sdk_resourcegroupstagging::Client::get_resources).match_requests(is_our_instance).then_http_response(|| {
            json_response(
                200,
                r#"{"PaginationToken":"","ResourceTagMappingList":[{"ResourceARN":"arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0","Tags":[{"Key":"Environment","Value":"Development"}]}]}"#,
            )
        });
        let unused = ssm_never_called();
        let info = directory(&[&get], &[&unused]).describe(&node(INSTANCE)).await.unwrap();
        assert_eq!(info.tags, BTreeMap::from([("Environment".to_owned(), "Development".to_owned())]));
        assert_eq!(get.num_calls(), 1);
        assert_eq!(unused.num_calls(), 0, "EC2 instances never go to SSM");
    }

    #[tokio::test]
    async fn an_instance_absent_from_the_tagging_answer_is_not_found() {
        // The Tagging API answers 200 with an empty list for an ARN it does not know (or that was
        // never tagged): that is how a missing instance looks.
        let get = mock!(aws_sdk_resourcegroupstagging::Client::get_resources)
            .match_requests(is_our_instance)
            .then_http_response(|| json_response(200, r#"{"PaginationToken":"","ResourceTagMappingList":[]}"#));
        let err = directory(&[&get], &[]).describe(&node(INSTANCE)).await.unwrap_err();
        assert!(matches!(&err, DirectoryError::NotFound(m) if m.contains(INSTANCE)), "{err:?}");
        assert_eq!(get.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_mapping_for_another_arn_does_not_count() {
        let get = mock!(aws_sdk_resourcegroupstagging::Client::get_resources).match_requests(is_our_instance).then_http_response(|| {
            json_response(
                200,
                r#"{"PaginationToken":"","ResourceTagMappingList":[{"ResourceARN":"arn:aws:ec2:us-east-1:123456789012:instance/i-0fedcba9876543210","Tags":[{"Key":"Environment","Value":"Development"}]}]}"#,
            )
        });
        let err = directory(&[&get], &[]).describe(&node(INSTANCE)).await.unwrap_err();
        assert!(matches!(&err, DirectoryError::NotFound(_)), "{err:?}");
    }

    // The Tagging API throttles with `ThrottledException`, not `ThrottlingException`.
    #[tokio::test]
    async fn tagging_throttling_is_transient() {
        let get = mock!(aws_sdk_resourcegroupstagging::Client::get_resources)
            .then_http_response(|| json_response(400, r#"{"__type":"ThrottledException","Message":"Rate exceeded"}"#));
        let err = directory(&[&get], &[]).describe(&node(INSTANCE)).await.unwrap_err();
        assert!(matches!(&err, DirectoryError::Port(PortError::Transient(m)) if m.contains("GetResources")), "{err:?}");
    }
}
