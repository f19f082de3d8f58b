//! Tests: synthetic blobs for each validation rule and resolver case, robustness against
//! truncated and corrupted input, ELF wrapping, and the live kernel's BTF.

mod builder;
mod elf;
mod file;
mod header;
mod live;
mod names;
mod records;
mod resolve;
mod robustness;
