//! Spawning, piping, signalling, waiting, restarting and sampling jobs. No UI types.
//!
//! [`Supervisor::start`] launches one task per job plus a reaper and a sampler, and
//! returns a receiver of [`Event`]s. Status changes travel as events (unbounded: never
//! lost); output goes straight into each job's bounded ring buffer ([`JobHandle::buffer`]).
//! The TUI and the headless runner drive the same supervisor through [`Control`]s.

pub mod contain;
mod deps;
mod drain;
mod job;
mod kit;
mod probe;
pub mod procfs;
pub mod pty;
mod reaper;
mod reload;
mod sampler;
pub mod signals;
mod slots;
mod spawn;
mod status;
pub mod tree;
pub mod watchdog;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;

use crate::config::{Config, JobSpec};
use crate::output::SharedBuffer;

pub use drain::{OutputChunk, OutputTee, TeeHandle};
pub use job::{Control, backoff_delay};
pub use reload::ReloadReport;
pub use status::{
    Event, JobId, JobState, JobStatus, Level, MachineSample, Notice, Outcome, Pause, PendingReason,
    Readiness, ResultClass, Sample, StageState, StageStatus, StopReason, WaitingFor,
};
pub use tree::{Postmortem, ProcState, ProcessAction, ProcessRow, Reach, Tree};

use job::LiveTrees;
use reaper::Reaper;

/// Environment variable set in every child: `<pid>.<n>`, the supervising forkyard's pid
/// and which supervisor of that process started it. Lets the final sweep recognise
/// descendants that left their job's process group, and only its own: several
/// supervisors may run in one process (tests, library users).
pub const SUPERVISOR_ENV: &str = "FORKYARD_SUPERVISOR";

/// Numbers the supervisors of this process, for [`SUPERVISOR_ENV`].
static NEXT_SUPERVISOR: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

#[derive(Clone, Default)]
pub struct SupervisorOptions {
    /// Overrides `settings.max_parallel` (`-j N`); 0 = unlimited.
    pub max_parallel: Option<usize>,
    /// Every output chunk is also sent here (headless printing).
    pub tee: Option<OutputTee>,
    /// Keep no lines in the jobs' buffers, only byte counts: for a consumer that gets
    /// every byte through `tee` and never reads a buffer back (headless), so a thousand
    /// chatty jobs cost no scrollback memory.
    pub discard_output: bool,
    /// Notified whenever any job produced output (the TUI redraws on it).
    pub activity: Option<Arc<Notify>>,
    /// Sampling period; default 1 s.
    pub sample_interval: Option<Duration>,
    /// Notified after each sampling tick, once its events are sent: a consumer that
    /// redraws on it shows every sample as soon as it is taken.
    pub sampled: Option<Arc<Notify>>,
    /// The size PTY jobs start with (the TUI's output pane); default 24×80.
    pub pty_size: Option<pty::Size>,
    /// Every output chunk is also handed to the log files' writer (never waited for).
    pub log_tap: Option<crate::logs::Tap>,
}

/// One configured job, as the consumer sees it.
pub struct JobHandle {
    pub id: JobId,
    pub spec: JobSpec,
    /// Output of the job, shared with the consumer (lock briefly, never across `.await`).
    pub buffer: SharedBuffer,
    /// The status before any event arrives.
    pub initial: JobStatus,
    /// Input to the job and, for a PTY job in the TUI, its terminal screen: present for
    /// `pty = true` and `stdin = "pipe"`.
    pub io: Option<Arc<pty::JobIo>>,
    controls: mpsc::UnboundedSender<Control>,
}

pub struct Supervisor {
    jobs: Vec<JobHandle>,
    tasks: JoinSet<()>,
    sampler: tokio::task::JoinHandle<()>,
    reaper: Reaper,
    reaper_task: tokio::task::JoinHandle<()>,
    /// This supervisor's [`SUPERVISOR_ENV`] value.
    token: String,
    started_at: Instant,
    desk: Arc<tree::Desk>,
    /// What adding jobs later needs ([`Supervisor::apply`]).
    reload: reload::Reload,
}

/// The sampler and the reaper end with their supervisor, however it goes away (`shutdown`
/// or an early drop): a second supervisor in the same process (`--compare`, the TUI's
/// rerun) must be the only one reaping its children.
impl Drop for Supervisor {
    fn drop(&mut self) {
        self.sampler.abort();
        self.reaper_task.abort();
    }
}

