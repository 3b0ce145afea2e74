//! `jit request --wait`: polls `GET /requests/{id}` (1 s, growing to 5 s; back to 1 s after a
//! change) until the request reaches a final state, showing its progress on stderr: one line
//! redrawn in place on a terminal, a plain line per change otherwise.

use std::future::Future;
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

/// What waiting reads and how it passes time: a seam, so tests wait on a fake API and clock.
trait Source {
    /// Reads the request.
    async fn read(&self) -> Result<Value, ApiError>;
    fn now(&self) -> Instant;
    async fn sleep(&self, step: Duration);
}

/// The API, and real time.
struct Live<'a> {
    api: &'a Api,
    path: String,
}

impl Source for Live<'_> {
    async fn read(&self) -> Result<Value, ApiError> {
        self.api.get(&self.path).await
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    async fn sleep(&self, step: Duration) {
        tokio::time::sleep(step).await;
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
    let live = Live { api, path: format!("/requests/{id}") };
    follow(&live, tokio::signal::ctrl_c(), first, progress, timeout).await
}

/// `until_final` reading `source`; `interrupt` resolves on Ctrl-C.
async fn follow(
    source: &impl Source,
    interrupt: impl Future,
    first: Value,
    progress: &mut Progress,
    timeout: Option<Duration>,
) -> Result<Value, Stopped> {
    let deadline = timeout.map(|t| source.now() + t);
    let mut current = first;
    let mut interval = FIRST_INTERVAL;
    let mut failures = 0;
    tokio::pin!(interrupt);
    loop {
        progress.show(&current);
        if is_final(render::str_of(&current, "status")) {
            progress.finish();
            return Ok(current);
        }
        // Sleep in one-second steps, so a terminal's elapsed time keeps counting.
        let wake = source.now() + interval;
        while source.now() < wake {
            if deadline.is_some_and(|d| source.now() >= d) {
                progress.finish();
                return Err(Stopped::TimedOut(current));
            }
            let step = wake.saturating_duration_since(source.now()).min(Duration::from_secs(1));
            tokio::select! {
                _ = &mut interrupt => {
                    progress.finish();
                    return Err(Stopped::Interrupted(current));
                }
                () = source.sleep(step) => progress.tick(&current),
            }
        }
        // The read races Ctrl-C too: an API that does not answer would hold it for the call timeout.
        let read = tokio::select! {
            _ = &mut interrupt => {
                progress.finish();
                return Err(Stopped::Interrupted(current));
            }
            read = source.read() => read,
        };
        match read {
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
    use std::cell::Cell;

    use serde_json::json;
    use tokio::sync::Notify;

    use super::*;

    /// When the fake presses Ctrl-C.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum CtrlC {
        WhileSleeping,
        WhileReading,
    }

    /// An API that never answers, on a clock that moves only by sleeping; Ctrl-C comes at `press`.
    struct Unanswered {
        press: CtrlC,
        ctrl_c: Notify,
        now: Cell<Instant>,
        reads: Cell<u32>,
    }

    impl Unanswered {
        fn new(press: CtrlC) -> Self {
            Self { press, ctrl_c: Notify::new(), now: Cell::new(Instant::now()), reads: Cell::new(0) }
        }
    }

    impl Source for Unanswered {
        async fn read(&self) -> Result<Value, ApiError> {
            self.reads.set(self.reads.get() + 1);
            if self.press == CtrlC::WhileReading {
                self.ctrl_c.notify_one();
            }
            std::future::pending().await
        }

        fn now(&self) -> Instant {
            self.now.get()
        }

        async fn sleep(&self, step: Duration) {
            if self.press == CtrlC::WhileSleeping {
                self.ctrl_c.notify_one();
                std::future::pending::<()>().await;
            }
            self.now.set(self.now.get() + step);
        }
    }

    #[tokio::test]
    async fn ctrl_c_stops_waiting_at_once_whether_sleeping_or_reading() {
        let cases = [(CtrlC::WhileSleeping, 0), (CtrlC::WhileReading, 1)];
        for (press, reads) in cases {
            // Arrange
            let api = Unanswered::new(press);
            let first = json!({"requestId": "req-1", "status": "Pending"});
            let mut progress = Progress::new("req-1");

            // Act: the guard only keeps a regression from hanging; a pass never waits for it.
            let waited = tokio::time::timeout(
                Duration::from_secs(5),
                follow(&api, api.ctrl_c.notified(), first.clone(), &mut progress, None),
            )
            .await;

            // Assert
            let stopped = waited.unwrap_or_else(|_| panic!("{press:?}: Ctrl-C did not stop the wait"));
            assert!(matches!(&stopped, Err(Stopped::Interrupted(last)) if *last == first), "{press:?}: {stopped:?}");
            assert_eq!(api.reads.get(), reads, "{press:?}");
        }
    }

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
