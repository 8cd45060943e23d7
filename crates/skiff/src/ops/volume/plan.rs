//! The mount planner: a container's `-v`, `--mount`, `--tmpfs`, `--volumes-from` and its
//! image's VOLUMEs become the list of mounts it gets, with volumes created (and filled from
//! the image) and their use by the container recorded.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use skiff_runtime::spec::{MountSpec, Propagation};
use skiff_snapshot::layer::{apply_layer, ApplyOptions, WhiteoutMode};

use super::inroot::{self, TreeTar};
use super::parse::{
    parse_mount_flag, parse_tmpfs_flag, parse_volume_flag, propagation, propagation_name,
    MountIntent, MountType, Origin,
};
use super::store::{self, CreateOptions, Usage, Volume};
use crate::ops::engine::Engine;
use crate::ops::error::OpError;

/// Everything that decides a container's mounts.
#[derive(Debug, Clone, Default)]
pub struct MountRequest<'a> {
    /// The container's full id (volume use is recorded under it).
    pub container_id: &'a str,
    /// The keys of the image config's `Volumes` (`/data`, ...).
    pub image_volumes: &'a [String],
    /// The container's mounted root filesystem, from which a new volume is filled with what
    /// the image has at its destination (None: never fill, e.g. the rootfs is not mounted).
    pub rootfs: Option<&'a Path>,
    /// Raw `-v` / `--volume` values.
    pub volumes: &'a [String],
    /// Raw `--mount` values.
    pub mounts: &'a [String],
    /// Raw `--tmpfs` values.
    pub tmpfs: &'a [String],
    /// `--volumes-from`, resolved by the caller to the source containers' planned mounts.
    pub volumes_from: &'a [VolumesFrom],
}

/// One `--volumes-from CONTAINER[:ro|rw]`, resolved.
#[derive(Debug, Clone)]
pub struct VolumesFrom {
    pub container_id: String,
    /// The source container's mounts as it recorded them.
    pub mounts: Vec<PlannedMount>,
    /// `Some(true)` for `:ro`, `Some(false)` for `:rw`, None: keep each mount's own mode.
    pub readonly: Option<bool>,
}

impl VolumesFrom {
    /// Parses `CONTAINER[:ro|rw]` into the container name and the mode; docker's error for
    /// another suffix.
    pub fn parse_flag(raw: &str) -> Result<(String, Option<bool>), OpError> {
        match raw.split_once(':') {
            None => Ok((raw.to_owned(), None)),
            Some((c, "ro")) => Ok((c.to_owned(), Some(true))),
            Some((c, "rw")) => Ok((c.to_owned(), Some(false))),
            Some((_, mode)) => Err(OpError::invalid(format!("invalid mode: {mode}"))),
        }
    }
}

