//! `skiff exec` and `skiff attach`.

use std::io::{IsTerminal, Read, Write};
use std::os::fd::OwnedFd;

use anyhow::Result;
use clap::Args;

use super::container_attach::{pump, raw_mode, restore_terminal, terminal_size};
use super::GlobalOptions;
use crate::monitor::console::{resize, ConsoleSocket};
use crate::ops::container::exec::{exec, ExecOptions};
use crate::ops::container::ContainerStore;
use skiff_runtime::{Io, ProcessIo, Stdio};

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short, long)]
    pub detach: bool,
    /// Set environment variables
    #[arg(short, long = "env", value_name = "list")]
    pub env: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    pub interactive: bool,
    /// Give extended privileges to the command
    #[arg(long)]
    pub privileged: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short, long, value_name = "string")]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "string")]
    pub workdir: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(required = true, num_args = 1.., trailing_var_arg = true,
          allow_hyphen_values = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Do not attach STDIN
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long = "sig-proxy", value_name = "bool", default_value_t = true,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          require_equals = true)]
    pub sig_proxy: bool,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

pub fn run_attach(g: &GlobalOptions, a: AttachArgs) -> Result<()> {
    let engine = g.engine()?;
    let store = ContainerStore::open(engine.root())?;
    let c = store.get(&a.container)?;
    if c.config.tty && c.config.open_stdin && !a.no_stdin && !std::io::stdin().is_terminal() {
        eprintln!("the input device is not a TTY");
        std::process::exit(1);
    }
    let stream = crate::ops::container::attach::connect(&store, &c)?;
    let code = pump(
        &engine,
        &store,
        &c,
        stream,
        c.config.open_stdin && !a.no_stdin,
        a.sig_proxy,
    )?;
    std::process::exit(code)
}

pub fn run_exec(g: &GlobalOptions, a: ExecArgs) -> Result<()> {
    if a.tty && a.interactive && !a.detach && !std::io::stdin().is_terminal() {
        eprintln!("the input device is not a TTY");
        std::process::exit(1);
    }
    let engine = g.engine()?;
    let store = ContainerStore::open(engine.root())?;
    let c = store.get(&a.container)?;
    let env = a
        .env
        .iter()
        .filter_map(|e| super::container::env_entry(e))
        .collect();
    let opts = ExecOptions {
        command: a.command.clone(),
        env,
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        privileged: a.privileged,
        tty: a.tty,
    };
    // The process outlives the runtime's `exec`; as a subreaper we inherit it and can wait
    // for its exit code.
    skiff_runtime::sys::set_child_subreaper()?;
    let console = if a.tty && !a.detach {
        Some(ConsoleSocket::bind(
            &store.dir(&c.id),
            &format!("exec-{}.sock", std::process::id()),
        )?)
    } else {
        None
    };
    // Without a terminal, the process inherits the runtime's own stdio, so runc's stderr
    // is the process's: a failed exec would put runc's error line there before ours. The
    // process gets a pipe for stderr instead (as docker gives it), copied to ours only once
    // the exec has succeeded; after a failure the pipe holds just runc's line, dropped.
    let mut stderr_pipe = None;
    let io = match &console {
        Some(console) => ProcessIo {
            stdio: Stdio::null(),
            console_socket: Some(console.path.clone()),
            pid_file: None,
        },
        None if a.detach => ProcessIo::default(),
        None => {
            let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
            stderr_pipe = Some(read);
            ProcessIo {
                stdio: Stdio {
                    stdin: if a.interactive { Io::Inherit } else { Io::Null },
                    stdout: Io::Inherit,
                    stderr: Io::Fd(write),
                },
                ..ProcessIo::default()
            }
        }
    };
    let pid = match exec(&engine, &store, &c, &opts, io) {
        Ok(pid) => pid,
        Err(e) => {
            drop(stderr_pipe);
            let runtime_error = e
                .chain()
                .find_map(|c| c.downcast_ref::<skiff_runtime::Error>());
            if let Some((r, f)) = runtime_error.and_then(|r| Some((r, r.exec_failure()?))) {
                eprintln!(
                    "OCI runtime exec failed: exec failed: unable to start container process: {r}: unknown"
                );
                std::process::exit(f.exit_code());
            }
            return Err(e);
        }
    };
    if a.detach {
        return Ok(());
    }
    if let Some(console) = console {
        let master = console.receive_master()?;
        drop(console);
        proxy_terminal(master, a.interactive)?;
    }
    let relay = stderr_pipe.map(StderrRelay::start).transpose()?;
    let exit = skiff_runtime::sys::wait_pid(pid);
    if let Some(relay) = relay {
        relay.finish();
    }
    std::process::exit(exit?.code())
}

