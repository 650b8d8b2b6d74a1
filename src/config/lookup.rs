//! Which config to use when none is named on the command line.
//!
//! Like cargo and taplo, forkyard looks in the current directory, then in each parent up
//! to the root of the repository it is in (the nearest folder holding `.git`, `.hg` or
//! `.jj`). Outside a repository only the current directory counts, so a stray
//! `/tmp/forkyard.toml` is never picked up from a subfolder. In the current directory the
//! formats of other tools count too, after `forkyard.toml`: a Procfile, `mprocs.yaml`,
//! `process-compose.yaml`; in parent folders only `forkyard.toml` does.

use std::path::{Path, PathBuf};

/// forkyard's own config name.
pub const CONFIG_NAME: &str = "forkyard.toml";

/// Other tools' files, looked for in the current directory only, in this order.
pub const FOREIGN_NAMES: &[&str] = &[
    "Procfile",
    "mprocs.yaml",
    "mprocs.yml",
    "process-compose.yaml",
    "process-compose.yml",
];

/// The folder that ends the search: the nearest of `dir` and its parents that holds a
/// repository (`.git` as a folder or, in a worktree, a file).
pub fn repo_root(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| [".git", ".hg", ".jj"].iter().any(|m| d.join(m).exists()))
        .map(Path::to_path_buf)
}

/// The config to use from `cwd`, or `None` (then forkyard runs its built-in demo).
///
/// Paths are returned as short as they can be said: `forkyard.toml`, `Procfile`,
/// `../forkyard.toml`, `../../forkyard.toml`.
pub fn find(cwd: &Path) -> Option<PathBuf> {
    if cwd.join(CONFIG_NAME).is_file() {
        return Some(PathBuf::from(CONFIG_NAME));
    }
    if let Some(name) = FOREIGN_NAMES.iter().find(|n| cwd.join(n).is_file()) {
        return Some(PathBuf::from(name));
    }
    let root = repo_root(cwd)?;
    let mut relative = PathBuf::new();
    for dir in cwd.ancestors().skip(1) {
        relative.push("..");
        if dir.join(CONFIG_NAME).is_file() {
            return Some(relative.join(CONFIG_NAME));
        }
        if dir == root {
            break;
        }
    }
    None
}

/// The nearest `package.json` from `cwd` up to the repository root (only `cwd` outside a
/// repository), as npm finds the package it runs scripts of.
pub fn find_package_json(cwd: &Path) -> Option<PathBuf> {
    if cwd.join("package.json").is_file() {
        return Some(PathBuf::from("package.json"));
    }
    let root = repo_root(cwd)?;
    let mut relative = PathBuf::new();
    for dir in cwd.ancestors().skip(1) {
        relative.push("..");
        if dir.join("package.json").is_file() {
            return Some(relative.join("package.json"));
        }
        if dir == root {
            break;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_up_to_the_repository_root() {
        let top = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let repo = top.path().join("repo");
        let deep = repo.join("a/b");
        std::fs::create_dir_all(&deep).unwrap_or_else(|e| panic!("{e}"));
        // Outside the repository: never looked at.
        std::fs::write(top.path().join(CONFIG_NAME), "").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(find(&deep), None, "no repository: only the cwd counts");
        std::fs::create_dir(repo.join(".git")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(find(&deep), None, "stops at the repository root");
        std::fs::write(repo.join(CONFIG_NAME), "").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(find(&deep), Some(PathBuf::from("../../forkyard.toml")));
        std::fs::write(deep.join("Procfile"), "").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(find(&deep), Some(PathBuf::from("Procfile")));
        std::fs::write(deep.join(CONFIG_NAME), "").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(find(&deep), Some(PathBuf::from(CONFIG_NAME)));
    }
}
