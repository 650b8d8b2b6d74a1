//! Reading output: what the merged view (the "all" row), copy mode, saving and the
//! mouse selection do. Like `update.rs` these only change the model (reading the
//! buffers under their locks) and return [`Action`]s; copying to the clipboard and
//! writing files is the shell's.

use std::path::PathBuf;

use crate::output::Stream;
use crate::ui::model::{
    CopyMode, LineKey, MessageKind, Model, Prompt, PromptKind, SaveWhat, Search,
};
use crate::ui::output::{self, RawRow};
use crate::ui::{merged, pane};

use super::command::Command;
use super::update::{Action, Ctx, with_buffer};

/// Text put on the clipboard at most (before base64): terminals cap OSC 52 payloads
/// (xterm, tmux and others take at least this much), and a selection larger than a
/// clipboard is meant for a file (`s`).
pub const CLIPBOARD_BYTES: usize = 256 * 1024;

/// Sideways scroll step: half the pane, at least 8 columns.
fn hscroll_step(ctx: &Ctx<'_>) -> usize {
    ctx.areas
        .map(|a| usize::from(a.output_body.width) / 2)
        .unwrap_or(40)
        .max(8)
}

/// `<` `>` (and ← → with the output focused): long lines sideways. Wrapping lines have
/// no sideways: wrapping is turned off first.
pub fn hscroll(model: &mut Model, ctx: &Ctx<'_>, right: bool) {
    if model.wrap {
        model.wrap = false;
        model.set_message("wrap off: scrolling sideways", MessageKind::Info, ctx.now);
    }
    let step = hscroll_step(ctx);
    model.hscroll = if right {
        model
            .hscroll
            .saturating_add(step)
            .min(crate::output::sanitize::MAX_COLUMNS)
    } else {
        model.hscroll.saturating_sub(step)
    };
}

/// `E`: both streams → stderr only → stdout only.
pub fn cycle_stream(model: &mut Model, ctx: &Ctx<'_>) {
    model.stream_filter = match model.stream_filter {
        None => Some(Stream::Stderr),
        Some(Stream::Stderr) => Some(Stream::Stdout),
        Some(Stream::Stdout) => None,
    };
    // Positions of the other stream's lines mean nothing now: follow the tail.
    model.merged = Default::default();
    for view in &mut model.views {
        *view = Default::default();
    }
    model.copy = None;
    let said = match model.stream_filter {
        None => "both streams",
        Some(Stream::Stderr) => "stderr only",
        Some(Stream::Stdout) => "stdout only",
    };
    model.set_message(said, MessageKind::Info, ctx.now);
}

pub fn scroll_merged(model: &mut Model, ctx: &Ctx<'_>, delta: isize) {
    let filter = crate::ui::merged_filter(model);
    let rows = ctx.areas.map(|a| a.output_rows()).unwrap_or(1).max(1);
    let mut view = model.merged;
    if delta < 0 {
        merged::scroll_up(ctx.buffers, &filter, &mut view, rows, delta.unsigned_abs());
    } else {
        merged::scroll_down(ctx.buffers, &filter, &mut view, rows, delta.unsigned_abs());
    }
    model.merged = view;
}

pub fn toggle_follow_merged(model: &mut Model, ctx: &Ctx<'_>) {
    if model.merged.follow {
        let filter = crate::ui::merged_filter(model);
        let rows = ctx.areas.map(|a| a.output_rows()).unwrap_or(1).max(1);
        let mut view = model.merged;
        view.top = merged::window(ctx.buffers, &filter, view, rows)
            .first()
            .copied();
        view.follow = false;
        view.paused_total = merged::total(ctx.buffers, &filter);
        model.merged = view;
    } else {
        model.merged.follow = true;
    }
}

/// `g`: the first line.
pub fn top(model: &mut Model, ctx: &Ctx<'_>) {
    if model.merged_selected() {
        let filter = crate::ui::merged_filter(model);
        let rows = ctx.areas.map(|a| a.output_rows()).unwrap_or(1).max(1);
        merged::scroll_to_top(ctx.buffers, &filter, &mut model.merged, rows);
    } else {
        with_buffer(model, ctx, |buf, _, view, _| pane::scroll_to_top(buf, view));
    }
}