impl Supervisor {
    /// Starts every job (autostart ones run at once, up to `max_parallel`).
    /// Must be called inside a tokio runtime.
    pub fn start(
        config: &Config,
        options: SupervisorOptions,
    ) -> anyhow::Result<(Supervisor, mpsc::UnboundedReceiver<Event>)> {
        let started_at = Instant::now();
        crate::sys::raise_open_file_limit(config.jobs.iter().map(|job| job.stages().len()).sum());
        let (reaper, reaper_task) = Reaper::start().context("cannot listen for SIGCHLD")?;
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let max_parallel = options.max_parallel.unwrap_or(config.settings.max_parallel);
        // A limit at or above the job count limits nothing (and `-j 9223372036854775807`
        // would exceed what a semaphore can hold).
        let slots = (max_parallel > 0 && max_parallel < config.jobs.len())
            .then(|| slots::Slots::new(max_parallel));
        // Found (and its cgroup made) before the first spawn.
        contain::containment();
        let live: LiveTrees = Arc::new(Mutex::new(HashMap::new()));
        let token = format!(
            "{}.{}",
            std::process::id(),
            NEXT_SUPERVISOR.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let sample_soon = Arc::new(Notify::new());

        // The dependency graph, and a gate per job through which it answers.
        let mut gates = Vec::with_capacity(config.jobs.len());
        let mut gate_receivers = Vec::with_capacity(config.jobs.len());
        for _ in &config.jobs {
            let (tx, rx) = mpsc::unbounded_channel();
            gates.push(tx);
            gate_receivers.push(rx);
        }
        let graph = Arc::new(deps::Graph::new(
            config.jobs.iter().map(|j| j.depends_on.clone()).collect(),
            config
                .jobs
                .iter()
                .map(|j| deps::View::initial(j.autostart))
                .collect(),
            gates,
            slots.clone(),
        ));

        let desk = Arc::new(tree::Desk::new(
            live.clone(),
            events_tx.clone(),
            sample_soon.clone(),
        ));
        let kit = kit::Kit {
            events: events_tx.clone(),
            reaper: reaper.clone(),
            slots: slots.clone(),
            live: live.clone(),
            sample_soon: sample_soon.clone(),
            options: options.clone(),
            graph,
            desk: desk.clone(),
            started_at,
            token: token.clone(),
            scrollback: config.settings.scrollback,
        };
        let mut tasks = JoinSet::new();
        let mut jobs = Vec::with_capacity(config.jobs.len());
        for ((id, spec), gate) in config.jobs.iter().enumerate().zip(gate_receivers) {
            // In config order, before any task runs: `-j` serves them in this order.
            // A job with dependencies gets its place when they allow its start.
            let first_request = slots
                .as_ref()
                .filter(|_| spec.autostart && spec.depends_on.is_empty())
                .map(slots::Slots::request);
            let (task, handle) = kit.job(id, spec, gate, first_request);
            tasks.spawn(task.run());
            jobs.push(handle);
        }
        let reload = reload::Reload::new(kit, config);
        let sampler = tokio::spawn(sampler::run(
            live,
            events_tx,
            sample_soon,
            sampler::Schedule {
                phase: started_at,
                interval: options.sample_interval.unwrap_or(Duration::from_secs(1)),
            },
            options.sampled.clone(),
            desk.clone(),
        ));
        Ok((
            Supervisor {
                jobs,
                tasks,
                sampler,
                reaper,
                reaper_task,
                token,
                started_at,
                desk,
                reload,
            },
            events_rx,
        ))
    }

    pub fn jobs(&self) -> &[JobHandle] {
        &self.jobs
    }

    /// When this supervisor started. Resource samples are taken on whole sampling
    /// intervals after it, so a consumer that ticks on whole seconds after it (the TUI's
    /// clocks) wakes up together with the sampler.
    pub fn started_at(&self) -> Instant {
        self.started_at
    }

    /// Every PTY job's terminal follows the pane: `size` in cells.
    pub fn resize_terminals(&self, size: pty::Size) {
        for io in self.jobs.iter().filter_map(|j| j.io.as_ref()) {
            if io.is_pty() {
                io.resize(size);
            }
        }
    }

    /// A cloneable handle that sends controls, usable while `shutdown` runs.
    pub fn controller(&self) -> Controller {
        Controller {
            senders: self.jobs.iter().map(|j| j.controls.clone()).collect(),
            desk: self.desk.clone(),
        }
    }

    /// Sends a control to one job; unknown ids are ignored.
    pub fn control(&self, id: JobId, control: Control) {
        if let Some(job) = self.jobs.get(id) {
            let _ = job.controls.send(control);
        }
    }

    pub fn control_all(&self, control: Control) {
        for job in &self.jobs {
            let _ = job.controls.send(control);
        }
    }

    /// Stops every running job (stop signal, SIGKILL after each job's grace), jobs that
    /// others depend on only once those have stopped, everything else in parallel; waits
    /// until every process group is gone and reaped, then kills any descendant that
    /// escaped its group. Nothing forkyard started is left running afterwards.
    pub async fn shutdown(mut self) {
        self.control_all(Control::Shutdown);
        while self.tasks.join_next().await.is_some() {}
        sweep_escaped_descendants(&self.reaper, &self.token);
        contain::remove_base_if_empty();
    }
}

/// Kills and reaps what is left of this supervisor's jobs once every run has ended: a
/// process whose ancestry no run could follow (without a cgroup, an orphan re-parented to
/// forkyard after its parent died). forkyard is a child subreaper, so every such process
/// is a descendant of this one. The forkyard binary owns all its children: every
/// descendant but the watchdog is a job's, whatever its group, session or environment. A
/// library user may have children of its own; there only descendants carrying this
/// supervisor's [`SUPERVISOR_ENV`] value are taken.
fn sweep_escaped_descendants(reaper: &Reaper, token: &str) {
    let me = std::process::id();
    let watchdog = watchdog::pid();
    let owns_all = reaper::owns_all_children();
    let marker = format!("{SUPERVISOR_ENV}={token}");
    let entries = procfs::scan();
    let mut descendants = vec![me];
    let mut index = 0;
    while index < descendants.len() {
        let parent = descendants[index];
        descendants.extend(
            entries
                .iter()
                .filter(|e| e.ppid == parent && Some(e.pid) != watchdog)
                .map(|e| e.pid),
        );
        index += 1;
    }
    let mut killed = Vec::new();
    for pid in descendants.into_iter().skip(1) {
        let ours = owns_all || {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            environ
                .split(|b| *b == 0)
                .any(|var| var == marker.as_bytes())
        };
        if ours {
            let target = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGKILL);
            killed.push(pid);
        }
    }
    for pid in killed {
        reaper.reap_escaped(pid);
    }
}

