//! SDK clients for wherever a node lives. The stack's own account and Region use the function's
//! credentials; a member account is reached by assuming its role (`jit-node-access-reader` to
//! read node tags, `jit-node-access-teardown` to end sessions and write a revoke's deny), which
//! `member-account.yaml` creates trusting only the stack's functions. Clients are built once per
//! account and Region and kept for the life of the execution environment; the assumed
//! credentials refresh themselves before they expire.

use std::collections::HashMap;

use aws_config::sts::AssumeRoleProvider;
use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;

use crate::domain::ids::NodeLocation;

/// The member-account roles `member-account.yaml` creates.
pub const READER_ROLE: &str = "jit-node-access-reader";
pub const TEARDOWN_ROLE: &str = "jit-node-access-teardown";

/// Builds a client from configuration (the local stack adds its call-counting interceptor).
pub type MakeClient<C> = Box<dyn Fn(&SdkConfig) -> C + Send + Sync>;

/// How clients for other accounts and Regions are made.
struct Routing<C> {
    sdk: SdkConfig,
    home: NodeLocation,
    role_name: String,
    make: MakeClient<C>,
    built: tokio::sync::Mutex<HashMap<(String, String), C>>,
}

pub struct AccountClients<C> {
    home_client: C,
    /// `None`: the same client wherever the node is (tests with a mocked client).
    routing: Option<Box<Routing<C>>>,
}

impl<C: Clone> AccountClients<C> {
    /// Clients of `make` for `home` from `sdk`, and for member accounts through `role_name`.
    pub fn new(
        sdk: &SdkConfig,
        home: NodeLocation,
        role_name: &str,
        make: impl Fn(&SdkConfig) -> C + Send + Sync + 'static,
    ) -> Self {
        Self {
            home_client: make(sdk),
            routing: Some(Box::new(Routing {
                sdk: sdk.clone(),
                home,
                role_name: role_name.to_owned(),
                make: Box::new(make),
                built: tokio::sync::Mutex::new(HashMap::new()),
            })),
        }
    }

    /// The same client wherever the node is.
    pub fn fixed(client: C) -> Self {
        Self { home_client: client, routing: None }
    }

    /// The client for the stack's own account and region.
    pub fn home(&self) -> &C {
        &self.home_client
    }

    /// The client for `location`.
    pub async fn at(&self, location: &NodeLocation) -> C {
        let Some(routing) = &self.routing else { return self.home_client.clone() };
        let Routing { sdk, home, role_name, make, built } = routing.as_ref();
        if location.account == home.account && location.region == home.region {
            return self.home_client.clone();
        }
        let key = (location.account.clone(), location.region.clone());
        let mut built = built.lock().await;
        if let Some(client) = built.get(&key) {
            return client.clone();
        }
        let mut config = sdk.to_builder().region(aws_config::Region::new(location.region.clone()));
        if location.account != home.account {
            let role = format!("arn:{}:iam::{}:role/{role_name}", location.partition, location.account);
            let provider =
                AssumeRoleProvider::builder(role).session_name("jit-node-access").configure(sdk).build().await;
            config = config.credentials_provider(SharedCredentialsProvider::new(provider));
        }
        let client = make(&config.build());
        built.insert(key, client.clone());
        client
    }
}
