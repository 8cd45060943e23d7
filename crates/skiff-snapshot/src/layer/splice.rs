//! Incremental layers: a new overlay upper directory made of hard links to the files of an
//! earlier (committed, so never written again) upper directory, and the new layer's tar
//! spliced from the earlier layer's bytes with fresh entries only for the files that were
//! replaced.
//!
//! The spliced tar is byte for byte what [`write_layer`](super::write_layer) writes for the
//! new upper directory, provided the earlier tar is `write_layer`'s output for the earlier
//! upper directory with the same options: linked files share the inode (so the stat the
//! headers come from), directories get the earlier times back after the replacements
//! ([`LinkedTree::restore_times`]), the order of the entries does not change since their
//! names do not, and each inode still appears once in the tree, so no hardlink entry
//! appears that the earlier tar did not have.

use std::collections::HashSet;
use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Timespec, Timestamps};

use super::diff::{DiffOptions, DiffStats, EntryWriter};
use super::error::{io_err, LayerError};

/// The directories [`link_tree`] made, with the times of the directories they copy.
#[derive(Debug, Default)]
pub struct LinkedTree {
    dirs: Vec<(PathBuf, Timestamps)>,
}

impl LinkedTree {
    /// Gives every directory the access and modification times of the one it copies (creating
    /// or replacing files in a directory changed its mtime).
    pub fn restore_times(&self) -> Result<(), LayerError> {
        for (dir, times) in self.dirs.iter().rev() {
            rustix::fs::utimensat(rustix::fs::CWD, dir, times, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| io_err(dir, "set times")(e.into()))?;
        }
        Ok(())
    }
}

fn times_of(meta: &fs::Metadata) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: meta.atime(),
            tv_nsec: meta.atime_nsec() as _,
        },
        last_modification: Timespec {
            tv_sec: meta.mtime(),
            tv_nsec: meta.mtime_nsec() as _,
        },
    }
}

/// Makes the empty directory `new` a copy of the tree `old`: directories are created with
/// the same owner, mode and xattrs (overlayfs's own included: an opaque directory stays
/// opaque), everything else is hard-linked. Nothing under `old` is opened or changed.
/// Call [`LinkedTree::restore_times`] once the files that differ have been replaced.
pub fn link_tree(old: &Path, new: &Path) -> Result<LinkedTree, LayerError> {
    let mut tree = LinkedTree::default();
    let meta = fs::symlink_metadata(old).map_err(io_err(old, "lstat"))?;
    copy_dir_attrs(old, new, &meta)?;
    tree.dirs.push((new.to_owned(), times_of(&meta)));
    let mut jobs = Vec::new();
    make_dirs(old, new, &mut tree, &mut jobs)?;
    // The links are most of the work (one linkat per file, ~10 µs each): made relative to
    // open directories (no path walk per file), on two threads.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let total: usize = jobs.iter().map(|j| j.names.len()).sum();
    if threads < 2 || total < 256 {
        return jobs.iter().try_for_each(link_job).map(|()| tree);
    }
    let per = total.div_ceil(threads);
    let mut groups: Vec<Vec<&LinkJob>> = vec![Vec::new()];
    let mut in_group = 0;
    for job in &jobs {
        if in_group >= per {
            groups.push(Vec::new());
            in_group = 0;
        }
        in_group += job.names.len();
        if let Some(g) = groups.last_mut() {
            g.push(job);
        }
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = groups
            .into_iter()
            .map(|group| scope.spawn(move || group.into_iter().try_for_each(link_job)))
            .collect();
        for h in handles {
            h.join().map_err(|_| LayerError::Write {
                source: io::Error::other("a linking thread panicked"),
            })??;
        }
        Ok::<(), LayerError>(())
    })?;
    Ok(tree)
}

/// The non-directories of one directory, to link from `from` into `to`.
struct LinkJob {
    from: PathBuf,
    to: PathBuf,
    names: Vec<std::ffi::OsString>,
}

fn link_job(job: &LinkJob) -> Result<(), LayerError> {
    if job.names.is_empty() {
        return Ok(());
    }
    let flags =
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC;
    let from = rustix::fs::open(&job.from, flags, rustix::fs::Mode::empty())
        .map_err(|e| io_err(&job.from, "open")(e.into()))?;
    let to = rustix::fs::open(&job.to, flags, rustix::fs::Mode::empty())
        .map_err(|e| io_err(&job.to, "open")(e.into()))?;
    for name in &job.names {
        // Without AT_SYMLINK_FOLLOW: a symlink is linked itself.
        rustix::fs::linkat(
            &from,
            name.as_os_str(),
            &to,
            name.as_os_str(),
            AtFlags::empty(),
        )
        .map_err(|e| io_err(&job.to.join(name), "link")(e.into()))?;
    }
    Ok(())
}

