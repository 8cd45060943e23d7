//! [`OciCli`]: the [`Runtime`] that runs an OCI runtime binary (`crun`, `runc`, or any other
//! with their command line), as containerd and podman do.
//!
//! Every call passes `--root <skiff state>/runtime/<name>`, so skiff's containers never mix
//! with those of docker, podman or a user's own runc. Errors come back typed, carrying the
//! runtime's own message: for `create` and `exec`, whose stderr belongs to the container,
//! that message is read from a per-call JSON log file (`--log`, `--log-format=json`); for the
//! other commands from stderr.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio as StdStdio};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;

use super::{validate_id, Io, ProcessIo, Runtime, State, Status};
use crate::error::{io_err, Error, ExecFailure};

/// An OCI runtime driven through its command line.
#[derive(Debug, Clone)]
pub struct OciCli {
    name: String,
    binary: PathBuf,
    root: PathBuf,
}

impl OciCli {
    /// The runtime `name` (which also names its state directory) run from `binary`, keeping
    /// its state in `<state_root>/runtime/<name>`.
    pub fn new(name: &str, binary: PathBuf, state_root: &Path) -> Result<OciCli, Error> {
        validate_name(name)?;
        Ok(OciCli {
            name: name.to_owned(),
            binary,
            root: state_root.join("runtime").join(name),
        })
    }

    /// The runtime binary.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// The runtime's state directory (its `--root`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The first line of `<runtime> --version` (`runc version 1.1.5+ds1`).
    pub fn version(&self) -> Result<String, Error> {
        let out = Command::new(&self.binary)
            .arg("--version")
            .stdin(StdStdio::null())
            .output()
            .map_err(|e| self.spawn_err(e))?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text.lines().next().unwrap_or("").trim().to_owned())
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root").arg(&self.root).arg("--log-format=json");
        cmd
    }

    fn spawn_err(&self, e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::RuntimeNotFound {
                name: self.name.clone(),
                reason: format!("{} does not exist", self.binary.display()),
            }
        } else {
            io_err(&self.binary)(e)
        }
    }

    /// Runs a command whose stdio is ours; a failure becomes a typed error.
    fn run_captured(
        &self,
        command: &'static str,
        id: &str,
        flags: &[&str],
        after_id: &[&str],
    ) -> Result<Output, Error> {
        validate_id(id)?;
        let out = self
            .command()
            .arg(command)
            .args(flags)
            .arg(id)
            .args(after_id)
            .stdin(StdStdio::null())
            .output()
            .map_err(|e| self.spawn_err(e))?;
        if out.status.success() {
            return Ok(out);
        }
        let message = last_error(&String::from_utf8_lossy(&out.stderr));
        Err(self.classify(command, id, message, out.status.code()))
    }

    /// Runs `create` or `exec`, whose stdio belongs to the new process: the message of a
    /// failure comes from a fresh JSON log file. Returns the new process's pid.
    fn run_spawning(
        &self,
        command: &'static str,
        id: &str,
        args: &[&std::ffi::OsStr],
        io: ProcessIo,
    ) -> Result<i32, Error> {
        // The runtime's state (and our logs in it) can hold the container's environment:
        // keep the directory to root, as runc does when it creates it.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(io_err(&self.root))?;
        let n = next_call();
        let log = self
            .root
            .join(format!(".{id}.{}.{n}.log.json", std::process::id()));
        let (pid_file, own_pid_file) = match io.pid_file {
            Some(p) => (p, false),
            None => (
                self.root
                    .join(format!(".{id}.{}.{n}.pid", std::process::id())),
                true,
            ),
        };
        let mut cmd = self.command();
        cmd.arg(format!("--log={}", log.display()))
            .arg(command)
            .args(args)
            .arg("--pid-file")
            .arg(&pid_file);
        if let Some(socket) = &io.console_socket {
            cmd.arg("--console-socket").arg(socket);
        }
        cmd.arg(id)
            .stdin(std_stdio(io.stdio.stdin))
            .stdout(std_stdio(io.stdio.stdout))
            .stderr(std_stdio(io.stdio.stderr));
        let status = cmd.status().map_err(|e| self.spawn_err(e));
        // The command has exited; drop our copies of the container's pipe ends now (they
        // moved into `cmd`), so the caller sees EOF when the container closes them.
        drop(cmd);
        let result = match status {
            Ok(s) if s.success() => read_pid(&pid_file),
            Ok(s) => {
                let text = fs::read_to_string(&log).unwrap_or_default();
                Err(self.classify(command, id, last_error(&text), s.code()))
            }
            Err(e) => Err(e),
        };
        let _ = fs::remove_file(&log);
        if own_pid_file {
            let _ = fs::remove_file(&pid_file);
        }
        result
    }

    /// Turns a failed command into the most precise error: a missing container, a duplicate,
    /// a command that cannot be executed, a container in the wrong state, or the runtime's
    /// message as it is.
    fn classify(
        &self,
        command: &'static str,
        id: &str,
        message: String,
        status: Option<i32>,
    ) -> Error {
        // Both runc and crun keep a directory per container under their root: its absence
        // says "no such container" whatever words the runtime chose.
        if command != "create" && !self.root.join(id).exists() {
            return Error::ContainerNotFound { id: id.to_owned() };
        }
        if command == "create" && message.contains("already exists") {
            return Error::ContainerExists {
                id: id.to_owned(),
                runtime: self.name.clone(),
            };
        }
        if matches!(command, "create" | "start" | "exec") {
            if let Some((failure, message)) = exec_failure(&message) {
                return Error::Exec { failure, message };
            }
        }
        if is_state_conflict(&message) {
            return Error::ContainerState {
                runtime: self.name.clone(),
                command,
                id: id.to_owned(),
                message,
            };
        }
        Error::RuntimeFailed {
            runtime: self.name.clone(),
            command,
            message: if message.is_empty() {
                format!("{} {command} exited with {status:?}", self.name)
            } else {
                message
            },
            status,
        }
    }
}

