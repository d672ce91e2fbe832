//! `zeta-creds install-step` without a stick: its help, usage errors, the
//! opt-out and missing inputs, with the exact text and exit code
//! (tests/installer runs the whole step against FAT images as root).

use assert_cmd::Command;
use predicates::prelude::*;

fn step() -> Command {
    let mut cmd = Command::cargo_bin("zeta-creds").unwrap();
    cmd.arg("install-step")
        .env_remove("ZETA_CREDS_PICKER")
        .env_remove("ZETA_CREDS_PASSPHRASE")
        .env_remove("ZETA_CREDS_REBUNDLE")
        .env_remove("ZETA_CREDS_SEAL")
        .env_remove("ZETA_CREDS_MANIFEST_DIR");
    cmd
}

/// Nothing at all under `dir`.
fn empty(dir: &std::path::Path) -> bool {
    walk(dir).is_empty()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn help_lists_options_variables_and_the_exit_table() {
    step()
        .arg("--help")
        .assert()
        .code(0)
        .stdout(predicate::str::starts_with(
            "Usage: zeta-creds install-step --target DIR --esp DIR [OPTIONS]\n",
        ))
        .stdout(predicate::str::contains("ZETA_CREDS_REBUNDLE=0|1"))
        .stdout(predicate::str::contains("--seal-tpm2"))
        .stdout(predicate::str::contains("--stash DIR"))
        .stdout(predicate::str::contains("--blob FILE"))
        .stdout(predicate::str::contains("--host NAME"))
        .stdout(predicate::str::contains("ZETA_CREDS_RESCUE_DIR"))
        .stdout(predicate::str::contains(
            "   5  the blob on the ESP cannot be read and ZETA_CREDS_REBUNDLE is not 1\n",
        ));
}

#[test]
fn usage_errors_exit_2_with_one_hint() {
    step().args(["--esp", "/nonexistent"]).assert().code(2).stderr(
        "zeta-creds-step: error: --target DIR is required (the root of the system being installed, e.g. /mnt)\n\
         zeta-creds-step: hint: zeta-creds install-step --help lists the options\n",
    );
    step()
        .args(["--shim", "/opt/x/zeta-creds-step.sh", "--frobnicate"])
        .assert()
        .code(2)
        .stderr(
            "zeta-creds-step: error: unknown argument: --frobnicate\n\
             zeta-creds-step: hint: zeta-creds-step.sh --help lists the options\n",
        );
    step()
        .args(["--target", "/", "--esp", "/"])
        .env("ZETA_CREDS_REBUNDLE", "yes")
        .assert()
        .code(2)
        .stderr(predicate::str::starts_with(
            "zeta-creds-step: error: ZETA_CREDS_REBUNDLE must be 1 (re-bundle) or 0 (keep), not 'yes'\n",
        ));
    step()
        .args([
            "--target",
            "/",
            "--esp",
            "/",
            "--seal-tpm2",
            "--tpm2-pcrs",
            "7+",
        ])
        .assert()
        .code(2);
}

#[test]
fn picker_0_skips_before_looking_at_anything() {
    let t = tempfile::tempdir().unwrap();
    step()
        .args(["--target", "/nonexistent-target", "--esp", "/nonexistent-esp"])
        .env("ZETA_CREDS_PICKER", "0")
        .env("ZETA_CREDS_PASSPHRASE", "correct horse battery staple")
        .current_dir(t.path())
        .assert()
        .code(0)
        .stdout("")
        .stderr(
            "zeta-creds-step: skipped: ZETA_CREDS_PICKER=0 (credentials are not carried to the next install)\n",
        );
    assert!(empty(t.path()));
}

#[test]
fn missing_inputs_exit_6_and_write_nothing() {
    let root = tempfile::tempdir().unwrap();
    let (target, esp) = (root.path().join("target"), root.path().join("esp"));
    std::fs::create_dir_all(&target).unwrap();
    std::fs::create_dir_all(&esp).unwrap();
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifest/default.toml");
    step()
        .arg("--target")
        .arg(&target)
        .arg("--esp")
        .arg(&esp)
        .args(["--manifest", manifest, "--usb-device", "/nonexistent/stick"])
        .env("ZETA_CREDS_PICKER", "1")
        .assert()
        .code(6)
        .stderr(predicate::str::ends_with(
            "zeta-creds-step: error: USB device /nonexistent/stick does not exist\n\
             zeta-creds-step: hint: `lsblk -f` lists the devices and their UUIDs\n",
        ));
    step()
        .arg("--target")
        .arg(&target)
        .arg("--esp")
        .arg(&esp)
        .args(["--manifest", "/nonexistent/manifest.toml"])
        .env("ZETA_CREDS_PICKER", "1")
        .assert()
        .code(6)
        .stderr("zeta-creds-step: error: manifest /nonexistent/manifest.toml does not exist\n");
    step()
        .arg("--target")
        .arg(&target)
        .arg("--esp")
        .arg(&esp)
        .args(["--zeta-creds", "/nonexistent/zeta-creds"])
        .env("ZETA_CREDS_PICKER", "1")
        .assert()
        .code(6)
        .stderr(predicate::str::starts_with(
            "zeta-creds-step: error: zeta-creds not found ('/nonexistent/zeta-creds')\n",
        ));
    assert!(empty(&target) && empty(&esp));
}
