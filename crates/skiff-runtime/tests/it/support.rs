//! Shared helpers: a made-up host for golden tests, and the harness for end-to-end tests
//! (root, a busybox rootfs, a private runtime root, cleanup of containers and cgroups).

use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, PosixRlimitType};
use skiff_runtime::cgroups::{self, CgroupInfo, CgroupMode};
use skiff_runtime::runtime::select;
use skiff_runtime::sys::{self, Exit};
use skiff_runtime::{
    bundle, ContainerSpec, Error, Host, HostInfo, Io, OciCli, ProcessIo, Runtime, Stdio,
};

/// Every Linux capability, by number (linux/capability.h).
pub const CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// A host with fixed facts, so generated specs do not depend on the machine.
pub struct FixedHost {
    pub cgroups: CgroupInfo,
    pub cgroup_namespace: bool,
    pub swap_accounting: bool,
    /// Hard limits by kind; kinds not listed are unlimited.
    pub hard: Vec<(PosixRlimitType, u64)>,
    pub last_cap: usize,
    pub devices: Vec<LinuxDevice>,
}

impl FixedHost {
    /// A cgroup v1 host like the CI machines: cgroup namespaces, swap accounting, nofile
    /// hard limit 20000, 41 capabilities, three host devices.
    pub fn v1() -> FixedHost {
        FixedHost {
            cgroups: CgroupInfo {
                mode: CgroupMode::Hybrid,
                v2_controllers: vec!["hugetlb".into()],
            },
            cgroup_namespace: true,
            swap_accounting: true,
            hard: vec![(PosixRlimitType::RlimitNofile, 20000)],
            last_cap: 40,
            devices: vec![
                skiff_runtime::host::device(
                    "/dev/kvm".into(),
                    LinuxDeviceType::C,
                    10,
                    232,
                    0o660,
                    0,
                    108,
                ),
                skiff_runtime::host::device(
                    "/dev/null".into(),
                    LinuxDeviceType::C,
                    1,
                    3,
                    0o666,
                    0,
                    0,
                ),
                skiff_runtime::host::device(
                    "/dev/vda".into(),
                    LinuxDeviceType::B,
                    254,
                    0,
                    0o660,
                    0,
                    6,
                ),
            ],
        }
    }
}

impl HostInfo for FixedHost {
    fn cgroups(&self) -> &CgroupInfo {
        &self.cgroups
    }
    fn cgroup_namespace(&self) -> bool {
        self.cgroup_namespace
    }
    fn swap_accounting(&self) -> bool {
        self.swap_accounting
    }
    fn rlimit_hard(&self, kind: PosixRlimitType) -> Option<u64> {
        self.hard.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v)
    }
    fn capabilities(&self) -> Vec<String> {
        CAPABILITIES[..=self.last_cap]
            .iter()
            .map(|c| (*c).to_owned())
            .collect()
    }
    fn devices(&self) -> Result<Vec<LinuxDevice>, Error> {
        Ok(self.devices.clone())
    }
}

/// Prints why a test does not run and returns `None`.
pub fn skip<T>(test: &str, reason: &str) -> Option<T> {
    eprintln!("SKIP {test}: {reason}");
    None
}

/// The busybox base rootfs tar, built once per test process from Debian's busybox-static by
/// `tests/fixtures/make-busybox-base.sh`.
fn busybox_tar() -> Result<PathBuf, String> {
    static TAR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    TAR.get_or_init(|| {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/make-busybox-base.sh");
        // The script writes through a temporary file and renames, so concurrent test
        // processes sharing this path each see a whole tar.
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("skiff-runtime-busybox-base.tar");
        let res = Command::new("bash")
            .arg(&script)
            .arg(&out)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !res.status.success() {
            return Err(format!(
                "{} failed: {}",
                script.display(),
                String::from_utf8_lossy(&res.stderr).trim()
            ));
        }
        Ok(out)
    })
    .clone()
}

fn next() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// One end-to-end test's world: a busybox rootfs, a private runtime root, its own cgroup
/// parent, and every container it made, removed on drop even when the test fails.
pub struct Harness {
    pub name: String,
    pub runtime: OciCli,
    pub host: Host,
    pub rootfs: PathBuf,
    pub cgroup_parent: String,
    tmp: tempfile::TempDir,
    ids: Mutex<Vec<String>>,
    pids: Mutex<Vec<i32>>,
}

