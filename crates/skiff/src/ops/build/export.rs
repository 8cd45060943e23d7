//! `-o type=local|tar|oci|docker,dest=...`: the result of a build written out, as its
//! final tree (a directory or a tar) or as an image archive.

use super::*;

/// `-o type=...`.
pub enum ExportKind {
    /// The final tree in a directory.
    Local,
    /// The final tree as a tar.
    Tar,
    /// The image as an OCI image layout in a tar.
    Oci,
    /// The image as a docker-archive (`docker save`), tagged with `name=` if given.
    Docker,
}

pub struct Export {
    pub kind: ExportKind,
    /// A directory (local), a file or `-` for stdout (the others).
    pub dest: PathBuf,
    /// `name=` (docker): the image is tagged with it and saved under it.
    pub name: Option<Reference>,
}

/// Writes the result of a build out as `to` says.
pub fn export(engine: &Engine, built: &Built, to: &Export) -> Result<()> {
    match to.kind {
        ExportKind::Local => export_tree(engine, &built.layers, &to.dest, false),
        ExportKind::Tar => export_tree(engine, &built.layers, &to.dest, true),
        // `skiff save` writes one archive that is both a docker-archive and an OCI image
        // layout (as current docker does), so both types are that archive.
        ExportKind::Oci | ExportKind::Docker => {
            let input = match &to.name {
                Some(name) => {
                    engine.meta.tag(&name.to_string(), &built.id)?;
                    name.to_string()
                }
                None => built.id.to_string(),
            };
            let inputs = [input];
            if to.dest.as_os_str() == "-" {
                let stdout = std::io::stdout();
                crate::ops::save::save(engine, &inputs, stdout.lock())
            } else {
                let f = File::create(&to.dest)
                    .with_context(|| format!("creating {}", to.dest.display()))?;
                let mut w = std::io::BufWriter::new(f);
                crate::ops::save::save(engine, &inputs, &mut w)?;
                std::io::Write::flush(&mut w)?;
                Ok(())
            }
        }
    }
}

/// Writes the final tree of `layers` out as a directory or a tar (a file, or `-`).
fn export_tree(engine: &Engine, layers: &[LayerRecord], dest: &Path, tar: bool) -> Result<()> {
    use skiff_snapshot::layer::{
        apply_layer, write_layer, ApplyOptions, DiffOptions, DiffSource, WhiteoutMode,
    };
    let view = layer::View::new(engine, layers)?;
    let source = DiffSource::Compare {
        lower: None,
        upper: view.path(),
    };
    if !tar {
        fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
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
            dest,
            &ApplyOptions {
                whiteouts: WhiteoutMode::Remove,
            },
        );
        let _ = fs::remove_file(&tmp);
        applied?;
    } else if dest.as_os_str() == "-" {
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        write_layer(source, &mut lock, &DiffOptions::default())?;
    } else {
        let f = File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
        let mut w = std::io::BufWriter::new(f);
        write_layer(source, &mut w, &DiffOptions::default())?;
        std::io::Write::flush(&mut w)?;
    }
    Ok(())
}
