//! The thin layer over the system calls skiff makes for containers: process reaping, resource
//! limits, filesystem magic numbers. Everything goes through rustix's safe wrappers; any
//! future raw call belongs here, with a `// SAFETY:` comment on its `unsafe` block.

use std::io;
use std::path::Path;

use oci_spec::runtime::PosixRlimitType;
use rustix::process::{Pid, Resource, WaitOptions};

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It called exit with this code.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
}

impl Exit {
    /// The exit code a shell (and docker) reports: the code, or 128 + the signal number.
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// Makes the calling process a child subreaper: orphaned descendants (a container's init once
/// the runtime that forked it has exited, an exec'd process) are re-parented to it, so it can
/// wait for them and learn their exit status. The per-container monitor calls this first.
///
/// A subreaper must then reap every child that ends, not only those it waits for: a failed
/// `crun exec` leaves a zombie that lives in the container's pid namespace, and until it is
/// reaped the container's init cannot finish dying (the kernel holds it in
/// `zap_pid_ns_processes`), so even SIGKILL appears not to work.
pub fn set_child_subreaper() -> io::Result<()> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?;
    Ok(())
}

fn pid_of(pid: i32) -> io::Result<Pid> {
    Pid::from_raw(pid).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "pid 0"))
}

/// Waits for the child (or re-parented descendant) `pid` to end, and reaps it.
pub fn wait_pid(pid: i32) -> io::Result<Exit> {
    let pid = pid_of(pid)?;
    loop {
        match rustix::process::waitpid(Some(pid), WaitOptions::empty()) {
            Ok(Some((_, status))) => {
                if let Some(code) = status.exit_status() {
                    return Ok(Exit::Code(code));
                }
                if let Some(sig) = status.terminating_signal() {
                    return Ok(Exit::Signal(sig));
                }
                // Stopped or continued: not an end; keep waiting.
            }
            Ok(None) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reaps `pid` if it has already ended; `Ok(None)` while it still runs.
pub fn try_wait_pid(pid: i32) -> io::Result<Option<Exit>> {
    let pid = pid_of(pid)?;
    match rustix::process::waitpid(Some(pid), WaitOptions::NOHANG)? {
        Some((_, status)) => Ok(status
            .exit_status()
            .map(Exit::Code)
            .or_else(|| status.terminating_signal().map(Exit::Signal))),
        None => Ok(None),
    }
}

/// The hard limit of this process for `kind`; `None` means unlimited.
pub fn rlimit_hard(kind: PosixRlimitType) -> Option<u64> {
    rustix::process::getrlimit(resource(kind)).maximum
}

fn resource(kind: PosixRlimitType) -> Resource {
    match kind {
        PosixRlimitType::RlimitCpu => Resource::Cpu,
        PosixRlimitType::RlimitFsize => Resource::Fsize,
        PosixRlimitType::RlimitData => Resource::Data,
        PosixRlimitType::RlimitStack => Resource::Stack,
        PosixRlimitType::RlimitCore => Resource::Core,
        PosixRlimitType::RlimitRss => Resource::Rss,
        PosixRlimitType::RlimitNproc => Resource::Nproc,
        PosixRlimitType::RlimitNofile => Resource::Nofile,
        PosixRlimitType::RlimitMemlock => Resource::Memlock,
        PosixRlimitType::RlimitAs => Resource::As,
        PosixRlimitType::RlimitLocks => Resource::Locks,
        PosixRlimitType::RlimitSigpending => Resource::Sigpending,
        PosixRlimitType::RlimitMsgqueue => Resource::Msgqueue,
        PosixRlimitType::RlimitNice => Resource::Nice,
        PosixRlimitType::RlimitRtprio => Resource::Rtprio,
        PosixRlimitType::RlimitRttime => Resource::Rttime,
    }
}

/// The `f_type` of the filesystem holding `path` (statfs(2)).
pub fn fs_magic(path: &Path) -> io::Result<u64> {
    let st = rustix::fs::statfs(path)?;
    // f_type is signed on some targets; the magic numbers are all positive 32-bit values.
    #[allow(clippy::unnecessary_cast)]
    Ok(st.f_type as u64)
}

/// Major and minor numbers of a device number (`st_rdev`).
pub fn major_minor(rdev: u64) -> (u32, u32) {
    (rustix::fs::major(rdev), rustix::fs::minor(rdev))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_code_follows_the_shell_convention() {
        assert_eq!(Exit::Code(3).code(), 3);
        assert_eq!(Exit::Signal(9).code(), 137);
    }

    #[test]
    fn a_child_exit_status_is_reaped() {
        let child = std::process::Command::new("sh")
            .args(["-c", "exit 7"])
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        assert_eq!(wait_pid(pid).unwrap(), Exit::Code(7));
        // Reaped above: std's own wait now finds no such child.
        let mut child = child;
        assert!(child.wait().is_err());
    }

    #[test]
    fn rlimit_hard_matches_getrlimit() {
        let want = rustix::process::getrlimit(Resource::Nofile).maximum;
        assert_eq!(rlimit_hard(PosixRlimitType::RlimitNofile), want);
    }

    #[test]
    fn proc_is_procfs() {
        assert_eq!(fs_magic(Path::new("/proc")).unwrap(), 0x9fa0);
    }
}
