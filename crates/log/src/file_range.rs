//! A range of whole batches in one segment file: what a fetch answers with, by position, so the
//! broker can hand the bytes from the page cache to the socket (`sendfile`) without reading them.

use std::fs::File;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::Result;
use crate::segment::LogSegment;

#[derive(Clone)]
pub struct FileRange {
    segment: Arc<LogSegment>,
    position: u64,
    len: usize,
    /// Base offset of the first batch.
    pub first_offset: i64,
}

impl FileRange {
    pub(crate) fn new(
        segment: Arc<LogSegment>,
        position: u64,
        len: usize,
        first_offset: i64,
    ) -> Self {
        FileRange {
            segment,
            position,
            len,
            first_offset,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// File position of the first byte.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The segment file. It stays readable while this range lives, even if retention deletes
    /// the segment meanwhile (the open descriptor keeps the inode).
    pub fn file(&self) -> &File {
        self.segment.file()
    }

    /// The bytes, read into memory.
    pub fn read(&self) -> Result<Bytes> {
        self.segment.read_at(self.position, self.len)
    }
}

impl std::fmt::Debug for FileRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileRange")
            .field("segment", &self.segment.base_offset())
            .field("position", &self.position)
            .field("len", &self.len)
            .field("first_offset", &self.first_offset)
            .finish()
    }
}
