//! Short, fixed-width texts for table cells and status lines.

use ratatui::style::Color;

use crate::supervisor::{JobState, JobStatus, Outcome, PendingReason, StageState};

/// Status glyph and colour of a job.
pub fn job_glyph(status: &JobStatus) -> (&'static str, Color) {
    match &status.state {
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

/// Truncates to `width` columns (one column per char), marking the cut with `…`.
pub fn fit(text: &str, width: usize) -> String {
    let count = text.chars().count();
    if count <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = text.chars().take(width - 1).collect();
    out.push('…');
    out
}

/// Pads or truncates to exactly `width` columns.
/// Built in one allocation: every visible cell goes through here every clock second.
pub fn cell(text: &str, width: usize, right: bool) -> String {
    let count = text.chars().count();
    if count > width {
        return fit(text, width);
    }
    let mut out = String::with_capacity(text.len() + (width - count));
    let pad = |out: &mut String| out.extend(std::iter::repeat_n(' ', width - count));
    if right {
        pad(&mut out);
        out.push_str(text);
    } else {
        out.push_str(text);
        pad(&mut out);
    }
    out
}

/// Short name of a pipeline stage for output tags: the program's file name.
pub fn stage_label(argv: &[String]) -> String {
    let program = argv.first().map(String::as_str).unwrap_or("?");
    program.rsplit('/').next().unwrap_or(program).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_fit_and_pad() {
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(cell("ab", 4, true), "  ab");
    }
}
