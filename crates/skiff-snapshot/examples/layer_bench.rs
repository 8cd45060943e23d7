//! The skiff side of the hand-run benchmarks in `bench/` (`bench/layer.sh`, `bench/hash.sh`):
//! the layer writer, the layer applier and the content hasher, each driven exactly as skiff
//! drives them, with nothing else around them.
//!
//! ```text
//! layer_bench pack DIR OUT --compression gzip|zstd|none   DIR -> compressed layer tar
//! layer_bench unpack TAR DIR                              layer blob -> DIR (created if missing)
//! layer_bench hash FILE                                   sha256 of FILE
//! ```
//!
//! Build with `cargo build --release -p skiff-snapshot --example layer_bench`.

use std::error::Error;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use skiff_image::Digest;
use skiff_snapshot::layer::{
    apply_layer, compressing_writer, write_layer, ApplyOptions, Compression, DiffOptions,
    DiffSource, WhiteoutMode,
};

const USAGE: &str = "usage:
  layer_bench pack DIR OUT --compression gzip|zstd|none
  layer_bench unpack TAR DIR
  layer_bench hash FILE";

/// Buffer between the compressor and the output file, and in front of the hashed file.
const IO_BUFFER: usize = 1 << 20;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("layer_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let Some((cmd, rest)) = args.split_first() else {
        return Err(USAGE.into());
    };
    match cmd.as_str() {
        "pack" => {
            let (positional, compression) = pack_args(rest)?;
            let [dir, out] = positional.as_slice() else {
                return Err(format!("pack takes DIR and OUT\n{USAGE}").into());
            };
            pack(Path::new(dir), Path::new(out), compression)
        }
        "unpack" => match rest {
            [tar, dir] => unpack(Path::new(tar), Path::new(dir)),
            _ => Err(format!("unpack takes TAR and DIR\n{USAGE}").into()),
        },
        "hash" => match rest {
            [file] => hash(Path::new(file)),
            _ => Err(format!("hash takes FILE\n{USAGE}").into()),
        },
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {other:?}\n{USAGE}").into()),
    }
}

/// Splits `pack`'s arguments into positionals and the `--compression` value (default gzip).
fn pack_args(args: &[String]) -> Result<(Vec<&str>, Compression)> {
    let mut positional = Vec::new();
    let mut compression = Compression::Gzip;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let value = if a == "--compression" || a == "-c" {
            Some(
                it.next()
                    .ok_or("--compression needs a value (gzip, zstd or none)")?
                    .as_str(),
            )
        } else {
            a.strip_prefix("--compression=")
        };
        match value {
            Some(v) => compression = parse_compression(v)?,
            None => positional.push(a.as_str()),
        }
    }
    Ok((positional, compression))
}

fn parse_compression(s: &str) -> Result<Compression> {
    match s {
        "gzip" | "gz" => Ok(Compression::Gzip),
        "zstd" | "zst" => Ok(Compression::Zstd),
        "none" => Ok(Compression::None),
        other => Err(format!("unknown compression {other:?} (expected gzip, zstd or none)").into()),
    }
}

/// DIR -> compressed layer tar, the way skiff writes a layer: every entry of DIR (no lower
/// tree), through the all-cores compressor.
fn pack(dir: &Path, out: &Path, compression: Compression) -> Result<()> {
    if !dir.is_dir() {
        return Err(format!("{}: not a directory", dir.display()).into());
    }
    let file = File::create(out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let mut w = compressing_writer(BufWriter::with_capacity(IO_BUFFER, file), compression)?;
    let stats = write_layer(
        DiffSource::Compare {
            lower: None,
            upper: dir,
        },
        &mut w,
        &DiffOptions::default(),
    )?;
    w.finish()
        .map_err(|e| format!("writing {}: {e}", out.display()))?;
    let written = fs::metadata(out)?.len();
    eprintln!(
        "packed {} entries, {} tar bytes, {written} {compression} bytes",
        stats.entries, stats.size
    );
    Ok(())
}

/// Layer blob -> DIR, the way the vfs driver applies a layer (whiteouts delete).
fn unpack(tar: &Path, dir: &Path) -> Result<()> {
    let file = File::open(tar).map_err(|e| format!("opening {}: {e}", tar.display()))?;
    fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let stats = apply_layer(
        file,
        dir,
        &ApplyOptions {
            whiteouts: WhiteoutMode::Remove,
        },
    )?;
    eprintln!(
        "unpacked {} entries, {} tar bytes ({}), diff_id {}",
        stats.entries, stats.size, stats.compression, stats.diff_id
    );
    Ok(())
}

/// sha256 of FILE through skiff's hasher, printed as `sha256sum` prints it.
fn hash(file: &Path) -> Result<()> {
    let f = File::open(file).map_err(|e| format!("opening {}: {e}", file.display()))?;
    let (digest, _len) = Digest::of_reader(BufReader::with_capacity(IO_BUFFER, f))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}  {}", digest.hex(), file.display())?;
    Ok(())
}
