//! The interactive terminal UI (placeholder until the TUI lands).

use crate::config::Config;

#[derive(Debug, Clone, Default)]
pub struct TuiOptions {
    /// `-j N`: overrides `settings.max_parallel`.
    pub max_parallel: Option<usize>,
}

pub async fn run(config: Config, options: TuiOptions) -> anyhow::Result<i32> {
    crate::headless::run(
        &config,
        &crate::headless::HeadlessOptions {
            max_parallel: options.max_parallel,
            ..Default::default()
        },
    )
    .await
}
