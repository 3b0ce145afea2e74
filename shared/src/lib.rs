//! jit-node-access core: the domain, the Cedar policy engine, and the AWS adapters every
//! function shares. Adapters are feature-gated so each function links only the SDK clients it uses.

pub mod adapters;
pub mod api;
pub mod config;
pub mod domain;
pub mod evaluation;
pub mod events;
pub mod intake;
pub mod policy;
pub mod ports;
