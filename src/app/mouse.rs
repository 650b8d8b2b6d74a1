//! The mouse: the wheel moves the selection over the table (the timeline) and scrolls
//! the output elsewhere; a click selects a row, toggles a pipeline's ▸ marker, or
//! focuses the output; a drag over the output's lines selects them and copies them to
//! the clipboard when released. Only on the main screen (and in copy mode): a dialog,
//! menu or prompt takes keys.

use crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::{Position, Rect};

use crate::app::command::Mode;
use crate::ui::model::{Focus, LineKey, Model, RowRef};

use super::update::{Action, Ctx, clear_current_match, scroll, select};

/// Rows moved per mouse wheel notch.
const WHEEL_ROWS: isize = 3;

/// Whether a mouse event can change anything (motion and releases cannot, unless a
/// selection is being dragged): the loop skips the rest, and the frame, for those.
pub fn relevant(mouse: &MouseEvent, model: &Model) -> bool {
    let dragging = model.copy.is_some_and(|c| c.dragging);
    match mouse.kind {
        MouseEventKind::Moved => false,
        MouseEventKind::Drag(_) | MouseEventKind::Up(_) => dragging,
        _ => true,
    }
}

/// The line shown on screen row `row` of the output pane (the nearest one when the row
/// is above or below its lines).
fn line_at(model: &Model, ctx: &Ctx<'_>, row: u16) -> Option<LineKey> {
    let areas = ctx.areas?;
    let view = crate::ui::pane_view(
        model,
        ctx.buffers,
        usize::from(areas.output_body.width),
        areas.output_rows(),
    );
    let index = usize::from(row.saturating_sub(areas.output_body.y));
    let keys: Vec<Option<LineKey>> = view.rows.iter().map(|(k, _)| *k).collect();
    if index >= keys.len() {
        return keys.iter().rev().find_map(|k| *k);
    }
    // A marker row or a line still being written: the nearest line above, else below.
    keys[..=index]
        .iter()
        .rev()
        .find_map(|k| *k)
        .or_else(|| keys[index..].iter().find_map(|k| *k))
}

