//! docker's mount flags, parsed into [`MountIntent`]s: `-v`/`--volume`, `--mount`, `--tmpfs`.
//!
//! Pure functions (no filesystem access), unit-tested below. Messages are docker's: the
//! daemon's for `-v` (`invalid volume specification: '...'`, `invalid mode: ...`) and the
//! CLI's for `--mount` (`invalid argument "..." for "--mount" flag: ...`, a [`PlainError`]);
//! checks that docker's daemon makes on any mount (absolute target, known type, fields that
//! do not belong to a type) are in [`validate`].

use std::collections::BTreeMap;

use skiff_runtime::spec::Propagation;

use crate::ops::error::{OpError, PlainError};

/// The kinds of mount docker knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    Bind,
    Volume,
    Tmpfs,
}

impl MountType {
    /// docker's name for it (`Type` in inspect).
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Volume => "volume",
            MountType::Tmpfs => "tmpfs",
        }
    }
}

/// Where a mount request came from; decides details docker treats differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `-v`: a missing bind source is created.
    VolumeFlag,
    /// `--mount`: a missing bind source is an error.
    MountFlag,
    /// `--tmpfs`.
    TmpfsFlag,
}

/// One requested mount, as the user wrote it (names unresolved, paths unchecked on disk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountIntent {
    pub kind: MountType,
    pub origin: Origin,
    /// A host path (bind), a volume name (volume; None: anonymous), None for tmpfs.
    pub source: Option<String>,
    /// Cleaned absolute path in the container.
    pub destination: String,
    pub readonly: bool,
    /// docker's `Mode` text (the `-v` mode string, e.g. `ro,z`).
    pub mode: String,
    /// Bind propagation, when given.
    pub propagation: Option<Propagation>,
    /// `nocopy` / `volume-nocopy`: do not fill a new volume from the image.
    pub nocopy: bool,
    /// `volume-opt=` driver options for a volume created by this mount.
    pub volume_options: BTreeMap<String, String>,
    /// `volume-label=` labels for a volume created by this mount.
    pub volume_labels: BTreeMap<String, String>,
    /// `volume-driver=`.
    pub volume_driver: Option<String>,
    /// tmpfs mount(8) options (`size=`, `mode=`, `exec`...).
    pub tmpfs_options: Vec<String>,
    /// Set when a type's foreign fields were given (checked by [`validate`]).
    foreign: Option<&'static str>,
}

impl MountIntent {
    /// An anonymous volume at `dest` (an image VOLUME), taken as docker takes it: cleaned,
    /// not checked like a flag.
    pub fn anonymous(dest: &str) -> Self {
        let dest = if dest.starts_with('/') {
            dest.to_owned()
        } else {
            format!("/{dest}")
        };
        MountIntent::new(MountType::Volume, Origin::VolumeFlag, clean_path(&dest))
    }

    fn new(kind: MountType, origin: Origin, destination: String) -> Self {
        MountIntent {
            kind,
            origin,
            source: None,
            destination,
            readonly: false,
            mode: String::new(),
            propagation: None,
            nocopy: false,
            volume_options: BTreeMap::new(),
            volume_labels: BTreeMap::new(),
            volume_driver: None,
            tmpfs_options: Vec::new(),
            foreign: None,
        }
    }
}

fn invalid_spec(raw: &str) -> String {
    format!("invalid volume specification: '{raw}'")
}

/// docker's `filepath.Clean` of an absolute container path (one implementation, shared with
/// the Dockerfile code).
pub use skiff_build::dispatch::clean_path;

/// A propagation by its docker name (None for an unknown one).
pub(super) fn propagation(s: &str) -> Option<Propagation> {
    Some(match s {
        "private" => Propagation::Private,
        "rprivate" => Propagation::RPrivate,
        "shared" => Propagation::Shared,
        "rshared" => Propagation::RShared,
        "slave" => Propagation::Slave,
        "rslave" => Propagation::RSlave,
        _ => return None,
    })
}