impl Harness {
    /// A harness for `runtime` ("runc" or "crun"), or `None` (with the reason printed) when
    /// this machine cannot run the test: not root, no runtime, no busybox, or a runtime that
    /// refuses this host.
    pub fn new(runtime: &str, test: &str) -> Option<Harness> {
        if !rustix::process::geteuid().is_root() {
            return skip(test, "needs root (namespaces, cgroups and mounts)");
        }
        let host = match Host::detect() {
            Ok(h) => h,
            Err(e) => return skip(test, &format!("cannot inspect the host: {e}")),
        };
        let tmp = tempfile::Builder::new()
            .prefix("skiff-runtime-it-")
            .tempdir()
            .ok()?;
        let state = tmp.path().join("state");
        let runtime = match select::select(&state, Some(runtime), &BTreeMap::new(), host.cgroups())
        {
            Ok(s) => s.runtime,
            Err(Error::RuntimeUnsupported { name, reason }) => {
                return skip(
                    test,
                    &format!("{name} does not work on this host: {reason}"),
                )
            }
            Err(e) => return skip(test, &e.to_string()),
        };
        let tar = match busybox_tar() {
            Ok(t) => t,
            Err(e) => return skip(test, &e),
        };
        let rootfs = tmp.path().join("rootfs");
        std::fs::create_dir(&rootfs).ok()?;
        let status = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-xf")
            .arg(&tar)
            .status()
            .ok()?;
        assert!(status.success(), "extracting {}", tar.display());
        sys::set_child_subreaper().expect("become a child subreaper");
        Some(Harness {
            name: test.to_owned(),
            runtime,
            host,
            rootfs,
            cgroup_parent: format!("/skiff-it-{}-{}", std::process::id(), next()),
            tmp,
            ids: Mutex::new(Vec::new()),
            pids: Mutex::new(Vec::new()),
        })
    }

