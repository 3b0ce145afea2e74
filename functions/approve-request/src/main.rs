//! Approval Lambda (API Gateway HTTP API): `AWS_IAM` routes for approvers and requesters, and the
//! token-protected `/decide/{token}` pages behind mail links.

use jit_shared::adapters::apigw;
use jit_shared::approvals::ApprovalDeps;
use jit_shared::config::{sdk_config, signing_key_parameter, wiring, StackConfig};
use lambda_http::{run, service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    jit_shared::logging::init();
    let stack = StackConfig::from_env()?;
    let parameter = signing_key_parameter()?;
    let administrators = jit_shared::config::administrators();
    let sdk = sdk_config(&stack.region).await;
    // Read once per cold start; a missing or short key stops the function before it serves links.
    let key = wiring::signing_key(&sdk, &parameter).await?;
    let store = wiring::store(&sdk, &stack);
    let events = wiring::publisher(&sdk, &stack);
    let directory = wiring::principal_directory(&sdk, &stack);
    let deps = ApprovalDeps { store: &store, events: &events, directory: &directory, key: &key, administrators: &administrators };
    let deps = &deps;
    run(service_fn(move |req: Request| async move {
        let api_request = apigw::to_api_request(&req);
        let response = jit_shared::approval_api::handle(deps, &api_request, jit_shared::now()).await;
        Ok::<_, Error>(apigw::to_response(response))
    }))
    .await
}
