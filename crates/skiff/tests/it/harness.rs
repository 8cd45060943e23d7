//! The harness: run the `skiff` binary against a fresh `--root` per test, as a user would.
//!
//! [`Skiff`] owns a temporary directory holding `root/` (passed as `--root`) and `scratch/`
//! (files the test makes). Dropping it, also while a test panics, detaches every mount under
//! that directory (deepest first) and deletes it. Every command runs with a time limit so that
//! a hung skiff fails the test instead of the CI job.
//!
//! Tests that need root, a kernel feature or a tool call one of the `need_*` checks through
//! [`require!`]: when the check fails the test says why on stderr (past libtest's capture) and
//! returns early. CI runs as root with every tool installed, so there nothing skips.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

pub use crate::checks::{need_overlay, need_root, need_schema_validator, need_tool};
use crate::tree::Tree;

/// The binary under test.
pub const SKIFF: &str = env!("CARGO_BIN_EXE_skiff");

/// Time limit for one skiff command; `SKIFF_TEST_TIMEOUT` (seconds) overrides it.
fn command_timeout() -> Duration {
    let secs = std::env::var("SKIFF_TEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    Duration::from_secs(secs)
}

/// Skip the rest of the test, saying why, when a `need_*` check fails.
macro_rules! require {
    ($check:expr) => {
        if let Err(why) = $check {
            $crate::harness::report_skip(&why);
            return;
        }
    };
}
pub(crate) use require;

/// Print a skip notice that libtest does not capture, so that it shows in CI logs.
pub fn report_skip(why: &str) {
    let test = thread::current().name().unwrap_or("?").to_string();
    let _ = writeln!(io::stderr(), "SKIPPED {test}: {why}");
}

/// Print a note that libtest does not capture (something a passing test could not check).
pub fn report_note(msg: &str) {
    let test = thread::current().name().unwrap_or("?").to_string();
    let _ = writeln!(io::stderr(), "NOTE {test}: {msg}");
}

/// What a finished command left behind.
pub struct Out {
    /// The command line, for messages.
    pub cmd: String,
    /// Exit code; 128 + signal when killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// stdout as bytes (for `save` to stdout).
    pub raw_stdout: Vec<u8>,
}

impl Out {
    pub fn success(&self) -> bool {
        self.code == 0
    }

    #[track_caller]
    pub fn assert_ok(self) -> Self {
        assert!(self.success(), "command failed, expected success:\n{self}");
        self
    }

    #[track_caller]
    pub fn assert_fail(self) -> Self {
        assert!(
            !self.success(),
            "command succeeded, expected failure:\n{self}"
        );
        self
    }

    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

impl fmt::Display for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "$ {}", self.cmd)?;
        writeln!(f, "exit code: {}", self.code)?;
        writeln!(f, "--- stdout ---\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr ---\n{}", self.stderr.trim_end())
    }
}

impl fmt::Debug for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Storage drivers, for tests that run against both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    Overlay,
    Vfs,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::Overlay => "overlay",
            Driver::Vfs => "vfs",
        }
    }

    /// Whether this driver can work here; mounting either needs root.
    pub fn usable(self) -> Result<(), String> {
        need_root()?;
        match self {
            Driver::Vfs => Ok(()),
            Driver::Overlay => need_overlay(),
        }
    }
}

/// One test's skiff: a temporary `--root`, a scratch directory, and optional global flags.
pub struct Skiff {
    dir: PathBuf,
    root: PathBuf,
    scratch: PathBuf,
    driver: Option<Driver>,
}

impl Skiff {
    /// A skiff with a fresh root and the default storage driver.
    pub fn new() -> Skiff {
        let base = test_tmp_base();
        fs::create_dir_all(&base).unwrap_or_else(|e| panic!("create {}: {e}", base.display()));
        let dir = tempfile::Builder::new()
            .prefix("skiff-it-")
            .tempdir_in(&base)
            .unwrap_or_else(|e| panic!("temp dir in {}: {e}", base.display()))
            .keep();
        let root = dir.join("root");
        let scratch = dir.join("scratch");
        fs::create_dir(&root).expect("create root");
        fs::create_dir(&scratch).expect("create scratch");
        Skiff {
            dir,
            root,
            scratch,
            driver: None,
        }
    }

