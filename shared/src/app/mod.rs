//! The use cases, one module per function and named like it: plain async functions over the
//! ports, called by the Lambda binaries, the local stack and the tests alike.

pub mod approve;
pub mod common;
pub mod credentials;
pub mod error;
pub mod evaluate;
pub mod extend;
pub mod lifecycle;
pub mod notify;
pub mod publish;
pub mod submit;
pub mod sweep;
