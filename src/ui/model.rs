//! What the TUI shows, apart from the output text itself: job records, selection,
//! expanded pipelines, scroll/follow state, search, prompts, overlays and messages.
//!
//! Only the app loop mutates a [`Model`]; [`super::draw`] reads it. Time is injected
//! (`now`) so a render is a pure function of the model and the buffers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::app::command::Mode;
use crate::app::keymap::Keymap;
use crate::supervisor::pty::InputKind;
use crate::supervisor::{JobId, JobState, JobStatus};
use crate::tracker::{JobRecord, Tracker};

use super::theme::Theme;

/// How long a transient message stays in the status bar.
pub const MESSAGE_TTL: Duration = Duration::from_secs(4);

/// What [`RowRef::job`] is for the "all" row: no job (every lookup by it finds none).
pub const NO_JOB: JobId = usize::MAX;

/// A row of the job table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowRef {
    /// The "all" row above the jobs: every job's output merged (see `ui::merged`).
    All,
    Job(JobId),
    /// One process of an expanded pipeline.
    Stage(JobId, usize),
}

impl RowRef {
    /// The row's job ([`NO_JOB`] for the "all" row).
    pub fn job(self) -> JobId {
        match self {
            RowRef::All => NO_JOB,
            RowRef::Job(id) | RowRef::Stage(id, _) => id,
        }
    }

    /// The pipeline stage whose output is shown alone, if a stage row is selected.
    pub fn stage(self) -> Option<usize> {
        match self {
            RowRef::All | RowRef::Job(_) => None,
            RowRef::Stage(_, stage) => Some(stage),
        }
    }
}

/// Which lines of the merged view show: by job, by stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// The patterns typed (`web api*`); empty: every job.
    pub patterns: Vec<String>,
}

impl JobFilter {
    /// Parses `web, api*` (commas or spaces; `*` matches any text).
    pub fn parse(text: &str) -> JobFilter {
        JobFilter {
            patterns: text
                .split([',', ' '])
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }

    pub fn matches(&self, name: &str) -> bool {
        self.patterns.is_empty() || self.patterns.iter().any(|p| glob(p, name))
    }

    pub fn text(&self) -> String {
        self.patterns.join(" ")
    }
}

/// `*` matches any text (none included); everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return true;
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// A line of the output pane: of one job's buffer, or of the merged view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LineKey {
    /// Arrival time (orders the merged view).
    pub at: Instant,
    pub job: JobId,
    pub seq: u64,
}

/// Scroll state of the merged view (like [`OutputView`], by [`LineKey`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergedView {
    pub follow: bool,
    /// The top line while not following.
    pub top: Option<LineKey>,
    /// Lines of every job when follow was paused (to count what arrived since).
    pub paused_total: u64,
}

impl Default for MergedView {
    fn default() -> Self {
        MergedView {
            follow: true,
            top: None,
            paused_total: 0,
        }
    }
}

/// Copy mode: a cursor line, and the other end of the selection once it is marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyMode {
    pub cursor: LineKey,
    pub anchor: Option<LineKey>,
    /// Started by a mouse press: a release copies (a click without a drag does not).
    pub dragging: bool,
    /// The mouse moved to another line since the press.
    pub dragged: bool,
}

