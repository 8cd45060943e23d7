//! The per-container monitor: `skiff __monitor ID`, skiff re-executed by `start`, detached
//! from the command that started it (its own session, stdio on /dev/null once started).
//!
//! It becomes a child subreaper, creates the container through the OCI runtime with pipes
//! (or a pty) for its stdio, starts it, writes what it prints to the json-file log and to
//! attached clients (`attach.sock`, see [`protocol`]), waits for its init, records the exit
//! code and time atomically, applies the restart policy with docker's backoff, and finally
//! deletes the runtime's state and unmounts the rootfs (and removes the container for
//! `--rm`).
//!
//! It must stay small (it lives as long as the container): one thread, `poll(2)` over a few
//! descriptors, no database until the very end, buffers of a few KiB.

pub mod console;
mod health;
pub mod jsonlog;
pub mod protocol;
mod run;

use std::path::Path;

/// Recognizes the monitor's own command line (`skiff --root DIR __monitor ID [--attach]`,
/// exactly as `start` spawns it), so that `main` can run the monitor before parsing anything
/// else: the monitor lives as long as its container, and every page of the (large) command
/// line parser it never touches is memory it does not hold.
pub fn monitor_args(args: &[std::ffi::OsString]) -> Option<(std::path::PathBuf, String, bool)> {
    match args {
        [_, root_flag, root, cmd, id, rest @ ..]
            if root_flag == "--root" && cmd == "__monitor" && rest.len() <= 1 =>
        {
            let attach = match rest {
                [] => false,
                [flag] if flag == "--attach" => true,
                _ => return None,
            };
            Some((root.into(), id.to_str()?.to_owned(), attach))
        }
        _ => None,
    }
}

/// Entry point of `skiff __monitor`; returns the process exit code.
pub fn main(root: &Path, id: &str, wait_attach: bool) -> i32 {
    match run::monitor(root, id, wait_attach) {
        Ok(()) => 0,
        Err(e) => {
            // stderr is the container's monitor.log.
            eprintln!("skiff monitor {id}: {e:#}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_monitor_command_line_is_taken() {
        let args = |v: &[&str]| -> Vec<std::ffi::OsString> { v.iter().map(Into::into).collect() };
        let got = monitor_args(&args(&[
            "skiff",
            "--root",
            "/r",
            "__monitor",
            "abc",
            "--attach",
        ]));
        assert_eq!(got, Some(("/r".into(), "abc".to_owned(), true)));
        let got = monitor_args(&args(&["skiff", "--root", "/r", "__monitor", "abc"]));
        assert_eq!(got, Some(("/r".into(), "abc".to_owned(), false)));
        assert!(monitor_args(&args(&["skiff", "--root", "/r", "ps"])).is_none());
        assert!(monitor_args(&args(&["skiff", "--root", "/r", "__monitor", "a", "-x"])).is_none());
    }
}
