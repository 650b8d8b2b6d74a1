//! Where control sockets live and what they are called.
//!
//! A session's socket is `$XDG_RUNTIME_DIR/forkyard/NAME.sock`, or, without
//! `XDG_RUNTIME_DIR`, `/tmp/forkyard-UID/NAME.sock`. The folder is made with mode 0700
//! and must belong to this user (a folder someone else made first is refused, never
//! used); the socket itself is made with mode 0600. NAME is `--name`, else the config's
//! file stem (or its folder's name for the usual names such as `forkyard.toml` or
//! `Procfile`), `run` for commands typed on the command line, `demo` for the built-in
//! demo. When the derived name is in use by a live session, `NAME-PID` is used instead.
//!
//! A socket file whose server is gone (connect is refused) is stale: binding over it,
//! listing sessions and resolving a name remove it.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream as StdStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::config::{BUILTIN_DEMO_NAME, Config};

pub const SOCKET_SUFFIX: &str = ".sock";
/// Longest session name.
pub const MAX_NAME: usize = 64;
/// `sun_path` holds 108 bytes, the last a NUL.
const MAX_SOCKET_PATH: usize = 107;

/// Config file names too generic to name a session: their folder's name is used.
const GENERIC_NAMES: &[&str] = &[
    "forkyard.toml",
    "Procfile",
    "mprocs.yaml",
    "mprocs.yml",
    "process-compose.yaml",
    "process-compose.yml",
    "package.json",
];

/// This process's effective uid.
pub fn my_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The folder of the default sockets.
pub fn dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(runtime) if Path::new(&runtime).is_absolute() => {
            PathBuf::from(runtime).join("forkyard")
        }
        _ => PathBuf::from(format!("/tmp/forkyard-{}", my_uid())),
    }
}

/// Makes `dir` (mode 0700) or checks that it is this user's own and private.
pub fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .or_else(|err| match err.kind() {
                    // Made by another session of ours in between: checked below.
                    std::io::ErrorKind::AlreadyExists => Ok(()),
                    _ => Err(err),
                })
                .with_context(|| format!("cannot make the socket folder {}", dir.display()))?;
        }
        Err(err) => {
            return Err(err).with_context(|| format!("cannot use {}", dir.display()));
        }
        Ok(_) => {}
    }
    let meta =
        std::fs::symlink_metadata(dir).with_context(|| format!("cannot use {}", dir.display()))?;
    let me = my_uid();
    if !meta.file_type().is_dir() {
        bail!(
            "{} is not a folder: refusing to put control sockets there (use --socket PATH)",
            dir.display()
        );
    }
    if meta.uid() != me {
        bail!(
            "{} belongs to uid {}, not to you (uid {me}): refusing to use it (use --socket PATH)",
            dir.display(),
            meta.uid()
        );
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private", dir.display()))?;
    }
    Ok(())
}

/// A session name: letters, digits, `_`, `.` and `-`, not starting with `.`, at most
/// [`MAX_NAME`] long.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!(
            "a session name has 1 to {MAX_NAME} characters, not {}",
            name.len()
        ));
    }
    if name.starts_with('.')
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(format!(
            "{:?} is not a session name (letters, digits, `_`, `.` and `-`, not starting with `.`)",
            crate::stdio::visible_inline(name)
        ));
    }
    Ok(())
}

/// The name a config's session gets without `--name`.
pub fn derive_name(config: &Config) -> String {
    if config.origin == BUILTIN_DEMO_NAME {
        return "demo".into();
    }
    if config.origin == crate::cli::COMMAND_LINE {
        return "run".into();
    }
    let path = Path::new(&config.origin);
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let raw = if GENERIC_NAMES.contains(&file.as_str()) {
        std::fs::canonicalize(path)
            .ok()
            .and_then(|p| {
                p.parent()?
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "forkyard".into())
    } else {
        path.file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(MAX_NAME - 8)
        .collect();
    while name.starts_with('.') {
        name.remove(0);
    }
    if name.is_empty() {
        name = "forkyard".into();
    }
    name
}

/// The default socket of session `name`.
pub fn path_for(name: &str) -> PathBuf {
    dir().join(format!("{name}{SOCKET_SUFFIX}"))
}

/// The session name of a socket path (its file stem).
pub fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy())
        .map(|n| n.strip_suffix(SOCKET_SUFFIX).unwrap_or(&n).to_string())
        .unwrap_or_default()
}

