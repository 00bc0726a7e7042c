//! A progress bar on stderr for interactive runs; invisible (and free) when stdout is not a
//! terminal or the report is JSON, so piped output stays exactly one line.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// The bar of the current phase, if bars are shown at all.
pub struct Progress {
    /// Whether to draw bars (decided once at the start of the run).
    enabled: bool,
    /// The current phase's bar; finished when the next phase starts.
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(enabled: bool) -> Progress {
        Progress { enabled, bar: None }
    }

    /// Ends the previous phase's bar and starts one for `what`, with a known length or as a
    /// spinner.
    pub fn phase(&mut self, what: &str, len: Option<u64>) {
        self.finish();
        if !self.enabled {
            return;
        }
        let bar = match len {
            Some(n) => ProgressBar::new(n).with_style(
                ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} {elapsed_precise}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{msg:>12} {spinner} {pos} {elapsed_precise}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        bar.set_message(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        self.bar = Some(bar);
    }

    pub fn set(&self, pos: u64) {
        if let Some(b) = &self.bar {
            b.set_position(pos);
        }
    }

    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish();
        }
    }
}
