//! The progress bar of long transfers: drawn on stderr when it is a terminal, at most ten
//! times a second; nothing at all otherwise, so logs and pipes stay clean.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use lanmesh::Progress;

const REDRAW: Duration = Duration::from_millis(100);
const WIDTH: usize = 24;

/// A one-line progress bar for a file transfer.
pub(crate) struct Bar {
    label: String,
    enabled: bool,
    started: Instant,
    drawn: Option<Instant>,
    last: Option<Progress>,
}

impl Bar {
    /// A bar labelled `label`, drawn only when stderr is a terminal.
    pub(crate) fn new(label: impl Into<String>) -> Self {
        Self::with_terminal(label, std::io::stderr().is_terminal())
    }

    fn with_terminal(label: impl Into<String>, enabled: bool) -> Self {
        Self {
            label: label.into(),
            enabled,
            started: Instant::now(),
            drawn: None,
            last: None,
        }
    }

    /// Takes the latest progress; redraws if it is time.
    pub(crate) fn update(&mut self, p: Progress) {
        self.last = Some(p);
        if !self.enabled || self.drawn.is_some_and(|t| t.elapsed() < REDRAW) {
            return;
        }
        self.draw(p);
    }

    /// Draws the final state and ends the line.
    pub(crate) fn finish(&mut self) {
        if let (true, Some(p)) = (self.enabled, self.last) {
            self.draw(p);
            eprintln!();
        }
    }

    fn draw(&mut self, p: Progress) {
        self.drawn = Some(Instant::now());
        let line = render(&self.label, p, self.started.elapsed());
        let mut err = std::io::stderr().lock();
        // `\r` and "erase line": redraw in place.
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
    }
}

/// `label [=====>    ]  42%  1.2 GiB / 2.9 GiB  110.5 MB/s  ETA 16s`, counting what the
/// recipient has confirmed.
fn render(label: &str, p: Progress, elapsed: Duration) -> String {
    let done = p.acked.min(p.total);
    let fraction = if p.total == 0 {
        1.0
    } else {
        done as f64 / p.total as f64
    };
    let filled = ((fraction * WIDTH as f64) as usize).min(WIDTH);
    let mut bar = "=".repeat(filled);
    if filled < WIDTH {
        bar.push('>');
        bar.push_str(&" ".repeat(WIDTH - filled - 1));
    }
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let eta = if rate > 0.0 && done < p.total {
        format!("ETA {}", clock((p.total - done) as f64 / rate))
    } else if done >= p.total {
        format!("in {}", clock(secs))
    } else {
        "ETA --".to_owned()
    };
    format!(
        "{label} [{bar}] {:>3.0}%  {} / {}  {:.1} MB/s  {eta}",
        fraction * 100.0,
        size(done),
        size(p.total),
        rate / 1e6
    )
}

/// Bytes for people: `512 B`, `3.4 MiB`, `1.0 GiB`.
pub(crate) fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn clock(secs: f64) -> String {
    let s = secs.round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_bytes_percent_rate_and_eta() {
        let p = Progress {
            total: 1 << 30,
            sent: 600 << 20,
            acked: 512 << 20,
        };
        let line = render("big.iso", p, Duration::from_secs(5));
        assert!(
            line.starts_with("big.iso [============>           ]  50%"),
            "{line}"
        );
        assert!(line.contains("512.0 MiB / 1.0 GiB"), "{line}");
        assert!(line.contains("107.4 MB/s"), "{line}");
        assert!(line.ends_with("ETA 5s"), "{line}");
        let done = Progress {
            total: 10,
            sent: 10,
            acked: 10,
        };
        let line = render("f", done, Duration::from_secs(90));
        assert!(
            line.contains("100%") && line.ends_with("in 1m30s"),
            "{line}"
        );
        assert!(
            render(
                "e",
                Progress {
                    total: 0,
                    sent: 0,
                    acked: 0
                },
                Duration::ZERO
            )
            .contains("100%")
        );
    }

    #[test]
    fn a_bar_off_a_terminal_draws_nothing() {
        let mut bar = Bar::with_terminal("x", false);
        bar.update(Progress {
            total: 1,
            sent: 1,
            acked: 0,
        });
        assert!(bar.drawn.is_none());
    }
}
