//! Which container and which Kubernetes pod a cgroup v2 path names: pure functions over the
//! path's bytes, one rule per runtime's naming.
//!
//! Container (the innermost component that names one wins):
//! - Docker: `docker-<id>.scope` (systemd driver), `/docker/<id>` (cgroupfs driver);
//! - containerd/CRI: `cri-containerd-<id>.scope`; under a kubepods tree with the cgroupfs
//!   driver the bare `<id>` (`/kubepods/burstable/pod<uid>/<id>`);
//! - CRI-O: `crio-<id>.scope` (not `crio-conmon-<id>.scope`, its monitor);
//! - Podman: `libpod-<id>.scope` (also `libpod-<id>` below `libpod_parent`).
//!
//! Pod: a `kubepods…-pod<uid>.slice` component (systemd driver; the uid's dashes are
//! underscores there) or a `pod<uid>` component below `kubepods` (cgroupfs driver).

/// The 64-hex container id the path names, lowercase.
pub fn container_id(path: &[u8]) -> Option<String> {
    let parts: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
    let under_kubepods = parts.iter().any(|p| p.starts_with(b"kubepods"));
    for (i, part) in parts.iter().enumerate().rev() {
        let part = part.strip_suffix(b".scope").unwrap_or(part);
        for prefix in [&b"docker-"[..], b"cri-containerd-", b"crio-", b"libpod-"] {
            if let Some(id) = part.strip_prefix(prefix).filter(|id| is_id(id)) {
                return Some(lower(id));
            }
        }
        if is_id(part) {
            let parent = i.checked_sub(1).map(|j| parts[j]);
            if under_kubepods || parent == Some(b"docker") || parent == Some(b"libpod_parent") {
                return Some(lower(part));
            }
        }
    }
    None
}

/// The Kubernetes pod UID (with dashes, lowercase) the path names.
pub fn pod_uid(path: &[u8]) -> Option<String> {
    let parts: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
    let kube = parts.iter().position(|p| p.starts_with(b"kubepods"))?;
    for part in parts[kube..].iter().rev() {
        // systemd: kubepods-burstable-pod0a1b2c3d_....slice
        if let Some(slice) = part.strip_suffix(b".slice") {
            if let Some(at) = find(slice, b"-pod") {
                if let Some(uid) = uid(&slice[at + 4..], b'_') {
                    return Some(uid);
                }
            }
        }
        // cgroupfs: /kubepods/burstable/pod0a1b2c3d-...
        if let Some(rest) = part.strip_prefix(b"pod") {
            if let Some(uid) = uid(rest, b'-') {
                return Some(uid);
            }
        }
    }
    None
}

/// A UID 8-4-4-4-12 hex digits separated by `sep`, returned with dashes.
fn uid(text: &[u8], sep: u8) -> Option<String> {
    let groups: Vec<&[u8]> = text.split(|&b| b == sep).collect();
    let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    if lengths != [8, 4, 4, 4, 12] || !groups.iter().all(|g| g.iter().all(u8::is_ascii_hexdigit)) {
        return None;
    }
    let parts: Vec<String> = groups.iter().map(|g| lower(g)).collect();
    Some(parts.join("-"))
}

fn is_id(text: &[u8]) -> bool {
    text.len() == 64 && text.iter().all(u8::is_ascii_hexdigit)
}

fn lower(text: &[u8]) -> String {
    text.iter()
        .map(|b| b.to_ascii_lowercase() as char)
        .collect()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f1c9a6b2d3e4f5061728394a5b6c7d8e9f00112233445566778899aabbccdde";
    const UID: &str = "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9";

    fn c(path: &str) -> Option<String> {
        container_id(path.as_bytes())
    }
    fn p(path: &str) -> Option<String> {
        pod_uid(path.as_bytes())
    }

    #[test]
    fn docker_both_drivers() {
        assert_eq!(
            c(&format!("/system.slice/docker-{ID}.scope")).as_deref(),
            Some(ID)
        );
        assert_eq!(c(&format!("/docker/{ID}")).as_deref(), Some(ID));
        assert_eq!(c(&format!("/docker/{ID}/init")).as_deref(), Some(ID));
        assert_eq!(p(&format!("/system.slice/docker-{ID}.scope")), None);
    }

    #[test]
    fn containerd_cri_with_a_kubepods_pod_slice() {
        let uid_ = UID.replace('-', "_");
        let path = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{ID}.scope"
        );
        assert_eq!(c(&path).as_deref(), Some(ID));
        assert_eq!(p(&path).as_deref(), Some(UID));
        // Guaranteed QoS: the pod slice sits right under kubepods.slice.
        let path = format!("/kubepods.slice/kubepods-pod{uid_}.slice/cri-containerd-{ID}.scope");
        assert_eq!(p(&path).as_deref(), Some(UID));
        // The pod slice alone (the pause container's parent): a pod, no container.
        let path = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice"
        );
        assert_eq!((c(&path), p(&path).as_deref()), (None, Some(UID)));
    }

    #[test]
    fn kubepods_with_the_cgroupfs_driver() {
        let path = format!("/kubepods/burstable/pod{UID}/{ID}");
        assert_eq!(c(&path).as_deref(), Some(ID));
        assert_eq!(p(&path).as_deref(), Some(UID));
        assert_eq!(p(&format!("/kubepods/pod{UID}/{ID}")).as_deref(), Some(UID));
    }

    #[test]
    fn crio_and_its_monitor() {
        let path = format!(
            "/kubepods.slice/kubepods-pod{}.slice/crio-{ID}.scope",
            UID.replace('-', "_")
        );
        assert_eq!(c(&path).as_deref(), Some(ID));
        assert_eq!(p(&path).as_deref(), Some(UID));
        assert_eq!(c(&format!("/system.slice/crio-conmon-{ID}.scope")), None);
    }

    #[test]
    fn podman() {
        assert_eq!(
            c(&format!("/machine.slice/libpod-{ID}.scope")).as_deref(),
            Some(ID)
        );
        assert_eq!(
            c(&format!("/machine.slice/libpod-{ID}.scope/container")).as_deref(),
            Some(ID)
        );
        assert_eq!(
            c(&format!("/libpod_parent/libpod-{ID}")).as_deref(),
            Some(ID)
        );
        assert_eq!(
            c(&format!(
                "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"
            ))
            .as_deref(),
            Some(ID)
        );
    }

    #[test]
    fn uppercase_is_lowered_and_near_misses_are_not_containers() {
        let upper = ID.to_ascii_uppercase();
        assert_eq!(c(&format!("/docker/{upper}")).as_deref(), Some(ID));
        for path in [
            "/".to_string(),
            "/user.slice/user-0.slice/session-1.scope".into(),
            format!("/system.slice/docker-{}.scope", &ID[1..]),
            format!("/system.slice/docker-{ID}0.scope"),
            format!("/other/{ID}"),
            format!("/system.slice/docker-{}g.scope", &ID[1..]),
        ] {
            assert_eq!(c(&path), None, "{path}");
        }
        for path in [
            "/kubepods.slice/kubepods-podnot_a_uid.slice".to_string(),
            format!("/system.slice/pod{UID}"),
            format!("/kubepods/pod{}", &UID[1..]),
        ] {
            assert_eq!(p(&path), None, "{path}");
        }
    }

    #[test]
    fn any_bytes_give_an_answer() {
        for bytes in [
            &b""[..],
            b"/",
            b"//",
            b"\xff/docker/\xff",
            b"kubepods-pod.slice",
            b"pod",
        ] {
            let _ = (container_id(bytes), pod_uid(bytes));
        }
    }
}
