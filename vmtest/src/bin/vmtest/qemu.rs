//! Boots one VM under qemu (TCG only: KVM hangs on this host) and captures its console.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use vmtest::plan::VmSpec;

pub struct Boot {
    pub console: String,
    pub timed_out: bool,
    /// qemu's own exit status text, when it exited by itself.
    pub qemu_exit: Option<String>,
    pub wall: Duration,
    /// Host time until the init's first console line.
    pub to_init: Option<Duration>,
}

pub fn boot(spec: &VmSpec, kernel: &Path, initrd: &Path, limit: Duration) -> Result<Boot, String> {
    let qemu = spec.arch.qemu_binary();
    let mut child = Command::new(qemu)
        .args(spec.arch.qemu_machine_args())
        .args(["-smp", "2", "-m", "768", "-nographic", "-no-reboot"])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", &spec.kernel_cmdline()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {qemu}: {e}"))?;
    let started = Instant::now();
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        std::thread::spawn(move || forward(pipe, tx));
    }
    drop(tx);

    let mut bytes = Vec::new();
    let mut to_init = None;
    let mut timed_out = false;
    let mut qemu_exit = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(chunk) => {
                bytes.extend_from_slice(&chunk);
                if to_init.is_none() && contains(&bytes, b"CTVM INIT") {
                    to_init = Some(started.elapsed());
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Both pipes closed: qemu has exited (or is about to).
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if started.elapsed() > limit {
            timed_out = true;
            let _ = child.kill();
            break;
        }
    }
    match child.wait() {
        Ok(status) if !timed_out => qemu_exit = Some(status.to_string()),
        _ => {}
    }
    // Whatever the readers still hold after the kill.
    while let Ok(chunk) = rx.recv_timeout(Duration::from_millis(200)) {
        bytes.extend_from_slice(&chunk);
    }
    Ok(Boot {
        console: String::from_utf8_lossy(&bytes).into_owned(),
        timed_out,
        qemu_exit,
        wall: started.elapsed(),
        to_init,
    })
}

fn forward(mut pipe: impl Read, tx: mpsc::Sender<Vec<u8>>) {
    let mut buf = [0u8; 8192];
    while let Ok(n) = pipe.read(&mut buf) {
        if n == 0 || tx.send(buf.get(..n).unwrap_or_default().to_vec()).is_err() {
            break;
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
