use super::*;
use std::os::unix::fs::MetadataExt;

const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn tree() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "conntrace-identity-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join(format!("system.slice/docker-{ID}.scope"))).unwrap();
    dir
}

fn mount(dir: &Path, root: &str) -> Cgroup2Mount {
    use std::os::unix::ffi::OsStrExt;
    Cgroup2Mount {
        mount_point: dir.as_os_str().as_bytes().to_vec(),
        root: root.as_bytes().to_vec(),
    }
}

fn ino(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().ino()
}

#[test]
fn indexes_the_tree_and_names_the_container() {
    let dir = tree();
    let mut r = Resolver::at(&mount(&dir, "/"));
    assert!(r.unavailable.is_none());
    let scope = dir.join(format!("system.slice/docker-{ID}.scope"));
    let who = r.lookup(ino(&scope), monotonic_ns()).unwrap();
    assert_eq!(
        &*who.cgroup_path,
        format!("/system.slice/docker-{ID}.scope").as_bytes()
    );
    assert_eq!(who.container_id.as_deref(), Some(ID));
    assert_eq!(who.pod_uid, None);
    assert_eq!(&*r.lookup(ino(&dir), 0).unwrap().cgroup_path, b"/");
    // The old kernels' ids carry a generation in the high half.
    let with_gen = ino(&dir.join("system.slice")) | 1 << 32;
    assert_eq!(
        &*r.lookup(with_gen, 0).unwrap().cgroup_path,
        b"/system.slice"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_cgroup_made_later_is_found_and_a_gone_one_remembered() {
    let dir = tree();
    let mut r = Resolver::at(&mount(&dir, "/sub"));
    let later = dir.join("later.slice");
    std::fs::create_dir(&later).unwrap();
    let id = ino(&later);
    r.begin_batch();
    let who = r.lookup(id, monotonic_ns()).unwrap();
    assert_eq!(&*who.cgroup_path, b"/sub/later.slice");
    // An id nowhere in the tree: unknown once a walk begun after its record ends.
    let ts = monotonic_ns();
    std::thread::sleep(Duration::from_millis(1));
    assert!(r.lookup(u64::MAX - 7, ts).is_none());
    r.begin_batch();
    assert!(r.lookup(u64::MAX - 7, ts).is_none());
    assert!(r.unknown.contains(&(u64::MAX - 7)));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_batch_budget_bounds_the_time_spent() {
    let dir = tree();
    let mut r = Resolver::at(&mount(&dir, "/"));
    let started = Instant::now();
    for id in 0..10_000u64 {
        let _ = r.lookup(u64::MAX - id, monotonic_ns());
    }
    assert!(started.elapsed() < Duration::from_millis(200));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn no_mount_resolves_nothing() {
    let mut r = Resolver::at(&mount(Path::new("/nonexistent/conntrace"), "/"));
    assert!(r.unavailable.is_some());
    assert!(r.lookup(1, 0).is_none());
}

#[test]
fn cgroup_option_paths() {
    let m = mount(Path::new("/sys/fs/cgroup/unified"), "/");
    assert_eq!(
        Resolver::directory_of(&m, Path::new("/sys/fs/cgroup/unified/a.slice")),
        Path::new("/sys/fs/cgroup/unified/a.slice")
    );
    assert_eq!(
        Resolver::directory_of(&m, Path::new("/system.slice/x.scope")),
        Path::new("/sys/fs/cgroup/unified/system.slice/x.scope")
    );
}
