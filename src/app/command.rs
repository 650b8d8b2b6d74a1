//! What a user can ask the TUI to do: one [`Command`] per intent, each with its stable
//! config name (the key under `[keys]`), a one-line description (the help overlay and the
//! README list them), a short label for the hint bar, and its default keys per [`Mode`].
//!
//! Adding a key means one line in [`commands!`] and one arm in [`Command::default_keys`]
//! here, and what it does in `update.rs`: the keymap, the help, the hint labels, `[keys]`
//! validation and the README table (checked by a test) all follow from this table.

use crossterm::event::{KeyCode, KeyModifiers};

use super::keymap::Key;

/// Which keymap applies: the main screen, or what is open on top of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    Normal,
    /// A one-line text input (`w` deadline, `/` search): printable keys are text.
    Prompt,
    /// The `?` overlay.
    Help,
    /// "Stop them all and quit?"
    ConfirmQuit,
    /// "Stop them all and rerun everything with -j N?"
    ConfirmRerun,
    /// The `x` menu; its digits pick a signal by number.
    SignalMenu,
    /// `i` on a PTY job: every key goes to the job, except the one that leaves.
    Input,
    /// Copy mode (`y`): a cursor line and a selection in the output pane.
    Copy,
    /// The process tree pane (`T`): the keys move among a job's processes and act on one.
    Tree,
}

impl Mode {
    pub const ALL: [Mode; 9] = [
        Mode::Normal,
        Mode::Prompt,
        Mode::Help,
        Mode::ConfirmQuit,
        Mode::ConfirmRerun,
        Mode::SignalMenu,
        Mode::Input,
        Mode::Copy,
        Mode::Tree,
    ];

    /// As error messages and the README name it.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Normal => "the main screen",
            Mode::Prompt => "a prompt",
            Mode::Help => "the help",
            Mode::ConfirmQuit => "the quit dialog",
            Mode::ConfirmRerun => "the rerun dialog",
            Mode::SignalMenu => "the signal menu",
            Mode::Input => "a job's terminal (after i)",
            Mode::Copy => "copy mode",
            Mode::Tree => "the process tree",
        }
    }

    /// Keys this mode keeps for itself: typed text in a prompt, the signal menu's
    /// numbers. Binding one there is refused (it would stop working as text or a number).
    pub fn reserves(self, key: Key) -> bool {
        let plain = key.mods.difference(KeyModifiers::SHIFT).is_empty();
        match (self, key.code) {
            (Mode::Prompt, KeyCode::Char(_)) => plain,
            (Mode::SignalMenu, KeyCode::Char('0'..='9')) => plain,
            _ => false,
        }
    }
}

/// Defines [`Command`] with its config name and description, and [`Command::ALL`].
macro_rules! commands {
    ($($(#[$doc:meta])* $variant:ident = $name:literal, $hint:literal, $about:literal;)*) => {
        /// One user intent. Keys map to these (see [`super::keymap`]); `update` gives
        /// them their meaning in the current mode.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Command {
            $($(#[$doc])* $variant,)*
        }

        impl Command {
            /// Every command, in the order the help and the README list them.
            pub const ALL: &[Command] = &[$(Command::$variant,)*];

            /// The stable name used under `[keys]` in the config.
            pub fn name(self) -> &'static str {
                match self {
                    $(Command::$variant => $name,)*
                }
            }

            /// What it does, in one line (help overlay, README).
            pub fn about(self) -> &'static str {
                match self {
                    $(Command::$variant => $about,)*
                }
            }

            /// Its word in the hint bar (`t stop`).
            pub fn hint(self) -> &'static str {
                match self {
                    $(Command::$variant => $hint,)*
                }
            }
        }
    };
}