/// The socket file of a running server: removed when dropped, unless another server has
/// replaced it in the meantime.
#[derive(Debug)]
pub struct SocketFile {
    pub path: PathBuf,
    identity: (u64, u64),
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path)
            && (meta.dev(), meta.ino()) == self.identity
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A bound socket, not yet accepting.
pub struct Bound {
    pub listener: std::os::unix::net::UnixListener,
    pub file: SocketFile,
    pub name: String,
}

/// Why a socket could not be bound.
#[derive(Debug)]
pub enum BindError {
    /// A live server answers there.
    InUse,
    Other(anyhow::Error),
}

/// What is at `path`: a live server, a stale socket (removed), or nothing.
fn clear_stale(path: &Path) -> Result<(), BindError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => {
            return Err(BindError::Other(
                anyhow::Error::new(err).context(format!("cannot use {}", path.display())),
            ));
        }
    };
    if !meta.file_type().is_socket() {
        return Err(BindError::Other(anyhow::anyhow!(
            "{} exists and is not a socket: refusing to replace it",
            path.display()
        )));
    }
    match StdStream::connect(path) {
        Ok(_) => Err(BindError::InUse),
        Err(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
            ) =>
        {
            match std::fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(err) => Err(BindError::Other(
                    anyhow::Error::new(err)
                        .context(format!("cannot remove the stale socket {}", path.display())),
                )),
            }
        }
        Err(err) => Err(BindError::Other(
            anyhow::Error::new(err).context(format!("cannot use {}", path.display())),
        )),
    }
}

/// Binds a socket at `path`, mode 0600 from the start (no moment in which another user
/// could connect), over a stale one if need be.
pub fn bind_at(path: &Path) -> Result<(std::os::unix::net::UnixListener, SocketFile), BindError> {
    use std::os::unix::ffi::OsStrExt;
    if path.as_os_str().as_bytes().len() > MAX_SOCKET_PATH {
        return Err(BindError::Other(anyhow::anyhow!(
            "the socket path {} is longer than {MAX_SOCKET_PATH} bytes, the most a Unix socket \
             allows (use --socket with a shorter path)",
            path.display()
        )));
    }
    clear_stale(path)?;
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = std::os::unix::net::UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = match bound {
        Ok(listener) => listener,
        Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => return Err(BindError::InUse),
        Err(err) => {
            return Err(BindError::Other(
                anyhow::Error::new(err).context(format!("cannot bind {}", path.display())),
            ));
        }
    };
    let meta = std::fs::symlink_metadata(path)
        .and_then(|meta| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            Ok(meta)
        })
        .map_err(|err| {
            BindError::Other(
                anyhow::Error::new(err).context(format!("cannot use {}", path.display())),
            )
        })?;
    Ok((
        listener,
        SocketFile {
            path: path.to_path_buf(),
            identity: (meta.dev(), meta.ino()),
        },
    ))
}

/// Binds the socket a run asked for (see the module doc for names).
pub fn bind(
    choice: &super::SocketChoice,
    name: Option<&str>,
    derived: impl FnOnce() -> String,
    exclusive: bool,
) -> anyhow::Result<Option<Bound>> {
    use super::SocketChoice;
    let in_use = |path: &Path, name: &str| {
        anyhow::anyhow!(
            "a session named `{name}` is already running ({}): attach to it with `forkyard attach \
             {name}`, or give another --name",
            path.display()
        )
    };
    match choice {
        SocketChoice::Off => Ok(None),
        SocketChoice::Path(path) => {
            let name = name.map(str::to_string).unwrap_or_else(|| name_of(path));
            match bind_at(path) {
                Ok((listener, file)) => Ok(Some(Bound {
                    listener,
                    file,
                    name,
                })),
                Err(BindError::InUse) => Err(in_use(path, &name)),
                Err(BindError::Other(err)) => Err(err),
            }
        }
        SocketChoice::Default => {
            if let Some(name) = name {
                check_name(name).map_err(|m| anyhow::anyhow!("--name: {m}"))?;
            }
            let dir = dir();
            ensure_dir(&dir)?;
            let wanted = name.map(str::to_string).unwrap_or_else(derived);
            let path = dir.join(format!("{wanted}{SOCKET_SUFFIX}"));
            match bind_at(&path) {
                Ok((listener, file)) => Ok(Some(Bound {
                    listener,
                    file,
                    name: wanted,
                })),
                Err(BindError::InUse) if name.is_none() && !exclusive => {
                    let unique = format!("{wanted}-{}", std::process::id());
                    let path = dir.join(format!("{unique}{SOCKET_SUFFIX}"));
                    match bind_at(&path) {
                        Ok((listener, file)) => Ok(Some(Bound {
                            listener,
                            file,
                            name: unique,
                        })),
                        Err(BindError::InUse) => Err(in_use(&path, &unique)),
                        Err(BindError::Other(err)) => Err(err),
                    }
                }
                Err(BindError::InUse) => Err(in_use(&path, &wanted)),
                Err(BindError::Other(err)) => Err(err),
            }
        }
    }
}

