//! Who may use a session: its folder is 0700 and its socket 0600, so another user cannot
//! even connect; and when the file modes are opened up anyway, the server still refuses
//! every other uid (SO_PEERCRED). A socket folder that belongs to someone else is never
//! used. The other user is `nobody`, through `runuser` (the tests run as root).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;
#[path = "control_util/mod.rs"]
mod util;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::sleep_arg;
use util::{Conn, Scratch, require, run};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").mode() & 0o777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// `forkyard ctl --socket SOCKET status` as user nobody, with a copy of the binary
/// nobody may run.
fn ctl_as_nobody(scratch: &Scratch, socket: &Path) -> util::Out {
    let copy = scratch.path().join("forkyard-copy");
    if !copy.exists() {
        std::fs::copy(util::bin(), &copy).expect("copy the binary");
        chmod(&copy, 0o755);
    }
    let mut command = Command::new("runuser");
    command
        .args(["-u", "nobody", "--"])
        .arg(&copy)
        .args(["ctl", "--socket"])
        .arg(socket)
        .arg("status")
        .current_dir("/");
    run(command)
}

#[test]
fn another_user_cannot_connect_and_is_refused_when_the_modes_allow_it() {
    require("runuser");
    assert_eq!(
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() },
        0,
        "this test switches to user nobody, which needs root"
    );
    let scratch = Scratch::new();
    let session = scratch.up(
        "private",
        &format!(
            "[[job]]\nname = \"s\"\ncmd = [\"sleep\", \"{}\"]\n",
            sleep_arg(50)
        ),
    );
    let socket = session.socket();
    let folder = socket.parent().expect("folder");
    assert_eq!(mode(folder), 0o700, "the socket folder");
    assert_eq!(mode(&socket), 0o600, "the socket");
    assert_eq!(std::fs::metadata(&socket).expect("meta").uid(), 0);

    // Everything on the way open but the session's own folder: nobody cannot connect.
    chmod(scratch.path(), 0o755);
    chmod(&scratch.runtime(), 0o755);
    let out = ctl_as_nobody(&scratch, &socket);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("Permission denied"), "{out:?}");

    // The folder and the socket opened to everyone: the server itself refuses the uid.
    chmod(folder, 0o755);
    chmod(&socket, 0o666);
    let out = ctl_as_nobody(&scratch, &socket);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("refused: uid 65534 may not use this session (it belongs to uid 0)"),
        "{out:?}"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing of the session was shown: {out:?}"
    );
    // Its owner is served as before.
    assert_eq!(Conn::open(&socket).request(r#"{"cmd":"ping"}"#)["ok"], true);
}

#[test]
fn a_socket_folder_of_another_user_is_never_used() {
    let scratch = Scratch::new();
    let folder = scratch.runtime().join("forkyard");
    std::fs::create_dir(&folder).expect("mkdir");
    std::os::unix::fs::chown(&folder, Some(65534), Some(65534)).expect("chown");
    let config = scratch.write("foreign.toml", "[[job]]\nname = \"a\"\ncmd = [\"true\"]\n");
    let config = config.display().to_string();
    // A run goes on without its socket, and says why.
    let out = scratch.run(&["--headless", "--no-summary", &config]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("no control socket")
            && out.stderr.contains("belongs to uid 65534, not to you"),
        "{out:?}"
    );
    assert_eq!(std::fs::read_dir(&folder).expect("read").count(), 0);
    // A session, which is nothing without its socket, does not start.
    let out = scratch.run(&["up", &config]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("belongs to uid 65534"), "{out:?}");
    // Neither does a run that asked for a name.
    let out = scratch.run(&["--headless", "--name", "x", &config]);
    assert_eq!(out.code, 1, "{out:?}");
}