impl Runtime for OciCli {
    fn name(&self) -> &str {
        &self.name
    }

    fn create(&self, id: &str, bundle: &Path, io: ProcessIo) -> Result<i32, Error> {
        validate_id(id)?;
        if self.root.join(id).exists() {
            return Err(Error::ContainerExists {
                id: id.to_owned(),
                runtime: self.name.clone(),
            });
        }
        let bundle = std::path::absolute(bundle).map_err(io_err(bundle))?;
        self.run_spawning("create", id, &["--bundle".as_ref(), bundle.as_os_str()], io)
    }

    fn start(&self, id: &str) -> Result<(), Error> {
        self.run_captured("start", id, &[], &[]).map(drop)
    }

    fn state(&self, id: &str) -> Result<State, Error> {
        let out = self.run_captured("state", id, &[], &[])?;
        parse_state(&out.stdout).map_err(|source| Error::BadState {
            runtime: self.name.clone(),
            id: id.to_owned(),
            source,
        })
    }

    fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), Error> {
        let sig = signal.to_string();
        let flags: &[&str] = if all { &["--all"] } else { &[] };
        // `kill [--all] ID SIGNAL`: the signal follows the id.
        self.run_captured("kill", id, flags, &[&sig]).map(drop)
    }

    fn delete(&self, id: &str, force: bool) -> Result<(), Error> {
        let args: &[&str] = if force { &["--force"] } else { &[] };
        self.run_captured("delete", id, args, &[]).map(drop)
    }

    fn pause(&self, id: &str) -> Result<(), Error> {
        self.run_captured("pause", id, &[], &[]).map(drop)
    }

    fn resume(&self, id: &str) -> Result<(), Error> {
        self.run_captured("resume", id, &[], &[]).map(drop)
    }

    fn update(&self, id: &str, resources: &Path) -> Result<(), Error> {
        let path = resources.to_string_lossy();
        self.run_captured("update", id, &["--resources", &path], &[])
            .map(drop)
    }

    fn exec(&self, id: &str, process: &Path, io: ProcessIo) -> Result<i32, Error> {
        validate_id(id)?;
        if !self.root.join(id).exists() {
            return Err(Error::ContainerNotFound { id: id.to_owned() });
        }
        let process = std::path::absolute(process).map_err(io_err(process))?;
        self.run_spawning(
            "exec",
            id,
            &[
                "--process".as_ref(),
                process.as_os_str(),
                "--detach".as_ref(),
            ],
            io,
        )
    }
}

fn std_stdio(io: Io) -> StdStdio {
    match io {
        Io::Null => StdStdio::null(),
        Io::Inherit => StdStdio::inherit(),
        Io::Fd(fd) => StdStdio::from(fd),
    }
}

fn next_call() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn read_pid(path: &Path) -> Result<i32, Error> {
    let text = fs::read_to_string(path).map_err(io_err(path))?;
    text.trim().parse().map_err(|_| Error::Io {
        path: path.to_owned(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not a pid: {:?}", text.trim()),
        ),
    })
}

/// Names become directory names: keep them to one plain path component.
fn validate_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidRuntimeName(name.to_owned()))
    }
}