/// A session found in the socket folder.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub path: PathBuf,
    /// Its greeting (pid, config, version).
    pub hello: Value,
}

/// Reads the greeting of the server at `path` (blocking, briefly): None if none answers.
/// A stale socket (connection refused) is removed.
pub fn probe(path: &Path) -> Option<Value> {
    let stream = match StdStream::connect(path) {
        Ok(stream) => stream,
        Err(err) => {
            if err.kind() == std::io::ErrorKind::ConnectionRefused
                && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
            {
                let _ = std::fs::remove_file(path);
            }
            return None;
        }
    };
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut line = String::new();
    BufReader::new(std::io::Read::take(stream, 64 * 1024))
        .read_line(&mut line)
        .ok()?;
    serde_json::from_str(&line).ok()
}

/// The live sessions in the default folder, by name (stale sockets are removed).
pub fn list() -> Vec<Entry> {
    let Ok(entries) = std::fs::read_dir(dir()) else {
        return Vec::new();
    };
    let mut found: Vec<Entry> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(SOCKET_SUFFIX))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_socket()))
        .filter_map(|e| {
            let path = e.path();
            let hello = probe(&path)?;
            Some(Entry {
                name: name_of(&path),
                path,
                hello,
            })
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

/// Why no session could be chosen.
#[derive(Debug)]
pub enum Unresolved {
    /// Nothing answers there, or no session runs: exit 3.
    NoSession(String),
    /// Several run and none was named: exit 2.
    Ambiguous(String),
}

/// The socket `--socket PATH` or `--name N` names, or the only live session.
pub fn resolve(socket: Option<&Path>, name: Option<&str>) -> Result<PathBuf, Unresolved> {
    if let Some(path) = socket {
        return Ok(path.to_path_buf());
    }
    if let Some(name) = name {
        check_name(name).map_err(Unresolved::Ambiguous)?;
        let path = path_for(name);
        if std::fs::symlink_metadata(&path).is_err() {
            let live: Vec<String> = list().into_iter().map(|e| e.name).collect();
            return Err(Unresolved::NoSession(format!(
                "no session named `{name}`{}",
                running_list(&live)
            )));
        }
        return Ok(path);
    }
    let live = list();
    match live.as_slice() {
        [one] => Ok(one.path.clone()),
        [] => Err(Unresolved::NoSession(
            "no forkyard session is running (start one with `forkyard up`)".into(),
        )),
        many => {
            let names: Vec<String> = many.iter().map(|e| e.name.clone()).collect();
            Err(Unresolved::Ambiguous(format!(
                "{} sessions are running: name one with --name ({})",
                names.len(),
                names.join(", ")
            )))
        }
    }
}

fn running_list(names: &[String]) -> String {
    if names.is_empty() {
        " (none is running)".into()
    } else {
        format!(" (running: {})", names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("web-1.a_b").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name(".hidden").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
        let mut config = crate::config::builtin_demo().expect("demo");
        assert_eq!(derive_name(&config), "demo");
        config.origin = "/x/y/ci tests.toml".into();
        assert_eq!(derive_name(&config), "ci-tests");
        config.origin = crate::cli::COMMAND_LINE.into();
        assert_eq!(derive_name(&config), "run");
        assert_eq!(name_of(Path::new("/run/forkyard/web.sock")), "web");
    }

    #[test]
    fn a_socket_is_private_and_a_stale_one_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sock");
        let (listener, file) = bind_at(&path).expect("bind");
        let mode = std::fs::metadata(&path).expect("meta").mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(bind_at(&path), Err(BindError::InUse)));
        // The server goes away without removing its socket: stale.
        drop(listener);
        std::mem::forget(file);
        assert!(path.exists());
        let (_listener, file) = bind_at(&path).expect("bind over a stale socket");
        drop(file);
        assert!(!path.exists());
        std::fs::write(&path, "not a socket").expect("write");
        assert!(matches!(bind_at(&path), Err(BindError::Other(_))));
    }
}
