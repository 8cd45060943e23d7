//! Tolerating tars that stop without their end-of-archive blocks.
//!
//! umoci 0.4's `insert` ends a layer right after the last file's data (no padding, no two zero
//! blocks; umoci issue #436). Go's archive/tar, GNU tar, docker and containerd all read such
//! layers, so skiff does too: the parser is fed the missing padding and end blocks. The
//! padding is added after hashing, so a diff ID is always that of the bytes as received.

use std::io::{self, Read};

/// Supplies the padding to the next 512-byte boundary and two zero blocks when `inner` ends.
pub struct TarEofPadding<R> {
    inner: R,
    pos: u64,
    padding_left: Option<u64>,
}

impl<R: Read> TarEofPadding<R> {
    pub fn new(inner: R) -> Self {
        TarEofPadding {
            inner,
            pos: 0,
            padding_left: None,
        }
    }
}

impl<R: Read> Read for TarEofPadding<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if let Some(left) = self.padding_left.as_mut() {
            let n = (*left).min(buf.len() as u64) as usize;
            buf[..n].fill(0);
            *left -= n as u64;
            return Ok(n);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            self.padding_left = Some((512 - self.pos % 512) % 512 + 1024);
            return self.read(buf);
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_to_a_block_and_adds_two_zero_blocks() {
        let mut out = Vec::new();
        TarEofPadding::new(&[1u8; 700][..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out.len(), 1024 + 1024);
        assert!(out[700..].iter().all(|b| *b == 0));
    }

    #[test]
    fn a_complete_tar_gets_only_the_extra_end_blocks() {
        let mut out = Vec::new();
        TarEofPadding::new(&[0u8; 1024][..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out.len(), 2048);
    }
}
