//! The process tree pane (`T`) and pausing (`z`): what their keys do to the model, and
//! the supervisor requests they make ([`TreeAction`]).
//!
//! The pane shows one job's processes. While the job runs it is live (the supervisor
//! sends a snapshot a second, and one right after each action); once it has ended it
//! shows the snapshot taken when forkyard had to stop it, if any (a post-mortem). The
//! cursor follows a process by pid, so snapshots arriving do not move it.

use crate::supervisor::{Event, JobId, JobState, ProcessAction, Reach};
use crate::ui::model::{MessageKind, Model, Overlay};
use crate::ui::tree::{TreeView, shown_tree};

use super::command::Command;
use super::update::{Action, Ctx};

/// What the tree pane and `z` ask of the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeAction {
    /// Send snapshots of this job's tree (None: of no job).
    Watch(Option<JobId>),
    /// A signal to one process of the job (or its subtree).
    Process {
        job: JobId,
        pid: u32,
        action: ProcessAction,
        reach: Reach,
    },
    Pause {
        job: JobId,
        paused: bool,
    },
}

/// `T` on the main screen: the selected job's tree.
pub fn open(model: &mut Model, ctx: &Ctx<'_>) -> Vec<Action> {
    let id = model.selected_job();
    let Some(job) = model.job(id) else {
        return Vec::new();
    };
    let active = job.status.is_active();
    if let Some(session) = &model.attached {
        let text = format!(
            "the process tree is shown by the session's own TUI, not through `attach {session}`"
        );
        model.set_message(text, MessageKind::Info, ctx.now);
        return Vec::new();
    }
    if !active && job.status.tree_at_stop.is_none() {
        let text = format!("{} is not running: it has no processes", job.name);
        model.set_message(text, MessageKind::Info, ctx.now);
        return Vec::new();
    }
    model.tree = Some(TreeView::new(id));
    model.copy = None;
    model.timeline = false;
    vec![Action::Tree(TreeAction::Watch(Some(id)))]
}

fn close(model: &mut Model) -> Vec<Action> {
    model.tree = None;
    vec![Action::Tree(TreeAction::Watch(None))]
}

/// A command while the tree pane is open.
pub fn tree_mode(model: &mut Model, command: Command, ctx: &Ctx<'_>) -> Vec<Action> {
    let Some(view) = model.tree else {
        return Vec::new();
    };
    let job = view.job;
    let name = model.job(job).map(|j| j.name.clone()).unwrap_or_default();
    let (process, live) = {
        let (tree, live) = shown_tree(model, job);
        (tree.and_then(|t| view.process(t)).map(|p| p.pid), live)
    };
    let act = |action: ProcessAction| -> Vec<Action> {
        match process {
            Some(pid) => vec![Action::Tree(TreeAction::Process {
                job,
                pid,
                action,
                reach: view.reach,
            })],
            None => Vec::new(),
        }
    };
    let acting = matches!(
        command,
        Command::Stop | Command::Kill | Command::Signal | Command::Pause
    );
    if acting && !live {
        let text = format!("{name} is not running: this is its tree when it was stopped");
        model.set_message(text, MessageKind::Info, ctx.now);
        return Vec::new();
    }
    match command {
        Command::Tree | Command::Cancel => close(model),
        Command::Stop => act(ProcessAction::Stop),
        Command::Kill => act(ProcessAction::Kill),
        Command::Signal => {
            if process.is_some() {
                model.overlay = Some(Overlay::Signals { selected: 0 });
            }
            Vec::new()
        }
        Command::TreeReach => {
            if let Some(view) = model.tree.as_mut() {
                view.reach = match view.reach {
                    Reach::Process => Reach::Subtree,
                    Reach::Subtree => Reach::Process,
                };
                let text = match view.reach {
                    Reach::Process => "t K x reach the chosen process alone",
                    Reach::Subtree => "t K x reach the chosen process and all it started",
                };
                model.set_message(text, MessageKind::Info, ctx.now);
            }
            Vec::new()
        }
        Command::Pause => pause(model, job, ctx),
        Command::Help => {
            model.overlay = Some(Overlay::Help { scroll: 0 });
            Vec::new()
        }
        Command::QuitNow => vec![Action::Quit { kill: true }],
        _ => {
            navigate(model, command, ctx);
            Vec::new()
        }
    }
}

