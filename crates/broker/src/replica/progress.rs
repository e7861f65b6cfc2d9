//! The node's progress signal: bumped whenever a log grows or a high watermark moves, so
//! long-polling fetches and acks=all producers wake up and look again.
//!
//! The partitions hold it too, so the one place that moves a high watermark
//! (`Partition::maybe_increment_high_watermark`) also signals it. Anything that reads the high
//! watermark may be the reader that moves it; a move that did not signal left an acks=all
//! producer waiting its whole request timeout although its records were committed.

use std::sync::Arc;
use tokio::sync::watch;

#[derive(Clone)]
pub struct Progress(Arc<watch::Sender<u64>>);

impl Progress {
    pub fn new() -> Progress {
        Progress(Arc::new(watch::channel(0).0))
    }

    pub fn notify(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Subscribe before the first look at the state waited on, so a change racing with it
    /// still wakes the waiter.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}
