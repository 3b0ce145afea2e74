//! The `jit` CLI's library: policy tooling, the moto emulator launcher, and the local stack.

pub mod api;
pub mod client;
pub mod console;
pub mod demo;
pub mod emulator;
pub mod local;
pub mod ops;
pub mod policy_cmds;
pub mod sigv4;
pub mod slack;