/// Moving the cursor (also allowed while forkyard stops the jobs).
pub fn navigate(model: &mut Model, command: Command, ctx: &Ctx<'_>) {
    let Some(mut view) = model.tree else {
        return;
    };
    let (Some(tree), _) = shown_tree(model, view.job) else {
        return;
    };
    let row = view.row(tree);
    let page = ctx.areas.map_or(10, |a| {
        a.output_body.height.saturating_sub(2).max(1) as usize
    });
    let target = match command {
        Command::SelectPrev => row.saturating_sub(1),
        Command::SelectNext => row + 1,
        Command::PageUp => row.saturating_sub(page),
        Command::PageDown => row + page,
        Command::Top => 0,
        Command::Bottom => usize::MAX,
        Command::Tree | Command::Cancel => {
            model.tree = None;
            return;
        }
        _ => return,
    };
    view.select(tree, target);
    model.tree = Some(view);
}

/// The signal menu's choice, while the tree pane is open: to the chosen process.
pub fn signal(model: &Model, signal: nix::sys::signal::Signal) -> Vec<Action> {
    let Some(view) = model.tree else {
        return Vec::new();
    };
    let (tree, _) = shown_tree(model, view.job);
    match tree.and_then(|t| view.process(t)) {
        Some(process) => vec![Action::Tree(TreeAction::Process {
            job: view.job,
            pid: process.pid,
            action: ProcessAction::Signal(signal),
            reach: view.reach,
        })],
        None => Vec::new(),
    }
}

/// `z`: pause a running job, or resume a paused one.
pub fn pause(model: &mut Model, job: JobId, ctx: &Ctx<'_>) -> Vec<Action> {
    let Some(record) = model.job(job) else {
        return Vec::new();
    };
    if model.attached.is_some() {
        let text =
            "an attached TUI cannot pause the session's jobs: press z in the session's own TUI";
        model.set_message(text, MessageKind::Info, ctx.now);
        return Vec::new();
    }
    if !matches!(record.status.state, JobState::Running) {
        let text = format!("{} is not running: nothing to pause", record.name);
        model.set_message(text, MessageKind::Info, ctx.now);
        return Vec::new();
    }
    let paused = !model.paused(job);
    model.pause_wanted.insert(job, paused);
    vec![Action::Tree(TreeAction::Pause { job, paused })]
}

