//! The floor for cold starts: a bare `lambda_runtime` function (echoes its event) built with the
//! same release profile as the project's functions. `bench-coldstart` spawns it like them, so
//! each function's cold start is reported as a ratio to this, which moves with the machine as
//! they do.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(|event: LambdaEvent<serde_json::Value>| async move { Ok::<_, Error>(event.payload) })).await
}
