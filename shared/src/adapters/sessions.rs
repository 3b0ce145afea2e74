//! Live Session Manager sessions, through SSM `DescribeSessions` and `TerminateSession`.
//!
//! Removing a grant's policy only stops *new* sessions: AWS does not end a session that is
//! already open when the grant expires or is revoked, so the shell would stay usable for as long
//! as the requester keeps it alive. At expiry or revocation we therefore list the requester's
//! active sessions on that node and terminate each of them. A member account's sessions are
//! reached through its teardown role (`adapters::accounts`).

use aws_sdk_ssm::types::{SessionFilter, SessionFilterKey, SessionState};

use crate::adapters::accounts::AccountClients;
use crate::adapters::classify;
use crate::domain::ids::{NodeId, NodeLocation};
use crate::ports::{PortError, SessionControl};

pub struct SsmSessions {
    clients: AccountClients<aws_sdk_ssm::Client>,
    home: NodeLocation,
}

impl SsmSessions {
    /// Sessions of nodes wherever they are: `clients` routes by account and Region.
    pub fn new(clients: AccountClients<aws_sdk_ssm::Client>, home: NodeLocation) -> Self {
        Self { clients, home }
    }

    async fn client(&self, node: &NodeId) -> aws_sdk_ssm::Client {
        self.clients.at(&node.resolve(&self.home)).await
    }
}

fn filter(key: SessionFilterKey, value: &str) -> Result<SessionFilter, PortError> {
    SessionFilter::builder()
        .key(key)
        .value(value)
        .build()
        .map_err(|e| PortError::Permanent(format!("DescribeSessions filter: {e}")))
}

#[async_trait::async_trait]
impl SessionControl for SsmSessions {
    async fn live_sessions(&self, node: &NodeId, owner_arn: &str) -> Result<Vec<String>, PortError> {
        // `SessionFilterKey::TargetId` is the `Target` key on the wire.
        let target = filter(SessionFilterKey::TargetId, node.instance_id())?;
        let owner = filter(SessionFilterKey::Owner, owner_arn)?;
        let client = self.client(node).await;
        let mut ids = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let out = client
                .describe_sessions()
                .state(SessionState::Active)
                .filters(target.clone())
                .filters(owner.clone())
                .set_next_token(next_token.clone())
                .send()
                .await
                .map_err(|e| classify("DescribeSessions", &e))?;
            ids.extend(out.sessions().iter().filter_map(|s| s.session_id()).map(str::to_owned));
            match out.next_token().filter(|t| !t.is_empty()) {
                None => return Ok(ids),
                // A service that hands back the token it was given would keep us here forever.
                Some(t) if next_token.as_deref() == Some(t) => {
                    return Err(PortError::Permanent(format!(
                        "DescribeSessions returned the same NextToken again for {node}"
                    )));
                }
                Some(t) => next_token = Some(t.to_owned()),
            }
        }
    }

    async fn terminate(&self, node: &NodeId, session_id: &str) -> Result<(), PortError> {
        // The SSM API model gives TerminateSession no "not found" error (only
        // InternalServerError): ending a session that is already gone succeeds, so every error
        // here is a real failure.
        self.client(node)
            .await
            .terminate_session()
            .session_id(session_id)
            .send()
            .await
            .map_err(|e| classify("TerminateSession", &e))?;
        Ok(())
    }
}

// moto does not implement DescribeSessions or TerminateSession, so these tests use
// `aws-smithy-mocks`, answering with HTTP responses shaped as in the SSM API model (awsJson 1.1
// bodies and error `__type`s) so the SDK's own deserialization runs.
#[cfg(test)]
mod tests {
    use aws_sdk_ssm::operation::describe_sessions::DescribeSessionsInput;
    use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_types::retry::RetryConfig;

    use super::*;

    const NODE: &str = "i-0123456789abcdef0";
    const OWNER: &str = "arn:aws:sts::123456789012:assumed-role/Developer/alice";

    fn node() -> NodeId {
        NodeId::try_from(NODE.to_owned()).unwrap()
    }

    /// An awsJson 1.1 response as SSM sends it.
    fn json_response(status: u16, body: &'static str) -> HttpResponse {
        crate::adapters::aws_answer(status, "application/x-amz-json-1.1", body)
    }