/// Keeps what `z` asked for only until the samples show it (or the run ends).
pub fn on_event(model: &mut Model, event: &Event) {
    let job = match event {
        Event::Sample { id, .. } | Event::Job { id, .. } => *id,
        _ => return,
    };
    let Some(wanted) = model.pause_wanted.get(&job).copied() else {
        return;
    };
    let Some(record) = model.job(job) else {
        return;
    };
    let running = matches!(record.status.state, JobState::Running);
    let sampled = record.sample.as_ref().is_some_and(|s| s.paused.is_some());
    if !running || (matches!(event, Event::Sample { .. }) && sampled == wanted) {
        model.pause_wanted.remove(&job);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    use super::*;
    use crate::supervisor::{JobStatus, ProcState, ProcessRow, Sample, Tree};
    use crate::ui::model::RowRef;

    fn row(pid: u32, depth: usize) -> ProcessRow {
        ProcessRow {
            pid,
            ppid: 1,
            depth,
            state: ProcState::Sleeping,
            wchan: None,
            syscall: None,
            cpu: Duration::ZERO,
            cpu_percent: None,
            cpu_wait: Duration::ZERO,
            rss_bytes: 0,
            threads: 1,
            age: Duration::ZERO,
            cmdline: format!("p{pid}"),
            left_group: false,
            kill_at: None,
            outlived_grace: false,
        }
    }

    /// One running job with three processes, one finished job.
    fn setup() -> Model {
        let argv = vec![vec!["sh".to_string()]];
        let mut model = Model::from_statuses(
            [
                (
                    "web".to_string(),
                    JobStatus::new(JobState::Running, argv.clone()),
                ),
                (
                    "done".to_string(),
                    JobStatus::new(
                        JobState::Finished(crate::supervisor::Outcome::Exited { code: 0 }),
                        argv,
                    ),
                ),
            ],
            "test",
        );
        model.tracker.jobs[0].tree = Some(Arc::new(Tree {
            job: 0,
            taken: Instant::now(),
            rows: vec![row(10, 0), row(11, 1), row(12, 1)],
        }));
        model
    }

    fn press(model: &mut Model, keys: &str) -> Vec<Action> {
        let mut actions = Vec::new();
        for c in keys.chars() {
            let code = match c {
                '⎋' => KeyCode::Esc,
                '⏎' => KeyCode::Enter,
                c => KeyCode::Char(c),
            };
            let ctx = Ctx {
                buffers: &[],
                terminals: &[],
                areas: crate::ui::layout(ratatui::layout::Rect::new(0, 0, 100, 30), model),
                now: Instant::now(),
            };
            let event = KeyEvent::new(code, KeyModifiers::NONE);
            actions.extend(super::super::update::key(model, event, &ctx));
        }
        actions
    }

    fn on(job: JobId, pid: u32, action: ProcessAction, reach: Reach) -> Action {
        Action::Tree(TreeAction::Process {
            job,
            pid,
            action,
            reach,
        })
    }

    #[test]
    fn t_on_the_tree_reaches_the_chosen_process_and_a_widens_it_to_its_subtree() {
        let mut model = setup();
        assert_eq!(
            press(&mut model, "T"),
            [Action::Tree(TreeAction::Watch(Some(0)))]
        );
        assert_eq!(model.mode(), super::super::command::Mode::Tree);
        assert_eq!(
            press(&mut model, "jt"),
            [on(0, 11, ProcessAction::Stop, Reach::Process)]
        );
        assert_eq!(
            press(&mut model, "aK"),
            [on(0, 11, ProcessAction::Kill, Reach::Subtree)]
        );
        // The signal menu's choice goes to the process too (1: the first signal).
        let actions = press(&mut model, "ax1");
        let first = crate::supervisor::signals::COMMON_SIGNALS[0];
        assert_eq!(
            actions,
            [on(0, 11, ProcessAction::Signal(first), Reach::Process)]
        );
        // G goes to the last process; the cursor stays on it as the tree changes.
        press(&mut model, "G");
        model.tracker.jobs[0].tree = Some(Arc::new(Tree {
            job: 0,
            taken: Instant::now(),
            rows: vec![row(10, 0), row(12, 1), row(13, 1)],
        }));
        assert_eq!(
            press(&mut model, "t"),
            [on(0, 12, ProcessAction::Stop, Reach::Process)]
        );
        assert_eq!(
            press(&mut model, "⎋"),
            [Action::Tree(TreeAction::Watch(None))]
        );
        assert!(model.tree.is_none());
        // Back on the main screen, t stops the job again.
        assert_eq!(
            press(&mut model, "t"),
            [Action::Control(0, crate::supervisor::Control::Stop)]
        );
    }

    #[test]
    fn z_pauses_and_resumes_before_a_sample_says_so() {
        let mut model = setup();
        assert_eq!(
            press(&mut model, "z"),
            [Action::Tree(TreeAction::Pause {
                job: 0,
                paused: true
            })]
        );
        assert!(model.paused(0));
        assert_eq!(
            press(&mut model, "z"),
            [Action::Tree(TreeAction::Pause {
                job: 0,
                paused: false
            })]
        );
        // A sample that agrees ends the wish; from then on the samples say.
        press(&mut model, "z");
        let paused = Sample {
            paused: Some(crate::supervisor::Pause::Frozen),
            ..Sample::default()
        };
        let event = Event::Sample {
            id: 0,
            sample: paused,
        };
        model.tracker.apply(&event);
        on_event(&mut model, &event);
        assert!(model.pause_wanted.is_empty());
        assert!(model.paused(0));
        // A job that is not running has nothing to pause.
        model.selected = RowRef::Job(1);
        assert!(press(&mut model, "z").is_empty());
    }

    #[test]
    fn a_finished_job_without_a_post_mortem_has_no_tree_and_keys_do_not_act_on_one() {
        let mut model = setup();
        model.selected = RowRef::Job(1);
        assert!(press(&mut model, "T").is_empty());
        assert!(model.tree.is_none());
        let text = model.message.as_ref().map(|m| m.text.clone());
        assert_eq!(
            text.as_deref(),
            Some("done is not running: it has no processes")
        );
        // With the job ended while its tree is open, t K x say why they do nothing.
        model.selected = RowRef::Job(0);
        press(&mut model, "T");
        model.tracker.jobs[0].status.state =
            JobState::Finished(crate::supervisor::Outcome::Exited { code: 0 });
        assert!(press(&mut model, "tKx").is_empty());
        assert!(model.overlay.is_none());
    }
}
