//! jit-node-access core, in layers that only import downwards: `domain` (pure rules), `policy`
//! (Cedar), `ports` (the traits the use cases need), `app` (the use cases), `http` (routes and
//! pages), `adapters` (all SDK code, feature-gated so each function links only the clients it
//! uses, and `wiring`, the composition root). `config` reads typed settings from the environment.

pub mod adapters;
pub mod app;
pub mod config;
pub mod domain;
pub mod http;
pub mod policy;
pub mod ports;

/// The wall clock, read in one place so entry points pass time in and logic stays pure.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}
