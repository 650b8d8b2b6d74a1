//! Sets `FORKYARD_VERSION` for `--version`: the package version, plus the git commit
//! when built from a checkout of this repository (`0.1.0 (git 09d3811)`).
//!
//! Only a repository whose top level is this crate's folder counts, so a tarball
//! unpacked inside some other repository does not claim that repository's commit. No
//! git, no `.git`, or any git error: just the package version.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// A missing file would make cargo rerun this script on every build: watch only files
/// that exist (a ref that is packed has no file of its own).
fn watch(path: &Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

fn main() {
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let ours = git(&dir, &["rev-parse", "--show-toplevel"])
        .and_then(|top| std::fs::canonicalize(top).ok())
        .zip(std::fs::canonicalize(&dir).ok())
        .is_some_and(|(top, dir)| top == dir);
    let commit = if ours {
        git(&dir, &["rev-parse", "--short=10", "HEAD"])
    } else {
        None
    };
    match &commit {
        Some(commit) => println!("cargo:rustc-env=FORKYARD_VERSION={version} (git {commit})"),
        None => println!("cargo:rustc-env=FORKYARD_VERSION={version}"),
    }
    // Rebuild when HEAD moves: HEAD itself (a checkout) and the ref it points at (a
    // commit), wherever this checkout keeps them (a worktree has its own HEAD).
    if ours {
        for name in ["HEAD", "packed-refs"] {
            if let Some(path) = git(&dir, &["rev-parse", "--git-path", name]) {
                watch(&dir.join(path));
            }
        }
        if let Some(head_ref) = git(&dir, &["symbolic-ref", "-q", "HEAD"])
            && let Some(path) = git(&dir, &["rev-parse", "--git-path", &head_ref])
        {
            watch(&dir.join(path));
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
