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

    /// Below it every transaction is decided: read_committed consumers stop here.
    pub fn last_stable_offset(&self) -> i64 {
        self.log.last_stable_offset(self.high_watermark())
    }
}