/// One mount a container gets: what the runtime needs and what `inspect` shows as `Mounts`.
/// Stored with the container (serde) so restarts and `--volumes-from` reuse it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedMount {
    /// "bind", "volume" or "tmpfs".
    #[serde(rename = "Type")]
    pub kind: String,
    /// The volume's name (volumes only).
    #[serde(rename = "Name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Host path mounted (a volume's `_data`); empty for tmpfs.
    #[serde(rename = "Source")]
    pub source: String,
    #[serde(rename = "Destination")]
    pub destination: String,
    /// "local" for volumes.
    #[serde(rename = "Driver", default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(rename = "Mode")]
    pub mode: String,
    #[serde(rename = "RW")]
    pub rw: bool,
    /// docker's propagation text ("rprivate" for binds, "" otherwise).
    #[serde(rename = "Propagation")]
    pub propagation: String,
    /// tmpfs mount options (not shown by inspect).
    #[serde(
        rename = "TmpfsOptions",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tmpfs_options: Vec<String>,
    /// A `--tmpfs` mount: docker lists these under `HostConfig.Tmpfs`, not `Mounts`.
    #[serde(rename = "FromTmpfsFlag", default, skip_serializing_if = "is_false")]
    pub from_tmpfs_flag: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl PlannedMount {
    /// The mount as skiff-runtime takes it.
    pub fn to_spec(&self) -> MountSpec {
        if self.kind == "tmpfs" {
            let mut options = self.tmpfs_options.clone();
            if !self.rw && !options.iter().any(|o| o == "ro") {
                options.push("ro".to_owned());
            }
            return MountSpec::Tmpfs {
                destination: self.destination.clone(),
                options,
            };
        }
        MountSpec::Bind {
            source: PathBuf::from(&self.source),
            destination: self.destination.clone(),
            readonly: !self.rw,
            propagation: parse_propagation(&self.propagation),
        }
    }

    /// The entry of docker's `inspect` `Mounts` list, or None for a `--tmpfs` mount (which
    /// docker does not list there).
    pub fn inspect_json(&self) -> Option<serde_json::Value> {
        if self.from_tmpfs_flag {
            return None;
        }
        let mut v = serde_json::json!({
            "Type": self.kind,
            "Source": self.source,
            "Destination": self.destination,
            "Mode": self.mode,
            "RW": self.rw,
            "Propagation": self.propagation,
        });
        if let (Some(name), Some(obj)) = (&self.name, v.as_object_mut()) {
            obj.insert("Name".into(), name.clone().into());
            obj.insert(
                "Driver".into(),
                self.driver.clone().unwrap_or_default().into(),
            );
        }
        Some(v)
    }
}

/// docker's inspect `Mounts` for a container's planned mounts (ordered by destination).
pub fn inspect_mounts(mounts: &[PlannedMount]) -> serde_json::Value {
    serde_json::Value::Array(
        mounts
            .iter()
            .filter_map(PlannedMount::inspect_json)
            .collect(),
    )
}

/// A stored propagation name; docker's default `rprivate` for "" (volumes) or anything else.
fn parse_propagation(s: &str) -> Propagation {
    propagation(s).unwrap_or(Propagation::RPrivate)
}

fn duplicate(dest: &str) -> anyhow::Error {
    OpError::invalid(format!("Duplicate mount point: {dest}")).into()
}

/// Parses every flag of `req` (no side effect): docker's errors for a bad spec or a
/// destination given twice.
pub fn parse_request(req: &MountRequest<'_>) -> Result<Vec<MountIntent>> {
    let parsed = (req.volumes.iter().map(|raw| parse_volume_flag(raw)))
        .chain(req.mounts.iter().map(|raw| parse_mount_flag(raw)))
        .chain(req.tmpfs.iter().map(|raw| Ok(parse_tmpfs_flag(raw)?)));
    let mut intents = Vec::new();
    let mut seen = BTreeSet::new();
    // In flag order, each parsed and checked before the next (the first error wins).
    for m in parsed {
        let m = m?;
        if !seen.insert(m.destination.clone()) {
            return Err(duplicate(&m.destination));
        }
        intents.push(m);
    }
    Ok(intents)
}

/// Plans the container's mounts: parses the flags, creates missing bind sources (`-v`) and
/// volumes (named on first use, anonymous for `-v /x`, `--mount` without source and every
/// image VOLUME no flag covers), fills new volumes from the image unless `nocopy`, mounts
/// volumes that have driver options, and records that the container uses each volume.
/// Mounts come back sorted so that parents are mounted before what is inside them.
///
/// Precedence, as docker's: `-v`/`--mount`/`--tmpfs` over `--volumes-from` over the image's
/// VOLUMEs at the same destination. On error, volumes this call created anonymously are
/// removed again and the container's volume use is forgotten.
pub fn container_mounts(engine: &Engine, req: &MountRequest<'_>) -> Result<Vec<PlannedMount>> {
    let intents = parse_request(req)?;
    let _lock = store::lock(engine)?;
    let result = plan_locked(engine, req, intents);
    if result.is_err() {
        drop(_lock);
        let _ = store::remove_anonymous(engine, req.container_id);
    }
    result
}