/// Creates the directories of `old` under `new` and lists the rest to link.
fn make_dirs(
    old: &Path,
    new: &Path,
    tree: &mut LinkedTree,
    jobs: &mut Vec<LinkJob>,
) -> Result<(), LayerError> {
    let mut job = LinkJob {
        from: old.to_owned(),
        to: new.to_owned(),
        names: Vec::new(),
    };
    let mut subdirs = Vec::new();
    for entry in fs::read_dir(old).map_err(io_err(old, "read directory"))? {
        let entry = entry.map_err(io_err(old, "read directory"))?;
        let ft = entry.file_type().map_err(io_err(&entry.path(), "lstat"))?;
        if ft.is_dir() {
            subdirs.push(entry.file_name());
        } else {
            job.names.push(entry.file_name());
        }
    }
    jobs.push(job);
    for name in subdirs {
        let from = old.join(&name);
        let to = new.join(&name);
        let meta = fs::symlink_metadata(&from).map_err(io_err(&from, "lstat"))?;
        fs::create_dir(&to).map_err(io_err(&to, "mkdir"))?;
        copy_dir_attrs(&from, &to, &meta)?;
        tree.dirs.push((to.clone(), times_of(&meta)));
        make_dirs(&from, &to, tree, jobs)?;
    }
    Ok(())
}

fn copy_dir_attrs(from: &Path, to: &Path, meta: &fs::Metadata) -> Result<(), LayerError> {
    rustix::fs::chown(
        to,
        Some(rustix::fs::Uid::from_raw(meta.uid())),
        Some(rustix::fs::Gid::from_raw(meta.gid())),
    )
    .map_err(|e| io_err(to, "chown")(e.into()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(io_err(to, "chmod"))?;
    let names = match xattr::list(from) {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(()),
        Err(e) => return Err(io_err(from, "list xattrs")(e)),
    };
    for name in names {
        if let Some(value) = xattr::get(from, &name).map_err(io_err(from, "read xattr"))? {
            xattr::set(to, &name, &value).map_err(io_err(to, "set xattr"))?;
        }
    }
    Ok(())
}

fn bad(msg: String) -> LayerError {
    LayerError::Read {
        after: None,
        source: io::Error::new(io::ErrorKind::InvalidData, msg),
    }
}

const BLOCK: usize = 512;

/// What [`splice_layer`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpliceStats {
    /// Bytes of tar.
    pub tar_size: u64,
    /// The layer's size as docker counts it: regular files by their size, symlinks by the
    /// length of their target (what `lstat` says), everything else nothing.
    pub content_size: u64,
}

/// Writes the layer of `upper` to `out` from `old`, the uncompressed layer tar `write_layer`
/// wrote (with the same `opts`) for the tree `upper` was linked from: every entry is copied
/// unchanged except those named in `replace` (relative paths, files or symlinks), which are
/// written afresh from `upper`. Fails when `old` is not such a tar or lacks one of them.
pub fn splice_layer(
    old: impl Read,
    upper: &Path,
    replace: &HashSet<Vec<u8>>,
    out: impl Write,
    opts: &DiffOptions,
) -> Result<SpliceStats, LayerError> {
    let read_err = |source: io::Error| LayerError::Read {
        after: None,
        source,
    };
    let mut r = BufReader::with_capacity(1 << 20, old);
    let mut w = EntryWriter::new(out, opts);
    let mut found = 0usize;
    let mut content_size = 0u64;
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let mut raw = vec![0u8; BLOCK];
        r.read_exact(&mut raw).map_err(read_err)?;
        if raw.iter().all(|&b| b == 0) {
            break;
        }
        check_ours(&raw)?;
        let (mut pax_path, mut pax_size, mut pax_link) = (None, None, None);
        if raw[156] == b'x' {
            let len = octal(&raw[124..136])? as usize;
            let mut records = vec![0u8; len.div_ceil(BLOCK) * BLOCK];
            r.read_exact(&mut records).map_err(read_err)?;
            for (k, v) in pax_records(&records[..len])? {
                match k {
                    b"path" => pax_path = Some(v.to_vec()),
                    b"linkpath" => pax_link = Some(v.len() as u64),
                    b"size" => {
                        let s = std::str::from_utf8(v)
                            .ok()
                            .and_then(|s| s.parse::<u64>().ok())
                            .ok_or_else(|| bad("bad PAX size".into()))?;
                        pax_size = Some(s);
                    }
                    _ => {}
                }
            }
            raw.extend_from_slice(&records);
            let mut next = [0u8; BLOCK];
            r.read_exact(&mut next).map_err(read_err)?;
            check_ours(&next)?;
            if next[156] == b'x' {
                return Err(bad("two PAX headers in a row".into()));
            }
            raw.extend_from_slice(&next);
        }
        let header = &raw[raw.len() - BLOCK..];
        let kind = header[156];
        if matches!(kind, b'g' | b'L' | b'K') {
            return Err(bad(format!("entry type {:?} is not spliced", kind as char)));
        }
        let name = match pax_path {
            Some(p) => p,
            None => ustar_name(header),
        };
        let size = match pax_size {
            Some(s) => s,
            None => octal(&header[124..136])?,
        };
        let data = size.div_ceil(BLOCK as u64) * BLOCK as u64;
        let mut trimmed = name.as_slice();
        while let Some(t) = trimmed.strip_suffix(b"/") {
            trimmed = t;
        }
        if replace.contains(trimmed) {
            if !matches!(kind, b'0' | b'\0' | b'2') {
                return Err(bad(format!(
                    "{}: only files and symlinks are replaced",
                    String::from_utf8_lossy(trimmed)
                )));
            }
            io::copy(&mut (&mut r).take(data), &mut io::sink()).map_err(read_err)?;
            let abs = upper.join(std::ffi::OsStr::from_bytes(trimmed));
            w.write_path(trimmed, &abs)?;
            content_size += fs::symlink_metadata(&abs)
                .map_err(io_err(&abs, "lstat"))?
                .len();
            found += 1;
            continue;
        }
        content_size += match kind {
            b'0' | b'\0' | b'7' => size,
            b'2' => pax_link.unwrap_or_else(|| ustar_field(&header[157..257]).len() as u64),
            _ => 0,
        };
        w.write_raw(&raw, 1)?;
        let mut left = data;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            r.read_exact(&mut chunk[..n]).map_err(read_err)?;
            w.write_raw(&chunk[..n], 0)?;
            left -= n as u64;
        }
    }
    if found != replace.len() {
        return Err(bad(format!(
            "{} of the {} replaced entries are not in the earlier layer",
            replace.len() - found,
            replace.len()
        )));
    }
    let stats: DiffStats = w.finish()?;
    Ok(SpliceStats {
        tar_size: stats.size,
        content_size,
    })
}

