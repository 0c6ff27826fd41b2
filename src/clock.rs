//! The broker's clock: wall-clock milliseconds as Kafka timestamps are, and a `Clock` handle that can follow
//! tokio's (pausable) clock so timer-driven coordinator logic can be tested in-process on paused time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Current wall-clock time in milliseconds since the epoch, as Kafka timestamps are.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Where a component reads the time from. The broker uses `System`; tests can use `Tokio`, which starts at the
/// wall clock and then advances only as tokio's clock does, so `tokio::time::pause`/`advance` drive it together
/// with the coordinator's sleeps.
#[derive(Clone, Copy, Debug, Default)]
pub enum Clock {
    #[default]
    System,
    Tokio {
        start_ms: i64,
        start: tokio::time::Instant,
    },
}

impl Clock {
    /// A clock anchored now to the wall clock that then follows `tokio::time::Instant`.
    pub fn tokio() -> Clock {
        Clock::Tokio {
            start_ms: now_ms(),
            start: tokio::time::Instant::now(),
        }
    }

    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => now_ms(),
            Clock::Tokio { start_ms, start } => start_ms + start.elapsed().as_millis() as i64,
        }
    }
}
