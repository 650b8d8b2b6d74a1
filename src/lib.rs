//! forkyard: run and watch child processes and pipelines.
//!
//! Data flows one way: [`config`] (parse + validate) -> [`supervisor`] (spawn, pipes,
//! signals, wait, restart, sampling) -> events over channels -> [`tracker`] -> the
//! [`headless`] runner or the TUI ([`app`] loop, pure [`ui`] rendering).

pub mod app;
pub mod cli;
pub mod config;
pub mod control;
pub mod fmt;
pub mod headless;
pub mod logs;
pub mod output;
pub mod report;
pub mod run;
pub mod stdio;
pub mod supervisor;
pub mod sys;
pub mod tracker;
pub mod ui;
