//! Counts the AWS API calls a piece of code makes, by service and operation. The local stack
//! attaches it to every client its functions use (and its stand-ins record the calls they stand
//! in for), so `make bench` can state what one request lifecycle costs in API calls.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// A shared tally of `"Service:Operation"` → calls. Cloning shares the tally.
#[derive(Clone, Debug, Default)]
pub struct ApiCallLog(Arc<Mutex<BTreeMap<String, u64>>>);

impl ApiCallLog {
    pub fn record(&self, service: &str, operation: &str) {
        if let Ok(mut map) = self.0.lock() {
            *map.entry(format!("{service}:{operation}")).or_default() += 1;
        }
    }

    /// The calls so far.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// The calls so far, and a fresh start.
    pub fn take(&self) -> BTreeMap<String, u64> {
        self.0.lock().map(|mut m| std::mem::take(&mut *m)).unwrap_or_default()
    }
}

impl Intercept for ApiCallLog {
    fn name(&self) -> &'static str {
        "ApiCallLog"
    }

    // Once per call, not per retry attempt: a lifecycle's cost is stated without faults. (The
    // operation's name is in the config bag from serialization on, not before execution.)
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        match cfg.load::<Metadata>() {
            Some(m) => self.record(m.service(), m.name()),
            None => self.record("unknown", "unknown"),
        }
        Ok(())
    }
}

/// Keeps the body of every request a client sends, as sent: the local stack attaches it to its
/// STS client so that tests check what an `AssumeRole` really carried (the emulator does not
/// echo `SourceIdentity` or enforce the session policy). Cloning shares the list.
#[derive(Clone, Debug, Default)]
pub struct SentRequests(Arc<Mutex<Vec<String>>>);

impl SentRequests {
    pub fn bodies(&self) -> Vec<String> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Intercept for SentRequests {
    fn name(&self) -> &'static str {
        "SentRequests"
    }

    fn read_before_transmit(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let body = context.request().body().bytes().map(|b| String::from_utf8_lossy(b).into_owned());
        if let (Some(body), Ok(mut list)) = (body, self.0.lock()) {
            list.push(body);
        }
        Ok(())
    }
}