/// Whether a header block is one `write_layer`'s writer makes: POSIX ustar with empty user and
/// group names. Anything else (GNU tars, names) would not come out the same when rewritten.
fn check_ours(h: &[u8]) -> Result<(), LayerError> {
    if &h[257..263] != b"ustar\0" || &h[263..265] != b"00" {
        return Err(bad("not a POSIX ustar header".into()));
    }
    if h[265..329].iter().any(|&b| b != 0) {
        return Err(bad("header has user or group names".into()));
    }
    Ok(())
}

fn ustar_field(f: &[u8]) -> &[u8] {
    let end = f.iter().position(|&b| b == 0).unwrap_or(f.len());
    &f[..end]
}

fn ustar_name(h: &[u8]) -> Vec<u8> {
    let name = ustar_field(&h[..100]).to_vec();
    let prefix = ustar_field(&h[345..500]).to_vec();
    if prefix.is_empty() {
        name
    } else {
        [prefix.as_slice(), b"/", name.as_slice()].concat()
    }
}

fn octal(f: &[u8]) -> Result<u64, LayerError> {
    if f.first().is_some_and(|b| b & 0x80 != 0) {
        return Err(bad("base-256 numbers are not spliced".into()));
    }
    let s: Vec<u8> = f.iter().copied().filter(|&b| b != 0 && b != b' ').collect();
    if s.is_empty() {
        return Ok(0);
    }
    std::str::from_utf8(&s)
        .ok()
        .and_then(|s| u64::from_str_radix(s, 8).ok())
        .ok_or_else(|| bad("bad octal number in a header".into()))
}

/// One PAX record: key and value.
type PaxRecord<'a> = (&'a [u8], &'a [u8]);

