//! The mouse: the wheel moves the selection over the table (the timeline) and scrolls
//! the output elsewhere; a click selects a row, toggles a pipeline's ▸ marker, or
//! focuses the output. Only on the main screen: a dialog, menu or prompt takes keys.

use crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::{Position, Rect};

use crate::app::command::Mode;
use crate::ui::model::{Focus, Model, RowRef};

use super::update::{Action, Ctx, clear_current_match, scroll, select};

/// Rows moved per mouse wheel notch.
const WHEEL_ROWS: isize = 3;

/// Whether a mouse event can change anything (motion and releases cannot): the loop
/// skips the rest, and the frame, for those.
pub fn relevant(mouse: &MouseEvent) -> bool {
    !matches!(
        mouse.kind,
        MouseEventKind::Moved | MouseEventKind::Drag(_) | MouseEventKind::Up(_)
    )
}

pub fn on_mouse(model: &mut Model, mouse: MouseEvent, ctx: &Ctx<'_>) -> Vec<Action> {
    let Some(areas) = ctx.areas else {
        return Vec::new();
    };
    if model.mode() != Mode::Normal {
        return Vec::new();
    }
    let at = Position::new(mouse.column, mouse.row);
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
        // The second row of the table (below the column titles).
        on_mouse(&mut model, mouse(click, areas.table.y + 2), &ctx);
        assert_eq!(model.selected, RowRef::Job(1));
        on_mouse(
            &mut model,
            mouse(MouseEventKind::ScrollUp, areas.output_body.y + 1),
            &ctx,
        );
        assert!(!model.view(1).follow);
        on_mouse(&mut model, mouse(click, areas.output_body.y), &ctx);
        assert_eq!(model.focus, Focus::Output);
        assert!(!relevant(&mouse(MouseEventKind::Moved, 0)));
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