pub fn on_mouse(model: &mut Model, mouse: MouseEvent, ctx: &Ctx<'_>) -> Vec<Action> {
    let Some(areas) = ctx.areas else {
        return Vec::new();
    };
    if !matches!(model.mode(), Mode::Normal | Mode::Copy) {
        return Vec::new();
    }
    let at = Position::new(mouse.column, mouse.row);
    // A selection being dragged follows the mouse wherever it goes.
    if model.copy.is_some_and(|c| c.dragging) {
        match mouse.kind {
            MouseEventKind::Drag(MouseButton::Left) => {
                if mouse.row < areas.output_body.y {
                    scroll(model, ctx, -1);
                } else if mouse.row >= areas.output_body.bottom() {
                    scroll(model, ctx, 1);
                }
                if let Some(key) = line_at(model, ctx, mouse.row) {
                    super::reading::drag(model, key);
                }
                return Vec::new();
            }
            MouseEventKind::Up(MouseButton::Left) => return super::reading::release(model, ctx),
            _ => {}
        }
    }
    let inside = |r: Rect| r.contains(at);
    // In the timeline every row is a job row; the wheel moves the selection anywhere.
    let over_table = inside(areas.table) || model.timeline;
    match mouse.kind {
        MouseEventKind::ScrollUp if over_table => select(model, -1),
        MouseEventKind::ScrollDown if over_table => select(model, 1),
        MouseEventKind::ScrollUp => scroll(model, ctx, -WHEEL_ROWS),
        MouseEventKind::ScrollDown => scroll(model, ctx, WHEEL_ROWS),
        MouseEventKind::Down(MouseButton::Left) if inside(areas.table) => {
            let Some(line) = (mouse.row - areas.table.y).checked_sub(1) else {
                return Vec::new(); // the column titles
            };
            if usize::from(line) >= areas.table_rows() {
                return Vec::new(); // the "↓ 11 more" line
            }
            let index = model.visible_offset(areas.table_rows()) + usize::from(line);
            let before = model.selected;
            if model.select_row(index) {
                model.focus = Focus::Jobs;
                if model.selected != before {
                    clear_current_match(model);
                } else if mouse.column < areas.table.x + 2
                    && let RowRef::Job(id) = model.selected
                {
                    // A click on the ▸/▾ marker of the selected pipeline toggles it.
                    let expanded = model.is_expanded(id);
                    model.set_expanded(!expanded);
                }
            }
        }
        MouseEventKind::Down(MouseButton::Left) if inside(areas.output_body) && !model.timeline => {
            model.focus = Focus::Output;
            if let Some(key) = line_at(model, ctx, mouse.row) {
                super::reading::press(model, ctx, key);
            }
        }
        MouseEventKind::Down(MouseButton::Left) if inside(areas.output) && !model.timeline => {
            model.focus = Focus::Output;
        }
        _ => {}
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use crossterm::event::KeyModifiers;

    use super::*;
    use crate::output::{OutputBuffer, SharedBuffer, Stream};
    use crate::supervisor::{JobState, JobStatus};

    fn setup(jobs: usize) -> (Model, Vec<SharedBuffer>) {
        let model = Model::from_statuses(
            (0..jobs).map(|i| {
                (
                    format!("job{i}"),
                    JobStatus::new(JobState::Running, vec![vec!["sleep".to_string()]]),
                )
            }),
            "test",
        );
        let buffers = (0..jobs)
            .map(|_| {
                let mut buf = OutputBuffer::new(1000, 1 << 20);
                for i in 0..100 {
                    buf.push_line(
                        0,
                        Stream::Stdout,
                        Instant::now(),
                        format!("l{i}").as_bytes(),
                    );
                }
                Arc::new(Mutex::new(buf))
            })
            .collect();
        (model, buffers)
    }

    fn mouse(kind: MouseEventKind, row: u16) -> MouseEvent {
        MouseEvent {
            kind,
            column: 10,
            row,
            modifiers: KeyModifiers::NONE,
        }
    }

    #[test]
    fn mouse_selects_rows_and_scrolls_output() {
        let (mut model, buffers) = setup(2);
        let areas = crate::ui::layout(Rect::new(0, 0, 100, 30), &model);
        let ctx = Ctx {
            buffers: &buffers,
            terminals: &[],
            areas,
            now: Instant::now(),
        };
        let areas = areas.expect("layout");
        let click = MouseEventKind::Down(MouseButton::Left);
        // The third row of the table (below the column titles): the second job, after
        // the "all" row and the first job.
        on_mouse(&mut model, mouse(click, areas.table.y + 1), &ctx);
        assert_eq!(model.selected, RowRef::All);
        on_mouse(&mut model, mouse(click, areas.table.y + 3), &ctx);
        assert_eq!(model.selected, RowRef::Job(1));
        on_mouse(
            &mut model,
            mouse(MouseEventKind::ScrollUp, areas.output_body.y + 1),
            &ctx,
        );
        assert!(!model.view(1).follow);
        on_mouse(&mut model, mouse(click, areas.output_body.y), &ctx);
        assert_eq!(model.focus, Focus::Output);
        assert!(!relevant(&mouse(MouseEventKind::Moved, 0), &model));
    }

    #[test]
    fn a_drag_over_the_output_copies_its_lines_and_a_click_copies_nothing() {
        let (mut model, buffers) = setup(2);
        model.selected = RowRef::Job(1);
        let areas = crate::ui::layout(Rect::new(0, 0, 100, 30), &model);
        let ctx = Ctx {
            buffers: &buffers,
            terminals: &[],
            areas,
            now: Instant::now(),
        };
        let body = areas.expect("layout").output_body;
        let left = MouseButton::Left;
        // A click: focus, no selection left, nothing copied.
        on_mouse(
            &mut model,
            mouse(MouseEventKind::Down(left), body.y + 1),
            &ctx,
        );
        assert!(relevant(
            &mouse(MouseEventKind::Up(left), body.y + 1),
            &model
        ));
        let actions = on_mouse(
            &mut model,
            mouse(MouseEventKind::Up(left), body.y + 1),
            &ctx,
        );
        assert!(actions.is_empty(), "{actions:?}");
        assert!(model.copy.is_none());
        // A drag over three rows copies their three lines.
        on_mouse(
            &mut model,
            mouse(MouseEventKind::Down(left), body.y + 1),
            &ctx,
        );
        on_mouse(
            &mut model,
            mouse(MouseEventKind::Drag(left), body.y + 2),
            &ctx,
        );
        on_mouse(
            &mut model,
            mouse(MouseEventKind::Drag(left), body.y + 3),
            &ctx,
        );
        let shown = crate::ui::pane_view(
            &model,
            &buffers,
            usize::from(body.width),
            usize::from(body.height),
        );
        let text = |row: usize| -> String {
            shown.rows[row]
                .1
                .spans
                .iter()
                .map(|s| s.content.as_ref())
                .collect()
        };
        let want = format!("{}\n{}\n{}\n", text(1), text(2), text(3));
        let actions = on_mouse(
            &mut model,
            mouse(MouseEventKind::Up(left), body.y + 3),
            &ctx,
        );
        assert_eq!(actions, [Action::Clipboard(want)]);
        assert!(model.copy.is_none());
    }

    #[test]
    fn a_click_on_the_more_line_selects_nothing() {
        let (mut model, buffers) = setup(40);
        let areas = crate::ui::layout(Rect::new(0, 0, 80, 24), &model).expect("layout");
        let ctx = Ctx {
            buffers: &buffers,
            terminals: &[],
            areas: Some(areas),
            now: Instant::now(),
        };
        let more_line = areas.table.y + 1 + areas.table_rows() as u16;
        on_mouse(
            &mut model,
            mouse(MouseEventKind::Down(MouseButton::Left), more_line),
            &ctx,
        );
        assert_eq!(model.selected, RowRef::Job(0));
    }
}
