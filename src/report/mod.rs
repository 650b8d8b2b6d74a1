//! What a finished (or running) set of jobs amounts to, for every front end: the summary
//! table and the JSON report. Built from the tracker only, so the headless runner, the
//! TUI (on exit) and later the control socket say the same thing.

mod json;
pub mod summary;

pub use json::{JobReport, OutputCounts, Report, StageReport, build, counts_of, write};
