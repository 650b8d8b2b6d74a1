//! Every colour and style the TUI draws with, in one place.
//!
//! With `NO_COLOR` set (and not empty) crossterm writes no colour at all, so anything
//! told apart only by a colour would vanish: the selected row (a background), search
//! matches, the focused pane. [`Theme::plain`] says so, and those few styles then use
//! reverse video, underline or bold instead; the rest keep their colours, which simply
//! do not show.

use ratatui::style::{Color, Modifier, Style};

use crate::supervisor::{JobState, JobStatus, Outcome, PendingReason, StageState};
use crate::tracker::RunSpan;

use super::model::{Focus, MessageKind};

/// How to tell things apart on this terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Theme {
    /// No colours (`NO_COLOR`): distinguish by modifiers only.
    pub plain: bool,
}

impl Theme {
    /// From the environment, with crossterm's own rule (`NO_COLOR` set and not empty).
    pub fn detect() -> Theme {
        Theme {
            plain: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
        }
    }

    /// The selected row across the whole table (or timeline) width.
    pub fn selection(self, focus: Focus) -> Style {
        match (self.plain, focus) {
            (true, Focus::Jobs) => Style::new().add_modifier(Modifier::REVERSED),
            // Focus on the output: still visible, quieter.
            (true, Focus::Output) => Style::new().add_modifier(Modifier::UNDERLINED),
            (false, Focus::Jobs) => Style::new().bg(Color::Indexed(238)),
            (false, Focus::Output) => Style::new().bg(Color::Indexed(235)),
        }
    }

    /// A search match in the output; the current one stands out.
    pub fn search_match(self, current: bool) -> Style {
        match (self.plain, current) {
            (true, true) => Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD),
            (true, false) => Style::new().add_modifier(Modifier::UNDERLINED),
            (false, true) => Style::new()
                .fg(Color::Black)
                .bg(Color::LightRed)
                .add_modifier(Modifier::BOLD),
            (false, false) => Style::new().fg(Color::Black).bg(Color::Yellow),
        }
    }

    /// The output pane's top border: brighter when it has the focus.
    pub fn border(self, focused: bool) -> Style {
        match (self.plain, focused) {
            (true, true) => Style::new().add_modifier(Modifier::BOLD),
            (true, false) => Style::new(),
            (false, true) => Style::new().fg(Color::Cyan),
            (false, false) => Style::new().fg(Color::DarkGray),
        }
    }
}

/// A key in the hint bar, the help and dialogs.
pub const KEY: Style = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
/// Secondary text: labels, notes, finished pids.
pub const DIM: Style = Style::new().fg(Color::DarkGray);
pub const BOLD: Style = Style::new().add_modifier(Modifier::BOLD);
/// Something to look at: the `-j` limit, the current run, a dialog's choice.
pub const ACCENT: Style = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
/// The `forkyard` badge at the top left.
pub const BADGE: Style = Style::new()
    .fg(Color::Black)
    .bg(Color::Cyan)
    .add_modifier(Modifier::BOLD);
pub const GOOD: Style = Style::new().fg(Color::Green);
pub const FAILED: Style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
/// The quitting / rerunning notice, the paused marker.
pub const WAITING: Style = Style::new().fg(Color::Yellow);
pub const BUSY: Style = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);
/// The status bar's background.
pub const STATUS_BAR: Style = Style::new().bg(Color::Indexed(236));
pub const PROMPT_LABEL: Style = Style::new().fg(Color::Yellow);
/// A suggested prompt value (typing replaces it), the cursor.
pub const REVERSED: Style = Style::new().add_modifier(Modifier::REVERSED);
pub const TOO_SMALL: Style = Style::new().fg(Color::Yellow);
pub const POPUP_BORDER: Style = Style::new().fg(Color::Cyan);
/// The chosen entry of the signal menu.
pub const MENU_SELECTED: Style =
    Style::new().add_modifier(Modifier::REVERSED.union(Modifier::BOLD));
/// Table column titles.
pub const TITLES: Style = Style::new()
    .fg(Color::DarkGray)
    .add_modifier(Modifier::BOLD);