/// `G`: the end, followed.
pub fn bottom(model: &mut Model) {
    if model.merged_selected() {
        model.merged.follow = true;
    } else {
        let id = model.selected_job();
        if let Some(view) = model.view_mut(id) {
            view.follow = true;
        }
    }
}

/// `n` / `N` in the merged view: the next match in any job shown, wrapping around.
pub fn search_merged(model: &mut Model, ctx: &Ctx<'_>, search: &Search, forward: bool) {
    let filter = crate::ui::merged_filter(model);
    let rows = ctx.areas.map(|a| a.output_rows()).unwrap_or(1).max(1);
    let view = model.merged;
    let from = match search.current_key {
        Some(key) => Some(key),
        None if view.follow => None,
        None => {
            let top = view.top;
            if forward {
                // From the top of the page, itself included.
                top.and_then(|t| {
                    merged::before(ctx.buffers, &filter, Some(t), 1)
                        .first()
                        .copied()
                })
            } else {
                top
            }
        }
    };
    let mut wrapped = false;
    let mut found = merged::find(ctx.buffers, &filter, &search.query, from, forward);
    if found.is_none() && from.is_some() {
        found = merged::find(ctx.buffers, &filter, &search.query, None, forward);
        wrapped = found.is_some();
    }
    let Some(key) = found else {
        model.set_message(
            format!("no match for {:?} in any job", search.query),
            MessageKind::Error,
            ctx.now,
        );
        return;
    };
    merged::reveal(
        ctx.buffers,
        &filter,
        &mut model.merged,
        rows,
        key,
        model.wrap,
    );
    if let Some(s) = &mut model.search {
        s.current = Some(key.seq);
        s.current_key = Some(key);
    }
    let name = model
        .job(key.job)
        .map(|j| j.name.clone())
        .unwrap_or_default();
    let said = if wrapped {
        format!("in {name} (search wrapped around)")
    } else {
        format!("in {name}")
    };
    model.set_message(said, MessageKind::Info, ctx.now);
}

/// The lines on screen now, top to bottom (their keys).
fn visible(model: &Model, ctx: &Ctx<'_>) -> Vec<LineKey> {
    let Some(areas) = ctx.areas else {
        return Vec::new();
    };
    let view = crate::ui::pane_view(
        model,
        ctx.buffers,
        usize::from(areas.output_body.width),
        areas.output_rows(),
    );
    let mut keys: Vec<LineKey> = view.rows.iter().filter_map(|(k, _)| *k).collect();
    keys.dedup();
    keys
}

/// Stops following, so what is on screen stays there (copy mode, a mouse selection).
fn pause(model: &mut Model, ctx: &Ctx<'_>) {
    if model.merged_selected() {
        if model.merged.follow {
            toggle_follow_merged(model, ctx);
        }
    } else if model.view(model.selected_job()).follow {
        with_buffer(model, ctx, |buf, filter, view, rows| {
            pane::scroll_up(buf, filter, view, rows, 0);
        });
        if model.view(model.selected_job()).follow {
            with_buffer(model, ctx, |buf, _, view, _| pane::scroll_to_top(buf, view));
        }
    }
}

/// `y`: copy mode, the cursor on the last line shown.
pub fn enter_copy(model: &mut Model, ctx: &Ctx<'_>) -> Vec<Action> {
    let shown = visible(model, ctx);
    let Some(last) = shown.last().copied() else {
        model.set_message("nothing to copy here", MessageKind::Info, ctx.now);
        return Vec::new();
    };
    pause(model, ctx);
    model.copy = Some(CopyMode {
        cursor: last,
        anchor: None,
        dragging: false,
        dragged: false,
    });
    model.focus = crate::ui::model::Focus::Output;
    Vec::new()
}

