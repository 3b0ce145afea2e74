//! Domain types: no AWS SDK type appears below this module.

pub mod errors;
pub mod ids;
pub mod principal;
pub mod request;
pub mod status;