    /// A skiff that passes `--storage-driver DRIVER` on every command.
    pub fn with_driver(driver: Driver) -> Skiff {
        let mut s = Skiff::new();
        s.driver = Some(driver);
        s
    }

    /// The `--root` directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The temporary directory holding both `root/` and `scratch/`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A path in the scratch directory (not created).
    pub fn path(&self, name: &str) -> PathBuf {
        self.scratch.join(name)
    }

    /// Write a file in the scratch directory.
    pub fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.path(name);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("create scratch subdir");
        }
        fs::write(&p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }

    /// The skiff command line with the global flags, ready to spawn.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(SKIFF);
        cmd.arg("--root").arg(&self.root);
        if let Some(d) = self.driver {
            cmd.arg("--storage-driver").arg(d.name());
        }
        cmd.args(args);
        cmd.env_remove("SKIFF_ROOT");
        cmd.env("NO_COLOR", "1");
        cmd.current_dir(&self.scratch);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Run skiff with `args` and no stdin.
    pub fn run<I, S>(&self, args: I) -> Out
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let cmd = self.command(args);
        run_command(cmd, None)
    }

    /// Run skiff with `args`, stdin read from `file`.
    pub fn run_stdin_file<I, S>(&self, args: I, file: &Path) -> Out
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(args);
        let f = fs::File::open(file).unwrap_or_else(|e| panic!("open {}: {e}", file.display()));
        cmd.stdin(Stdio::from(f));
        let mut out = run_command(cmd, None);
        out.cmd = format!("{} < {}", out.cmd, file.display());
        out
    }

    /// Run skiff and assert that it succeeded.
    #[track_caller]
    pub fn ok<I, S>(&self, args: I) -> Out
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run(args).assert_ok()
    }

    /// `skiff import <busybox base tar> NAME`; returns the image ID it printed.
    #[track_caller]
    pub fn import_busybox(&self, name: &str) -> String {
        self.import_busybox_with(&[], name)
    }

    /// `skiff import [EXTRA...] <busybox base tar> NAME`; returns the image ID it printed.
    #[track_caller]
    pub fn import_busybox_with(&self, extra: &[&str], name: &str) -> String {
        let mut args: Vec<OsString> = vec!["import".into()];
        args.extend(extra.iter().map(OsString::from));
        args.push(busybox_tar().into());
        if !name.is_empty() {
            args.push(name.into());
        }
        let out = self.ok(&args);
        let id = out.stdout.trim().to_string();
        assert!(
            is_image_id(&id),
            "import should print the image ID as sha256:<64 hex>:\n{out}"
        );
        id
    }

    /// `skiff image mount REF`: the mountpoint it printed, checked to be a directory.
    #[track_caller]
    pub fn mount(&self, reference: &str) -> PathBuf {
        let out = self.ok(["image", "mount", reference]);
        let mp = PathBuf::from(out.stdout.trim());
        assert!(
            mp.is_absolute() && mp.is_dir(),
            "image mount should print the mountpoint, an existing directory:\n{out}"
        );
        mp
    }
}

impl Default for Skiff {
    fn default() -> Self {
        Skiff::new()
    }
}

impl Drop for Skiff {
    fn drop(&mut self) {
        unmount_all_under(&self.dir);
        if std::env::var_os("SKIFF_TEST_KEEP").is_some() {
            let _ = writeln!(io::stderr(), "SKIFF_TEST_KEEP: kept {}", self.dir.display());
            return;
        }
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            let _ = writeln!(
                io::stderr(),
                "warning: could not remove {}: {e}",
                self.dir.display()
            );
        }
    }
}

/// Where test directories go: `$SKIFF_TEST_TMPDIR`, else cargo's per-target temp dir.
pub(crate) fn test_tmp_base() -> PathBuf {
    match std::env::var_os("SKIFF_TEST_TMPDIR") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
    }
}

