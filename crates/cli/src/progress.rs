//! Progress bars on a terminal, nothing otherwise (logs and pipes get a summary line instead).
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// True when progress bars are drawn (stderr is a terminal).
pub fn enabled() -> bool {
    std::io::stderr().is_terminal()
}

/// A bar counting bytes, with `{msg}` for a running count of items.
pub fn bytes(total: u64) -> ProgressBar {
    styled(
        total,
        "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} ({bytes_per_sec}) {msg}",
    )
}

/// A bar counting entries (`unit` names them), with `{msg}` for bytes so far.
pub fn count(total: u64, unit: &str) -> ProgressBar {
    let template =
        format!("{{spinner}} [{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} {unit} {{msg}}");
    styled(total, &template)
}

fn styled(total: u64, template: &str) -> ProgressBar {
    if !enabled() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
