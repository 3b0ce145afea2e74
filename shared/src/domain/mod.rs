//! Domain types: no AWS SDK type appears below this module.

pub mod administrators;
pub mod amazon_q;
pub mod approval;
pub mod approval_rules;
pub mod approval_token;
pub mod break_glass;
pub mod credentials;
pub mod errors;
pub mod events;
pub mod grant;
pub mod ids;
pub mod principal;
pub mod request;
pub mod slack;
pub mod status;
pub mod teams;
pub mod transition;
