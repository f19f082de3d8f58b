//! The pure parts of conntrace's VM test harness: the initramfs writer, the console reader,
//! a small JSON parser and the assertions. The binary (src/bin/vmtest) does the side effects:
//! fetching kernels, building, booting qemu.

pub mod console;
pub mod cpio;
pub mod faults;
pub mod json;
pub mod plan;
pub mod runs;
pub mod storm;
pub mod verdict;
