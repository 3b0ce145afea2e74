//! Event publisher Lambda, fed by the table's DynamoDB stream (filtered to inserted audit
//! records): each change becomes its EventBridge events; a failed record is reported as a batch
//! item failure, so the stream retries from it.

use jit_shared::adapters::stream::{BatchResponse, StreamEvent};
use jit_shared::adapters::wiring::{self, sdk_config};
use jit_shared::app::publish::publish_batch;
use jit_shared::config::{event_bus_name, StackConfig};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    jit_shared::adapters::logging::init();
    let stack = StackConfig::from_env()?;
    let bus = event_bus_name()?;
    let sdk = sdk_config(&stack.region).await;
    let events = wiring::publisher(&sdk, &bus);
    let events = &events;
    run(service_fn(move |event: LambdaEvent<StreamEvent>| async move {
        let report = publish_batch(events, &event.payload.outbox_items()).await;
        Ok::<_, Error>(BatchResponse::failed_from(report.failed_from))
    }))
    .await
}
