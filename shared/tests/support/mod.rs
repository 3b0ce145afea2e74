//! What the fault campaign (`chaos.rs`) builds its worlds from: fault-injecting ports and the
//! stand-ins behind them.

pub mod fakes;
pub mod faults;