impl CopyMode {
    /// The selected lines' first and last keys (the cursor alone when nothing is marked).
    pub fn range(&self) -> (LineKey, LineKey) {
        let anchor = self.anchor.unwrap_or(self.cursor);
        if anchor <= self.cursor {
            (anchor, self.cursor)
        } else {
            (self.cursor, anchor)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Jobs,
    Output,
}

/// Scroll state of one job's output pane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputView {
    /// Tail mode: the newest lines are shown and new output scrolls in.
    pub follow: bool,
    /// Sequence number of the top line while not following. A value below the buffer's
    /// first retained line means "scrolled past the top": the dropped-lines marker shows.
    pub top: u64,
    /// The buffer's `total_lines()` when follow was paused, to count what arrived since.
    pub paused_total: u64,
}

impl Default for OutputView {
    fn default() -> Self {
        OutputView {
            follow: true,
            top: 0,
            paused_total: 0,
        }
    }
}

/// A confirmed search (typing one is a [`PromptKind::Search`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    pub query: String,
    /// The line the last n/N/Enter landed on (its sequence number in its job).
    pub current: Option<u64>,
    /// The same line as a key (the merged view compares whole keys).
    pub current_key: Option<LineKey>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitTarget {
    Job(JobId),
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptKind {
    /// `w`/`W`: how long to let the job(s) run before stopping them.
    Wait(WaitTarget),
    /// `/`: text to find in the output.
    Search,
    /// `i` on a `stdin = "pipe"` job: a line to write to its stdin.
    Input(JobId),
    /// `F`: which jobs the merged view shows.
    Filter,
    /// `S` / copy mode's `s`: a file to save output to.
    Save(SaveWhat),
}

/// What a save writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveWhat {
    /// The lines selected in copy mode.
    Selection,
    /// Every line the view holds (the job's scrollback, or the merged view's).
    Scrollback,
}

/// A one-line text input shown in place of the status bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub kind: PromptKind,
    pub input: String,
    /// The input is a suggested default: the first typed character replaces it.
    pub fresh: bool,
    pub error: Option<String>,
    /// A save to this path was refused because the file exists: the same path again
    /// replaces it.
    pub replace: Option<String>,
}

