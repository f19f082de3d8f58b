//! The application layer: the command line, `conntrace check`, tracing from start to summary,
//! reading and printing events, counting them (`-c`), dropping privileges, signals.

pub mod check;
pub mod cli;
pub mod count;
pub mod fleet;
pub mod identity;
pub mod metrics;
pub mod order;
pub mod output;
pub mod privileges;
pub mod reader;
pub mod signals;
pub mod trace;