/// The `LEN key=value\n` records of a PAX header.
fn pax_records(mut b: &[u8]) -> Result<Vec<PaxRecord<'_>>, LayerError> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let sp = b
            .iter()
            .position(|&c| c == b' ')
            .ok_or_else(|| bad("bad PAX record".into()))?;
        let len: usize = std::str::from_utf8(&b[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&l: &usize| l > sp + 1 && l <= b.len())
            .ok_or_else(|| bad("bad PAX record length".into()))?;
        let rec = &b[sp + 1..len];
        let rec = rec.strip_suffix(b"\n").unwrap_or(rec);
        let eq = rec
            .iter()
            .position(|&c| c == b'=')
            .ok_or_else(|| bad("bad PAX record".into()))?;
        out.push((&rec[..eq], &rec[eq + 1..]));
        b = &b[len..];
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::{write_layer, DiffSource};
    use super::*;

    fn layer(upper: &Path, epoch: Option<i64>) -> Vec<u8> {
        let mut out = Vec::new();
        write_layer(
            DiffSource::OverlayUpper { upper },
            &mut out,
            &DiffOptions {
                source_date_epoch: epoch,
            },
        )
        .unwrap();
        out
    }

    fn set_mtime(p: &Path, secs: i64) {
        let t = Timespec {
            tv_sec: secs,
            tv_nsec: 0,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            p,
            &Timestamps {
                last_access: t,
                last_modification: t,
            },
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }

    #[test]
    fn spliced_layer_is_the_layer_of_the_new_tree() {
        for epoch in [None, Some(1_500_000_000)] {
            let dir = tempfile::tempdir().unwrap();
            let old = dir.path().join("old");
            let long = "l".repeat(120);
            fs::create_dir_all(old.join("tree/a")).unwrap();
            fs::create_dir_all(old.join(format!("tree/{long}"))).unwrap();
            for (i, name) in ["tree/a/x", "tree/a/y", "tree/b", "tree/a/z"]
                .iter()
                .enumerate()
            {
                fs::write(old.join(name), vec![b'0' + i as u8; 700 * (i + 1)]).unwrap();
                set_mtime(&old.join(name), 1_600_000_000 + i as i64);
            }
            fs::write(old.join(format!("tree/{long}/{long}")), b"long").unwrap();
            // Enough files for the links to be made on several threads.
            for d in 0..4 {
                fs::create_dir_all(old.join(format!("many/{d}"))).unwrap();
                for f in 0..100 {
                    fs::write(old.join(format!("many/{d}/{f}")), b"").unwrap();
                }
            }
            std::os::unix::fs::symlink("a/x", old.join("tree/s")).unwrap();
            fs::set_permissions(old.join("tree/a"), fs::Permissions::from_mode(0o750)).unwrap();
            set_mtime(&old.join("tree/a"), 1_400_000_000);
            set_mtime(&old.join("tree"), 1_400_000_001);
            let old_tar = layer(&old, epoch);

            let new = dir.path().join("new");
            fs::create_dir(&new).unwrap();
            let linked = link_tree(&old, &new).unwrap();
            // Replace a file (new content, mode and mtime), the long-named one and the symlink.
            let x = new.join("tree/a/x");
            fs::remove_file(&x).unwrap();
            fs::write(&x, b"edited").unwrap();
            fs::set_permissions(&x, fs::Permissions::from_mode(0o600)).unwrap();
            set_mtime(&x, 1_700_000_000);
            let l = new.join(format!("tree/{long}/{long}"));
            fs::remove_file(&l).unwrap();
            fs::write(&l, vec![b'L'; 5000]).unwrap();
            let s = new.join("tree/s");
            fs::remove_file(&s).unwrap();
            std::os::unix::fs::symlink("b", &s).unwrap();
            linked.restore_times().unwrap();

            let want = layer(&new, epoch);
            let replace: HashSet<Vec<u8>> = [
                b"tree/a/x".to_vec(),
                format!("tree/{long}/{long}").into_bytes(),
                b"tree/s".to_vec(),
            ]
            .into_iter()
            .collect();
            let mut got = Vec::new();
            let stats = splice_layer(
                old_tar.as_slice(),
                &new,
                &replace,
                &mut got,
                &DiffOptions {
                    source_date_epoch: epoch,
                },
            )
            .unwrap();
            assert_eq!(stats.tar_size, want.len() as u64);
            // Regular files and symlink targets of the new tree.
            let long_size = 5000;
            let files = 6 + 700 * 2 + 700 * 3 + 700 * 4 + long_size + 1;
            assert_eq!(stats.content_size, files);
            assert!(got == want, "spliced tar differs (epoch {epoch:?})");
            // The earlier tree is untouched.
            assert_eq!(fs::read(old.join("tree/a/x")).unwrap(), vec![b'0'; 700]);
            assert_eq!(layer(&old, epoch), old_tar);

            // A name that is not in the earlier layer is refused.
            let missing: HashSet<Vec<u8>> = [b"tree/nope".to_vec()].into_iter().collect();
            assert!(splice_layer(
                old_tar.as_slice(),
                &new,
                &missing,
                io::sink(),
                &DiffOptions::default()
            )
            .is_err());
        }
    }
}