#[derive(Deserialize)]
struct RawState {
    id: String,
    status: Status,
    #[serde(default)]
    pid: Option<i32>,
    #[serde(default)]
    bundle: PathBuf,
    #[serde(default)]
    created: Option<String>,
}

/// Parses the JSON of `<runtime> state ID`.
fn parse_state(stdout: &[u8]) -> Result<State, serde_json::Error> {
    let raw: RawState = serde_json::from_slice(stdout)?;
    let pid = match (raw.status, raw.pid) {
        (Status::Stopped, _) | (_, Some(0)) | (_, None) => None,
        (_, Some(p)) => Some(p),
    };
    Ok(State {
        id: raw.id,
        status: raw.status,
        pid,
        bundle: raw.bundle,
        created: raw.created,
    })
}

#[derive(Deserialize)]
struct LogLine {
    #[serde(default)]
    level: String,
    #[serde(default)]
    msg: String,
}

/// The message to show from a runtime's JSON log or stderr: the last error-level entry, or
/// failing that the last line that says anything.
fn last_error(text: &str) -> String {
    let mut last_error = None;
    let mut last_any = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match serde_json::from_str::<LogLine>(line) {
            Ok(entry) => {
                if matches!(entry.level.as_str(), "error" | "fatal" | "panic") {
                    last_error = Some(entry.msg.clone());
                }
                if !entry.msg.is_empty() {
                    last_any = Some(entry.msg);
                }
            }
            Err(_) => last_any = Some(line.to_owned()),
        }
    }
    last_error.or(last_any).unwrap_or_default()
}

/// Recognizes a command that could not be started, in runc's words
/// (`exec: "nope": executable file not found in $PATH`) or crun's
/// (``executable file `nope` not found in $PATH``, `open executable: Permission denied`), and
/// says it docker's way.
fn exec_failure(message: &str) -> Option<(ExecFailure, String)> {
    if let Some(i) = message.find("exec: \"") {
        let tail = &message[i..];
        let lower = tail.to_ascii_lowercase();
        if lower.contains("executable file not found")
            || lower.contains("no such file or directory")
        {
            return Some((ExecFailure::NotFound, tail.to_owned()));
        }
        if lower.contains("permission denied")
            || lower.contains("is a directory")
            || lower.contains("not permitted")
            || lower.contains("exec format error")
        {
            return Some((ExecFailure::NotExecutable, tail.to_owned()));
        }
    }
    if let Some(rest) = message.strip_prefix("executable file `") {
        if let Some((name, tail)) = rest.split_once('`') {
            if tail.contains("not found") {
                return Some((
                    ExecFailure::NotFound,
                    format!("exec: \"{name}\": executable file not found in $PATH"),
                ));
            }
        }
    }
    if let Some(reason) = message.strip_prefix("open executable: ") {
        return Some((
            ExecFailure::NotExecutable,
            format!("exec: {}", reason.to_ascii_lowercase()),
        ));
    }
    None
}

