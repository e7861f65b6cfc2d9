//! One hosted partition: its log, leader epoch and high watermark.

use std::sync::Arc;
use strom_log::Log;
use uuid::Uuid;

pub struct Partition {
    pub topic: Arc<str>,
    pub index: i32,
    pub topic_id: Uuid,
    pub leader_epoch: i32,
    pub log: Log,
}

impl Partition {
    /// With this node the only replica, every appended record is committed at once: the high
    /// watermark is the log end offset. Replication replaces this with the ISR's minimum.
    pub fn high_watermark(&self) -> i64 {
        self.log.log_end_offset()
    }

    /// No transactions yet, so nothing is unstable.
    pub fn last_stable_offset(&self) -> i64 {
        self.high_watermark()
    }
}