pub const STAGE_NAME: Style = Style::new().fg(Color::Gray);
pub const RESTARTS: Style = Style::new().fg(Color::Yellow);
/// The output pane's "following" marker.
pub const FOLLOWING: Style = Style::new().fg(Color::Green);
/// "··· 40 older lines dropped ···".
pub const DROPPED_MARKER: Style = Style::new()
    .fg(Color::DarkGray)
    .add_modifier(Modifier::ITALIC);
/// Text a child wrote on stderr, when it gave no colour of its own.
/// stderr lines are tinted, not alarm-red: red is for failures.
pub const STDERR_TINT: Color = Color::Indexed(180);
/// The timeline's "now" line and the expanded-pipeline marker.
pub const NOW: Color = Color::Yellow;
/// Timeline cells spent waiting for a CPU.
pub const CPU_WAIT: Color = Color::Magenta;
pub const GRID: Style = Style::new().fg(Color::Indexed(238));

/// Stage tags in a pipeline's output, by stage number.
const TAG_COLORS: [Color; 6] = [
    Color::Cyan,
    Color::Magenta,
    Color::Blue,
    Color::Yellow,
    Color::Green,
    Color::LightCyan,
];

pub fn stage_tag(stage: usize) -> Style {
    Style::new().fg(TAG_COLORS[stage % TAG_COLORS.len()])
}

/// A status-bar message by its level.
pub fn message(kind: MessageKind) -> Style {
    match kind {
        MessageKind::Info => Style::new().fg(Color::White),
        MessageKind::Warn => Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        MessageKind::Error => FAILED,
    }
}

/// Status glyph and colour of a job.
pub fn job_glyph(status: &JobStatus) -> (&'static str, Color) {
    use crate::supervisor::Readiness;
    match &status.state {
        JobState::Pending(_) if status.is_waiting() => ("◌", Color::Yellow),
        JobState::Running if status.readiness == Readiness::Starting => ("◔", Color::Green),
        JobState::Running if status.stopping_after_dependents => ("◐", Color::Yellow),
        JobState::Finished(Outcome::Stopped { .. }) => ("■", Color::DarkGray),
        JobState::Finished(Outcome::Skipped { .. }) => ("⊘", Color::DarkGray),
        JobState::Pending(PendingReason::Manual) => ("○", Color::DarkGray),
        JobState::Pending(PendingReason::Queued) => ("◌", Color::DarkGray),
        JobState::Pending(PendingReason::Backoff { .. }) => ("↻", Color::Yellow),
        JobState::Running => ("●", Color::Green),
        JobState::Stopping { .. } => ("◐", Color::Yellow),
        JobState::Finished(Outcome::Exited { code: 0 }) => ("✔", Color::Green),
        JobState::Finished(Outcome::TimedOut { .. }) => ("✘", Color::Magenta),
        JobState::Finished(_) => ("✘", Color::Red),
    }
}

pub fn stage_glyph(state: &StageState) -> (&'static str, Color) {
    match state {
        StageState::NotStarted => ("○", Color::DarkGray),
        StageState::Running => ("●", Color::Green),
        StageState::Exited(0) => ("✔", Color::Green),
        StageState::Exited(_) | StageState::Killed(_) | StageState::FailedToStart(_) => {
            ("✘", Color::Red)
        }
    }
}

/// A timeline bar's colour: by outcome, like the table's glyphs.
pub fn run_color(run: &RunSpan, stopping: bool) -> Color {
    match &run.outcome {
        None if stopping => Color::Yellow,
        None => Color::Cyan,
        Some(Outcome::Exited { code: 0 }) => Color::Green,
        Some(Outcome::TimedOut { .. }) => Color::Magenta,
        Some(Outcome::Stopped { .. } | Outcome::Skipped { .. }) => Color::DarkGray,
        Some(_) => Color::Red,
    }
}

/// A timeline cell covered by a run whose colour is unknown.
pub const RUN_UNKNOWN: Color = Color::Gray;
/// The legend's samples.
pub const LEGEND: Color = Color::Green;