impl Prompt {
    pub fn new(kind: PromptKind, default: &str) -> Self {
        Prompt {
            kind,
            input: default.to_string(),
            fresh: !default.is_empty(),
            error: None,
            replace: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlay {
    /// `?`: the keys, scrolled down `scroll` lines when the terminal is too short.
    Help { scroll: usize },
    /// `x`: pick a signal from `COMMON_SIGNALS`.
    Signals { selected: usize },
    /// `q` while jobs run: stop them all and quit?
    ConfirmQuit,
    /// `p` while jobs run: stop them all and rerun everything with `-j limit`?
    ConfirmRerun { limit: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub text: String,
    pub kind: MessageKind,
    pub until: Instant,
    /// Stays until it expires or a key is pressed: routine notices do not replace it.
    pub sticky: bool,
}

/// forkyard is exiting: every job is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quitting {
    /// Stop signal sent, SIGKILL after each job's grace.
    Graceful,
    /// SIGKILL sent to every group.
    Killing,
}

/// The figures of an earlier run of the same set (`p`), kept on screen beside the
/// current one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PastRun {
    /// Its `-j` (0 = unlimited).
    pub limit: usize,
    pub wall: Duration,
    /// Every job had settled before it was stopped: the wall time is a full measurement.
    pub complete: bool,
}

/// Earlier runs kept for the runs line.
pub const MAX_PAST_RUNS: usize = 6;

/// How late the backup clock tick is when clocks follow the sampler's ticks. A whole
/// second: the stale backup left from the previous frame then expires together with
/// the sampler's next tick instead of waking the process on its own.
pub const SAMPLER_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct Model {
    pub tracker: Tracker,
    /// Where the config came from (file name or the built-in demo).
    pub origin: String,
    /// The time every duration is computed against.
    pub now: Instant,
    pub cores: usize,
    /// Running clocks advance when the sampler reports a tick (it ticks on the same whole
    /// seconds after the start), so each second's frame shows that second's samples;
    /// the whole-second timer only backs it up, [`SAMPLER_GRACE`] late.
    pub clocks_follow_samples: bool,
    pub selected: RowRef,
    /// Per job: pipeline stages shown as rows.
    pub expanded: Vec<bool>,
    /// First table row shown (kept so the selection stays visible).
    pub table_offset: usize,
    pub focus: Focus,
    /// Per job.
    pub views: Vec<OutputView>,
    pub search: Option<Search>,
    pub prompt: Option<Prompt>,
    pub overlay: Option<Overlay>,
    pub message: Option<Message>,
    pub quitting: Option<Quitting>,
    /// The timeline (`v`) replaces the table and the output pane.
    pub timeline: bool,
    /// The current run's `-j` (0 = unlimited).
    pub max_parallel: usize,
    /// Earlier runs of the set, oldest first.
    pub runs: Vec<PastRun>,
    /// The current run is being stopped; a new one with this `-j` follows.
    pub rerun: Option<usize>,
    /// What the keys do (the help and the hint bar show it).
    pub keymap: Arc<Keymap>,
    pub theme: Theme,
    /// Per job: how it takes input (`pty = true`, `stdin = "pipe"`), if at all.
    pub inputs: Vec<Option<InputKind>>,
    /// `i` on a PTY job: every key goes to this job's terminal until `input_leave`.
    pub input_focus: Option<JobId>,
    /// Each line's arrival time in front of it (`@`).
    pub timestamps: bool,
    /// Long lines wrap (`L`) instead of being cut at the pane's edge.
    pub wrap: bool,
    /// Columns of the lines' text scrolled off to the left (not wrapping).
    pub hscroll: usize,
    /// Only this stream's lines (`E` cycles: both, stderr, stdout).
    pub stream_filter: Option<crate::output::Stream>,
    /// The merged view: its jobs and its scroll state.
    pub merged_filter: JobFilter,
    pub merged: MergedView,
    pub copy: Option<CopyMode>,
    /// The process tree pane (`T`): whose tree, and the process the keys reach.
    pub tree: Option<super::tree::TreeView>,
    /// What `z` last asked per job (paused or not), until a sample shows it.
    pub pause_wanted: std::collections::HashMap<JobId, bool>,
    /// Where the selected job's log file is, per job (the exit summary and the pane title).
    pub log_paths: Vec<Option<std::path::PathBuf>>,
    /// Arrival times to wall-clock time (timestamps).
    pub clock: crate::logs::clock::WallClock,
    /// Attached to this session (`forkyard attach`): quitting detaches, the jobs keep
    /// running, and there is no rerun.
    pub attached: Option<String>,
}

impl Model {
    pub fn new(tracker: Tracker, origin: impl Into<String>) -> Self {
        let n = tracker.jobs.len();
        Model {
            now: Instant::now(),
            cores: crate::sys::cores(),
            clocks_follow_samples: false,
            origin: origin.into(),
            selected: RowRef::Job(0),
            expanded: vec![false; n],
            table_offset: 0,
            focus: Focus::Jobs,
            views: vec![OutputView::default(); n],
            search: None,
            prompt: None,
            overlay: None,
            message: None,
            quitting: None,
            timeline: false,
            max_parallel: 0,
            runs: Vec::new(),
            rerun: None,
            keymap: Arc::new(Keymap::default()),
            theme: Theme::default(),
            inputs: vec![None; n],
            input_focus: None,
            timestamps: false,
            wrap: false,
            hscroll: 0,
            stream_filter: None,
            merged_filter: JobFilter::default(),
            merged: MergedView::default(),
            copy: None,
            tree: None,
            pause_wanted: std::collections::HashMap::new(),
            log_paths: Vec::new(),
            clock: crate::logs::clock::WallClock::now(),
            attached: None,
            tracker,
        }
    }

    /// The job list grew (a config reload) or was replaced (an attached session's
    /// rerun): per-job view state follows it, and a selection on a job without a row
    /// moves to the last job that has one.
    pub fn sync_jobs(&mut self) {
        let n = self.tracker.jobs.len();
        self.views.resize(n, OutputView::default());
        self.expanded.resize(n, false);
        self.inputs.resize(n, None);
        if !self.log_paths.is_empty() {
            // A job a reload added has no log file (the files are opened at start).
            self.log_paths.resize(n, None);
        }
        if self.job(self.selected_job()).is_none_or(|j| j.retired) {
            let visible = (0..n).rev().find(|&id| !self.tracker.jobs[id].retired);
            self.selected = RowRef::Job(visible.unwrap_or(0));
        }
    }

    /// The instant every clock on screen is read at: the last whole second of the run
    /// (the grid the frames tick on). One instant for all, so jobs that started together
    /// show the same time whatever moment within the second the frame is drawn.
    pub fn clock_now(&self) -> Instant {
        let since = self.now.saturating_duration_since(self.tracker.started);
        self.tracker.started + Duration::from_secs(since.as_secs())
    }

    /// A running clock that started at `start`, in whole seconds at [`Model::clock_now`],
    /// rounded: jobs started within the same half second always agree.
    pub fn clock_since(&self, start: Instant) -> Duration {
        let d = self.clock_now().saturating_duration_since(start);
        Duration::from_secs(d.as_secs() + u64::from(d.subsec_millis() >= 500))
    }

    /// Whether `job` is paused: as `z` last asked (until a sample agrees), else as last
    /// sampled.
    pub fn paused(&self, job: JobId) -> bool {
        if let Some(wanted) = self.pause_wanted.get(&job) {
            return *wanted;
        }
        self.job(job).is_some_and(|record| {
            matches!(record.status.state, JobState::Running)
                && record.sample.as_ref().is_some_and(|s| s.paused.is_some())
        })
    }

    /// Which keymap applies: a prompt, an overlay, copy mode, or the main screen.
    pub fn mode(&self) -> Mode {
        if self.prompt.is_some() {
            return Mode::Prompt;
        }
        match self.overlay {
            None if self.input_focus.is_some() => Mode::Input,
            None if self.copy.is_some() => Mode::Copy,
            None if self.tree.is_some() => Mode::Tree,
            None => Mode::Normal,
            Some(Overlay::Help { .. }) => Mode::Help,
            Some(Overlay::Signals { .. }) => Mode::SignalMenu,
            Some(Overlay::ConfirmQuit) => Mode::ConfirmQuit,
            Some(Overlay::ConfirmRerun { .. }) => Mode::ConfirmRerun,
        }
    }

    /// The `-j` that `p` offers after the current one: 1 → cores → unlimited → 1.
    pub fn next_limit(&self, current: usize) -> usize {
        let mut cycle = vec![1, self.cores, 0];
        cycle.dedup();
        match cycle.iter().position(|l| *l == current) {
            Some(i) => cycle[(i + 1) % cycle.len()],
            None => 1,
        }
    }

    /// A fresh run of the same jobs replaces the current one, whose figures join `runs`.
    pub fn start_run(&mut self, tracker: Tracker, limit: usize, previous: PastRun) {
        self.runs.push(previous);
        if self.runs.len() > MAX_PAST_RUNS {
            self.runs.remove(0);
        }
        let n = tracker.jobs.len();
        self.tracker = tracker;
        self.max_parallel = limit;
        self.rerun = None;
        self.views = vec![OutputView::default(); n];
        self.merged = MergedView::default();
        self.copy = None;
        self.tree = None;
        self.pause_wanted.clear();
        self.expanded.resize(n, false);
        self.inputs.resize(n, None);
        self.input_focus = None;
        if self.selected != RowRef::All && self.selected_job() >= n {
            self.selected = RowRef::Job(0);
        }
        if let Some(search) = &mut self.search {
            search.current = None;
            search.current_key = None;
        }
    }

    /// The current run's figures as a [`PastRun`] (`complete` says whether it finished).
    pub fn current_run(&self, now: Instant) -> PastRun {
        PastRun {
            limit: self.max_parallel,
            wall: self.tracker.figures(now).wall,
            complete: self.tracker.settled_at.is_some(),
        }
    }

    /// A model of jobs with the given names and statuses (tests, previews).
    pub fn from_statuses(
        jobs: impl IntoIterator<Item = (String, JobStatus)>,
        origin: impl Into<String>,
    ) -> Self {
        Model::new(Tracker::new(jobs), origin)
    }

    pub fn jobs(&self) -> &[JobRecord] {
        &self.tracker.jobs
    }

    pub fn job(&self, id: JobId) -> Option<&JobRecord> {
        self.tracker.jobs.get(id)
    }

    /// How job `id` takes input, if at all.
    pub fn input_kind(&self, id: JobId) -> Option<InputKind> {
        self.inputs.get(id).copied().flatten()
    }

    /// A job can be expanded into stage rows when it has more than one process.
    pub fn is_pipeline(&self, id: JobId) -> bool {
        self.job(id).is_some_and(|j| j.status.stages.len() > 1)
    }

    pub fn is_expanded(&self, id: JobId) -> bool {
        self.expanded.get(id).copied().unwrap_or(false)
    }

    /// Width of the longest row name: a job's name, or `2 +` a stage's label as
    /// `stage_label` renders it (the branch glyph takes two columns).
    pub fn longest_row_label(&self, stage_label: impl Fn(&[String]) -> String) -> usize {
        self.rows()
            .iter()
            .filter_map(|row| match *row {
                RowRef::All => Some(3),
                RowRef::Job(id) => self.job(id).map(|j| j.label().chars().count()),
                RowRef::Stage(id, s) => self
                    .job(id)
                    .and_then(|j| j.status.stages.get(s))
                    .map(|st| 2 + stage_label(&st.argv).chars().count()),
            })
            .max()
            .unwrap_or(0)
    }

    /// The merged view's "all" row is shown: two jobs or more, and not in the timeline.
    pub fn has_all_row(&self) -> bool {
        self.tracker.jobs.len() >= 2 && !self.timeline
    }

    /// The merged view is shown (its row is selected).
    pub fn merged_selected(&self) -> bool {
        self.selected == RowRef::All
    }

    /// Every table row, in display order.
    pub fn rows(&self) -> Vec<RowRef> {
        let mut rows = Vec::with_capacity(self.tracker.jobs.len() + 1);
        if self.has_all_row() {
            rows.push(RowRef::All);
        }
        for (id, job) in self.tracker.jobs.iter().enumerate() {
            // A job a config reload removed or replaced keeps its record, not its row.
            if job.retired {
                continue;
            }
            rows.push(RowRef::Job(id));
            if self.is_expanded(id) && job.status.stages.len() > 1 {
                rows.extend((0..job.status.stages.len()).map(|s| RowRef::Stage(id, s)));
            }
        }
        rows
    }

    pub fn selected_index(&self) -> usize {
        self.rows()
            .iter()
            .position(|r| *r == self.selected)
            .unwrap_or(0)
    }

    pub fn selected_job(&self) -> JobId {
        self.selected.job()
    }

    pub fn view(&self, id: JobId) -> OutputView {
        self.views.get(id).copied().unwrap_or_default()
    }

    pub fn view_mut(&mut self, id: JobId) -> Option<&mut OutputView> {
        self.views.get_mut(id)
    }

    /// Moves the selection by `delta` rows (clamped).
    pub fn select_relative(&mut self, delta: isize) {
        let rows = self.rows();
        if rows.is_empty() {
            return;
        }
        let current = self.selected_index() as isize;
        let next = (current + delta).clamp(0, rows.len() as isize - 1) as usize;
        self.selected = rows[next];
    }

    pub fn select_row(&mut self, index: usize) -> bool {
        match self.rows().get(index) {
            Some(row) => {
                self.selected = *row;
                true
            }
            None => false,
        }
    }

    /// Expands (true) or collapses (false) the selected job if it is a pipeline.
    pub fn set_expanded(&mut self, expanded: bool) -> bool {
        let id = self.selected_job();
        if !self.is_pipeline(id) || self.is_expanded(id) == expanded {
            return false;
        }
        if let Some(flag) = self.expanded.get_mut(id) {
            *flag = expanded;
        }
        if !expanded {
            self.selected = RowRef::Job(id);
        }
        true
    }

    /// Keeps the selected row (and the stages of a selected expanded pipeline, when they
    /// fit) within `height` visible table rows.
    pub fn scroll_table_into_view(&mut self, height: usize) {
        self.table_offset = self.visible_offset(height);
    }

    /// The first table row to show in `height` rows.
    pub fn visible_offset(&self, height: usize) -> usize {
        let selected = self.selected_index();
        let mut last = selected;
        if let RowRef::Job(id) = self.selected
            && self.is_expanded(id)
            && let Some(job) = self.job(id)
        {
            last = selected + job.status.stages.len();
        }
        let offset = table_offset(self.table_offset, last, height);
        table_offset(offset, selected, height)
    }

    pub fn set_message(&mut self, text: impl Into<String>, kind: MessageKind, now: Instant) {
        self.message = Some(Message {
            text: text.into(),
            kind,
            until: now + MESSAGE_TTL,
            sticky: false,
        });
    }

    /// A message that stays `ttl`, or until a key is pressed: routine notices (info)
    /// do not replace it meanwhile.
    pub fn set_sticky_message(
        &mut self,
        text: impl Into<String>,
        kind: MessageKind,
        now: Instant,
        ttl: Duration,
    ) {
        self.message = Some(Message {
            text: text.into(),
            kind,
            until: now + ttl,
            sticky: true,
        });
    }

    /// A notice from the supervisor: shown unless it is routine and a sticky message is
    /// up (the row shows what happened anyway).
    pub fn notice(&mut self, text: impl Into<String>, kind: MessageKind, now: Instant) {
        let sticky = self
            .message
            .as_ref()
            .is_some_and(|m| m.sticky && m.until > now);
        if !sticky || kind != MessageKind::Info {
            self.set_message(text, kind, now);
        }
    }

    /// A key was pressed: a sticky message has been seen.
    pub fn unstick_message(&mut self) {
        if self.message.as_ref().is_some_and(|m| m.sticky) {
            self.message = None;
        }
    }

    /// Drops an expired message; true if one was dropped.
    pub fn expire_message(&mut self, now: Instant) -> bool {
        if self.message.as_ref().is_some_and(|m| m.until <= now) {
            self.message = None;
            return true;
        }
        false
    }

    /// Jobs running or stopping.
    pub fn active_count(&self) -> usize {
        self.tracker
            .jobs
            .iter()
            .filter(|j| j.status.is_active())
            .count()
    }

    /// Jobs that would be stopped by quitting: active, queued or waiting to restart.
    pub fn unsettled_count(&self) -> usize {
        self.tracker
            .jobs
            .iter()
            .filter(|j| !j.status.is_settled())
            .count()
    }

    /// The search text to highlight: the one being typed, else the confirmed one.
    pub fn highlight_query(&self) -> Option<&str> {
        match &self.prompt {
            Some(Prompt {
                kind: PromptKind::Search,
                input,
                ..
            }) if !input.is_empty() => Some(input),
            _ => self
                .search
                .as_ref()
                .map(|s| s.query.as_str())
                .filter(|q| !q.is_empty()),
        }
    }
}

/// The first visible row so that `selected` is inside a window of `height` rows.
pub fn table_offset(offset: usize, selected: usize, height: usize) -> usize {
    if height == 0 {
        return selected;
    }
    if selected < offset {
        selected
    } else if selected >= offset + height {
        selected + 1 - height
    } else {
        offset
    }
}

/// Counts for the header line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub running: usize,
    pub done: usize,
    pub failed: usize,
    pub pending: usize,
    /// Waiting for dependencies.
    pub waiting: usize,
    /// Stopped on purpose (by the user, by a quit, before a dependency): not a failure.
    pub stopped: usize,
    /// Skipped: a dependency can no longer be met.
    pub skipped: usize,
}

pub fn counts(jobs: &[JobRecord]) -> Counts {
    use crate::supervisor::ResultClass;
    let mut counts = Counts::default();
    // A job a reload removed or replaced has no row, and is not counted either.
    for job in jobs.iter().filter(|j| !j.retired) {
        match &job.status.state {
            JobState::Running | JobState::Stopping { .. } => counts.running += 1,
            JobState::Finished(outcome) => match outcome.class() {
                ResultClass::Succeeded => counts.done += 1,
                ResultClass::Failed | ResultClass::TimedOut => counts.failed += 1,
                ResultClass::Stopped => counts.stopped += 1,
                ResultClass::Skipped => counts.skipped += 1,
            },
            JobState::Pending(_) if job.status.is_waiting() => counts.waiting += 1,
            JobState::Pending(_) => counts.pending += 1,
        }
    }
    counts
}
