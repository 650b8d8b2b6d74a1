//! `package.json` scripts, run through the project's package manager.
//!
//! The manager is the one `packageManager` names (`"pnpm@9.1.0"`), else the one whose
//! lockfile is next to `package.json` (`pnpm-lock.yaml`, `yarn.lock`, `bun.lock` or
//! `bun.lockb`), else npm; an argument written `pnpm:dev`, `yarn:dev` or `bun:dev` says
//! it outright. A pattern is a script name where `*` matches any text (`dev:*`); as in
//! concurrently, the job is named after what `*` matched (`dev:web` -> `web`).

use std::path::{Path, PathBuf};

use toml::Value;

use super::yaml::{self, Y};
use super::{Draft, DraftJob, Format, Pos, error_at};
use crate::config::ConfigError;

/// Package managers that run `package.json` scripts with `<manager> run <script>`.
pub const MANAGERS: &[&str] = &["npm", "pnpm", "yarn", "bun"];

/// The scripts of a `package.json`, in file order.
pub struct Package {
    pub path: PathBuf,
    pub manager: String,
    pub scripts: Vec<(String, Pos)>,
}

impl Package {
    pub fn read(path: &Path) -> Result<Package, ConfigError> {
        let text = crate::config::read(path)?;
        Package::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<Package, ConfigError> {
        let origin = path.display().to_string();
        let root = yaml::parse(text, &origin)?;
        let root = root.as_ref();
        let scripts = match root.and_then(|r| r.get("scripts")) {
            Some(scripts) => match scripts.entries() {
                Some(entries) => entries
                    .iter()
                    .filter_map(|(k, _)| k.as_str().map(|s| (s.to_string(), k.at)))
                    .collect(),
                None => {
                    return Err(error_at(
                        &origin,
                        scripts.at,
                        Some("scripts"),
                        format!("expected an object of scripts, got {}", scripts.kind()),
                    ));
                }
            },
            None => Vec::new(),
        };
        let dir = path.parent().unwrap_or(Path::new(""));
        let named = root
            .and_then(|r| r.get("packageManager"))
            .and_then(Y::as_str)
            .map(|m| m.split('@').next().unwrap_or(m).to_string())
            .filter(|m| MANAGERS.contains(&m.as_str()));
        let manager = named.unwrap_or_else(|| {
            let lock = |name: &str| dir.join(name).is_file();
            if lock("pnpm-lock.yaml") {
                "pnpm"
            } else if lock("yarn.lock") {
                "yarn"
            } else if lock("bun.lock") || lock("bun.lockb") {
                "bun"
            } else {
                "npm"
            }
            .to_string()
        });
        Ok(Package {
            path: path.to_path_buf(),
            manager,
            scripts,
        })
    }

    /// The scripts matching `pattern`, each with the job name it gets.
    pub fn matching(&self, pattern: &str) -> Vec<(String, String)> {
        self.scripts
            .iter()
            .filter_map(|(script, _)| {
                let matched = glob(pattern, script)?;
                let name = match matched {
                    Some(part) if !part.is_empty() => part,
                    _ => script.clone(),
                };
                Some((script.clone(), name))
            })
            .collect()
    }

    /// The folder the scripts run in (as the manager runs them), relative to where
    /// forkyard runs; `None` for the current directory.
    pub fn dir(&self) -> Option<String> {
        let dir = self.path.parent()?;
        (!dir.as_os_str().is_empty()).then(|| dir.display().to_string())
    }
}

/// Adds a job per script of `package` matching `pattern` to `draft`, run with
/// `manager` (`None`: the package's own). No match is an error that lists the scripts.
pub fn add_scripts(
    draft: &mut Draft,
    package: &Package,
    pattern: &str,
    manager: Option<&str>,
    at: Pos,
) -> Result<usize, String> {
    let found = package.matching(pattern);
    if found.is_empty() {
        let names: Vec<&str> = package.scripts.iter().map(|(s, _)| s.as_str()).collect();
        return Err(format!(
            "no script in {} matches {pattern:?} (scripts: {})",
            package.path.display(),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ));
    }
    let manager = manager.unwrap_or(&package.manager);
    for (script, wanted) in &found {
        let name = draft.job_name(wanted, at);
        let mut job = DraftJob::new(name, at);
        job.set(
            "cmd",
            vec![
                Value::from(manager.to_string()),
                Value::from("run"),
                Value::from(super::literal(script)),
            ],
            at,
        );
        if let Some(dir) = package.dir() {
            job.set("cwd", super::literal(&dir), at);
        }
        draft.jobs.push(job);
    }
    Ok(found.len())
}

/// `forkyard package.json`: every script, none started (as `mprocs --npm` lists them):
/// start the ones you want from the TUI.
pub fn draft_all(path: &Path, text: &str) -> Result<Draft, ConfigError> {
    let package = Package::parse(path, text)?;
    let origin = path.display().to_string();
    let mut d = Draft::new(&origin, Format::PackageJson);
    d.notes.push(format!(
        "every script of {origin}, run with {}; none starts by itself (autostart = false)",
        package.manager
    ));
    for (script, at) in &package.scripts {
        let name = d.job_name(script, *at);
        let mut job = DraftJob::new(name, *at);
        job.set(
            "cmd",
            vec![
                Value::from(package.manager.clone()),
                Value::from("run"),
                Value::from(super::literal(script)),
            ],
            *at,
        );
        job.set("autostart", false, *at);
        d.jobs.push(job);
    }
    if d.jobs.is_empty() {
        return Err(error_at(
            &origin,
            Pos::new(1, 1),
            Some("scripts"),
            "no scripts to run",
        ));
    }
    Ok(d)
}

/// Matches `text` against `pattern` (`*` = any text). `Some(Some(part))`: matched, and
/// the text the first `*` matched; `Some(None)`: matched a pattern without `*`.
fn glob(pattern: &str, text: &str) -> Option<Option<String>> {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return (pattern == text).then_some(None);
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return None;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    let middle = &parts[1..parts.len() - 1];
    let mut captured = None;
    for (i, part) in middle.iter().enumerate() {
        let at = rest.find(part)?;
        if i == 0 {
            captured = Some(rest[..at].to_string());
        }
        rest = &rest[at + part.len()..];
    }
    Some(Some(captured.unwrap_or_else(|| rest.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert_eq!(glob("dev:*", "dev:web"), Some(Some("web".into())));
        assert_eq!(glob("dev:*", "build"), None);
        assert_eq!(glob("*", "lint"), Some(Some("lint".into())));
        assert_eq!(glob("build", "build"), Some(None));
        assert_eq!(glob("build", "build:x"), None);
        assert_eq!(glob("a*c", "abc"), Some(Some("b".into())));
        assert_eq!(glob("a*c", "ac"), Some(Some("".into())));
        assert_eq!(glob("a*b*c", "aXbYc"), Some(Some("X".into())));
        assert_eq!(glob("a*a", "a"), None);
    }

    #[test]
    fn scripts_keep_file_order_and_manager() {
        let p = Package::parse(
            Path::new("/nonexistent-forkyard/package.json"),
            r#"{"packageManager": "pnpm@9.1.0", "scripts": {"dev:web": "vite", "dev:api": "node api.js", "build": "tsc"}}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.manager, "pnpm");
        assert_eq!(
            p.matching("dev:*"),
            [
                ("dev:web".to_string(), "web".to_string()),
                ("dev:api".to_string(), "api".to_string())
            ]
        );
    }
}
