//! What a test needs from the machine: root, overlayfs, tools on PATH, the OCI schemas.
//! Each check returns why it fails; tests use them through `require!`, which reports the
//! reason and skips.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::harness::test_tmp_base;

pub fn need_root() -> Result<(), String> {
    if rustix::process::geteuid().is_root() {
        Ok(())
    } else {
        Err("needs root (mounts, chown of layer contents); CI runs as root".into())
    }
}

/// Root, and a kernel that mounts overlayfs on the filesystem the tests use.
pub fn need_overlay() -> Result<(), String> {
    need_root()?;
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE.get_or_init(probe_overlay).clone()
}

fn probe_overlay() -> Result<(), String> {
    let filesystems = fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"))
    {
        return Err("kernel has no overlay filesystem (/proc/filesystems)".into());
    }
    let base = test_tmp_base();
    fs::create_dir_all(&base).map_err(|e| e.to_string())?;
    let t = tempfile::Builder::new()
        .prefix("overlay-probe-")
        .tempdir_in(&base)
        .map_err(|e| e.to_string())?;
    for d in ["l", "u", "w", "m"] {
        fs::create_dir(t.path().join(d)).map_err(|e| e.to_string())?;
    }
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        t.path().join("l").display(),
        t.path().join("u").display(),
        t.path().join("w").display()
    );
    let data = std::ffi::CString::new(data).map_err(|e| e.to_string())?;
    let m = t.path().join("m");
    let r = rustix::mount::mount(
        "overlay",
        &m,
        "overlay",
        rustix::mount::MountFlags::empty(),
        data.as_c_str(),
    );
    match r {
        Ok(()) => {
            let _ = rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH);
            Ok(())
        }
        Err(e) => Err(format!(
            "overlayfs does not mount on {} here: {e}",
            base.display()
        )),
    }
}

/// An executable on $PATH.
pub fn need_tool(name: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(name);
        if let Ok(md) = fs::metadata(&p) {
            use std::os::unix::fs::PermissionsExt;
            if md.is_file() && md.permissions().mode() & 0o111 != 0 {
                return Ok(p);
            }
        }
    }
    Err(format!(
        "needs `{name}` on PATH (Debian package: {})",
        debian_package(name)
    ))
}

fn debian_package(tool: &str) -> &'static str {
    match tool {
        "skopeo" => "skopeo",
        "umoci" => "umoci",
        "python3" => "python3",
        "tar" => "tar",
        _ => "?",
    }
}

/// python3 with the jsonschema module, and the OCI schemas Debian ships.
pub fn need_schema_validator() -> Result<(), String> {
    need_tool("python3")?;
    let ok = Command::new("python3")
        .args(["-c", "import jsonschema"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        return Err("needs python3's jsonschema module (Debian: python3-jsonschema)".into());
    }
    let listed = Command::new("dpkg")
        .args(["-L", "golang-github-opencontainers-image-spec-dev"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !listed && std::env::var_os("OCI_SCHEMA_DIR").is_none() {
        return Err(
            "needs the OCI schemas (Debian: golang-github-opencontainers-image-spec-dev)".into(),
        );
    }
    Ok(())
}