/// Starts a mouse selection on `key` (a press in the output pane).
pub fn press(model: &mut Model, ctx: &Ctx<'_>, key: LineKey) {
    pause(model, ctx);
    model.copy = Some(CopyMode {
        cursor: key,
        anchor: Some(key),
        dragging: true,
        dragged: false,
    });
}

/// The mouse moved to `key` with the button held.
pub fn drag(model: &mut Model, key: LineKey) {
    if let Some(copy) = model.copy.as_mut().filter(|c| c.dragging) {
        if copy.cursor != key {
            copy.dragged = true;
        }
        copy.cursor = key;
    }
}

/// The button was released: a drag copies what it selected; a click selects nothing.
pub fn release(model: &mut Model, ctx: &Ctx<'_>) -> Vec<Action> {
    match model.copy {
        Some(copy) if copy.dragging && copy.dragged => copy_selection(model, ctx),
        Some(copy) if copy.dragging => {
            model.copy = None;
            Vec::new()
        }
        _ => Vec::new(),
    }
}

/// The line `n` lines after (or before) `from`, among those the view shows; the last
/// one reached when there are fewer.
fn step(model: &Model, ctx: &Ctx<'_>, from: LineKey, n: isize) -> Option<LineKey> {
    if n == 0 {
        return Some(from);
    }
    let count = n.unsigned_abs();
    if model.merged_selected() {
        let filter = crate::ui::merged_filter(model);
        let keys = if n > 0 {
            merged::after(ctx.buffers, &filter, Some(from), count)
        } else {
            merged::before(ctx.buffers, &filter, Some(from), count)
        };
        return keys.last().copied();
    }
    let filter = crate::ui::pane_filter(model);
    let buffer = ctx.buffers.get(from.job)?;
    let buf = crate::output::lock(buffer);
    let index = usize::try_from(from.seq.saturating_sub(buf.first_seq()))
        .unwrap_or(usize::MAX)
        .min(buf.len());
    let keeps = |l: &crate::output::LineRef<'_>| {
        filter.stage.is_none_or(|s| s == l.stage) && filter.stream.is_none_or(|s| s == l.stream)
    };
    let key = |l: crate::output::LineRef<'_>| LineKey {
        at: l.at,
        job: from.job,
        seq: l.seq,
    };
    let line = if n > 0 {
        buf.iter().skip(index + 1).filter(keeps).take(count).last()
    } else {
        buf.iter()
            .take(index)
            .rev()
            .filter(keeps)
            .take(count)
            .last()
    };
    line.map(key)
}

/// The first or last line of the view.
fn end(model: &Model, ctx: &Ctx<'_>, last: bool) -> Option<LineKey> {
    if model.merged_selected() {
        let filter = crate::ui::merged_filter(model);
        let keys = if last {
            merged::before(ctx.buffers, &filter, None, 1)
        } else {
            merged::after(ctx.buffers, &filter, None, 1)
        };
        return keys.first().copied();
    }
    let id = model.selected_job();
    let filter = crate::ui::pane_filter(model);
    let buf = crate::output::lock(ctx.buffers.get(id)?);
    let keeps = |l: &crate::output::LineRef<'_>| {
        filter.stage.is_none_or(|s| s == l.stage) && filter.stream.is_none_or(|s| s == l.stream)
    };
    let line = if last {
        buf.iter().rev().find(keeps)
    } else {
        buf.iter().find(keeps)
    };
    line.map(|l| LineKey {
        at: l.at,
        job: id,
        seq: l.seq,
    })
}