    /// SDK retries are off so each case sees exactly one answer per call.
    fn sessions(rules: &[&Rule]) -> SsmSessions {
        let client = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, rules.iter().copied(), |c| c
            .retry_config(RetryConfig::disabled()));
        let home = NodeLocation { partition: "aws".into(), account: "123456789012".into(), region: "eu-west-1".into() };
        SsmSessions::new(AccountClients::fixed(client), home)
    }

    /// Active sessions only, on our node, of our requester (filters in any order).
    fn asks_for_our_live_sessions(req: &DescribeSessionsInput) -> bool {
        let mut filters: Vec<(&str, &str)> = req.filters().iter().map(|f| (f.key().as_str(), f.value())).collect();
        filters.sort_unstable();
        req.state() == Some(&SessionState::Active) && filters == [("Owner", OWNER), ("Target", NODE)]
    }

    const FIRST_PAGE: &str = r#"{"Sessions":[{"SessionId":"alice-0a1b2c3d4e5f60718","Target":"i-0123456789abcdef0","Status":"Connected","StartDate":1.7171712E9,"Owner":"arn:aws:sts::123456789012:assumed-role/Developer/alice","OutputUrl":{}},{"SessionId":"alice-1b2c3d4e5f6071829","Target":"i-0123456789abcdef0","Status":"Connected","StartDate":1.7171713E9,"Owner":"arn:aws:sts::123456789012:assumed-role/Developer/alice","OutputUrl":{}}],"NextToken":"AAEAAbcdPage2"}"#;
    const SECOND_PAGE: &str = r#"{"Sessions":[{"SessionId":"alice-2c3d4e5f607182930","Target":"i-0123456789abcdef0","Status":"Connected","StartDate":1.7171714E9,"Owner":"arn:aws:sts::123456789012:assumed-role/Developer/alice","OutputUrl":{}}]}"#;

    #[tokio::test]
    async fn all_pages_are_followed() {
        let first = mock!(aws_sdk_ssm::Client::describe_sessions)
            .match_requests(|req| asks_for_our_live_sessions(req) && req.next_token().is_none())
            .then_http_response(|| json_response(200, FIRST_PAGE));
        let second = mock!(aws_sdk_ssm::Client::describe_sessions)
            .match_requests(|req| asks_for_our_live_sessions(req) && req.next_token() == Some("AAEAAbcdPage2"))
            .then_http_response(|| json_response(200, SECOND_PAGE));
        let ids = sessions(&[&first, &second]).live_sessions(&node(), OWNER).await.unwrap();
        assert_eq!(ids, ["alice-0a1b2c3d4e5f60718", "alice-1b2c3d4e5f6071829", "alice-2c3d4e5f607182930"]);
        assert_eq!(first.num_calls(), 1);
        assert_eq!(second.num_calls(), 1);
    }

    #[tokio::test]
    async fn the_request_asks_for_active_sessions_of_the_owner_on_the_node() {
        // A request without State=Active or either filter matches no rule and fails the call.
        let describe = mock!(aws_sdk_ssm::Client::describe_sessions)
            .match_requests(asks_for_our_live_sessions)
            .then_http_response(|| json_response(200, r#"{"Sessions":[]}"#));
        sessions(&[&describe]).live_sessions(&node(), OWNER).await.unwrap();
        assert_eq!(describe.num_calls(), 1);
    }

    #[tokio::test]
    async fn no_live_sessions_is_an_empty_list() {
        let describe = mock!(aws_sdk_ssm::Client::describe_sessions)
            .then_http_response(|| json_response(200, r#"{"Sessions":[]}"#));
        let ids = sessions(&[&describe]).live_sessions(&node(), OWNER).await.unwrap();
        assert!(ids.is_empty());
    }

    #[tokio::test]
    async fn throttling_is_transient() {
        let describe = mock!(aws_sdk_ssm::Client::describe_sessions)
            .then_http_response(|| json_response(400, r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#));
        let err = sessions(&[&describe]).live_sessions(&node(), OWNER).await.unwrap_err();
        assert!(matches!(&err, PortError::Transient(m) if m.contains("DescribeSessions")), "{err:?}");
    }

    #[tokio::test]
    async fn terminating_a_session_succeeds() {
        let terminate = mock!(aws_sdk_ssm::Client::terminate_session)
            .match_requests(|req| req.session_id() == Some("alice-0a1b2c3d4e5f60718"))
            .then_http_response(|| json_response(200, r#"{"SessionId":"alice-0a1b2c3d4e5f60718"}"#));
        sessions(&[&terminate]).terminate(&node(), "alice-0a1b2c3d4e5f60718").await.unwrap();
        assert_eq!(terminate.num_calls(), 1);
    }

    #[tokio::test]
    async fn terminate_access_denied_is_permanent() {
        let terminate = mock!(aws_sdk_ssm::Client::terminate_session).then_http_response(|| {
            json_response(
                400,
                r#"{"__type":"AccessDeniedException","Message":"User: arn:aws:sts::123456789012:assumed-role/jit-grant/fn is not authorized to perform: ssm:TerminateSession"}"#,
            )
        });
        let err = sessions(&[&terminate]).terminate(&node(), "alice-0a1b2c3d4e5f60718").await.unwrap_err();
        assert!(matches!(&err, PortError::Permanent(m) if m.contains("TerminateSession")), "{err:?}");
    }
}
