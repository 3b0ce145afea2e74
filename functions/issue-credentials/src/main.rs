//! Credentials Lambda (API Gateway HTTP API, `AWS_IAM`): `POST /requests/{id}/credentials`. The
//! only function whose role may assume the session roles (`sts:AssumeRole`, with
//! `sts:SetSourceIdentity` and `sts:TagSession`).

use jit_shared::adapters::apigw;
use jit_shared::adapters::wiring::{self, sdk_config};
use jit_shared::app::credentials::CredentialsDeps;
use jit_shared::config::{grant_settings, StackConfig};
use lambda_http::{run, service_fn, Error, Request};

mod bundled_policies {
    include!(concat!(env!("OUT_DIR"), "/bundled_policies.rs"));
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    jit_shared::adapters::logging::init();
    let stack = StackConfig::from_env()?;
    let settings = grant_settings(&stack)?;
    let sdk = sdk_config(&stack.region).await;
    let store = wiring::store(&sdk, &stack);
    let issuer = wiring::credential_issuer(&sdk);
    let seal = wiring::approval_seal(&sdk)?;
    // The people directory (contacts.yaml) and the requester's role, for SourceIdentity.
    let contacts = jit_shared::policy::contacts::contacts_of(&bundled_policies::files())?;
    let people = jit_shared::policy::contacts::People::from_contacts(&contacts);
    let directory = wiring::iam_directory(&sdk);
    let deps = CredentialsDeps {
        store: &store,
        issuer: &issuer,
        settings: &settings,
        seal: &seal,
        directory: &directory,
        people: &people,
    };
    let deps = &deps;
    run(service_fn(move |req: Request| async move {
        let response =
            jit_shared::http::credentials::handle(deps, &apigw::to_api_request(&req), jit_shared::now()).await;
        Ok::<_, Error>(apigw::to_response(response))
    }))
    .await
}