/// Scrolls the paused view so the cursor line is on screen.
fn keep_in_view(model: &mut Model, ctx: &Ctx<'_>) {
    let Some(cursor) = model.copy.map(|c| c.cursor) else {
        return;
    };
    for _ in 0..ctx.areas.map(|a| a.output_rows()).unwrap_or(1) * 4 + 4 {
        let shown = visible(model, ctx);
        let (Some(first), Some(last)) = (shown.first(), shown.last()) else {
            return;
        };
        let merged = model.merged_selected();
        let before = if merged {
            cursor < *first
        } else {
            cursor.seq < first.seq
        };
        let after = if merged {
            cursor > *last
        } else {
            cursor.seq > last.seq
        };
        if before {
            if merged {
                model.merged.follow = false;
                model.merged.top = Some(cursor);
            } else if let Some(view) = model.view_mut(model.selected_job()) {
                view.follow = false;
                view.top = cursor.seq;
            }
            return;
        }
        if !after {
            return;
        }
        super::update::scroll(model, ctx, 1);
        if model.merged_selected() && model.merged.follow
            || !model.merged_selected() && model.view(model.selected_job()).follow
        {
            // Reached the end: stay paused there, with the cursor on the last line.
            pause(model, ctx);
        }
    }
}

/// A key in copy mode.
pub fn copy_mode(model: &mut Model, command: Command, ctx: &Ctx<'_>) -> Vec<Action> {
    let Some(copy) = model.copy else {
        return Vec::new();
    };
    let page = ctx
        .areas
        .map(|a| a.output_rows())
        .unwrap_or(1)
        .saturating_sub(1)
        .max(1) as isize;
    let moved = match command {
        Command::SelectPrev => step(model, ctx, copy.cursor, -1),
        Command::SelectNext => step(model, ctx, copy.cursor, 1),
        Command::PageUp => step(model, ctx, copy.cursor, -page),
        Command::PageDown => step(model, ctx, copy.cursor, page),
        Command::Top => end(model, ctx, false),
        Command::Bottom => end(model, ctx, true),
        Command::CopyMark => {
            if let Some(c) = model.copy.as_mut() {
                c.anchor = match c.anchor {
                    None => Some(c.cursor),
                    Some(_) => None,
                };
            }
            return Vec::new();
        }
        Command::Copy => return copy_selection(model, ctx),
        Command::SaveSelection => {
            open_save(model, SaveWhat::Selection, ctx);
            return Vec::new();
        }
        Command::Save => {
            open_save(model, SaveWhat::Scrollback, ctx);
            return Vec::new();
        }
        Command::Cancel => {
            model.copy = None;
            return Vec::new();
        }
        Command::Timestamps
        | Command::Wrap
        | Command::ScrollLeft
        | Command::ScrollRight
        | Command::StreamFilter => {
            // Looking around keeps the selection.
            let kept = model.copy;
            if command == Command::StreamFilter {
                cycle_stream(model, ctx);
                return Vec::new();
            }
            match command {
                Command::ScrollLeft => hscroll(model, ctx, false),
                Command::ScrollRight => hscroll(model, ctx, true),
                Command::Wrap => {
                    model.wrap = !model.wrap;
                    model.hscroll = 0;
                }
                _ => model.timestamps = !model.timestamps,
            }
            model.copy = kept;
            return Vec::new();
        }
        _ => return Vec::new(),
    };
    if let (Some(key), Some(c)) = (moved, model.copy.as_mut()) {
        c.cursor = key;
    }
    keep_in_view(model, ctx);
    Vec::new()
}

/// The rows of lines `first` ..= `last` of the view (all of it with None), in order.
fn rows_between(model: &Model, ctx: &Ctx<'_>, range: Option<(LineKey, LineKey)>) -> Vec<RawRow> {
    if model.merged_selected() {
        let filter = crate::ui::merged_filter(model);
        let mut keys = Vec::new();
        let mut from = range.map(|(first, _)| first);
        let mut inclusive = true;
        loop {
            let batch = if inclusive {
                merged::from(ctx.buffers, &filter, from, 4096)
            } else {
                merged::after(ctx.buffers, &filter, from, 4096)
            };
            inclusive = false;
            let done = batch.len() < 4096;
            for key in batch {
                if range.is_some_and(|(_, last)| key > last) {
                    return output::copy_merged(ctx.buffers, &keys);
                }
                keys.push(key);
                from = Some(key);
            }
            if done {
                return output::copy_merged(ctx.buffers, &keys);
            }
        }
    }
    let id = model.selected_job();
    let filter = crate::ui::pane_filter(model);
    let Some(buffer) = ctx.buffers.get(id) else {
        return Vec::new();
    };
    let buf = crate::output::lock(buffer);
    let items: Vec<pane::Item> = buf
        .iter()
        .filter(|l| {
            filter.stage.is_none_or(|s| s == l.stage)
                && filter.stream.is_none_or(|s| s == l.stream)
                && range.is_none_or(|(first, last)| first.seq <= l.seq && l.seq <= last.seq)
        })
        .map(|l| pane::Item::Line(l.seq))
        .collect();
    output::copy_rows(&buf, id, &items)
}

