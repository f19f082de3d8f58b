//! The application layer: the command line, `conntrace check`, tracing from start to summary,
//! reading and printing events, dropping privileges, signals.

pub mod check;
pub mod cli;
pub mod fleet;
pub mod identity;
pub mod metrics;
pub mod order;
pub mod output;
pub mod privileges;
pub mod reader;
pub mod signals;
pub mod trace;
