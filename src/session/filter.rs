//! The in-kernel filters: the value of the `config` map the probes read first thing, and
//! writing it (and the `ports` map) into a loaded object.
//!
//! The layout is shared with `src/bpf/*.s` (the `CFG_*` constants there).

use bytemuck::{Pod, Zeroable};
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::kernel::load::Loaded;
use crate::kernel::sys::Sys;
use crate::session::options::{FamilyFilter, SessionOptions};

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct FilterConfig {
    /// Only this process (tgid); 0 = any.
    pub pid: u32,
    /// Only this uid; `ANY_UID` = any.
    pub uid: u32,
    /// Only this address family (2 = AF_INET, 10 = AF_INET6); 0 = any. IPv4-mapped IPv6
    /// connections count as AF_INET.
    pub family: u32,
    /// 1 = only ports present in the `ports` map (remote port of connects, local port of accepts).
    pub port_filter: u32,
    /// 1 = only tasks under the cgroup v2 directory held in the `cgroups` map (`--cgroup`).
    pub cgroup: u32,
}

pub const ANY_UID: u32 = u32::MAX;

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            pid: 0,
            uid: ANY_UID,
            family: 0,
            port_filter: 0,
            cgroup: 0,
        }
    }
}

impl FilterConfig {
    /// The pid/uid/family filter the options ask for.
    pub fn from_options(opts: &SessionOptions) -> FilterConfig {
        FilterConfig {
            pid: opts.pid.unwrap_or(0),
            uid: opts.uid.unwrap_or(ANY_UID),
            family: match opts.family {
                FamilyFilter::Any => 0,
                FamilyFilter::Ipv4 => libc::AF_INET as u32,
                FamilyFilter::Ipv6 => libc::AF_INET6 as u32,
            },
            port_filter: u32::from(!opts.ports.is_empty()),
            cgroup: u32::from(opts.cgroup.is_some()),
        }
    }
}

/// Writes the user's in-kernel filters into the `config`, `ports` and `cgroups` maps.
pub fn configure(sys: &dyn Sys, loaded: &Loaded, opts: &SessionOptions) -> Result<(), String> {
    if let Some(dir) = &opts.cgroup {
        set_cgroup(sys, loaded, dir)?;
    }
    write_config(sys, loaded, &FilterConfig::from_options(opts))?;
    let ports = loaded
        .map_fd("ports")
        .ok_or("probe object has no ports map")?;
    for &port in &opts.ports {
        sys.map_update(
            ports,
            &u32::from(port).to_ne_bytes(),
            &1u32.to_ne_bytes(),
            0,
        )
        .map_err(|e| format!("cannot set the port filter: {e}"))?;
    }
    Ok(())
}

/// Writes the pid/uid/family filter into the `config` map.
pub fn write_config(sys: &dyn Sys, loaded: &Loaded, config: &FilterConfig) -> Result<(), String> {
    let map = loaded
        .map_fd("config")
        .ok_or("probe object has no config map")?;
    sys.map_update(map, &0u32.to_ne_bytes(), bytemuck::bytes_of(config), 0)
        .map_err(|e| format!("cannot set the pid/uid/family filter: {e}"))
}

/// Puts the cgroup v2 directory `dir` in the `cgroups` map (the map keeps its own reference to
/// the cgroup, so the descriptor is closed right after).
fn set_cgroup(sys: &dyn Sys, loaded: &Loaded, dir: &Path) -> Result<(), String> {
    let map = loaded
        .map_fd("cgroups")
        .ok_or("probe object has no cgroups map")?;
    let file = std::fs::File::open(dir).map_err(|e| format!("--cgroup {}: {e}", dir.display()))?;
    let fd = file.as_raw_fd() as u32;
    sys.map_update(map, &0u32.to_ne_bytes(), &fd.to_ne_bytes(), 0)
        .map_err(|e| {
            format!(
                "--cgroup {}: not a directory of the cgroup v2 hierarchy ({e})",
                dir.display()
            )
        })
}