/// The name docker shows for a propagation.
pub fn propagation_name(p: Propagation) -> &'static str {
    match p {
        Propagation::Private => "private",
        Propagation::RPrivate => "rprivate",
        Propagation::Shared => "shared",
        Propagation::RShared => "rshared",
        Propagation::Slave => "slave",
        Propagation::RSlave => "rslave",
    }
}

/// docker's `ValidMountMode`: comma-separated words, at most one of each family.
fn valid_mode(mode: &str) -> bool {
    if mode.is_empty() {
        return true;
    }
    let (mut rw, mut label, mut prop, mut copy, mut consistency) = (0, 0, 0, 0, 0);
    for word in mode.split(',') {
        match word {
            "rw" | "ro" => rw += 1,
            "z" | "Z" => label += 1,
            "nocopy" => copy += 1,
            "consistent" | "cached" | "delegated" => consistency += 1,
            w if propagation(w).is_some() => prop += 1,
            _ => return false,
        }
    }
    rw <= 1 && label <= 1 && prop <= 1 && copy <= 1 && consistency <= 1
}

/// Parses one `-v` value: `/ctr` (anonymous volume), `SRC:/ctr`, `SRC:/ctr:MODE`. A source
/// starting with `/` is a host path, anything else a volume name.
pub fn parse_volume_flag(raw: &str) -> Result<MountIntent, anyhow::Error> {
    let arr: Vec<&str> = raw.splitn(4, ':').collect();
    if arr.iter().any(|s| s.is_empty()) {
        // docker's CLI checks this before the daemon sees the spec.
        return Err(PlainError::invalid(format!(
            "invalid spec: {raw}: empty section between colons"
        ))
        .into());
    }
    let (source, target, mode) = match arr.as_slice() {
        [target] => (None, *target, ""),
        [source, target] => {
            if valid_mode(target) {
                // `/foo:rw`: a destination with a mode but no source.
                return Err(OpError::invalid(invalid_spec(raw)).into());
            }
            (Some(*source), *target, "")
        }
        [source, target, mode] => (Some(*source), *target, *mode),
        _ => return Err(OpError::invalid(invalid_spec(raw)).into()),
    };
    if !valid_mode(mode) {
        return Err(OpError::invalid(format!("invalid mode: {mode}")).into());
    }
    let kind = match source {
        Some(s) if s.starts_with('/') => MountType::Bind,
        _ => MountType::Volume,
    };
    let mut m = MountIntent::new(kind, Origin::VolumeFlag, target.to_owned());
    m.source = source.map(str::to_owned);
    m.mode = mode.to_owned();
    let words: Vec<&str> = mode.split(',').collect();
    m.readonly = words.contains(&"ro");
    m.nocopy = words.contains(&"nocopy");
    m.propagation = words.iter().find_map(|w| propagation(w));
    if m.propagation.is_some() && kind == MountType::Volume {
        m.foreign = Some("BindOptions");
    }
    validate(&m).map_err(|e| OpError::invalid(format!("{}: {e}", invalid_spec(raw))))?;
    m.destination = clean_path(&m.destination);
    Ok(m)
}

