//! The client side of an attached container: its output to our stdout and stderr, our
//! stdin to it (with `-i`), and its exit code once it ends. With a terminal (`-t`) our own
//! terminal goes into raw mode, its size follows ours, and ctrl-p ctrl-q detaches.

use std::io::{IsTerminal, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

use anyhow::Result;

use crate::monitor::protocol::{self, read_frame, write_frame};
use crate::ops::container::{reconcile, Container, ContainerStore};
use crate::ops::engine::Engine;

/// docker's default detach keys: ctrl-p, ctrl-q.
const DETACH: [u8; 2] = [0x10, 0x11];

/// The terminal settings to put back when we leave raw mode.
static SAVED: Mutex<Option<rustix::termios::Termios>> = Mutex::new(None);

/// Puts stdin's terminal into raw mode (remembering how it was).
pub fn raw_mode() {
    let stdin = std::io::stdin();
    if let Ok(t) = rustix::termios::tcgetattr(&stdin) {
        let mut raw = t.clone();
        raw.make_raw();
        if rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw).is_ok() {
            if let Ok(mut saved) = SAVED.lock() {
                *saved = Some(t);
            }
        }
    }
}

/// Restores the terminal raw mode changed, if any.
pub fn restore_terminal() {
    if let Ok(mut saved) = SAVED.lock() {
        if let Some(t) = saved.take() {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin(),
                rustix::termios::OptionalActions::Now,
                &t,
            );
        }
    }
}

/// Our terminal's size, if stdout is one.
pub fn terminal_size() -> Option<(u16, u16)> {
    rustix::termios::tcgetwinsize(std::io::stdout())
        .ok()
        .filter(|w| w.ws_row > 0 && w.ws_col > 0)
        .map(|w| (w.ws_row, w.ws_col))
}

/// Sends our terminal size now, then again at each SIGWINCH.
fn follow_size(mut writer: UnixStream) {
    let send = |w: &mut UnixStream| match terminal_size() {
        Some((rows, cols)) => {
            write_frame(w, protocol::RESIZE, format!("{rows} {cols}").as_bytes()).is_ok()
        }
        None => true,
    };
    if !send(&mut writer) {
        return;
    }
    let Ok(mut signals) = signal_hook::iterator::Signals::new([signal_hook::consts::SIGWINCH])
    else {
        return;
    };
    for _ in signals.forever() {
        if !send(&mut writer) {
            return;
        }
    }
}

/// The signals docker's `--sig-proxy` forwards to the container (all but those about the
/// terminal or the process's children, and those that cannot be caught).
const PROXIED: [i32; 7] = [
    signal_hook::consts::SIGHUP,
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGQUIT,
    signal_hook::consts::SIGUSR1,
    signal_hook::consts::SIGUSR2,
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGALRM,
];

/// Forwards the signals we receive to the container's init, as docker's `--sig-proxy`.
fn proxy_signals(root: std::path::PathBuf, c: &Container) {
    let Ok(mut signals) = signal_hook::iterator::Signals::new(PROXIED) else {
        return;
    };
    let id = c.id.clone();
    let runtime = c.runtime.clone();
    std::thread::spawn(move || {
        let Ok(rt) = crate::ops::container::runtime::open(&root, Some(&runtime)) else {
            return;
        };
        for sig in signals.forever() {
            let _ = skiff_runtime::Runtime::kill(&rt, &id, sig, false);
        }
    });
}

/// Copies the container's streams until it ends; returns its exit code. With `stdin`, our
/// stdin is forwarded (and its end closes the container's stdin); with `sig_proxy`, the
/// signals we get go to the container.
pub fn pump(
    engine: &Engine,
    store: &ContainerStore,
    c: &Container,
    stream: UnixStream,
    stdin: bool,
    sig_proxy: bool,
) -> Result<i32> {
    let tty = c.config.tty;
    // docker proxies signals only to containers without a terminal (with one, ctrl-c is a
    // byte on the terminal).
    if sig_proxy && !tty {
        proxy_signals(engine.root().to_owned(), c);
    }
    if tty {
        let writer = stream.try_clone()?;
        std::thread::spawn(move || follow_size(writer));
        if stdin && std::io::stdin().is_terminal() {
            raw_mode();
        }
    }
    if stdin {
        let mut writer = stream.try_clone()?;
        std::thread::spawn(move || forward_stdin(&mut writer, tty));
    }
    let code = copy_output(engine, store, c, stream);
    restore_terminal();
    Ok(code)
}

fn forward_stdin(writer: &mut UnixStream, tty: bool) {
    let mut buf = [0u8; protocol::MAX_FRAME];
    let mut input = std::io::stdin().lock();
    let mut prev: Option<u8> = None;
    loop {
        match input.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = write_frame(writer, protocol::STDIN_EOF, &[]);
                return;
            }
            Ok(n) => {
                let data = &buf[..n];
                if tty {
                    for &b in data {
                        if prev == Some(DETACH[0]) && b == DETACH[1] {
                            restore_terminal();
                            eprintln!("\r\nread escape sequence");
                            std::process::exit(0);
                        }
                        prev = Some(b);
                    }
                }
                if write_frame(writer, protocol::STDIN, data).is_err() {
                    return;
                }
            }
        }
    }
}

fn copy_output(engine: &Engine, store: &ContainerStore, c: &Container, stream: UnixStream) -> i32 {
    // A container made by `create` or `run -d` has no attach flags: show both then.
    let none = !c.config.attach_stdout && !c.config.attach_stderr;
    let show_out = none || c.config.attach_stdout;
    let show_err = none || c.config.attach_stderr;
    let mut reader = std::io::BufReader::with_capacity(64 * 1024, stream);
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    loop {
        match read_frame(&mut reader) {
            // `-a` chose the streams to show (docker's Config.AttachStdout/AttachStderr).
            Ok(Some((protocol::STDOUT, _))) if !show_out => {}
            Ok(Some((protocol::STDERR, _))) if !show_err => {}
            Ok(Some((protocol::STDOUT, data))) => {
                let mut out = stdout.lock();
                // A closed stdout (`| head`) must not stop the container's supervision.
                let _ = out.write_all(&data);
                let _ = out.flush();
            }
            Ok(Some((protocol::STDERR, data))) => {
                let mut err = stderr.lock();
                let _ = err.write_all(&data);
                let _ = err.flush();
            }
            Ok(Some((protocol::EXIT, data))) => {
                return String::from_utf8_lossy(&data)
                    .trim()
                    .parse()
                    .unwrap_or(reconcile::UNKNOWN_EXIT);
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => {
                // The monitor went away without telling: what does the state say?
                return crate::ops::container::wait::wait_stopped(engine, store, c, None)
                    .ok()
                    .flatten()
                    .map_or(reconcile::UNKNOWN_EXIT, |s| s.exit_code);
            }
        }
    }
}