/// Copies an exec'd process's stderr pipe to our stderr until the process has exited.
struct StderrRelay {
    stop: OwnedFd,
    thread: std::thread::JoinHandle<()>,
}

impl StderrRelay {
    fn start(pipe: OwnedFd) -> Result<StderrRelay> {
        let (stop_read, stop) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let thread = std::thread::spawn(move || relay_stderr(&pipe, &stop_read));
        Ok(StderrRelay { stop, thread })
    }

    /// Called once the process has exited: copies what it left in the pipe and stops,
    /// without waiting for EOF, which a background child holding the pipe could delay forever.
    fn finish(self) {
        let _ = rustix::io::write(&self.stop, b"x");
        let _ = self.thread.join();
    }
}

fn relay_stderr(pipe: &OwnedFd, stop: &OwnedFd) {
    use rustix::event::{poll, PollFd, PollFlags};
    let mut buf = vec![0u8; 64 * 1024];
    let copy = |buf: &mut [u8]| -> bool {
        match rustix::io::read(pipe, &mut *buf) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(&buf[..n]);
                let _ = err.flush();
                true
            }
        }
    };
    loop {
        let mut fds = [
            PollFd::new(pipe, PollFlags::IN),
            PollFd::new(stop, PollFlags::IN),
        ];
        if let Err(e) = poll(&mut fds, None) {
            if e == rustix::io::Errno::INTR {
                continue;
            }
            return;
        }
        let (data, stopped) = (!fds[0].revents().is_empty(), !fds[1].revents().is_empty());
        if data && !copy(&mut buf) {
            return; // EOF: every writer is gone
        }
        if stopped {
            // Drain what is there now, then stop.
            if rustix::io::ioctl_fionbio(pipe, true).is_err() {
                return;
            }
            while copy(&mut buf) {}
            return;
        }
    }
}

/// Copies between our terminal and the exec's pty until the pty closes.
fn proxy_terminal(master: OwnedFd, interactive: bool) -> Result<()> {
    if let Some((rows, cols)) = terminal_size() {
        resize(&master, rows, cols);
    }
    if interactive {
        if std::io::stdin().is_terminal() {
            raw_mode();
        }
        let input = rustix::io::dup(&master)?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut stdin = std::io::stdin().lock();
            let mut out = std::fs::File::from(input);
            let mut prev = None;
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = out.write_all(&[4]);
                        return;
                    }
                    Ok(n) => {
                        for &b in &buf[..n] {
                            if prev == Some(0x10) && b == 0x11 {
                                restore_terminal();
                                eprintln!("\r\nread escape sequence");
                                std::process::exit(0);
                            }
                            prev = Some(b);
                        }
                        if out.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let sizer = rustix::io::dup(&master)?;
        if let Ok(mut signals) =
            signal_hook::iterator::Signals::new([signal_hook::consts::SIGWINCH])
        {
            std::thread::spawn(move || {
                for _ in signals.forever() {
                    if let Some((rows, cols)) = terminal_size() {
                        resize(&sizer, rows, cols);
                    }
                }
            });
        }
    }
    let mut pty = std::fs::File::from(master);
    let mut buf = [0u8; 8192];
    let stdout = std::io::stdout();
    loop {
        match pty.read(&mut buf) {
            // EIO: every process holding the terminal has exited.
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let mut out = stdout.lock();
                let _ = out.write_all(&buf[..n]);
                let _ = out.flush();
            }
        }
    }
    restore_terminal();
    Ok(())
}