/// Whether the runtime refused because of the container's state (not running, paused...).
fn is_state_conflict(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "not running",
        "not paused",
        "not stopped",
        "already running",
        "already paused",
        "is paused",
        "is running",
        "is stopped",
        "has stopped",
        "stopped container",
        "cannot start",
        "cannot pause",
        "cannot resume",
        "cannot delete",
        "invalid state",
        // crun signalling an init that has already exited ("open pidfd: No such process").
        "no such process",
    ]
    .iter()
    .any(|p| m.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(root: &Path) -> OciCli {
        OciCli::new("runc", PathBuf::from("/usr/sbin/runc"), root).unwrap()
    }

    #[test]
    fn state_json_of_runc_and_crun_parses() {
        let runc = br#"{"ociVersion":"1.0.2-dev","id":"x1","pid":3716,"status":"created",
            "bundle":"/tmp/b","rootfs":"/tmp/b/rootfs","created":"2026-11-24T15:23:33Z","owner":""}"#;
        let s = parse_state(runc).unwrap();
        assert_eq!(s.status, Status::Created);
        assert_eq!(s.pid, Some(3716));
        assert_eq!(s.bundle, Path::new("/tmp/b"));
        let stopped =
            br#"{"ociVersion":"1.0.2-dev","id":"x1","pid":0,"status":"stopped","bundle":"/b"}"#;
        assert_eq!(parse_state(stopped).unwrap().pid, None);
        let paused = br#"{"ociVersion":"1.0.0","id":"x1","pid":7,"status":"paused","bundle":"/b",
            "rootfs":"/b/rootfs","created":"2026-11-24T15:23:33Z","owner":"root"}"#;
        assert_eq!(parse_state(paused).unwrap().status, Status::Paused);
        assert!(parse_state(b"nonsense").is_err());
    }

    #[test]
    fn the_last_error_of_a_log_is_the_message() {
        let log = concat!(
            r#"{"level":"error","msg":"container does not exist","time":"t"}"#,
            "\n",
            r#"{"level":"warning","msg":"some warning","time":"t"}"#,
            "\n",
            r#"{"level":"error","msg":"runc create failed: boom","time":"t"}"#,
            "\n",
        );
        assert_eq!(last_error(log), "runc create failed: boom");
        assert_eq!(last_error("plain text\n\n"), "plain text");
        let crun = r#"{"msg":"error opening file `/x/status`: No such file or directory","level":"error","time":"t"}"#;
        assert_eq!(
            last_error(crun),
            "error opening file `/x/status`: No such file or directory"
        );
        assert_eq!(last_error(""), "");
    }

    #[test]
    fn commands_that_cannot_run_map_to_docker_exit_codes() {
        let cases = [
            (
                "runc create failed: unable to start container process: exec: \"nope\": executable file not found in $PATH",
                ExecFailure::NotFound,
                "exec: \"nope\": executable file not found in $PATH",
            ),
            (
                "runc create failed: unable to start container process: exec: \"/nope/x\": stat /nope/x: no such file or directory",
                ExecFailure::NotFound,
                "exec: \"/nope/x\": stat /nope/x: no such file or directory",
            ),
            (
                "runc create failed: unable to start container process: exec: \"/etc\": permission denied",
                ExecFailure::NotExecutable,
                "exec: \"/etc\": permission denied",
            ),
            (
                "executable file `nope` not found in $PATH: No such file or directory",
                ExecFailure::NotFound,
                "exec: \"nope\": executable file not found in $PATH",
            ),
            (
                "open executable: Permission denied",
                ExecFailure::NotExecutable,
                "exec: permission denied",
            ),
        ];
        for (msg, failure, docker) in cases {
            let (f, m) = exec_failure(msg).unwrap_or_else(|| panic!("{msg}"));
            assert_eq!((f, m.as_str()), (failure, docker), "{msg}");
            assert_eq!(
                f.exit_code(),
                if failure == ExecFailure::NotFound {
                    127
                } else {
                    126
                }
            );
        }
        assert!(exec_failure("open exec.fifo: no such file or directory").is_none());
    }

    #[test]
    fn failures_are_classified() {
        let dir = tempfile::tempdir().unwrap();
        let rt = cli(dir.path());
        fs::create_dir_all(rt.root().join("there")).unwrap();

        let e = rt.classify("kill", "gone", "container does not exist".into(), Some(1));
        assert!(matches!(e, Error::ContainerNotFound { ref id } if id == "gone"));
        assert_eq!(e.kind(), crate::ErrorKind::NotFound);

        let e = rt.classify(
            "create",
            "there",
            "runc create failed: container with given ID already exists".into(),
            Some(1),
        );
        assert_eq!(e.kind(), crate::ErrorKind::AlreadyExists);

        for msg in [
            "open pidfd: No such process",
            "container not running",
            "container not paused",
            "cannot start an already running container",
        ] {
            let e = rt.classify("pause", "there", msg.into(), Some(1));
            assert_eq!(e.kind(), crate::ErrorKind::Conflict, "{msg}");
        }

        let e = rt.classify(
            "create",
            "new",
            "runc create failed: unable to start container process: exec: \"nope\": executable file not found in $PATH".into(),
            Some(1),
        );
        assert_eq!(e.exec_failure(), Some(ExecFailure::NotFound));
        assert_eq!(
            e.to_string(),
            "exec: \"nope\": executable file not found in $PATH"
        );

        let e = rt.classify("start", "there", "something odd".into(), Some(2));
        assert!(matches!(
            e,
            Error::RuntimeFailed {
                status: Some(2),
                ..
            }
        ));
        assert_eq!(e.to_string(), "OCI runtime start failed: something odd");
    }

    #[test]
    fn runtime_names_are_single_path_components() {
        for bad in ["", ".", "..", "a/b", ".hidden", "a b"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        validate_name("crun").unwrap();
        validate_name("my-runc_1.2").unwrap();
        let rt = cli(Path::new("/var/lib/skiff"));
        assert_eq!(rt.root(), Path::new("/var/lib/skiff/runtime/runc"));
    }

    #[test]
    fn a_missing_binary_is_runtime_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let rt = OciCli::new("ghost", dir.path().join("no-such-runtime"), dir.path()).unwrap();
        let e = rt.state("x").unwrap_err();
        assert!(matches!(e, Error::RuntimeNotFound { .. }), "{e:?}");
    }
}
