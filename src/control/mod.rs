//! Control from outside: the control socket every run serves, and the commands that use
//! it (`forkyard ctl`, `up`, `attach`, `down`), plus jobs on other hosts over ssh.
//!
//! The socket is one more front end beside headless and the TUI. The front end that
//! owns the supervisor hands every event it receives to the [`Server`]
//! ([`Server::observe`]), which keeps its own [`crate::tracker::Tracker`] from them (the
//! live `status`) and fans them out to the clients that stream. Nothing a client does can
//! hold up the front end or the supervisor: each client has a bounded queue, and one
//! that reads too slowly is dropped ([`hub`]). What only the owner of the supervisor can
//! do (a `reload`, a `down`) comes back to the front end as a [`FrontRequest`].
//!
//! - [`protocol`]: the JSON-lines protocol (version [`protocol::VERSION`]): framing with
//!   bounded lines, requests, replies.
//! - [`wire`]: job statuses and samples as JSON (what an attached TUI rebuilds).
//! - [`session`]: where sockets live, their names, permissions, stale ones.
//! - [`hub`]: the server side.
//! - [`client`]: connecting, and `forkyard ctl`.
//! - [`daemon`]: `forkyard up` and `down`.
//! - [`attach`]: the TUI on a session through its socket (local or over ssh).
//! - [`remote`]: `host = "user@host"` jobs and the `remote-run` helper they start there.

pub mod attach;
pub mod client;
pub mod daemon;
pub mod hub;
pub mod protocol;
pub mod remote;
pub mod session;
pub mod wire;

pub use hub::{FrontRequest, ReloadOutcome, Server};

/// Where a run serves its control socket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SocketChoice {
    /// No socket (library use, tests, `--no-socket`).
    #[default]
    Off,
    /// The default place, named after the config or `--name` ([`session`]).
    Default,
    /// `--socket PATH`.
    Path(std::path::PathBuf),
}

/// How a run serves its socket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServeOptions {
    pub socket: SocketChoice,
    /// `--name N`: the session's name (default: from the config).
    pub name: Option<String>,
    /// The config file a `reload` reads again (None: the jobs came from the command line
    /// or the built-in demo, and there is nothing to read again).
    pub config_file: Option<std::path::PathBuf>,
    /// Refuse to start when the name is taken (instead of picking `name-PID`): `up`.
    pub exclusive: bool,
}

/// A reload as a front end carries it out (see [`reload`]).
pub struct Reloaded {
    /// The config as read now.
    pub config: crate::config::Config,
    pub outcome: ReloadOutcome,
    pub report: crate::supervisor::ReloadReport,
    /// The buffers of the jobs it started, in id order (after the ones already known).
    pub buffers: Vec<crate::output::SharedBuffer>,
    /// One line for the front end to show.
    pub summary: String,
}

/// `reload`: reads the session's config file again and applies it to `supervisor`; the
/// new jobs join `tracker` (their ids follow the known ones) and the server. The error
/// is the reply's text (a config error names file, line and column).
pub fn reload(
    supervisor: &mut crate::supervisor::Supervisor,
    config: &crate::config::Config,
    server: Option<&Server>,
    tracker: &mut crate::tracker::Tracker,
) -> Result<Reloaded, String> {
    let Some(path) = server.and_then(Server::config_file) else {
        return Err(format!(
            "nothing to reload: {} is not a config file",
            crate::stdio::visible_inline(&config.origin)
        ));
    };
    let new = crate::cli::load_config(Some(path))
        .map_err(|err| crate::stdio::visible_inline(&err.to_string()).into_owned())?;
    let report = supervisor.apply(&new);
    let name = |id: crate::supervisor::JobId| {
        supervisor
            .jobs()
            .get(id)
            .map(|j| j.spec.name.clone())
            .unwrap_or_default()
    };
    let outcome = ReloadOutcome {
        added: report.added.iter().map(|&id| name(id)).collect(),
        removed: report.removed.iter().map(|&id| name(id)).collect(),
        changed: report.changed.iter().map(|&(_, id)| name(id)).collect(),
        unchanged: report.unchanged.iter().map(|&id| name(id)).collect(),
        notes: report.notes.clone(),
    };
    let mut added = Vec::new();
    let mut buffers = Vec::new();
    for id in report.new_ids() {
        let Some(job) = supervisor.jobs().get(id) else {
            continue;
        };
        let at = tracker.push_job(job.spec.name.clone(), job.initial.clone());
        tracker.jobs[at].host = job.spec.host.clone();
        buffers.push(job.buffer.clone());
        added.push(hub::AddedJob {
            id,
            name: job.spec.name.clone(),
            initial: job.initial.clone(),
            buffer: job.buffer.clone(),
            host: job.spec.host.clone(),
        });
    }
    for id in report.retired_ids() {
        if let Some(record) = tracker.jobs.get_mut(id) {
            record.retired = true;
        }
    }
    if let Some(server) = server {
        server.reloaded(
            added,
            &report.retired_ids(),
            supervisor.controller(),
            &outcome,
        );
    }
    let list = |names: &[String]| {
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    let summary = format!(
        "reload: added {}; removed {}; changed {}; {} unchanged",
        list(&outcome.added),
        list(&outcome.removed),
        list(&outcome.changed),
        outcome.unchanged.len()
    );
    Ok(Reloaded {
        config: new,
        outcome,
        report,
        buffers,
        summary,
    })
}
