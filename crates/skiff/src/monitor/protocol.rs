//! The attach protocol between the monitor and the commands that attach to a container
//! (`run` without `-d`, `attach`, `start -a`), over the unix socket
//! `containers/<id>/attach.sock`, and the start handshake over the monitor's stdout.
//!
//! Both directions carry frames shaped like docker's multiplexed attach stream: an 8-byte
//! header (`kind`, three zero bytes, big-endian `u32` length) and the payload.

use std::io::{self, Read, Write};

/// Monitor -> client: bytes the container wrote on its stdout (or its pty).
pub const STDOUT: u8 = 1;
/// Monitor -> client: bytes the container wrote on its stderr.
pub const STDERR: u8 = 2;
/// Monitor -> client: the container's process ended; payload is the exit code in decimal.
pub const EXIT: u8 = 3;
/// Client -> monitor: bytes for the container's stdin.
pub const STDIN: u8 = 0;
/// Client -> monitor: the client's stdin reached its end.
pub const STDIN_EOF: u8 = 4;
/// Client -> monitor: the client's terminal size; payload `"<rows> <cols>"`.
pub const RESIZE: u8 = 5;

/// Largest payload of one frame.
pub const MAX_FRAME: usize = 32 * 1024;

/// Writes one frame.
pub fn write_frame(w: &mut impl Write, kind: u8, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    let mut header = [0u8; 8];
    header[0] = kind;
    header[4..].copy_from_slice(&len.to_be_bytes());
    w.write_all(&header)?;
    w.write_all(payload)
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut header = [0u8; 8];
    let mut got = 0;
    while got < header.len() {
        match r.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    if len > 16 * MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("attach frame of {len} bytes"),
        ));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok(Some((header[0], payload)))
}

/// Handshake lines the monitor writes on its stdout for the command that started it.
pub const READY: &str = "ready";
pub const STARTED: &str = "started";
/// `error <exit code> <message>`.
pub const ERROR: &str = "error";

/// Parses a handshake line.
pub enum Handshake {
    Ready,
    Started,
    Error { code: i32, message: String },
}

pub fn parse_handshake(line: &str) -> Option<Handshake> {
    let line = line.trim_end_matches('\n');
    if line == READY {
        return Some(Handshake::Ready);
    }
    if line == STARTED {
        return Some(Handshake::Started);
    }
    let rest = line.strip_prefix(ERROR)?.strip_prefix(' ')?;
    let (code, message) = rest.split_once(' ').unwrap_or((rest, ""));
    Some(Handshake::Error {
        code: code.parse().ok()?,
        // Newlines in the message were escaped so that it fits one line.
        message: message.replace("\\n", "\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        write_frame(&mut buf, STDOUT, b"hello").unwrap();
        write_frame(&mut buf, EXIT, b"3").unwrap();
        let mut r = &buf[..];
        assert_eq!(
            read_frame(&mut r).unwrap(),
            Some((STDOUT, b"hello".to_vec()))
        );
        assert_eq!(read_frame(&mut r).unwrap(), Some((EXIT, b"3".to_vec())));
        assert_eq!(read_frame(&mut r).unwrap(), None);
    }

    #[test]
    fn handshake_lines_parse() {
        assert!(matches!(parse_handshake("ready\n"), Some(Handshake::Ready)));
        match parse_handshake("error 127 exec: \"x\": not found") {
            Some(Handshake::Error { code, message }) => {
                assert_eq!(code, 127);
                assert_eq!(message, "exec: \"x\": not found");
            }
            _ => panic!(),
        }
    }
}