    /// A container spec running `args` in this harness's rootfs, with a fresh id.
    pub fn spec(&self, args: &[&str]) -> ContainerSpec {
        let id = format!("skiff-it-{}-{}", std::process::id(), next());
        let mut spec = ContainerSpec::new(
            id,
            self.rootfs.clone(),
            args.iter().map(|a| (*a).to_owned()).collect(),
        );
        spec.process.env =
            vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()];
        spec.cgroup_parent = Some(self.cgroup_parent.clone());
        spec
    }

    /// Writes the bundle of `spec` and returns its directory and the spec's warnings.
    pub fn bundle(&self, spec: &ContainerSpec) -> (PathBuf, Vec<String>) {
        let built = spec.build(&self.host).expect("build the OCI spec");
        let dir = self.tmp.path().join("bundles").join(&spec.id);
        std::fs::create_dir_all(&dir).unwrap();
        bundle::write_config(&dir, &built.spec).unwrap();
        (dir, built.warnings)
    }

    /// Creates the container (recording it for cleanup) and returns the init pid.
    pub fn create(&self, spec: &ContainerSpec, io: ProcessIo) -> Result<i32, Error> {
        let (dir, _) = self.bundle(spec);
        self.ids.lock().unwrap().push(spec.id.clone());
        let pid = self.runtime.create(&spec.id, &dir, io)?;
        self.track_pid(pid);
        Ok(pid)
    }

    /// Creates a container whose stdout is a pipe; returns the pid and the read end.
    pub fn create_piped(&self, spec: &ContainerSpec) -> Result<(i32, OwnedFd), Error> {
        let (read, write) = pipe();
        let io = ProcessIo {
            stdio: Stdio {
                stdin: Io::Null,
                stdout: Io::Fd(write),
                stderr: Io::Inherit,
            },
            ..ProcessIo::default()
        };
        let pid = self.create(spec, io)?;
        Ok((pid, read))
    }

    /// Runs `args` to the end: create with piped stdout, start, read, wait, delete.
    pub fn run(&self, spec: &ContainerSpec) -> (Exit, String) {
        let (pid, out) = self.create_piped(spec).expect("create");
        self.runtime.start(&spec.id).expect("start");
        let text = read_all(out);
        let exit = self.wait(pid);
        self.runtime.delete(&spec.id, false).expect("delete");
        (exit, text)
    }

    /// Waits for our child (or re-parented descendant) `pid` to end, reaping on the way the
    /// strays a runtime may leave in the container's pid namespace (see
    /// `sys::set_child_subreaper`). Gives up after 30 s.
    pub fn wait(&self, pid: i32) -> Exit {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(exit) = sys::try_wait_pid(pid).expect("waitpid") {
                waited_for().lock().unwrap().remove(&pid);
                return exit;
            }
            reap_strays();
            assert!(
                Instant::now() < deadline,
                "{}: pid {pid} did not end",
                self.name
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Remembers a pid to reap at cleanup (an exec'd process).
    pub fn track_pid(&self, pid: i32) {
        waited_for().lock().unwrap().insert(pid);
        self.pids.lock().unwrap().push(pid);
    }

    /// Where the runtime put the cgroup of container `id` on this host.
    pub fn cgroup_dirs(&self, id: &str) -> Vec<PathBuf> {
        cgroups::container_dirs(self.host.cgroups(), &format!("{}/{id}", self.cgroup_parent))
            .unwrap()
    }

    /// Polls the runtime until the container reaches `status` (or 5 s pass).
    pub fn wait_status(&self, id: &str, status: skiff_runtime::Status) -> skiff_runtime::State {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let s = self.runtime.state(id).expect("state");
            if s.status == status || Instant::now() > deadline {
                return s;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let ids = std::mem::take(&mut *self.ids.lock().unwrap_or_else(|e| e.into_inner()));
        for id in &ids {
            match self.runtime.delete(id, true) {
                Ok(()) | Err(Error::ContainerNotFound { .. }) => {}
                Err(e) => eprintln!("{}: cleanup of {id}: {e}", self.name),
            }
        }
        for pid in std::mem::take(&mut *self.pids.lock().unwrap_or_else(|e| e.into_inner())) {
            // Killed by the forced delete above; reap without blocking on anything else.
            for _ in 0..100 {
                reap_strays();
                match sys::try_wait_pid(pid) {
                    Ok(Some(_)) | Err(_) => {
                        waited_for()
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&pid);
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }
        // The runtime removes each container's cgroup on delete; remove what is left,
        // children before parents.
        let info = self.host.cgroups().clone();
        let mut dirs = Vec::new();
        for id in &ids {
            dirs.extend(
                cgroups::container_dirs(&info, &format!("{}/{id}", self.cgroup_parent))
                    .unwrap_or_default(),
            );
        }
        dirs.extend(cgroups::container_dirs(&info, &self.cgroup_parent).unwrap_or_default());
        for dir in dirs {
            match std::fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => eprintln!("{}: cannot remove cgroup {}: {e}", self.name, dir.display()),
            }
        }
    }
}

/// The container inits and exec'd processes some test will wait for, across all threads.
fn waited_for() -> &'static Mutex<std::collections::HashSet<i32>> {
    static PIDS: OnceLock<Mutex<std::collections::HashSet<i32>>> = OnceLock::new();
    PIDS.get_or_init(Default::default)
}

/// Reaps the strays a runtime leaves behind: our zombie children that are runtime processes
/// (comm `crun...` or `runc...`) inside a container's pid namespace, such as the child of a
/// failed `crun exec`, re-parented to us as subreaper. Pids some test waits for (inits, even
/// those still named `crun` because they were never started, and exec'd commands) are left
/// alone, and the runtime processes std spawns live in our own pid namespace, so nothing is
/// taken from under another waiter.
fn reap_strays() {
    let me = std::process::id().to_string();
    let depth = |pid: &str| -> usize {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("NSpid:")
                        .map(|v| v.split_whitespace().count())
                })
            })
            .unwrap_or(0)
    };
    let my_depth = depth("self");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) S ppid ...": the comm may hold spaces, so split at the last ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map_or("", |(_, c)| c);
        let mut fields = rest.split_whitespace();
        let (state, ppid) = (fields.next(), fields.next());
        if state == Some("Z")
            && ppid == Some(me.as_str())
            && (comm.starts_with("crun") || comm.starts_with("runc"))
            && depth(pid) > my_depth
        {
            if let Ok(raw) = pid.parse::<i32>() {
                let waited = waited_for().lock().unwrap_or_else(|e| e.into_inner());
                if !waited.contains(&raw) {
                    let _ = sys::try_wait_pid(raw);
                }
            }
        }
    }
}

/// A pipe whose ends are close-on-exec, so no concurrently spawned process inherits them.
pub fn pipe() -> (OwnedFd, OwnedFd) {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe")
}

/// Reads `fd` to EOF.
pub fn read_all(fd: OwnedFd) -> String {
    let mut file = std::fs::File::from(fd);
    let mut out = String::new();
    file.read_to_string(&mut out)
        .expect("read the container's output");
    out
}