fn plan_locked(
    engine: &Engine,
    req: &MountRequest<'_>,
    intents: Vec<MountIntent>,
) -> Result<Vec<PlannedMount>> {
    // Lowest precedence first; later entries replace earlier ones at the same destination.
    let mut plan: BTreeMap<String, Pending> = BTreeMap::new();
    for dest in req.image_volumes {
        let m = MountIntent::anonymous(dest);
        plan.insert(m.destination.clone(), Pending::Intent(m));
    }
    for vf in req.volumes_from {
        for m in &vf.mounts {
            if m.kind == "tmpfs" {
                continue;
            }
            let mut m = m.clone();
            if let Some(ro) = vf.readonly {
                m.rw = !ro;
            }
            plan.insert(m.destination.clone(), Pending::Inherited(m));
        }
    }
    for m in intents {
        plan.insert(m.destination.clone(), Pending::Intent(m));
    }
    let mut mounts = Vec::new();
    for (_, p) in plan {
        mounts.push(match p {
            Pending::Inherited(m) => {
                if let Some(name) = &m.name {
                    store::get(engine, name)?;
                    store::add_user_locked(engine, name, req.container_id, Usage::Named)?;
                }
                m
            }
            Pending::Intent(m) => realize(engine, req, m)?,
        });
    }
    // Parents before children: by depth, then by path (docker sorts by depth too).
    mounts.sort_by(|a, b| {
        let depth = |m: &PlannedMount| m.destination.split('/').filter(|c| !c.is_empty()).count();
        depth(a)
            .cmp(&depth(b))
            .then_with(|| a.destination.cmp(&b.destination))
    });
    Ok(mounts)
}

enum Pending {
    Intent(MountIntent),
    /// A mount taken over from `--volumes-from`.
    Inherited(PlannedMount),
}

/// Turns one parsed mount into a planned one, creating what it needs.
fn realize(engine: &Engine, req: &MountRequest<'_>, m: MountIntent) -> Result<PlannedMount> {
    match m.kind {
        MountType::Tmpfs => {
            let mut options = m.tmpfs_options.clone();
            if m.readonly && !options.iter().any(|o| o == "ro") {
                options.push("ro".to_owned());
            }
            Ok(PlannedMount {
                kind: "tmpfs".into(),
                name: None,
                source: String::new(),
                destination: m.destination,
                driver: None,
                mode: String::new(),
                rw: !m.readonly,
                propagation: String::new(),
                tmpfs_options: options,
                from_tmpfs_flag: m.origin == Origin::TmpfsFlag,
            })
        }
        MountType::Bind => {
            let source = m.source.clone().unwrap_or_default();
            let path = Path::new(&source);
            if !path.exists() {
                if m.origin == Origin::MountFlag {
                    return Err(OpError::invalid(format!(
                        "invalid mount config for type \"bind\": bind source path does not exist: {source}"
                    ))
                    .into());
                }
                // `-v /host:/ctr` creates a missing host directory, as docker does.
                fs::create_dir_all(path).with_context(|| {
                    format!("error while creating mount source path '{source}'")
                })?;
            }
            Ok(PlannedMount {
                kind: "bind".into(),
                name: None,
                source,
                destination: m.destination,
                driver: None,
                mode: m.mode,
                rw: !m.readonly,
                propagation: propagation_name(m.propagation.unwrap_or_default()).to_owned(),
                tmpfs_options: Vec::new(),
                from_tmpfs_flag: false,
            })
        }
        MountType::Volume => {
            let anonymous = m.source.is_none();
            let existed = match &m.source {
                Some(name) => store::get_opt(engine, name)?,
                None => None,
            };
            let volume = match existed {
                Some(v) => v,
                None => store::create_locked(
                    engine,
                    &CreateOptions {
                        name: m.source.clone(),
                        driver: m.volume_driver.clone(),
                        labels: m.volume_labels.clone(),
                        options: m.volume_options.clone(),
                    },
                )?,
            };
            let usage = if anonymous {
                Usage::Anonymous
            } else {
                Usage::Named
            };
            store::add_user_locked(engine, &volume.name, req.container_id, usage)?;
            mount_volume_fs(&volume)?;
            if !m.nocopy {
                if let Some(rootfs) = req.rootfs {
                    fill_from_image(engine, rootfs, &m.destination, &volume)?;
                }
            }
            // docker shows "z" for a named or --mount volume without a mode, "" for the
            // anonymous volumes of `-v /x` and image VOLUMEs.
            let mode = if m.mode.is_empty() && (m.source.is_some() || m.origin == Origin::MountFlag)
            {
                "z".to_owned()
            } else {
                m.mode.clone()
            };
            Ok(PlannedMount {
                kind: "volume".into(),
                name: Some(volume.name.clone()),
                source: volume.mountpoint.to_string_lossy().into_owned(),
                destination: m.destination,
                driver: Some(volume.driver.clone()),
                mode,
                rw: !m.readonly,
                propagation: String::new(),
                tmpfs_options: Vec::new(),
                from_tmpfs_flag: false,
            })
        }
    }
}

