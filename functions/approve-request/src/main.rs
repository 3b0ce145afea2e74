//! Approval Lambda (API Gateway HTTP API): `AWS_IAM` routes for approvers and requesters, and the
//! token-protected `/decide/{token}` pages behind mail links. Who is whom comes with the policy
//! set (`contacts.yaml`), bundled at build time.

use jit_shared::adapters::apigw;
use jit_shared::adapters::wiring::{self, sdk_config};
use jit_shared::app::approve::ApprovalDeps;
use jit_shared::app::error::ServiceError;
use jit_shared::config::{signing_key_parameter, StackConfig};
use jit_shared::http::ApiResponse;
use lambda_http::{run, service_fn, Error, Request};

mod bundled_policies {
    include!(concat!(env!("OUT_DIR"), "/bundled_policies.rs"));
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    jit_shared::adapters::logging::init();
    let stack = StackConfig::from_env()?;
    let parameter = signing_key_parameter()?;
    let administrators = jit_shared::config::administrators()?;
    let contacts = jit_shared::policy::contacts::contacts_of(&bundled_policies::files())?;
    let people = jit_shared::policy::contacts::People::from_contacts(&contacts);
    let sdk = sdk_config(&stack.region).await;
    let key = wiring::signing_key(&sdk, &parameter);
    let store = wiring::store(&sdk, &stack);
    let directory = wiring::principal_directory(&sdk, &stack);
    let seal = wiring::approval_seal(&sdk)?;
    // Slack's signing secret, when Slack is set up (else `/chat/slack` answers 404).
    let slack = jit_shared::config::slack_signing_secret_parameter().map(|p| wiring::slack_signing_secret(&sdk, &p));
    let (key, store, directory, administrators, people, seal, slack) =
        (&key, &store, &directory, &administrators, &people, &seal, &slack);
    run(service_fn(move |req: Request| async move {
        let request = apigw::to_api_request(&req);
        // Read only for Slack's callbacks; a secret that cannot be read is a 5xx, never a pass.
        let secret = match slack {
            Some(lazy) if jit_shared::http::slack::serves(&request.path) => match lazy.get().await {
                Ok(secret) => Some(secret),
                Err(e) => return Ok(apigw::to_response(ApiResponse::error(&ServiceError::from(e)))),
            },
            _ => None,
        };
        // Every route may sign or check a link, so no request is served without the key; a
        // missing or short key is a 5xx JSON error, never an unsigned link.
        let response = match key.get().await {
            Ok(key) => {
                let deps = ApprovalDeps { store, directory, key, administrators, people, seal };
                jit_shared::http::approve::handle_with_slack(&deps, secret, &request, jit_shared::now()).await
            }
            Err(e) => ApiResponse::error(&ServiceError::from(e)),
        };
        Ok::<_, Error>(apigw::to_response(response))
    }))
    .await
}
