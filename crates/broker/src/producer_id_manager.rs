//! Producer ids for idempotent producers, handed out from blocks reserved in the metadata store
//! so that a restart never reuses one (a reused id could make new data look like a retry).

use parking_lot::Mutex;
use strom_meta::{MetaError, MetadataStore};

/// Kafka reserves producer ids in blocks of 1000.
const BLOCK_SIZE: i64 = 1000;

#[derive(Default)]
pub struct ProducerIdManager {
    /// The next id to hand out and the end (exclusive) of the current block.
    block: Mutex<(i64, i64)>,
}

impl ProducerIdManager {
    pub fn generate(&self, store: &MetadataStore) -> Result<i64, MetaError> {
        let mut block = self.block.lock();
        if block.0 >= block.1 {
            let first = store.allocate_producer_ids(BLOCK_SIZE)?;
            *block = (first, first + BLOCK_SIZE);
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }
}