/// The selection (or the whole view) as text.
fn text_of(model: &Model, ctx: &Ctx<'_>, what: SaveWhat) -> (String, usize) {
    let range = match what {
        SaveWhat::Selection => model.copy.map(|c| c.range()),
        SaveWhat::Scrollback => None,
    };
    let mut rows = rows_between(model, ctx, range);
    if what == SaveWhat::Scrollback && !model.merged_selected() {
        // The lines still being written belong to the scrollback too.
        let id = model.selected_job();
        let filter = crate::ui::pane_filter(model);
        if let Some(buffer) = ctx.buffers.get(id) {
            let buf = crate::output::lock(buffer);
            let partials: Vec<pane::Item> = buf
                .partials()
                .enumerate()
                .filter(|(_, (stage, stream, _))| {
                    filter.stage.is_none_or(|s| s == *stage)
                        && filter.stream.is_none_or(|s| s == *stream)
                })
                .map(|(i, _)| pane::Item::Partial(i))
                .collect();
            rows.extend(output::copy_rows(&buf, id, &partials));
        }
    }
    let labels = model
        .merged_selected()
        .then(|| crate::ui::job_labels(model));
    let clock = model.timestamps.then_some(&model.clock);
    (
        output::plain_lines(&rows, labels.as_ref(), clock),
        rows.len(),
    )
}

/// `y` in copy mode (or the end of a mouse drag): the selection onto the clipboard.
fn copy_selection(model: &mut Model, ctx: &Ctx<'_>) -> Vec<Action> {
    let (text, lines) = text_of(model, ctx, SaveWhat::Selection);
    model.copy = None;
    let (text, kept) = bounded(&text, CLIPBOARD_BYTES);
    let said = if kept < lines {
        let key = model
            .keymap
            .first_key(super::command::Mode::Copy, Command::SaveSelection)
            .map(|k| format!(" ({k} in copy mode saves them all)"))
            .unwrap_or_default();
        format!(
            "copied the first {kept} of {lines} lines: the clipboard takes {} at most{key}",
            crate::fmt::bytes(CLIPBOARD_BYTES as u64)
        )
    } else {
        format!(
            "copied {} ({}) to the clipboard",
            crate::ui::format::count(lines as u64, "line", "lines"),
            crate::fmt::bytes(text.len() as u64)
        )
    };
    model.set_message(said, MessageKind::Info, ctx.now);
    vec![Action::Clipboard(text)]
}

/// At most `limit` bytes of whole lines of `text`, and how many lines that is.
pub fn bounded(text: &str, limit: usize) -> (String, usize) {
    if text.len() <= limit {
        return (text.to_string(), text.lines().count());
    }
    let cut = text[..limit].rfind('\n').map_or(0, |nl| nl + 1);
    let kept = &text[..cut];
    (kept.to_string(), kept.lines().count())
}

/// The save prompt, with a file name to start from: `web-20250601-123456.txt`.
pub fn open_save(model: &mut Model, what: SaveWhat, ctx: &Ctx<'_>) {
    let name = if model.merged_selected() {
        "all".to_string()
    } else {
        model
            .job(model.selected_job())
            .map(|j| j.name.clone())
            .unwrap_or_else(|| "output".to_string())
    };
    let local = crate::logs::clock::LocalClock::new().at_millis(model.clock.unix_millis(ctx.now));
    let stamp = format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        local.year, local.month, local.day, local.hour, local.minute, local.second
    );
    let suffix = match what {
        SaveWhat::Selection => "-selection",
        SaveWhat::Scrollback => "",
    };
    model.prompt = Some(Prompt::new(
        PromptKind::Save(what),
        &format!("{name}{suffix}-{stamp}.txt"),
    ));
}

