//! The library has no command line (issue 15, item 1): clap is the
//! binary's (`src/bin/zeta-creds/cli.rs`). Cargo cannot give a binary
//! dependencies its library lacks, so this test is what keeps clap out of
//! `src/` outside `src/bin/`.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_library_module_uses_clap() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let offenders: Vec<String> = files
        .iter()
        .filter(|p| !p.starts_with(src.join("bin")))
        .map(|p| p.strip_prefix(&src).unwrap().display().to_string())
        .filter(|rel| {
            let text = std::fs::read_to_string(src.join(rel)).unwrap();
            text.contains("clap::") || text.contains("use clap")
        })
        .collect();
    assert!(
        files.len() > 10,
        "read {} files under {}",
        files.len(),
        src.display()
    );
    assert!(
        offenders.is_empty(),
        "library modules using clap (it belongs to src/bin/zeta-creds/cli.rs): {offenders:?}"
    );
}
