//! The OCI bundle on disk: `config.json` (and an exec's `process.json`), written atomically
//! (temp file, fsync, rename, fsync of the directory), so a crash leaves the old file or the
//! new one, never a torn one.
//!
//! The JSON is canonical: `oci-spec` keeps capability sets and some maps in hash containers,
//! whose order changes from run to run, so those are sorted before writing. The same
//! container always gives the same bytes, which golden tests rely on.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Process, Spec};
use serde_json::{Map, Value};

use crate::error::{io_err, Error};

/// The name of the runtime configuration in a bundle.
pub const CONFIG_JSON: &str = "config.json";

/// Writes `spec` as `<bundle>/config.json`; the directory must exist.
pub fn write_config(bundle: &Path, spec: &Spec) -> Result<PathBuf, Error> {
    let path = bundle.join(CONFIG_JSON);
    let bytes = spec_json(spec).map_err(|source| Error::Json {
        path: path.clone(),
        source,
    })?;
    write_atomic(&path, &bytes)?;
    Ok(path)
}

/// Reads `<bundle>/config.json`.
pub fn read_config(bundle: &Path) -> Result<Spec, Error> {
    let path = bundle.join(CONFIG_JSON);
    let bytes = fs::read(&path).map_err(io_err(&path))?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json { path, source })
}

/// Writes an exec's process description (for `runtime exec --process`) to `path`.
pub fn write_process(path: &Path, process: &Process) -> Result<(), Error> {
    let bytes = process_json(process).map_err(|source| Error::Json {
        path: path.to_owned(),
        source,
    })?;
    write_atomic(path, &bytes)
}

/// The canonical JSON of a runtime spec: pretty-printed, sets and maps sorted, newline at
/// the end.
pub fn spec_json(spec: &Spec) -> Result<Vec<u8>, serde_json::Error> {
    let mut value = serde_json::to_value(spec)?;
    if let Some(obj) = value.as_object_mut() {
        sort_object_at(obj, "annotations");
        if let Some(Value::Object(process)) = obj.get_mut("process") {
            canonical_process(process);
        }
        if let Some(Value::Object(linux)) = obj.get_mut("linux") {
            sort_object_at(linux, "sysctl");
            sort_object_at(linux, "netDevices");
            sort_object_at(linux, "timeOffsets");
            if let Some(Value::Object(res)) = linux.get_mut("resources") {
                sort_object_at(res, "unified");
                sort_object_at(res, "rdma");
            }
        }
    }
    to_pretty(&value)
}

/// The canonical JSON of a process description.
pub fn process_json(process: &Process) -> Result<Vec<u8>, serde_json::Error> {
    let mut value = serde_json::to_value(process)?;
    if let Some(obj) = value.as_object_mut() {
        canonical_process(obj);
    }
    to_pretty(&value)
}

fn to_pretty(value: &Value) -> Result<Vec<u8>, serde_json::Error> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn canonical_process(process: &mut Map<String, Value>) {
    if let Some(Value::Object(caps)) = process.get_mut("capabilities") {
        for set in caps.values_mut() {
            if let Value::Array(items) = set {
                items.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            }
        }
    }
}

fn sort_object_at(obj: &mut Map<String, Value>, key: &str) {
    if let Some(Value::Object(inner)) = obj.get_mut(key) {
        let mut entries: Vec<(String, Value)> = std::mem::take(inner).into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        inner.extend(entries);
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory: write, fsync,
/// rename over `path`, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}-{}", std::process::id(), unique()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        f.write_all(bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        fs::rename(&tmp, path).map_err(io_err(path))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A number no other call in this process has used, so that two threads writing the same
/// file never share a temporary name.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{Capability, LinuxCapabilitiesBuilder, ProcessBuilder};

    fn process_with_caps() -> Process {
        let caps: oci_spec::runtime::Capabilities = [
            Capability::SysAdmin,
            Capability::Chown,
            Capability::Kill,
            Capability::NetRaw,
        ]
        .into_iter()
        .collect();
        ProcessBuilder::default()
            .args(vec!["true".to_owned()])
            .cwd(PathBuf::from("/"))
            .capabilities(
                LinuxCapabilitiesBuilder::default()
                    .bounding(caps.clone())
                    .effective(caps)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    #[test]
    fn capability_sets_are_written_sorted() {
        let json = String::from_utf8(process_json(&process_with_caps()).unwrap()).unwrap();
        let a = json.find("CAP_CHOWN").unwrap();
        let b = json.find("CAP_KILL").unwrap();
        let c = json.find("CAP_NET_RAW").unwrap();
        let d = json.find("CAP_SYS_ADMIN").unwrap();
        assert!(a < b && b < c && c < d, "{json}");
        assert!(json.ends_with("}\n"));
    }

    #[test]
    fn config_round_trips_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let spec = Spec::default();
        let path = write_config(dir.path(), &spec).unwrap();
        assert_eq!(path, dir.path().join("config.json"));
        assert_eq!(read_config(dir.path()).unwrap(), spec);
        // Rewriting replaces the file in place.
        write_config(dir.path(), &spec).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["config.json"]);
    }

    #[test]
    fn the_same_spec_always_gives_the_same_bytes() {
        let mut spec = Spec::default();
        spec.set_annotations(Some(
            (0..20)
                .map(|i| (format!("k{i}"), format!("v{i}")))
                .collect(),
        ));
        let first = spec_json(&spec).unwrap();
        for _ in 0..5 {
            let copy: Spec = serde_json::from_slice(&first).unwrap();
            assert_eq!(spec_json(&copy).unwrap(), first);
        }
    }

    #[test]
    fn a_missing_bundle_directory_is_an_io_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        match write_config(&missing, &Spec::default()) {
            Err(Error::Io { path, .. }) => assert!(path.starts_with(&missing)),
            other => panic!("unexpected {other:?}"),
        }
    }
}