/// Parses one `--mount` value (CSV of `key=value` fields, as docker's CLI reads it).
pub fn parse_mount_flag(raw: &str) -> Result<MountIntent, anyhow::Error> {
    let flag_err = |msg: String| {
        PlainError::invalid(format!(
            "invalid argument {raw:?} for \"--mount\" flag: {msg}"
        ))
    };
    let mut kind = "volume".to_owned();
    let mut source = None;
    let mut target = None;
    let mut readonly = false;
    let mut nocopy = false;
    let mut prop = None;
    let mut vopts = BTreeMap::new();
    let mut vlabels = BTreeMap::new();
    let mut vdriver = None;
    let mut tmpfs_size = None;
    let mut tmpfs_mode = None;
    let (mut has_bind, mut has_volume, mut has_tmpfs) = (false, false, false);
    for field in split_csv(raw) {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_owned())),
            None => (field.to_ascii_lowercase(), None),
        };
        let boolean = |v: &Option<String>| -> Result<bool, PlainError> {
            match v.as_deref() {
                None | Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
                Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
                Some(other) => Err(flag_err(format!("invalid value for {key}: {other}"))),
            }
        };
        match key.as_str() {
            "readonly" | "ro" => readonly = boolean(&value)?,
            "volume-nocopy" => {
                nocopy = boolean(&value)?;
                has_volume = true;
            }
            "bind-nonrecursive" => {
                return Err(flag_err("bind-nonrecursive is not supported by skiff".into()).into())
            }
            _ => {
                let Some(v) = value else {
                    return Err(flag_err(format!(
                        "invalid field '{field}' must be a key=value pair"
                    ))
                    .into());
                };
                match key.as_str() {
                    "type" => kind = v.to_ascii_lowercase(),
                    "source" | "src" => source = Some(v),
                    "target" | "dst" | "destination" => target = Some(v),
                    "consistency" => {}
                    "bind-propagation" => {
                        has_bind = true;
                        prop = Some(propagation(&v.to_ascii_lowercase()).ok_or_else(|| {
                            flag_err(format!("invalid value for bind-propagation: {v}"))
                        })?);
                    }
                    "volume-driver" => {
                        has_volume = true;
                        vdriver = Some(v);
                    }
                    "volume-label" | "volume-opt" => {
                        has_volume = true;
                        let (k, val) = v.split_once('=').unwrap_or((v.as_str(), ""));
                        let map = if key == "volume-label" {
                            &mut vlabels
                        } else {
                            &mut vopts
                        };
                        map.insert(k.to_owned(), val.to_owned());
                    }
                    "tmpfs-size" => {
                        has_tmpfs = true;
                        tmpfs_size =
                            Some(ram_in_bytes(&v).ok_or_else(|| {
                                flag_err(format!("invalid value for {key}: {v}"))
                            })?);
                    }
                    "tmpfs-mode" => {
                        has_tmpfs = true;
                        tmpfs_mode = Some(
                            u32::from_str_radix(&v, 8)
                                .map_err(|_| flag_err(format!("invalid value for {key}: {v}")))?,
                        );
                    }
                    _ => {
                        return Err(flag_err(format!("unexpected key '{key}' in '{field}'")).into())
                    }
                }
            }
        }
    }
    let Some(target) = target else {
        return Err(flag_err("target is required".into()).into());
    };
    let mtype = match kind.as_str() {
        "bind" => MountType::Bind,
        "volume" => MountType::Volume,
        "tmpfs" => MountType::Tmpfs,
        other => {
            return Err(OpError::invalid(format!(
                "invalid mount config for type {other:?}: mount type unknown"
            ))
            .into())
        }
    };
    let mut m = MountIntent::new(mtype, Origin::MountFlag, target);
    m.source = source.filter(|s| !s.is_empty());
    m.readonly = readonly;
    m.nocopy = nocopy;
    m.propagation = prop;
    m.volume_options = vopts;
    m.volume_labels = vlabels;
    m.volume_driver = vdriver;
    if let Some(size) = tmpfs_size {
        m.tmpfs_options.push(format!("size={size}"));
    }
    if let Some(mode) = tmpfs_mode {
        m.tmpfs_options.push(format!("mode={mode:o}"));
    }
    m.foreign = match mtype {
        MountType::Bind if has_volume => Some("VolumeOptions"),
        MountType::Bind if has_tmpfs => Some("TmpfsOptions"),
        MountType::Volume if has_bind => Some("BindOptions"),
        MountType::Volume if has_tmpfs => Some("TmpfsOptions"),
        MountType::Tmpfs if has_bind => Some("BindOptions"),
        MountType::Tmpfs if has_volume => Some("VolumeOptions"),
        _ => None,
    };
    if m.readonly && mtype != MountType::Tmpfs {
        m.mode = String::new();
    }
    validate(&m).map_err(OpError::invalid)?;
    m.destination = clean_path(&m.destination);
    Ok(m)
}

