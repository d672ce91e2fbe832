//! Before a bundle, and before any passphrase is asked: the manifest
//! parses, its user (`--user NAME`, else the manifest's `user`) has an
//! account on the source, and every required entry is there (issue 17
//! item 7). The same pick and checks `zeta-creds bundle` makes, run here
//! once, so a user not named as the manifest says is one message with
//! the source's normal users and the way to choose one, not a passphrase
//! typed twice and then a failure.

use std::path::Path;

use zeta_creds::bundle::Error;
use zeta_creds::manifest::{self, Manifest};
use zeta_creds::pick;

use super::exit::{Fail, StepExit};

/// Check what a bundle from `source_root` with `manifest` would pick, as
/// `user` (`None`: the manifest's) for `persona`. On success, the user the
/// bundle is for.
pub fn check(
    manifest_path: &Path,
    source_root: &Path,
    user: Option<&str>,
    persona: Option<&str>,
) -> Result<String, Fail> {
    let mut manifest = Manifest::load(manifest_path).map_err(|e| refuse(Error::Manifest(e)))?;
    if let Some(user) = user {
        manifest.user = user.to_owned();
    }
    let picked = pick::pick(&manifest, source_root, persona.unwrap_or("")).map_err(refuse)?;
    picked.check().map_err(refuse)?;
    Ok(manifest.user)
}

/// The step's failure for what `bundle` would have refused.
fn refuse(e: Error) -> Fail {
    let exit = match &e {
        Error::Manifest(manifest::Error::Read { .. })
        | Error::SourceRoot { .. }
        | Error::RequiredMissing { .. } => StepExit::Missing,
        _ => StepExit::Failed,
    };
    Fail::new(
        exit,
        format!("{e}; no passphrase was asked and nothing was written"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(passwd: &str) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        std::fs::write(t.path().join("etc/passwd"), passwd).unwrap();
        std::fs::write(t.path().join("etc/group"), "root:x:0:\nusers:x:100:\n").unwrap();
        // Nothing to pick: what is checked is who, and what is required
        // (file owners are another test's, and depend on who runs it).
        t
    }

    fn manifest(dir: &Path, required: bool) -> std::path::PathBuf {
        let p = dir.join("manifest.toml");
        std::fs::write(
            &p,
            format!(
                "version = 1\nuser = \"zeta\"\n\n[[entry]]\npath = \"~/.config/gh\"\nrequired = {required}\n\n[[entry]]\npath = \"/etc/ssh/ssh_host_ed25519_key\"\nrequired = {required}\n"
            ),
        )
        .unwrap();
        p
    }

    const PASSWD: &str = "root:x:0:0::/root:/bin/sh\nalice:x:1000:100::/home/alice:/bin/sh\nbob:x:1001:100::/home/bob:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n";

    #[test]
    fn an_unknown_user_names_the_normal_users_and_the_option() {
        let t = root(PASSWD);
        let m = manifest(t.path(), false);
        let e = check(&m, t.path(), None, None).unwrap_err();
        assert_eq!(e.exit, StepExit::Failed);
        assert!(
            e.message.starts_with("user \"zeta\" is not in "),
            "{}",
            e.message
        );
        assert!(
            e.message
                .contains("(its normal users: alice, bob); pass --user NAME to choose one"),
            "{}",
            e.message
        );
        assert!(
            e.message
                .ends_with("no passphrase was asked and nothing was written")
        );
        let e = check(&m, t.path(), Some("carol"), None).unwrap_err();
        assert!(
            e.message.starts_with("user \"carol\" is not in "),
            "{}",
            e.message
        );
        assert_eq!(check(&m, t.path(), Some("alice"), None).unwrap(), "alice");
    }

    #[test]
    fn a_missing_required_entry_is_refused_before_the_passphrase() {
        let t = root(PASSWD);
        let m = manifest(t.path(), true);
        let e = check(&m, t.path(), Some("alice"), None).unwrap_err();
        assert_eq!(e.exit, StepExit::Missing);
        assert!(
            e.message
                .starts_with("required path ~/.config/gh is missing under"),
            "{}",
            e.message
        );
        let e = check(&t.path().join("none.toml"), t.path(), None, None).unwrap_err();
        assert_eq!(e.exit, StepExit::Missing);
    }
}
