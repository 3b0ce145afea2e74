//! `jit request --wait`: polls `GET /requests/{id}` (1 s, growing to 5 s; back to 1 s after a
//! change) until the request reaches a final state, showing its progress on stderr: one line
//! redrawn in place on a terminal, a plain line per change otherwise.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::render;
use crate::api::{Api, ApiError};

const FIRST_INTERVAL: Duration = Duration::from_secs(1);
const MAX_INTERVAL: Duration = Duration::from_secs(5);
/// Transient failures (network, throttling, 5xx) in a row before giving up.
const MAX_TRANSIENT_FAILURES: u32 = 6;

/// Statuses a waiting requester stops at: granted, or over.
pub fn is_final(status: &str) -> bool {
    matches!(status, "Approved" | "Rejected" | "Failed" | "Expired" | "Cancelled" | "Revoked")
}

/// Why waiting stopped before a final state.
#[derive(Debug)]
pub enum Stopped {
    Error(ApiError),
    TimedOut(Value),
    Interrupted(Value),
}

/// The progress line of a request, without the elapsed time.
pub fn progress_text(request: &Value) -> String {
    let mut parts = vec![render::str_of(request, "status").to_owned()];
    if request["status"] == "Pending" {
        if let Some(level) = render::level_text(request) {
            parts.push(level);
        }
    }
    let approvers = render::approved_by(request);
    if !approvers.is_empty() {
        parts.push(format!("approved by {}", approvers.join(", ")));
    }
    parts.join(" · ")
}

fn elapsed_text(elapsed: Duration) -> String {
    let s = elapsed.as_secs();
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s / 60) % 60)
    }
}

/// Progress on stderr.
pub struct Progress {
    tty: bool,
    started: Instant,
    id: String,
    shown: Option<String>,
    drawn: bool,
}

impl Progress {
    pub fn new(id: &str) -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            started: Instant::now(),
            id: id.to_owned(),
            shown: None,
            drawn: false,
        }
    }

    /// Shows the request's state: redrawn in place on a terminal, a new line when it changed otherwise.
    pub fn show(&mut self, request: &Value) {
        let text = progress_text(request);
        let elapsed = elapsed_text(self.started.elapsed());
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{}  {text}  {elapsed}", self.id);
            let _ = err.flush();
            self.drawn = true;
        } else if self.shown.as_deref() != Some(text.as_str()) {
            let _ = writeln!(err, "{}  {text}  ({elapsed})", self.id);
        }
        self.shown = Some(text);
    }

    /// Redraws the elapsed time (terminal only).
    fn tick(&mut self, request: &Value) {
        if self.tty {
            self.show(request);
        }
    }

    /// Ends the redrawn line, so what follows starts on its own.
    pub fn finish(&mut self) {
        if self.drawn {
            let _ = writeln!(std::io::stderr());
            self.drawn = false;
        }
    }
}

/// Polls until the request is final; `first` is what the caller already read.
pub async fn until_final(
    api: &Api,
    id: &str,
    first: Value,
    progress: &mut Progress,
    timeout: Option<Duration>,
) -> Result<Value, Stopped> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut current = first;
    let mut interval = FIRST_INTERVAL;
    let mut failures = 0;
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    loop {
        progress.show(&current);
        if is_final(render::str_of(&current, "status")) {
            progress.finish();
            return Ok(current);
        }
        // Sleep in one-second steps, so a terminal's elapsed time keeps counting.
        let wake = Instant::now() + interval;
        while Instant::now() < wake {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                progress.finish();
                return Err(Stopped::TimedOut(current));
            }
            let step = wake.saturating_duration_since(Instant::now()).min(Duration::from_secs(1));
            tokio::select! {
                _ = &mut interrupt => {
                    progress.finish();
                    return Err(Stopped::Interrupted(current));
                }
                () = tokio::time::sleep(step) => progress.tick(&current),
            }
        }
        match api.get(&format!("/requests/{id}")).await {
            Ok(read) => {
                failures = 0;
                let changed = progress_text(&read) != progress_text(&current);
                interval = if changed { FIRST_INTERVAL } else { (interval.mul_f32(1.5)).min(MAX_INTERVAL) };
                current = read;
            }
            Err(e) if e.is_transient() && failures + 1 < MAX_TRANSIENT_FAILURES => {
                failures += 1;
                interval = MAX_INTERVAL;
            }
            Err(e) => {
                progress.finish();
                return Err(Stopped::Error(e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_progress_line_names_status_level_and_approvers() {
        let r = json!({
            "status": "Pending",
            "decision": {"approvalPlan": {"levels": [{}, {}]}},
            "approval": {"currentLevel": 2, "entries": [{"level": 1, "verdict": "Approve", "approver": "iam-user#approver-a"}]}
        });
        assert_eq!(progress_text(&r), "Pending · level 2 of 2 · approved by approver-a (level 1)");
        assert_eq!(progress_text(&json!({"status": "Submitted"})), "Submitted");
    }

    #[test]
    fn waiting_stops_at_approved_and_at_every_end() {
        for status in ["Approved", "Rejected", "Failed", "Expired", "Cancelled", "Revoked"] {
            assert!(is_final(status), "{status}");
        }
        assert!(!is_final("Pending") && !is_final("Submitted"));
    }

    #[test]
    fn elapsed_time_reads_in_the_largest_sensible_unit() {
        assert_eq!(elapsed_text(Duration::from_secs(12)), "12s");
        assert_eq!(elapsed_text(Duration::from_secs(75)), "1m15s");
        assert_eq!(elapsed_text(Duration::from_secs(3720)), "1h02m");
    }
}
