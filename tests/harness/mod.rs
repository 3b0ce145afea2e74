//! One harness for every integration test: the moto emulator on a random loopback port,
//! started once per test binary and stopped with it. If it cannot start, tests fail loudly.
#![allow(clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use jit_cli::emulator::Emulator;

static EMULATOR: OnceLock<Result<Emulator, String>> = OnceLock::new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn emulator() -> &'static Emulator {
    match EMULATOR.get_or_init(Emulator::start) {
        Ok(e) => e,
        Err(message) => panic!("the AWS emulator could not start, so integration tests cannot run: {message}"),
    }
}

pub async fn sdk() -> aws_config::SdkConfig {
    let e = emulator();
    assert!(e.endpoint.starts_with("http://127.0.0.1:"), "tests only talk to loopback");
    e.sdk_config().await
}

/// A name no other test in this binary uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}
