//! `USER` and `--chown` values against a root filesystem's `/etc/passwd` and `/etc/group`,
//! as docker resolves them.

use std::fs;
use std::path::Path;

/// A resolved identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (from `/etc/group`), for RUN.
    pub additional_gids: Vec<u32>,
}

/// A user or group that cannot be found, in docker's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UserError(pub String);

fn read(rootfs: &Path, file: &str) -> String {
    fs::read_to_string(rootfs.join(file)).unwrap_or_default()
}

/// (name, id, primary gid) from passwd-style lines.
fn entries(text: &str) -> Vec<(String, u32, u32, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            let id = f[2].parse().ok()?;
            let gid = f.get(3).and_then(|g| g.parse().ok()).unwrap_or(id);
            Some((
                f[0].to_owned(),
                id,
                gid,
                f.get(3).map_or("", |s| s).to_owned(),
            ))
        })
        .collect()
}

/// Resolves `USER` (`name`, `uid`, `name:group`, `uid:gid`) for RUN; empty is root.
pub fn resolve_user(rootfs: &Path, spec: &str) -> Result<Identity, UserError> {
    if spec.is_empty() {
        return Ok(Identity::default());
    }
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = entries(&read(rootfs, "etc/passwd"));
    let (uid, mut gid, name) = match user.parse::<u32>() {
        Ok(uid) => match passwd.iter().find(|e| e.1 == uid) {
            Some(e) => (uid, e.2, Some(e.0.clone())),
            None => (uid, 0, None),
        },
        Err(_) => match passwd.iter().find(|e| e.0 == user) {
            Some(e) => (e.1, e.2, Some(e.0.clone())),
            None => {
                return Err(UserError(format!(
                    "unable to find user {user}: no matching entries in passwd file"
                )))
            }
        },
    };
    let group_text = read(rootfs, "etc/group");
    if let Some(g) = group {
        gid = resolve_group(&group_text, g).ok_or_else(|| {
            UserError(format!(
                "unable to find group {g}: no matching entries in group file"
            ))
        })?;
    }
    let mut additional = Vec::new();
    if let (Some(name), None) = (&name, group) {
        for line in group_text.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 4 && f[3].split(',').any(|m| m == name) {
                if let Ok(g) = f[2].parse::<u32>() {
                    if g != gid && !additional.contains(&g) {
                        additional.push(g);
                    }
                }
            }
        }
    }
    Ok(Identity {
        uid,
        gid,
        additional_gids: additional,
    })
}

fn resolve_group(group_text: &str, g: &str) -> Option<u32> {
    if let Ok(id) = g.parse() {
        return Some(id);
    }
    entries(group_text)
        .into_iter()
        .find(|e| e.0 == g)
        .map(|e| e.1)
}

/// Resolves `--chown=user[:group]`: a user without a group uses its primary group (a
/// numeric uid without a group uses the same number as gid).
pub fn resolve_chown(rootfs: &Path, spec: &str) -> Result<(u32, u32), UserError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = entries(&read(rootfs, "etc/passwd"));
    let (uid, primary) = match user.parse::<u32>() {
        Ok(uid) => (uid, uid),
        Err(_) => match passwd.iter().find(|e| e.0 == user) {
            Some(e) => (e.1, e.2),
            None => {
                return Err(UserError(format!(
                    "unable to convert uid/gid chown string to host mapping: can't find uid for user {user}: no such user: {user}"
                )))
            }
        },
    };
    let gid = match group {
        None => primary,
        Some(g) => resolve_group(&read(rootfs, "etc/group"), g).ok_or_else(|| {
            UserError(format!(
                "unable to convert uid/gid chown string to host mapping: can't find gid for group {g}: no such group: {g}"
            ))
        })?,
    };
    Ok((uid, gid))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn users_and_groups_resolve() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("etc")).unwrap();
        fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nnogroup:x:65534:\nwheel:x:10:nobody\n",
        )
        .unwrap();
        let id = resolve_user(dir.path(), "nobody").unwrap();
        assert_eq!(
            (id.uid, id.gid, id.additional_gids),
            (65534, 65534, vec![10])
        );
        assert_eq!(resolve_user(dir.path(), "1000:wheel").unwrap().gid, 10);
        assert!(resolve_user(dir.path(), "bob").is_err());
        assert_eq!(resolve_chown(dir.path(), "nobody").unwrap(), (65534, 65534));
        assert_eq!(resolve_chown(dir.path(), "7").unwrap(), (7, 7));
        assert_eq!(
            resolve_chown(dir.path(), "bob").unwrap_err().to_string(),
            "unable to convert uid/gid chown string to host mapping: can't find uid for user bob: no such user: bob"
        );
    }
}
