//! Owner look-ups in a root's own `etc/passwd` and `etc/group`.
//!
//! Owners travel in the blob by *name* and are resolved on the target at
//! restore (seed `001_*`: a changed UID orphaned a user's data). At bundle
//! time the source root's files turn uids back into names. Nothing here
//! falls back to root: an unknown name is the caller's error to report.
#![forbid(unsafe_code)]

use std::io;
use std::os::fd::AsFd;

use crate::fsx;

/// Largest `etc/passwd` or `etc/group` we read (they are small text files).
const MAX_DB_SIZE: u64 = 16 << 20;

/// One line of `etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The login name (first field).
    pub name: String,
    /// The numeric user id (third field).
    pub uid: u32,
    /// The primary group's id (fourth field).
    pub gid: u32,
    /// The home directory, as written (sixth field).
    pub home: String,
}

/// The names of the normal (login) users of `accounts`, in file order:
/// uid 1000 to 59999, the range `useradd` and NixOS's `isNormalUser` give
/// people (`nobody`, 65534, and systemd's dynamic users above are not).
pub fn normal_users(accounts: &Accounts) -> Vec<String> {
    accounts
        .users()
        .iter()
        .filter(|u| (1000..60000).contains(&u.uid))
        .map(|u| u.name.clone())
        .collect()
}

/// The users and groups of one root.
#[derive(Debug, Default, Clone)]
pub struct Accounts {
    users: Vec<User>,
    groups: Vec<(String, u32)>,
}

impl Accounts {
    /// Read `etc/passwd` and `etc/group` under `root` (no symlink followed).
    pub fn load(root: impl AsFd) -> io::Result<Accounts> {
        let passwd = fsx::read_small_file(&root, &["etc", "passwd"], MAX_DB_SIZE)
            .map_err(|e| io::Error::new(e.kind(), format!("etc/passwd: {e}")))?;
        let group = fsx::read_small_file(&root, &["etc", "group"], MAX_DB_SIZE)
            .map_err(|e| io::Error::new(e.kind(), format!("etc/group: {e}")))?;
        Ok(Accounts::parse(
            &String::from_utf8_lossy(&passwd),
            &String::from_utf8_lossy(&group),
        ))
    }

    /// Parse the two databases; malformed lines are ignored, as libc does.
    pub fn parse(passwd: &str, group: &str) -> Accounts {
        let users = passwd
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                if f.len() < 7 || f[0].is_empty() || line.starts_with('#') {
                    return None;
                }
                Some(User {
                    name: f[0].to_owned(),
                    uid: f[2].parse().ok()?,
                    gid: f[3].parse().ok()?,
                    home: f[5].to_owned(),
                })
            })
            .collect();
        let groups = group
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                if f.len() < 3 || f[0].is_empty() || line.starts_with('#') {
                    return None;
                }
                Some((f[0].to_owned(), f[2].parse().ok()?))
            })
            .collect();
        Accounts { users, groups }
    }

    /// Every user, in file order.
    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// The first user with this name.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    /// The uid of a user name.
    pub fn uid(&self, name: &str) -> Option<u32> {
        self.user(name).map(|u| u.uid)
    }

    /// The gid of a group name.
    pub fn gid(&self, name: &str) -> Option<u32> {
        self.groups.iter().find(|(n, _)| n == name).map(|(_, g)| *g)
    }

    /// The first user name with this uid.
    pub fn user_name(&self, uid: u32) -> Option<&str> {
        self.users
            .iter()
            .find(|u| u.uid == uid)
            .map(|u| u.name.as_str())
    }

    /// The first group name with this gid.
    pub fn group_name(&self, gid: u32) -> Option<&str> {
        self.groups
            .iter()
            .find(|(_, g)| *g == gid)
            .map(|(n, _)| n.as_str())
    }
}

/// A home directory as components below the root, or why it is refused.
///
/// A home of `/` is refused (seed `000_*`: treating `/` as a home once
/// chowned a whole server to one user). So are relative homes and homes
/// with `.` or `..` components.
pub fn home_components(user: &User) -> Result<Vec<String>, String> {
    let home = user.home.as_str();
    if !home.starts_with('/') {
        return Err(format!(
            "home {home:?} of user {} is not absolute",
            user.name
        ));
    }
    let parts: Vec<String> = home
        .split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    if parts.is_empty() {
        return Err(format!(
            "home of user {} is \"/\"; refusing to treat the root directory as a home",
            user.name
        ));
    }
    if parts.iter().any(|c| c == "." || c == "..") {
        return Err(format!(
            "home {home:?} of user {} has a . or .. component",
            user.name
        ));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_looks_up_both_ways() {
        let a = Accounts::parse(
            "root:x:0:0:root:/root:/bin/sh\nzeta:x:1000:100::/home/zeta:/bin/sh\nbroken\n",
            "root:x:0:\nusers:x:100:zeta\n",
        );
        assert_eq!(a.uid("zeta"), Some(1000));
        assert_eq!(a.user_name(0), Some("root"));
        assert_eq!(a.gid("users"), Some(100));
        assert_eq!(a.group_name(100), Some("users"));
        assert_eq!(a.uid("nobody"), None);
        assert_eq!(
            home_components(a.user("zeta").unwrap()).unwrap(),
            ["home", "zeta"]
        );
    }

    #[test]
    fn normal_users_are_the_people() {
        let a = Accounts::parse(
            "root:x:0:0::/root:/bin/sh\nsshd:x:998:998::/var/empty:/bin/false\nalice:x:1000:100::/home/alice:/bin/sh\nnobody:x:65534:65534::/:/bin/false\nbob:x:1001:100::/home/bob:/bin/sh\ndyn:x:61184:61184::/:/bin/false\n",
            "",
        );
        assert_eq!(normal_users(&a), ["alice", "bob"]);
        assert!(normal_users(&Accounts::default()).is_empty());
    }

    #[test]
    fn refuses_root_and_odd_homes() {
        for home in ["/", "//", "", "home/zeta", "/home/../etc"] {
            let u = User {
                name: "z".into(),
                uid: 1,
                gid: 1,
                home: home.into(),
            };
            assert!(home_components(&u).is_err(), "{home:?} accepted");
        }
    }
}