commands! {
    SelectPrev = "select_prev", "select", "select the row above (output focused: scroll up; copy mode: the line above)";
    SelectNext = "select_next", "select", "select the row below (output focused: scroll down; copy mode: the line below)";
    Expand = "expand", "expand", "expand a pipeline: one row per stage (output focused: scroll right)";
    Collapse = "collapse", "collapse", "collapse a pipeline (output focused: scroll left)";
    Focus = "focus", "focus", "switch the focus: jobs / output";
    PageUp = "page_up", "page", "scroll the output a page up";
    PageDown = "page_down", "page", "scroll the output a page down";
    Top = "top", "top", "output: go to the first line";
    Bottom = "bottom", "bottom", "output: go to the end and follow it";
    Stop = "stop", "stop", "terminate: stop signal to the group, SIGKILL after grace";
    Kill = "kill", "kill", "kill now: SIGKILL to the job's process group";
    Wait = "wait", "wait", "wait for the job up to a deadline, then stop it";
    WaitAll = "wait_all", "wait all", "wait for every running job, then stop them";
    Restart = "restart", "restart", "restart the job";
    RestartAll = "restart_all", "restart all", "restart every job";
    Start = "start", "start", "start a pending or finished job";
    Signal = "signal", "signal", "send the job a signal, chosen from a menu";
    Input = "input", "type", "type into the job: its terminal, or lines to its stdin";
    Search = "search", "search", "search the output (matches are highlighted)";
    SearchNext = "search_next", "next", "go to the next match";
    SearchPrev = "search_prev", "prev", "go to the previous match";
    Follow = "follow", "follow", "toggle follow (tail) mode";
    Clear = "clear", "clear", "clear the job's output";
    Dismiss = "dismiss", "unmark", "drop the search highlights";
    Timeline = "timeline", "timeline", "timeline: when each job ran, shaded by CPU";
    Tree = "tree", "tree", "the job's process tree: every process, its state, what it waits on";
    TreeReach = "tree_reach", "reach", "process tree: t K x reach the process alone, or its subtree";
    Pause = "pause", "pause", "pause the job (cgroup freezer, else SIGSTOP), or resume it";
    Rerun = "rerun", "rerun -j", "rerun all with -j 1, then cores, then unlimited";
    Help = "help", "help", "this help (opens and closes it)";
    Quit = "quit", "quit", "quit: asks while jobs run, then stops every job";
    QuitNow = "quit_now", "quit now", "quit now: kills and reaps every job";
    Interrupt = "interrupt", "quit", "from anywhere: stop every job and quit; twice: kill";
    Timestamps = "timestamps", "times", "show (or hide) each line's arrival time";
    Wrap = "wrap", "wrap", "wrap long lines (or cut them at the pane's edge)";
    ScrollLeft = "scroll_left", "left", "output: scroll long lines left";
    ScrollRight = "scroll_right", "right", "output: scroll long lines right";
    StreamFilter = "stream", "stream", "show both streams, then stderr only, then stdout only";
    Filter = "filter", "filter", "all: show only the jobs named (web api*)";
    CopyMode = "copy_mode", "copy", "copy mode: select lines to copy or save";
    CopyMark = "copy_mark", "mark", "copy mode: start (or drop) the selection at the cursor";
    Copy = "copy", "copy", "copy mode: copy the selection to the clipboard (OSC 52)";
    SaveSelection = "save_selection", "save", "copy mode: save the selection to a file";
    Save = "save", "save all", "save everything the output pane holds to a file";
    Confirm = "confirm", "yes", "yes (dialogs); send the chosen signal (menu)";
    Cancel = "cancel", "no", "no (dialogs); close the menu, the help or the tree; leave copy mode";
    PromptSubmit = "prompt_submit", "ok", "prompt: accept the text";
    PromptCancel = "prompt_cancel", "cancel", "prompt: close it";
    PromptDelete = "prompt_delete", "delete", "prompt: delete the last character";
    PromptClear = "prompt_clear", "clear", "prompt: delete everything typed";
    PromptEdit = "prompt_edit", "edit", "prompt: edit the suggestion instead of replacing it";
    InputEof = "input_eof", "close stdin", "stdin prompt: close the job's stdin (end of file)";
    InputLeave = "input_leave", "leave", "typing into a job: give the keys back to forkyard";
}

const fn ch(c: char) -> Key {
    Key::new(KeyCode::Char(c), KeyModifiers::NONE)
}

const fn ctrl(c: char) -> Key {
    Key::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}

const fn code(code: KeyCode) -> Key {
    Key::new(code, KeyModifiers::NONE)
}

