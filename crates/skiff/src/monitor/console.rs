//! The console socket for containers with a terminal (`-t`): the runtime connects to it and
//! sends the pty master (SCM_RIGHTS); the monitor then owns the master.

use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};

/// A listening console socket in the container directory.
pub struct ConsoleSocket {
    listener: UnixListener,
    /// The path to give the runtime (short enough for `sun_path`).
    pub path: PathBuf,
    full: PathBuf,
    _dir_fd: Option<OwnedFd>,
}

impl ConsoleSocket {
    /// Listens on `dir/name`.
    pub fn bind(dir: &Path, name: &str) -> Result<ConsoleSocket> {
        let full = dir.join(name);
        let _ = std::fs::remove_file(&full);
        let (dir_fd, short) = crate::ops::container::store::socket_path(dir, name)?;
        let listener = UnixListener::bind(&short)
            .with_context(|| format!("listening on {}", full.display()))?;
        // The runtime is another process: our /proc/self/fd path means nothing to it, so it
        // gets the same directory through our pid.
        let path = match &dir_fd {
            Some(_) => PathBuf::from(short.to_string_lossy().replacen(
                "/proc/self/",
                &format!("/proc/{}/", std::process::id()),
                1,
            )),
            None => short,
        };
        Ok(ConsoleSocket {
            listener,
            path,
            full,
            _dir_fd: dir_fd,
        })
    }

    /// Receives the pty master the runtime sent (after its `create` returned).
    pub fn receive_master(&self) -> Result<OwnedFd> {
        // The runtime has connected before its `create` returned; a short wait covers a
        // connection the kernel has not queued for accept yet.
        let ts = rustix::event::Timespec {
            tv_sec: 5,
            tv_nsec: 0,
        };
        let mut fds = [rustix::event::PollFd::new(
            &self.listener,
            rustix::event::PollFlags::IN,
        )];
        let _ = rustix::event::poll(&mut fds, Some(&ts));
        self.listener.set_nonblocking(true)?;
        let (stream, _) = self
            .listener
            .accept()
            .context("the runtime did not connect to the console socket")?;
        stream.set_nonblocking(false)?;
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut cmsg = RecvAncillaryBuffer::new(&mut space);
        let mut buf = [0u8; 256];
        let mut iov = [IoSliceMut::new(&mut buf)];
        recvmsg(stream.as_fd(), &mut iov, &mut cmsg, RecvFlags::CMSG_CLOEXEC)
            .context("receiving the pty master")?;
        for msg in cmsg.drain() {
            if let RecvAncillaryMessage::ScmRights(mut fds) = msg {
                if let Some(fd) = fds.next() {
                    return Ok(fd);
                }
            }
        }
        anyhow::bail!("the runtime sent no pty master on the console socket")
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.full);
    }
}

/// Sets the size of the terminal behind `master`.
pub fn resize(master: &OwnedFd, rows: u16, cols: u16) {
    let _ = rustix::termios::tcsetwinsize(
        master,
        rustix::termios::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    );
}
