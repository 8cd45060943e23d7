//! The monitor's body: start, supervise, record, restart, clean up.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::process::{Pid, WaitOptions};
use skiff_runtime::{Io, OciCli, ProcessIo, Runtime, Stdio};

use super::jsonlog::JsonLog;
use super::protocol::{self, write_frame};
use crate::ops::container::reconcile::process_start_time;
use crate::ops::container::store::{
    now_rfc3339, read_record, read_state, update_state_in, Container, Status, ATTACH_SOCKET,
};

/// How long `run` (attached) may take to connect before the container starts without it.
const ATTACH_WAIT: Duration = Duration::from_secs(10);
/// How long the container's pipes are drained after its init has exited.
const DRAIN: Duration = Duration::from_secs(2);
/// docker's restart backoff: first delay, and the cap.
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A run this long resets the backoff (docker's restart manager).
const BACKOFF_RESET: Duration = Duration::from_secs(10);

struct Client {
    stream: UnixStream,
    /// Bytes received that do not make a whole frame yet.
    inbuf: Vec<u8>,
}

/// How one run of the container ended.
enum RunEnd {
    /// The init exited with this code (128 + signal when killed).
    Exited(i32),
    /// The container could not be created or started.
    Failed { code: i32, message: String },
}

struct Monitor {
    dir: PathBuf,
    c: Container,
    rt: OciCli,
    listener: UnixListener,
    clients: Vec<Client>,
    log: JsonLog,
    /// The start handshake is still owed to the command on our stdout.
    handshake_open: bool,
    /// The pty master while a container with a terminal runs.
    master: Option<OwnedFd>,
    /// The last terminal size a client asked for.
    pending_size: Option<(u16, u16)>,
    /// HEALTHCHECK probes while the container runs.
    health: Option<super::health::HealthChecker>,
    /// The runtime's `delete` after the last run, running beside the rest of the cleanup.
    deleter: Option<JoinHandle<()>>,
}

pub fn monitor(root: &Path, id: &str, wait_attach: bool) -> Result<()> {
    // Our own session: a terminal's signals for the command that started us are not ours.
    let _ = rustix::process::setsid();
    skiff_runtime::sys::set_child_subreaper().context("becoming a child subreaper")?;
    let dir = root.join("containers").join(id);
    let c = read_record(&dir)?;
    let me = std::process::id() as i32;
    let start_time = process_start_time(me).unwrap_or(0);
    update_state_in(&dir, |s| {
        s.monitor_pid = me;
        s.monitor_start_time = start_time;
        Ok(())
    })?;
    let mut deleter = None;
    let result = (|| -> Result<()> {
        let rt = crate::ops::container::runtime::open(root, Some(&c.runtime))?;
        let sock = dir.join(ATTACH_SOCKET);
        let _ = std::fs::remove_file(&sock);
        let (_dir_fd, short) = crate::ops::container::store::socket_path(&dir, ATTACH_SOCKET)?;
        let listener = UnixListener::bind(&short)
            .with_context(|| format!("listening on {}", sock.display()))?;
        listener.set_nonblocking(true)?;
        let log_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(crate::ops::container::store::ContainerStore::log_path_in(
                &dir, id,
            ))
            .context("opening the container log")?;
        let mut m = Monitor {
            dir: dir.clone(),
            c: c.clone(),
            rt,
            listener,
            clients: Vec::new(),
            log: JsonLog::new(log_file),
            handshake_open: true,
            master: None,
            pending_size: None,
            health: None,
            deleter: None,
        };
        handshake(&format!("{}\n", protocol::READY));
        if wait_attach {
            m.accept_within(ATTACH_WAIT);
        }
        let r = m.supervise();
        deleter = m.deleter.take();
        r
    })();
    if let Err(e) = &result {
        // Whatever failed, the command waiting for us must hear it, and the state must not
        // claim a monitor that is gone.
        handshake(&format!(
            "{} 125 {}\n",
            protocol::ERROR,
            format!("{e:#}").replace('\n', "\\n")
        ));
        let _ = update_state_in(&dir, |s| {
            if s.status.is_live() {
                s.set_status(Status::Exited);
                s.exit_code = crate::ops::container::reconcile::UNKNOWN_EXIT;
                s.finished_at = now_rfc3339();
            }
            s.error = format!("{e:#}");
            s.monitor_pid = 0;
            Ok(())
        });
    }
    finish(root, &dir, &c, deleter);
    result
}

/// Writes a handshake line on stdout (a pipe to the command that started us, or /dev/null).
fn handshake(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}

/// Stops talking to the command that started us: stdout becomes /dev/null, so that the
/// command sees the end of the handshake and can exit.
fn close_handshake() {
    if let Ok(null) = File::options().write(true).open("/dev/null") {
        let _ = rustix::stdio::dup2_stdout(&null);
    }
}

/// The end of the monitor: unmount the rootfs, drop the socket, and for `--rm` remove the
/// container.
fn finish(root: &Path, dir: &Path, c: &Container, deleter: Option<JoinHandle<()>>) {
    let _ = std::fs::remove_file(dir.join(ATTACH_SOCKET));
    if let Err(e) = skiff_snapshot::mount::unmount_all(&c.rootfs) {
        eprintln!("unmounting {}: {e}", c.rootfs.display());
    }
    let me = std::process::id() as i32;
    let forget_me = || {
        let _ = update_state_in(dir, |s| {
            if s.monitor_pid == me {
                s.monitor_pid = 0;
                s.monitor_start_time = 0;
            }
            Ok(())
        });
    };
    let mut deleter = deleter;
    let mut runtime_done = || {
        if let Some(d) = deleter.take() {
            let _ = d.join();
        }
    };
    let remove =
        c.host_config.auto_remove || read_state(dir).map(|s| s.remove_on_exit).unwrap_or(false);
    if !remove {
        runtime_done();
    }
    // From here on a start or an `rm` need not wait for us.
    forget_me();
    if remove {
        if let Err(e) = crate::ops::container::rm::remove_after_exit(root, c, &mut runtime_done) {
            eprintln!("removing container {}: {e:#}", c.id);
        }
    }
    runtime_done();
}

impl Monitor {
    fn accept_within(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.clients.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            let ts = timespec(left);
            let mut fds = [PollFd::new(&self.listener, PollFlags::IN)];
            match poll(&mut fds, Some(&ts)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(_) => return,
            }
            self.accept_all();
        }
    }

    fn accept_all(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    let _ = stream.set_nonblocking(true);
                    self.clients.push(Client {
                        stream,
                        inbuf: Vec::new(),
                    });
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// Runs the container, again and again as its restart policy says.
    fn supervise(&mut self) -> Result<()> {
        let mut backoff = Duration::ZERO;
        let mut first = true;
        loop {
            let began = Instant::now();
            let end = self.run_once(first)?;
            let ran = began.elapsed();
            let code = match end {
                RunEnd::Failed { code, message } => {
                    let never_ran = first;
                    update_state_in(&self.dir, |s| {
                        s.set_status(if never_ran {
                            Status::Created
                        } else {
                            Status::Exited
                        });
                        s.exit_code = code;
                        s.error = message.clone();
                        s.finished_at = now_rfc3339();
                        s.monitor_pid = 0;
                        Ok(())
                    })?;
                    if self.handshake_open {
                        handshake(&format!(
                            "{} {code} {}\n",
                            protocol::ERROR,
                            message.replace('\n', "\\n")
                        ));
                        close_handshake();
                        self.handshake_open = false;
                    }
                    return Ok(());
                }
                RunEnd::Exited(code) => code,
            };
            let oom = self.oom_killed();
            // Read again: `skiff update --restart` may have changed it since the start.
            let policy = read_record(&self.dir).map_or_else(
                |_| self.c.host_config.restart_policy.clone(),
                |c| c.host_config.restart_policy,
            );
            let (_, restart) = update_state_in(&self.dir, |s| {
                s.exit_code = code;
                s.oom_killed = oom;
                s.finished_at = now_rfc3339();
                let restart = !s.manually_stopped
                    && match policy.name.as_str() {
                        "always" | "unless-stopped" => true,
                        "on-failure" => {
                            code != 0
                                && (policy.maximum_retry_count == 0
                                    || s.restart_count < policy.maximum_retry_count)
                        }
                        _ => false,
                    };
                if restart {
                    s.set_status(Status::Restarting);
                } else {
                    // The monitor stays recorded until it has cleaned up (see `finish`), so
                    // that a new start or an `rm` waits for it.
                    s.set_status(Status::Exited);
                }
                Ok(restart)
            })?;
            // Attached clients hear the exit code once it is recorded; the runtime's cleanup
            // follows (beside the removal of the container, for the last run).
            self.send_exit(code);
            if !restart {
                let rt = self.rt.clone();
                let id = self.c.id.clone();
                self.deleter = Some(std::thread::spawn(move || {
                    let _ = rt.delete(&id, true);
                }));
                return Ok(());
            }
            let _ = self.rt.delete(&self.c.id, true);
            backoff = if ran >= BACKOFF_RESET || backoff.is_zero() {
                BACKOFF_START
            } else {
                (backoff * 2).min(BACKOFF_MAX)
            };
            if !self.sleep_unless_stopped(backoff)? {
                return Ok(());
            }
            first = false;
        }
    }

    /// Waits `d` before a restart; false (and the container recorded as exited) if a user
    /// stopped it meanwhile.
    fn sleep_unless_stopped(&mut self, d: Duration) -> Result<bool> {
        let deadline = Instant::now() + d;
        loop {
            let stopped = read_state(&self.dir).map(|s| s.manually_stopped)?;
            if stopped {
                update_state_in(&self.dir, |s| {
                    s.set_status(Status::Exited);
                    s.monitor_pid = 0;
                    Ok(())
                })?;
                return Ok(false);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(true);
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    /// Creates and starts the container once and supervises it until its init ends.
    fn run_once(&mut self, first: bool) -> Result<RunEnd> {
        let pipe = || rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC);
        let console = if self.c.config.tty {
            Some(super::console::ConsoleSocket::bind(
                &self.dir,
                "console.sock",
            )?)
        } else {
            None
        };
        let mut out_r = None;
        let mut err_r = None;
        let mut stdin_w = None;
        let io = match &console {
            Some(console) => ProcessIo {
                stdio: Stdio::null(),
                console_socket: Some(console.path.clone()),
                pid_file: None,
            },
            None => {
                let (o_r, o_w) = pipe()?;
                let (e_r, e_w) = pipe()?;
                out_r = Some(o_r);
                err_r = Some(e_r);
                let stdin_io = if self.c.config.open_stdin {
                    let (r, w) = pipe()?;
                    stdin_w = Some(w);
                    Io::Fd(r)
                } else {
                    Io::Null
                };
                ProcessIo {
                    stdio: Stdio {
                        stdin: stdin_io,
                        stdout: Io::Fd(o_w),
                        stderr: Io::Fd(e_w),
                    },
                    console_socket: None,
                    pid_file: None,
                }
            }
        };
        let id = self.c.id.clone();
        let pid = match self.rt.create(&id, &self.dir, io) {
            Ok(pid) => pid,
            Err(e) => return Ok(failure(&e)),
        };
        if let Some(console) = &console {
            match console.receive_master() {
                Ok(master) => {
                    if let Some((rows, cols)) = self.pending_size {
                        super::console::resize(&master, rows, cols);
                    }
                    // Reads and writes both go through the master; stdin only when open.
                    if self.c.config.open_stdin {
                        stdin_w = Some(rustix::io::dup(&master)?);
                    }
                    self.master = Some(rustix::io::dup(&master)?);
                    out_r = Some(master);
                }
                Err(e) => {
                    let _ = self.rt.delete(&id, true);
                    let _ = skiff_runtime::sys::wait_pid(pid);
                    return Err(e);
                }
            }
        }
        if let Err(e) = self.rt.start(&id) {
            let _ = self.rt.delete(&id, true);
            let _ = skiff_runtime::sys::wait_pid(pid);
            return Ok(failure(&e));
        }
        let restarting = !first;
        self.health = super::health::HealthChecker::new(&self.c, &self.dir);
        let health = self
            .health
            .as_ref()
            .map(|_| super::health::HealthChecker::initial());
        update_state_in(&self.dir, |s| {
            s.health = health;
            s.set_status(Status::Running);
            s.pid = pid;
            s.exit_code = 0;
            s.error.clear();
            s.oom_killed = false;
            s.started_at = now_rfc3339();
            if restarting {
                s.restart_count += 1;
            }
            Ok(())
        })?;
        if self.handshake_open {
            handshake(&format!("{}\n", protocol::STARTED));
            close_handshake();
            self.handshake_open = false;
        }
        let code = self.pump(pid, out_r, err_r, stdin_w)?;
        self.master = None;
        self.health = None;
        Ok(RunEnd::Exited(code))
    }

    /// Moves bytes between the container, its log and the attached clients until the init
    /// `pid` has exited and its pipes are drained; returns its exit code.
    fn pump(
        &mut self,
        pid: i32,
        out_r: Option<OwnedFd>,
        err_r: Option<OwnedFd>,
        mut stdin_w: Option<OwnedFd>,
    ) -> Result<i32> {
        let pidfd = Pid::from_raw(pid).and_then(|p| {
            rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
        });
        let mut streams: [Option<OwnedFd>; 2] = [out_r, err_r];
        let mut exit: Option<i32> = None;
        let mut drain_deadline: Option<Instant> = None;
        let mut buf = [0u8; 8192];
        loop {
            if let Some(code) = self.reap(pid) {
                exit.get_or_insert(code);
            }
            if exit.is_none() {
                if let Some(h) = self.health.as_mut() {
                    h.tick(&self.rt, &self.c.id);
                }
            }
            if exit.is_some() {
                let deadline = *drain_deadline.get_or_insert_with(|| Instant::now() + DRAIN);
                if streams.iter().all(Option::is_none) || Instant::now() >= deadline {
                    break;
                }
            }
            // What to wait on: the two streams, the listener, the init, the clients.
            let mut revents = Vec::new();
            {
                let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(4 + self.clients.len());
                for s in streams.iter().flatten() {
                    fds.push(PollFd::new(s, PollFlags::IN));
                }
                fds.push(PollFd::new(&self.listener, PollFlags::IN));
                if exit.is_none() {
                    if let Some(p) = &pidfd {
                        fds.push(PollFd::new(p, PollFlags::IN));
                    }
                }
                for c in &self.clients {
                    fds.push(PollFd::new(&c.stream, PollFlags::IN));
                }
                // Without a pidfd (old kernels), poll in short steps to notice the exit.
                let mut timeout = if pidfd.is_none() || exit.is_some() {
                    Some(Duration::from_millis(50))
                } else {
                    None
                };
                if let (Some(h), None) = (&self.health, exit) {
                    let until = h.next_wakeup().saturating_duration_since(Instant::now());
                    timeout = Some(timeout.map_or(until, |t| t.min(until)));
                }
                let timeout = timeout.map(timespec);
                match poll(&mut fds, timeout.as_ref()) {
                    Ok(_) => {}
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(e.into()),
                }
                revents.extend(fds.iter().map(PollFd::revents));
            }
            let mut i = 0;
            for (idx, slot) in streams.iter_mut().enumerate() {
                let Some(fd) = slot.as_ref() else { continue };
                let ev = revents[i];
                i += 1;
                if ev.is_empty() {
                    continue;
                }
                let stream = if idx == 0 {
                    protocol::STDOUT
                } else {
                    protocol::STDERR
                };
                match rustix::io::read(fd, &mut buf) {
                    Ok(0) => {
                        let _ = self.log.flush(stream);
                        *slot = None;
                    }
                    Ok(n) => {
                        let data = &buf[..n];
                        if let Err(e) = self.log.write(stream, data) {
                            eprintln!("writing the container log: {e}");
                        }
                        self.broadcast(stream, data);
                    }
                    Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => {}
                    Err(_) => {
                        let _ = self.log.flush(stream);
                        *slot = None;
                    }
                }
            }
            let listener_ev = revents[i];
            i += 1;
            if !listener_ev.is_empty() {
                self.accept_all();
            }
            if exit.is_none() && pidfd.is_some() {
                i += 1;
            }
            let client_events: Vec<PollFlags> = revents[i..].to_vec();
            self.serve_clients(&client_events, &mut stdin_w);
        }
        Ok(exit.unwrap_or(crate::ops::container::reconcile::UNKNOWN_EXIT))
    }

    /// Reaps every child that has ended; the init's exit code if it was among them.
    fn reap(&mut self, init: i32) -> Option<i32> {
        let mut found = None;
        loop {
            match rustix::process::wait(WaitOptions::NOHANG) {
                Ok(Some((p, status))) => {
                    let code = status
                        .exit_status()
                        .or_else(|| status.terminating_signal().map(|s| 128 + s));
                    let pid = p.as_raw_nonzero().get();
                    if pid == init {
                        found = code;
                    } else if let (Some(h), Some(code)) = (self.health.as_mut(), code) {
                        h.on_exit(pid, code);
                    }
                }
                Ok(None) | Err(_) => return found,
            }
        }
    }

    /// Reads what clients sent: stdin bytes, the end of stdin, terminal sizes.
    fn serve_clients(&mut self, events: &[PollFlags], stdin_w: &mut Option<OwnedFd>) {
        let stdin_once = self.c.config.stdin_once;
        let mut gone = Vec::new();
        for (i, ev) in events.iter().enumerate() {
            if ev.is_empty() || i >= self.clients.len() {
                continue;
            }
            let client = &mut self.clients[i];
            let mut buf = [0u8; 4096];
            match client.stream.read(&mut buf) {
                Ok(0) => gone.push(i),
                Ok(n) => {
                    client.inbuf.extend_from_slice(&buf[..n]);
                    while let Some((kind, payload, used)) = take_frame(&client.inbuf) {
                        client.inbuf.drain(..used);
                        match kind {
                            protocol::STDIN => {
                                if let Some(w) = stdin_w.as_ref() {
                                    if write_all_fd(w, &payload).is_err() {
                                        *stdin_w = None;
                                    }
                                }
                            }
                            protocol::STDIN_EOF => {
                                // A terminal's stdin is the master itself: closing our copy
                                // would not end it; send the terminal's end-of-file (^D).
                                if let (Some(w), true) = (stdin_w.as_ref(), self.c.config.tty) {
                                    let _ = write_all_fd(w, &[4]);
                                } else {
                                    *stdin_w = None;
                                }
                            }
                            protocol::RESIZE => {
                                let text = String::from_utf8_lossy(&payload);
                                let mut it = text.split_whitespace().map(|v| v.parse::<u16>());
                                if let (Some(Ok(rows)), Some(Ok(cols))) = (it.next(), it.next()) {
                                    self.pending_size = Some((rows, cols));
                                    if let Some(m) = &self.master {
                                        super::console::resize(m, rows, cols);
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(_) => gone.push(i),
            }
        }
        for i in gone.into_iter().rev() {
            self.clients.remove(i);
            // docker closes the container's stdin when the attached client that fed it
            // leaves (StdinOnce).
            if stdin_once {
                *stdin_w = None;
            }
        }
    }

    /// Sends output to every attached client; a client that cannot keep up is dropped.
    fn broadcast(&mut self, stream: u8, data: &[u8]) {
        self.clients.retain_mut(|c| {
            let _ = c.stream.set_nonblocking(false);
            let _ = c.stream.set_write_timeout(Some(Duration::from_secs(5)));
            let ok = write_frame(&mut c.stream, stream, data).is_ok();
            let _ = c.stream.set_nonblocking(true);
            ok
        });
    }

    /// Tells attached clients the exit code, then lets them go.
    fn send_exit(&mut self, code: i32) {
        for mut c in self.clients.drain(..) {
            let _ = c.stream.set_nonblocking(false);
            let _ = c.stream.set_write_timeout(Some(Duration::from_secs(5)));
            let _ = write_frame(&mut c.stream, protocol::EXIT, code.to_string().as_bytes());
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Whether the kernel's OOM killer killed a process of the container (its cgroup's
    /// `oom_kill` counter), read before the runtime deletes the cgroup.
    fn oom_killed(&self) -> bool {
        let Ok(info) = skiff_runtime::cgroups::CgroupInfo::detect() else {
            return false;
        };
        let parent = if self.c.host_config.cgroup_parent.is_empty() {
            skiff_runtime::spec::DEFAULT_CGROUP_PARENT
        } else {
            self.c.host_config.cgroup_parent.as_str()
        };
        let path = format!("{}/{}", parent.trim_end_matches('/'), self.c.id);
        let Ok(dirs) = skiff_runtime::cgroups::container_dirs(&info, &path) else {
            return false;
        };
        dirs.iter().any(|d| {
            ["memory.oom_control", "memory.events"].iter().any(|f| {
                std::fs::read_to_string(d.join(f)).is_ok_and(|text| {
                    text.lines().any(|l| {
                        l.strip_prefix("oom_kill ")
                            .and_then(|n| n.trim().parse::<u64>().ok())
                            .is_some_and(|n| n > 0)
                    })
                })
            })
        })
    }
}

/// A failure to create or start, with docker's exit code: 127 for a command that does not
/// exist, 126 for one that cannot be executed, 125 for anything else.
fn failure(e: &skiff_runtime::Error) -> RunEnd {
    let code = e.exec_failure().map_or(125, |f| f.exit_code());
    RunEnd::Failed {
        code,
        message: e.to_string(),
    }
}

/// One whole frame at the start of `buf`: (kind, payload, bytes used).
fn take_frame(buf: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    if buf.len() < 8 {
        return None;
    }
    let len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
    if buf.len() < 8 + len {
        return None;
    }
    Some((buf[0], buf[8..8 + len].to_vec(), 8 + len))
}

fn write_all_fd(fd: &OwnedFd, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        match rustix::io::write(fd.as_fd(), data) {
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}