/// Parses one `--tmpfs` value: `/path[:mount options]`.
pub fn parse_tmpfs_flag(raw: &str) -> Result<MountIntent, OpError> {
    let (dest, opts) = raw.split_once(':').unwrap_or((raw, ""));
    let mut m = MountIntent::new(MountType::Tmpfs, Origin::TmpfsFlag, dest.to_owned());
    m.tmpfs_options = opts
        .split(',')
        .filter(|o| !o.is_empty())
        .map(str::to_owned)
        .collect();
    m.readonly = m.tmpfs_options.iter().any(|o| o == "ro");
    if !dest.starts_with('/') {
        return Err(OpError::invalid(format!(
            "invalid mount path: '{dest}' mount path must be absolute"
        )));
    }
    m.destination = clean_path(dest);
    Ok(m)
}

/// The checks docker's daemon makes on every mount (`validateMountConfig`), with its words.
pub fn validate(m: &MountIntent) -> Result<(), String> {
    let t = m.kind.as_str();
    let err = |msg: String| format!("invalid mount config for type {t:?}: {msg}");
    if m.destination.is_empty() {
        return Err(err("field Target must not be empty".into()));
    }
    if !m.destination.starts_with('/') {
        return Err(err(format!(
            "invalid mount path: '{}' mount path must be absolute",
            m.destination
        )));
    }
    if clean_path(&m.destination) == "/" {
        return Err("invalid specification: destination can't be '/'".into());
    }
    if let Some(field) = m.foreign {
        return Err(err(format!("field {field} must not be specified")));
    }
    match m.kind {
        MountType::Bind => match &m.source {
            None => Err(err("field Source must not be empty".into())),
            Some(s) if !s.starts_with('/') => Err(err(format!(
                "invalid mount path: '{s}' mount path must be absolute"
            ))),
            Some(_) => Ok(()),
        },
        MountType::Volume => {
            if m.origin == Origin::MountFlag && m.source.is_none() && m.readonly {
                // docker allows it; an empty read-only anonymous volume is just useless.
            }
            Ok(())
        }
        MountType::Tmpfs => {
            if m.source.is_some() {
                return Err(err("field Source must not be specified".into()));
            }
            Ok(())
        }
    }
}

