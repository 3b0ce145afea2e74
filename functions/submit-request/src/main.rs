//! Request submission Lambda (API Gateway HTTP API, AWS_IAM authorization).

use jit_shared::adapters::apigw;
use jit_shared::adapters::wiring::{self, sdk_config};
use jit_shared::app::submit::SubmitDeps;
use jit_shared::config::StackConfig;
use lambda_http::{run, service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    jit_shared::adapters::logging::init();
    let stack = StackConfig::from_env()?;
    let sdk = sdk_config(&stack.region).await;
    let store = wiring::store(&sdk, &stack);
    let directory = wiring::principal_directory(&sdk, &stack);
    let settings = jit_shared::config::grant_settings(&stack)?;
    let administrators = jit_shared::config::administrators()?;
    let deps =
        SubmitDeps { store: &store, directory: &directory, settings: &settings, administrators: &administrators };
    let deps = &deps;
    run(service_fn(move |req: Request| async move {
        let api_request = apigw::to_api_request(&req);
        let response = jit_shared::http::submit::handle(deps, &api_request, jit_shared::now()).await;
        Ok::<_, Error>(apigw::to_response(response))
    }))
    .await
}