/// Run a command with captured output and the time limit.
pub fn run_command(mut cmd: Command, timeout: Option<Duration>) -> Out {
    let line = describe(&cmd);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn `{line}`: {e}"));
    let (code, raw_stdout, stderr) =
        wait_with_timeout(&mut child, timeout.unwrap_or_else(command_timeout), &line);
    Out {
        cmd: line,
        code,
        stdout: String::from_utf8_lossy(&raw_stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        raw_stdout,
    }
}

/// Wait for a child whose stdout and stderr are piped; kill it (only it) on timeout.
pub fn wait_with_timeout(
    child: &mut Child,
    timeout: Duration,
    line: &str,
) -> (i32, Vec<u8>, Vec<u8>) {
    let mut so = child.stdout.take();
    let mut se = child.stderr.take();
    let t_out = thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = so.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        buf
    });
    let t_err = thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = se.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`{line}` did not finish within {timeout:?}; killed it");
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("wait for `{line}`: {e}"),
        }
    };
    let stdout = t_out.join().unwrap_or_default();
    let stderr = t_err.join().unwrap_or_default();
    (exit_code(status), stdout, stderr)
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// A shell-like rendering of a command line.
pub fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "\"'{}*$".contains(c)) {
            parts.push(format!("'{}'", a.replace('\'', r"'\''")));
        } else {
            parts.push(a.into_owned());
        }
    }
    parts.join(" ")
}

/// Run a helper tool (skopeo, umoci, tar, python3) and assert that it succeeded.
#[track_caller]
pub fn tool_ok<I, S>(program: &str, args: I) -> Out
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null());
    run_command(cmd, None).assert_ok()
}

// ---------------------------------------------------------------------------------------------
// Mounts

/// Mount points at or below `dir`, from /proc/self/mountinfo, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mountinfo(m)))
        .filter(|m| m.starts_with(&dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found
}

/// Whether `path` is itself a mount point.
pub fn is_mount_point(path: &Path) -> bool {
    let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    mounts_under(&path).contains(&path)
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Detach every mount at or below `dir`, deepest first, until none is left.
pub fn unmount_all_under(dir: &Path) {
    for _ in 0..8 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            return;
        }
        for m in mounts {
            if let Err(e) = rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH) {
                let _ = writeln!(io::stderr(), "warning: umount {}: {e}", m.display());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The busybox base tar, built once per test process by tests/fixtures/make-busybox-base.sh.
pub fn busybox_tar() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fixtures");
        fs::create_dir_all(&dir).expect("create fixtures dir");
        let out = dir.join("busybox-base.tar");
        let script = workspace_root().join("tests/fixtures/make-busybox-base.sh");
        let mut cmd = Command::new("bash");
        cmd.arg(&script).arg(&out);
        let r = run_command(cmd, None);
        assert!(
            r.success(),
            "building the busybox base image failed (is busybox-static installed?):\n{r}"
        );
        out
    })
}

/// The tree in the busybox base tar, as the tests expect to find it unpacked.
pub fn busybox_tree() -> &'static Tree {
    static TREE: OnceLock<Tree> = OnceLock::new();
    TREE.get_or_init(|| Tree::from_tar_file(busybox_tar()))
}

// ---------------------------------------------------------------------------------------------
// Small helpers

pub fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `sha256:` followed by 64 lowercase hex digits.
pub fn is_image_id(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| is_hex(h, 64))
}

/// docker's short ID: the first 12 hex digits of the ID.
pub fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:")[..12].to_string()
}

/// The Go architecture name for this machine, as image configs spell it.
pub fn goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// `Loaded image: NAME` or `Loaded image ID: ID` lines of `skiff load`.
pub fn loaded_refs(out: &Out) -> Vec<String> {
    out.stdout
        .lines()
        .filter_map(|l| {
            l.strip_prefix("Loaded image: ")
                .or_else(|| l.strip_prefix("Loaded image ID: "))
        })
        .map(|s| s.trim().to_string())
        .collect()
}
