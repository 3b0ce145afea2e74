//! Node tags: EC2 instances through the Resource Groups Tagging API (a far smaller client than
//! EC2's), hybrid managed nodes (`mi-`) through SSM `ListTagsForResource`.
//!
//! The Tagging API only lists resources that carry (or carried) a tag, so an untagged instance
//! is reported as not found: tag nodes to make them requestable.

use std::collections::BTreeMap;

use aws_sdk_ssm::types::ResourceTypeForTagging;

use crate::adapters::classify;
use crate::domain::ids::{NodeId, NodeKind};
use crate::policy::NodeInfo;
use crate::ports::{DirectoryError, NodeDirectory};

#[derive(Clone, Debug)]
pub struct AwsNodeDirectory {
    tagging: aws_sdk_resourcegroupstagging::Client,
    ssm: aws_sdk_ssm::Client,
    partition: String,
    region: String,
    account: String,
}

impl AwsNodeDirectory {
    pub fn new(tagging: aws_sdk_resourcegroupstagging::Client, ssm: aws_sdk_ssm::Client, region: impl Into<String>, account: impl Into<String>) -> Self {
        Self { tagging, ssm, partition: "aws".into(), region: region.into(), account: account.into() }
    }

    pub fn instance_arn(&self, node: &NodeId) -> String {
        format!("arn:{}:ec2:{}:{}:instance/{node}", self.partition, self.region, self.account)
    }
}

#[async_trait::async_trait]
impl NodeDirectory for AwsNodeDirectory {
    async fn describe(&self, node: &NodeId) -> Result<NodeInfo, DirectoryError> {
        let tags: BTreeMap<String, String> = match node.kind() {
            NodeKind::Ec2Instance => {
                let arn = self.instance_arn(node);
                let out = self.tagging.get_resources().resource_arn_list(&arn).send().await.map_err(|e| DirectoryError::from(classify("GetResources", &e)))?;
                let mapping = out
                    .resource_tag_mapping_list()
                    .iter()
                    .find(|m| m.resource_arn() == Some(arn.as_str()))
                    .ok_or_else(|| DirectoryError::NotFound(format!("EC2 instance {node}")))?;
                mapping.tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect()
            }
            NodeKind::ManagedInstance => {
                let out =
                    self.ssm.list_tags_for_resource().resource_type(ResourceTypeForTagging::ManagedInstance).resource_id(node.as_str()).send().await.map_err(
                        |e| {
                            if e.as_service_error().is_some_and(|s| s.is_invalid_resource_id()) {
                                DirectoryError::NotFound(format!("managed node {node}"))
                            } else {
                                classify("ListTagsForResource", &e).into()
                            }
                        },
                    )?;
                out.tag_list().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect()
            }
        };
        Ok(NodeInfo { node_id: node.clone(), tags })
    }
}