const UP: Key = code(KeyCode::Up);
const DOWN: Key = code(KeyCode::Down);
const LEFT: Key = code(KeyCode::Left);
const RIGHT: Key = code(KeyCode::Right);
const ENTER: Key = code(KeyCode::Enter);
const ESC: Key = code(KeyCode::Esc);
const HOME: Key = code(KeyCode::Home);
const END: Key = code(KeyCode::End);
const PGUP: Key = code(KeyCode::PageUp);
const PGDN: Key = code(KeyCode::PageDown);

use Mode::{ConfirmQuit, ConfirmRerun, Help, Input, Normal, Prompt, SignalMenu, Tree};
/// `Copy` alone would shadow the trait of that name.
const COPY: Mode = Mode::Copy;

/// `keys![(Normal, &[UP, ch('k')]), …]`: a static table of keys per mode.
macro_rules! keys {
    ($(($mode:expr, &[$($key:expr),* $(,)?])),* $(,)?) => {
        const { &[$(($mode, &[$($key),*] as &'static [Key])),*] }
    };
}

impl Command {
    /// The keys a command has before the config's `[keys]` changes them, per mode. A
    /// command exists in exactly the modes listed here; a `[keys]` entry replaces its
    /// keys in all of them.
    pub fn default_keys(self) -> &'static [(Mode, &'static [Key])] {
        match self {
            Command::SelectPrev => keys![
                (Normal, &[UP, ch('k')]),
                (Help, &[UP, ch('k')]),
                (SignalMenu, &[UP, ch('k')]),
                (COPY, &[UP, ch('k')]),
                (Tree, &[UP, ch('k')]),
            ],
            Command::SelectNext => keys![
                (Normal, &[DOWN, ch('j')]),
                (Help, &[DOWN, ch('j')]),
                (SignalMenu, &[DOWN, ch('j')]),
                (COPY, &[DOWN, ch('j')]),
                (Tree, &[DOWN, ch('j')]),
            ],
            Command::Expand => keys![(Normal, &[ENTER, RIGHT, ch('l')])],
            Command::Collapse => keys![(Normal, &[LEFT, ch('h')])],
            Command::Focus => keys![(Normal, &[code(KeyCode::Tab), code(KeyCode::BackTab)])],
            Command::PageUp => keys![
                (Normal, &[PGUP]),
                (Help, &[PGUP]),
                (COPY, &[PGUP]),
                (Tree, &[PGUP]),
            ],
            Command::PageDown => keys![
                (Normal, &[PGDN]),
                (Help, &[PGDN, ch(' ')]),
                (COPY, &[PGDN]),
                (Tree, &[PGDN]),
            ],
            Command::Top => keys![
                (Normal, &[ch('g'), HOME]),
                (COPY, &[ch('g'), HOME]),
                (Tree, &[ch('g'), HOME]),
            ],
            Command::Bottom => keys![
                (Normal, &[ch('G'), END]),
                (COPY, &[ch('G'), END]),
                (Tree, &[ch('G'), END]),
            ],
            Command::Stop => keys![(Normal, &[ch('t')]), (Tree, &[ch('t')])],
            Command::Kill => keys![(Normal, &[ch('K')]), (Tree, &[ch('K')])],
            Command::Wait => keys![(Normal, &[ch('w')])],
            Command::WaitAll => keys![(Normal, &[ch('W')])],
            Command::Restart => keys![(Normal, &[ch('r')])],
            Command::RestartAll => keys![(Normal, &[ch('R')])],
            Command::Start => keys![(Normal, &[ch('s')])],
            Command::Signal => keys![
                (Normal, &[ch('x')]),
                (SignalMenu, &[ch('x')]),
                (Tree, &[ch('x')]),
            ],
            Command::Input => keys![(Normal, &[ch('i')])],
            Command::Search => keys![(Normal, &[ch('/')])],
            Command::SearchNext => keys![(Normal, &[ch('n')])],
            Command::SearchPrev => keys![(Normal, &[ch('N')])],
            Command::Follow => keys![(Normal, &[ch('f')])],
            Command::Clear => keys![(Normal, &[ch('c')])],
            Command::Dismiss => keys![(Normal, &[ESC])],
            Command::Timestamps => keys![(Normal, &[ch('@')]), (COPY, &[ch('@')])],
            Command::Wrap => keys![(Normal, &[ch('L')]), (COPY, &[ch('L')])],
            Command::ScrollLeft => keys![(Normal, &[ch('<')]), (COPY, &[ch('<'), LEFT, ch('h')])],
            Command::ScrollRight => keys![(Normal, &[ch('>')]), (COPY, &[ch('>'), RIGHT, ch('l')])],
            Command::StreamFilter => keys![(Normal, &[ch('E')]), (COPY, &[ch('E')])],
            Command::Filter => keys![(Normal, &[ch('F')])],
            Command::CopyMode => keys![(Normal, &[ch('y')])],
            Command::CopyMark => keys![(COPY, &[ch('v'), ch(' ')])],
            Command::Copy => keys![(COPY, &[ch('y'), ENTER])],
            Command::SaveSelection => keys![(COPY, &[ch('s')])],
            Command::Save => keys![(Normal, &[ch('S')]), (COPY, &[ch('S')])],
            Command::Timeline => keys![(Normal, &[ch('v')])],
            Command::Tree => keys![(Normal, &[ch('T')]), (Tree, &[ch('T')])],
            Command::TreeReach => keys![(Tree, &[ch('a')])],
            Command::Pause => keys![(Normal, &[ch('z')]), (Tree, &[ch('z')])],
            Command::Rerun => keys![(Normal, &[ch('p')]), (ConfirmRerun, &[ch('p')])],
            Command::Help => keys![(Normal, &[ch('?')]), (Help, &[ch('?')]), (Tree, &[ch('?')])],
            Command::Quit => keys![(Normal, &[ch('q')]), (ConfirmQuit, &[ch('q')])],
            Command::QuitNow => keys![
                (Normal, &[ch('Q')]),
                (ConfirmQuit, &[ch('Q')]),
                (Tree, &[ch('Q')]),
            ],
            Command::Interrupt => keys![
                (Normal, &[ctrl('c')]),
                (Prompt, &[ctrl('c')]),
                (Help, &[ctrl('c')]),
                (ConfirmQuit, &[ctrl('c')]),
                (ConfirmRerun, &[ctrl('c')]),
                (SignalMenu, &[ctrl('c')]),
                (COPY, &[ctrl('c')]),
                (Tree, &[ctrl('c')]),
            ],
            Command::Confirm => keys![
                (ConfirmQuit, &[ch('y'), ch('Y'), ENTER]),
                (ConfirmRerun, &[ch('y'), ch('Y'), ENTER]),
                (SignalMenu, &[ENTER]),
            ],
            Command::Cancel => keys![
                (Help, &[ESC, ch('q'), ENTER]),
                (ConfirmQuit, &[ch('n'), ch('N'), ESC]),
                (ConfirmRerun, &[ch('n'), ch('N'), ESC, ch('q')]),
                (SignalMenu, &[ESC, ch('q')]),
                (COPY, &[ESC, ch('q')]),
                (Tree, &[ESC, ch('q')]),
            ],
            Command::PromptSubmit => keys![(Prompt, &[ENTER])],
            Command::PromptCancel => keys![(Prompt, &[ESC])],
            Command::PromptDelete => keys![(Prompt, &[code(KeyCode::Backspace)])],
            Command::PromptClear => keys![(Prompt, &[ctrl('u')])],
            Command::PromptEdit => keys![(Prompt, &[LEFT, RIGHT, HOME, END])],
            Command::InputEof => keys![(Prompt, &[ctrl('d')])],
            // As in mprocs. Every other key, Ctrl-C included, goes to the job.
            Command::InputLeave => keys![(Input, &[ctrl('a')])],
        }
    }

    /// The modes the command exists in.
    pub fn modes(self) -> impl Iterator<Item = Mode> {
        self.default_keys().iter().map(|(mode, _)| *mode)
    }

    /// The command named `name` under `[keys]`.
    pub fn from_name(name: &str) -> Option<Command> {
        Command::ALL.iter().copied().find(|c| c.name() == name)
    }
}
