//! jit-node-access core: the domain, the Cedar policy engine, and the AWS adapters every
//! function shares. Adapters are feature-gated so each function links only the SDK clients it uses.

pub mod adapters;
pub mod api;
pub mod approval_api;
pub mod approvals;
pub mod config;
pub mod decide_page;
pub mod domain;
pub mod evaluation;
pub mod events;
pub mod intake;
pub mod lifecycle;
#[cfg(feature = "logging")]
pub mod logging;
pub mod notify;
pub mod policy;
pub mod ports;

/// The wall clock, read in one place so entry points pass time in and logic stays pure.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}
