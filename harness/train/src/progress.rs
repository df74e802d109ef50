//! Progress that shows in a terminal and in a log file alike: a bar that redraws in place when
//! stderr is a terminal, and otherwise (a log file, a Slurm job's output) the same text as plain
//! lines at a steady interval (`KIDBENCH_PROGRESS_SECS`, default 10 s), so a log never sits silent
//! through a long stage.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

/// Seconds between two progress lines in a log file.
pub fn log_interval() -> Duration {
    let secs = std::env::var("KIDBENCH_PROGRESS_SECS")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(10.0);
    Duration::from_secs_f64(secs)
}

/// Writes what indicatif draws as whole lines on stderr, at most one every `interval`.
#[derive(Debug)]
struct LogLines {
    interval: Duration,
    state: Mutex<(String, Option<Instant>)>,
}

impl TermLike for LogLines {
    fn width(&self) -> u16 {
        100
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.0.push_str(s);
        st.0.push('\n');
        Ok(())
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.0.push_str(s);
        Ok(())
    }
    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let text = std::mem::take(&mut st.0);
        let text = text.trim_end();
        if text.is_empty() {
            return Ok(());
        }
        let due = st.1.is_none_or(|t| t.elapsed() >= self.interval);
        if due {
            st.1 = Some(Instant::now());
            let mut err = std::io::stderr().lock();
            writeln!(err, "{text}")?;
            err.flush()?;
        }
        Ok(())
    }
}

/// Moves a new bar to `pos` (a resumed run's first step) without counting that jump as progress:
/// otherwise the ETA of a run resumed at step 1000 says seconds while its steps still take
/// minutes, and takes minutes of smoothing to become right.
pub fn start_at(bar: &ProgressBar, pos: u64) {
    bar.set_position(pos);
    bar.tick();
    bar.reset_eta();
}

/// A progress bar of `len` steps named `label` (hidden with `quiet`); `{msg}` shows what the
/// caller sets with `set_message`.
pub fn bar(len: u64, label: &str, quiet: bool) -> ProgressBar {
    let bar = if quiet {
        ProgressBar::hidden()
    } else if std::io::stderr().is_terminal() {
        ProgressBar::new(len)
    } else {
        ProgressBar::with_draw_target(
            Some(len),
            ProgressDrawTarget::term_like_with_hz(
                Box::new(LogLines {
                    interval: log_interval(),
                    state: Mutex::new((String::new(), None)),
                }),
                1,
            ),
        )
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 600 steps left at one step per 20 ms are about 12 s; the jump from 0 to 1000 must not
    /// make them look like none.
    #[test]
    fn a_resumed_bar_estimates_from_its_own_steps() {
        let bar = ProgressBar::hidden();
        bar.set_length(1600);
        start_at(&bar, 1000);
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(20));
            bar.inc(1);
        }
        let eta = bar.eta().as_secs_f64();
        assert!(eta > 5.0, "ETA {eta} s for 595 steps of about 20 ms");
        assert_eq!(bar.position(), 1005);
    }
}
