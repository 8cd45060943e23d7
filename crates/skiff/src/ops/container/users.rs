//! `-u name|uid[:group|gid]` resolved against the container's own /etc/passwd and
//! /etc/group, with runc's (libcontainer's `GetExecUser`) rules, which docker uses: a name
//! must exist, a number need not; the supplementary groups are those listing the user by
//! name, and only when no group was given.

use std::path::Path;

use crate::ops::error::OpError;

/// Who the container's process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// The home directory from /etc/passwd, `/` when unknown.
    pub home: String,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5).map(|s| s.to_string()).unwrap_or_default(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(GroupEntry {
                name: f.first()?.to_string(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Resolves `user` (docker's `--user`, empty for root) against the files of `rootfs`.
pub fn resolve(rootfs: &Path, user: &str) -> Result<ExecUser, OpError> {
    // A missing file is an empty database, as in libcontainer.
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
    let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
    resolve_in(&passwd, &group, user)
}

fn resolve_in(passwd: &str, group: &str, user: &str) -> Result<ExecUser, OpError> {
    let (user_arg, group_arg) = match user.split_once(':') {
        Some((u, g)) => (u, g),
        None => (user, ""),
    };
    let users = parse_passwd(passwd);
    let mut out = ExecUser {
        uid: 0,
        gid: 0,
        additional_gids: Vec::new(),
        home: "/".to_owned(),
    };
    let user_arg = if user_arg.is_empty() { "0" } else { user_arg };
    let numeric_uid: Option<u32> = user_arg.parse().ok();
    let found = users.iter().find(|u| match numeric_uid {
        Some(n) => u.uid == n,
        None => u.name == user_arg,
    });
    let mut matched_name = None;
    match (found, numeric_uid) {
        (Some(u), _) => {
            out.uid = u.uid;
            out.gid = u.gid;
            if !u.home.is_empty() {
                out.home = u.home.clone();
            }
            matched_name = Some(u.name.clone());
        }
        (None, Some(n)) => {
            if n > i32::MAX as u32 {
                return Err(OpError::invalid(format!(
                    "uids and gids must be in range 0-{}",
                    i32::MAX
                )));
            }
            out.uid = n;
        }
        (None, None) => {
            return Err(OpError::invalid(format!(
                "unable to find user {user_arg}: no matching entries in passwd file"
            )))
        }
    }

    if group_arg.is_empty() && matched_name.is_none() {
        return Ok(out);
    }
    let groups = parse_group(group);
    if !group_arg.is_empty() {
        let numeric_gid: Option<u32> = group_arg.parse().ok();
        match groups.iter().find(|g| match numeric_gid {
            Some(n) => g.gid == n,
            None => g.name == group_arg,
        }) {
            Some(g) => out.gid = g.gid,
            None => match numeric_gid {
                Some(n) if n <= i32::MAX as u32 => out.gid = n,
                Some(_) => {
                    return Err(OpError::invalid(format!(
                        "uids and gids must be in range 0-{}",
                        i32::MAX
                    )))
                }
                None => {
                    return Err(OpError::invalid(format!(
                        "unable to find group {group_arg}: no matching entries in group file"
                    )))
                }
            },
        }
    } else if let Some(name) = matched_name {
        out.additional_gids = groups
            .iter()
            .filter(|g| g.members.contains(&name))
            .map(|g| g.gid)
            .collect();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\nbob:x:1000:1000::/home/bob:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:root,bob\nnogroup:x:65534:\nbob:x:1000:\n";

    #[test]
    fn names_numbers_and_groups_resolve_like_runc() {
        let r = resolve_in(PASSWD, GROUP, "").unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (0, 0, "/root"));
        assert_eq!(r.additional_gids, [10]);
        let r = resolve_in(PASSWD, GROUP, "bob").unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (1000, 1000, "/home/bob"));
        assert_eq!(r.additional_gids, [10]);
        let r = resolve_in(PASSWD, GROUP, "1234:5").unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (1234, 5, "/"));
        assert!(r.additional_gids.is_empty());
        let r = resolve_in(PASSWD, GROUP, "nobody:wheel").unwrap();
        assert_eq!((r.uid, r.gid), (65534, 10));
        assert!(r.additional_gids.is_empty());
        assert_eq!(
            resolve_in(PASSWD, GROUP, "alice").unwrap_err().message,
            "unable to find user alice: no matching entries in passwd file"
        );
        assert_eq!(
            resolve_in(PASSWD, GROUP, "bob:staff").unwrap_err().message,
            "unable to find group staff: no matching entries in group file"
        );
    }
}
