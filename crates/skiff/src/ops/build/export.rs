//! `-o type=local|tar,dest=...`: the final tree of a build written out.

use super::*;

/// `-o type=local|tar,dest=...`.
pub enum ExportKind {
    Local,
    Tar,
}

pub struct Export {
    pub kind: ExportKind,
    /// A directory (local), a file or `-` for stdout (tar).
    pub dest: PathBuf,
}

/// Writes the final tree of `layers` out as a directory or a tar.
pub fn export(engine: &Engine, layers: &[LayerRecord], to: &Export) -> Result<()> {
    use skiff_snapshot::layer::{
        apply_layer, write_layer, ApplyOptions, DiffOptions, DiffSource, WhiteoutMode,
    };
    let view = layer::View::new(engine, layers)?;
    let source = DiffSource::Compare {
        lower: None,
        upper: view.path(),
    };
    match to.kind {
        ExportKind::Tar => {
            if to.dest.as_os_str() == "-" {
                let stdout = std::io::stdout();
                let mut lock = stdout.lock();
                write_layer(source, &mut lock, &DiffOptions::default())?;
            } else {
                let f = File::create(&to.dest)
                    .with_context(|| format!("creating {}", to.dest.display()))?;
                let mut w = std::io::BufWriter::new(f);
                write_layer(source, &mut w, &DiffOptions::default())?;
                std::io::Write::flush(&mut w)?;
            }
        }
        ExportKind::Local => {
            fs::create_dir_all(&to.dest)
                .with_context(|| format!("creating {}", to.dest.display()))?;
            let tmp = engine
                .tmp_dir()?
                .join(format!("export-{}.tar", random_hex(12)));
            {
                let f = File::create(&tmp)?;
                let mut w = std::io::BufWriter::new(f);
                write_layer(source, &mut w, &DiffOptions::default())?;
                std::io::Write::flush(&mut w)?;
            }
            let applied = apply_layer(
                std::io::BufReader::new(File::open(&tmp)?),
                &to.dest,
                &ApplyOptions {
                    whiteouts: WhiteoutMode::Remove,
                },
            );
            let _ = fs::remove_file(&tmp);
            applied?;
        }
    }
    Ok(())
}