/// Mounts the filesystem a volume's options ask for (`-o type=tmpfs -o device=tmpfs -o
/// o=size=1m`) on its `_data`, once.
fn mount_volume_fs(volume: &Volume) -> Result<()> {
    if !volume.needs_mount() || skiff_snapshot::mount::is_mounted(&volume.mountpoint) {
        return Ok(());
    }
    let opts = volume.options();
    let m = skiff_snapshot::Mount {
        kind: opts.get("type").cloned().unwrap_or_default(),
        source: PathBuf::from(opts.get("device").cloned().unwrap_or_default()),
        options: opts
            .get("o")
            .map(|o| o.split(',').map(str::to_owned).collect())
            .unwrap_or_default(),
    };
    skiff_snapshot::mount::mount_all(&[m], &volume.mountpoint).map_err(|e| {
        OpError::invalid(format!(
            "error while mounting volume '{}': {e}",
            volume.mountpoint.display()
        ))
        .into()
    })
}

/// Fills an empty volume with what the image has at `dest` (a directory), keeping modes,
/// owners and times, and gives the volume's root the directory's own mode and owner, as
/// docker does on a volume's first use. `dest` is resolved inside `rootfs` like a chroot.
fn fill_from_image(engine: &Engine, rootfs: &Path, dest: &str, volume: &Volume) -> Result<()> {
    let data = &volume.mountpoint;
    if fs::read_dir(data)
        .with_context(|| format!("reading {}", data.display()))?
        .next()
        .is_some()
    {
        return Ok(());
    }
    let root = inroot::open_root(rootfs)?;
    let dir = match inroot::open_dir_in(root.as_fd(), dest) {
        Ok(d) => d,
        // Nothing (or no directory) there in the image: the volume starts empty.
        Err(_) => return Ok(()),
    };
    let st = inroot::fstat(dir.as_fd())?;
    let mut tmp = tempfile::tempfile_in(engine.tmp_dir()?)?;
    let mut tree = TreeTar::new(&mut tmp, true);
    tree.add_children(dir.as_fd(), "")
        .with_context(|| format!("copying {dest} from the image"))?;
    tree.finish()?;
    use std::io::Seek;
    tmp.seek(std::io::SeekFrom::Start(0))?;
    apply_layer(
        std::io::BufReader::new(tmp),
        data,
        &ApplyOptions {
            whiteouts: WhiteoutMode::Remove,
        },
    )
    .with_context(|| format!("copying {dest} from the image into volume {}", volume.name))?;
    rustix::fs::chown(
        data.as_path(),
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
    )?;
    rustix::fs::chmod(
        data.as_path(),
        rustix::fs::Mode::from_raw_mode(st.st_mode & 0o7777),
    )?;
    Ok(())
}