/// Enter in the save prompt: the text to write (the shell writes it).
pub fn submit_save(
    model: &mut Model,
    ctx: &Ctx<'_>,
    what: SaveWhat,
    prompt: &Prompt,
) -> Vec<Action> {
    let path = prompt.input.trim();
    if path.is_empty() {
        if let Some(p) = model.prompt.as_mut() {
            p.error = Some("enter a file name".into());
        }
        return Vec::new();
    }
    let (text, lines) = text_of(model, ctx, what);
    let replace = prompt.replace.as_deref() == Some(path);
    model.prompt = None;
    vec![Action::Save {
        path: PathBuf::from(path),
        text,
        lines,
        replace,
    }]
}

/// The shell wrote (or could not write) a save: say so; a file that exists reopens the
/// prompt, where the same name again replaces it.
pub fn saved(
    model: &mut Model,
    path: &std::path::Path,
    lines: usize,
    result: std::io::Result<u64>,
    now: std::time::Instant,
) {
    let shown = crate::stdio::visible_inline(&path.display().to_string()).into_owned();
    match result {
        Ok(bytes) => {
            model.copy = None;
            model.set_message(
                format!(
                    "saved {} ({}) to {shown}",
                    crate::ui::format::count(lines as u64, "line", "lines"),
                    crate::fmt::bytes(bytes)
                ),
                MessageKind::Info,
                now,
            );
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            let what = match model.prompt.as_ref().map(|p| p.kind) {
                Some(PromptKind::Save(what)) => what,
                _ if model.copy.is_some() => SaveWhat::Selection,
                _ => SaveWhat::Scrollback,
            };
            let mut prompt = Prompt::new(PromptKind::Save(what), &path.display().to_string());
            prompt.fresh = false;
            prompt.error = Some(format!("{shown} exists: Enter again replaces it"));
            prompt.replace = Some(path.display().to_string());
            model.prompt = Some(prompt);
        }
        Err(err) => model.set_message(
            format!("cannot save to {shown}: {err}"),
            MessageKind::Error,
            now,
        ),
    }
}

/// The OSC 52 sequence that puts `text` on the terminal's clipboard: `ESC ] 52 ; c ;
/// base64 BEL`. The only escape sequence of forkyard's own that carries text, so it is
/// built here and nowhere else: base64 cannot contain an escape, so the text cannot end
/// the sequence early or start another one.
pub fn osc52(text: &str) -> Vec<u8> {
    let mut out = b"\x1b]52;c;".to_vec();
    out.extend_from_slice(crate::logs::format::base64(text.as_bytes()).as_bytes());
    out.push(0x07);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osc52_is_base64_between_the_introducer_and_bel() {
        let seq = osc52("hi \x1b]0;pwned\x07 there\n");
        assert!(seq.starts_with(b"\x1b]52;c;"));
        assert_eq!(seq.last(), Some(&0x07));
        let body = &seq[7..seq.len() - 1];
        assert!(
            body.iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        );
        assert_eq!(
            std::str::from_utf8(body).expect("ascii"),
            crate::logs::format::base64(b"hi \x1b]0;pwned\x07 there\n")
        );
    }

    #[test]
    fn the_clipboard_takes_whole_lines_up_to_its_limit() {
        assert_eq!(bounded("a\nb\n", 10), ("a\nb\n".to_string(), 2));
        assert_eq!(bounded("aaa\nbbb\nccc\n", 9), ("aaa\nbbb\n".to_string(), 2));
        assert_eq!(bounded("aaaaaa\n", 3), (String::new(), 0));
    }
}