/// Splits a CSV line as Go's `encoding/csv` would for one record (quotes group commas).
fn split_csv(raw: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// docker's `units.RAMInBytes`: `64m`, `1g`, `512k`, `100` (bytes); binary multiples.
pub fn ram_in_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        "p" | "pb" | "pib" => 1 << 50,
        _ => return None,
    };
    if n < 0.0 {
        return None;
    }
    Some((n * mult as f64) as u64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn v_err(raw: &str) -> String {
        parse_volume_flag(raw).unwrap_err().to_string()
    }

    fn m_err(raw: &str) -> String {
        parse_mount_flag(raw).unwrap_err().to_string()
    }

    #[test]
    fn volume_flag_forms() {
        let m = parse_volume_flag("/data").unwrap();
        assert_eq!(
            (m.kind, m.source, m.destination.as_str()),
            (MountType::Volume, None, "/data")
        );
        let m = parse_volume_flag("/host/dir:/ctr/").unwrap();
        assert_eq!(m.kind, MountType::Bind);
        assert_eq!(m.source.as_deref(), Some("/host/dir"));
        assert_eq!(m.destination, "/ctr");
        assert!(!m.readonly);
        let m = parse_volume_flag("name:/x:ro,nocopy").unwrap();
        assert_eq!(m.kind, MountType::Volume);
        assert!(m.readonly && m.nocopy);
        assert_eq!(m.mode, "ro,nocopy");
        let m = parse_volume_flag("/h:/x:rw,z,rshared").unwrap();
        assert_eq!(m.propagation, Some(Propagation::RShared));
        assert!(!m.readonly);
    }

    #[test]
    fn volume_flag_errors_are_dockers() {
        assert_eq!(v_err("a:b:c:d"), "invalid volume specification: 'a:b:c:d'");
        assert_eq!(v_err("/x:rw"), "invalid volume specification: '/x:rw'");
        assert_eq!(
            v_err(":/x"),
            "invalid spec: :/x: empty section between colons"
        );
        assert_eq!(v_err("/tmp:/x:foo"), "invalid mode: foo");
        assert_eq!(v_err("/tmp:/x:ro,rw"), "invalid mode: ro,rw");
        assert_eq!(
            v_err("/tmp:x"),
            "invalid volume specification: '/tmp:x': invalid mount config for type \"bind\": invalid mount path: 'x' mount path must be absolute"
        );
        assert_eq!(
            v_err("/tmp:/"),
            "invalid volume specification: '/tmp:/': invalid specification: destination can't be '/'"
        );
    }

    #[test]
    fn mount_flag_forms() {
        let m =
            parse_mount_flag("type=bind,src=/h,dst=/c,readonly,bind-propagation=rslave").unwrap();
        assert_eq!(m.kind, MountType::Bind);
        assert!(m.readonly);
        assert_eq!(m.propagation, Some(Propagation::RSlave));
        let m = parse_mount_flag(
            "target=/v,source=vol,volume-opt=type=tmpfs,volume-opt=device=tmpfs,volume-label=a=b",
        )
        .unwrap();
        assert_eq!(m.kind, MountType::Volume);
        assert_eq!(m.source.as_deref(), Some("vol"));
        assert_eq!(
            m.volume_options.get("type").map(String::as_str),
            Some("tmpfs")
        );
        assert_eq!(m.volume_labels.get("a").map(String::as_str), Some("b"));
        let m =
            parse_mount_flag("type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=1770").unwrap();
        assert_eq!(m.tmpfs_options, vec!["size=1048576", "mode=1770"]);
        let m = parse_mount_flag("type=volume,dst=/anon,ro=false").unwrap();
        assert!(m.source.is_none() && !m.readonly);
    }

    #[test]
    fn mount_flag_errors_are_dockers() {
        assert_eq!(
            m_err("type=volume,dst=/x,foo=bar"),
            "invalid argument \"type=volume,dst=/x,foo=bar\" for \"--mount\" flag: unexpected key 'foo' in 'foo=bar'"
        );
        assert_eq!(
            m_err("type=bind,src=/tmp"),
            "invalid argument \"type=bind,src=/tmp\" for \"--mount\" flag: target is required"
        );
        assert_eq!(
            m_err("type=foo,dst=/x"),
            "invalid mount config for type \"foo\": mount type unknown"
        );
        assert_eq!(
            m_err("type=tmpfs,src=a,dst=/x"),
            "invalid mount config for type \"tmpfs\": field Source must not be specified"
        );
        assert_eq!(
            m_err("type=bind,dst=/x"),
            "invalid mount config for type \"bind\": field Source must not be empty"
        );
        assert_eq!(
            m_err("type=bind,src=/a,dst=/x,volume-nocopy"),
            "invalid mount config for type \"bind\": field VolumeOptions must not be specified"
        );
        assert_eq!(
            m_err("type=bind,src=/a,dst=x"),
            "invalid mount config for type \"bind\": invalid mount path: 'x' mount path must be absolute"
        );
    }

    #[test]
    fn tmpfs_flag() {
        let m = parse_tmpfs_flag("/run:size=2m,exec").unwrap();
        assert_eq!(m.destination, "/run");
        assert_eq!(m.tmpfs_options, vec!["size=2m", "exec"]);
        assert_eq!(
            parse_tmpfs_flag("u").unwrap_err().message,
            "invalid mount path: 'u' mount path must be absolute"
        );
    }

    #[test]
    fn ram_units() {
        assert_eq!(ram_in_bytes("64m"), Some(64 << 20));
        assert_eq!(ram_in_bytes("100"), Some(100));
        assert_eq!(ram_in_bytes("1.5k"), Some(1536));
        assert_eq!(ram_in_bytes("x"), None);
    }
}
