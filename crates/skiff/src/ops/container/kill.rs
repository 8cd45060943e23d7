//! `skiff kill`: a signal to the container's init (docker's default SIGKILL), and the
//! signal names docker accepts.

use anyhow::Result;
use skiff_runtime::Runtime;

use super::reconcile;
use super::store::{Container, ContainerStore};
use crate::ops::engine::Engine;
use crate::ops::error::OpError;

const SIGNALS: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
];

/// Parses a signal as docker does: a number, or a name with or without `SIG`, any case;
/// `RTMIN+n` too.
pub fn parse_signal(s: &str) -> Result<i32, OpError> {
    let invalid = || OpError::invalid(format!("Invalid signal: {s}"));
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err(invalid())
        };
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(n) = name.strip_prefix("RTMIN+") {
        let n: i32 = n.parse().map_err(|_| invalid())?;
        return if (0..=30).contains(&n) {
            Ok(34 + n)
        } else {
            Err(invalid())
        };
    }
    if name == "RTMIN" {
        return Ok(34);
    }
    if name == "RTMAX" {
        return Ok(64);
    }
    SIGNALS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .ok_or_else(invalid)
}

/// Sends `signal` to the init of `c`, which must be running.
pub fn kill(engine: &Engine, store: &ContainerStore, c: &Container, signal: i32) -> Result<()> {
    let state = reconcile::state(engine.root(), store, c)?;
    if !state.running || state.restarting {
        return Err(OpError::conflict(format!(
            "Cannot kill container: {}: Container {} is not running",
            c.name, c.id
        ))
        .into());
    }
    // Like docker, a container killed by hand stays down whatever its restart policy.
    store.update_state(&c.id, |s| {
        s.manually_stopped = true;
        Ok(())
    })?;
    let rt = super::runtime::open(engine.root(), Some(&c.runtime))?;
    match rt.kill(&c.id, signal, false) {
        Ok(()) => Ok(()),
        // It ended between our check and the signal: nothing left to kill.
        Err(e)
            if matches!(
                e.kind(),
                skiff_runtime::ErrorKind::Conflict | skiff_runtime::ErrorKind::NotFound
            ) =>
        {
            Err(OpError::conflict(format!(
                "Cannot kill container: {}: Container {} is not running",
                c.name, c.id
            ))
            .into())
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_like_docker() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("term").unwrap(), 15);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("SIGRTMIN+3").unwrap(), 37);
        assert_eq!(
            parse_signal("NOPE").unwrap_err().message,
            "Invalid signal: NOPE"
        );
    }
}
