//! The policy engine: Cedar auto-approval and deny-access statements, manual-approval YAML
//! policies, and the decision that combines them.

pub mod break_glass;
pub mod cedar_statements;
pub mod contacts;
pub mod engine;
pub mod local_time;
pub mod manual;
pub mod policy_set;
mod statement_index;
pub mod yaml_spans;

pub use engine::NodeInfo;
pub use policy_set::{PolicyFile, PolicyLoadError, PolicySet, PolicySetError};

pub use cedar_policy::Effect;