/// For the forkyard binary, once its run is over: kills whatever is left in its cgroups,
/// removes them, and lets the watchdog check and go, so no forkyard process outlives
/// the command.
pub fn finish_process() {
    if let Some(base) = contain::initialized().and_then(contain::Containment::base) {
        contain::kill_and_remove_all(base, std::time::Duration::from_secs(2));
    }
    watchdog::finish();
}

/// For the forkyard binary: every child of this process is a job's (see
/// [`reaper::own_all_children`]), so any waitable child may be reaped at once.
pub fn own_all_children() {
    reaper::own_all_children();
}

/// Makes any panic fatal and clean: every job group is killed before the process exits
/// with status 101, so a bug never leaves children running unsupervised. Front ends may
/// chain their own hook in front of this one (the TUI restores the terminal first).
pub fn install_panic_cleanup() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        hold_stdout(std::time::Duration::from_millis(100));
        previous(info);
        reaper::kill_all_live_groups();
        if let Some(base) = contain::initialized().and_then(contain::Containment::base) {
            // No waiting here: the watchdog removes what is left once this process is gone.
            contain::kill_and_remove_all(base, std::time::Duration::ZERO);
        }
        std::process::exit(101);
    }));
}

/// From a panic to the exit, nothing else reaches stdout: a TUI thread still running
/// would draw its next frame over the restored screen and the panic message (the jobs'
/// deaths wake it up). The lock is taken and kept by a thread of its own, waited for at
/// most `wait`, so a stdout blocked on a full pipe cannot hold the cleanup up.
fn hold_stdout(wait: std::time::Duration) {
    let (taken, is_taken) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("forkyard-exit".into())
        .spawn(move || {
            let _stdout = std::io::stdout().lock();
            let _ = taken.send(());
            loop {
                std::thread::park();
            }
        });
    if spawned.is_ok() {
        let _ = is_taken.recv_timeout(wait);
    }
}

/// Sends controls to jobs; cheap to clone.
#[derive(Clone)]
pub struct Controller {
    senders: Vec<mpsc::UnboundedSender<Control>>,
    desk: Arc<tree::Desk>,
}

impl Controller {
    pub fn control(&self, id: JobId, control: Control) {
        if let Some(sender) = self.senders.get(id) {
            let _ = sender.send(control);
        }
    }

    pub fn control_all(&self, control: Control) {
        for sender in &self.senders {
            let _ = sender.send(control);
        }
    }

    /// Asks for `job`'s live process tree (events `Event::Tree`, at the sampler's rate
    /// and right after each process-level action), or for none.
    pub fn watch_tree(&self, job: Option<JobId>) {
        self.desk.watch(job);
    }

    /// Pauses or resumes a running job (cgroup freezer, else SIGSTOP/SIGCONT).
    pub fn pause(&self, job: JobId, paused: bool) {
        self.desk.pause(job, paused);
    }

    /// `action` to one process of `job` (or its subtree), if it is one of the job's.
    pub fn act_on_process(&self, job: JobId, pid: u32, action: ProcessAction, reach: Reach) {
        self.desk.act(job, pid, action, reach);
    }
}

pub(crate) fn lock_live(live: &LiveTrees) -> MutexGuard<'_, HashMap<JobId, job::LiveTree>> {
    live.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
