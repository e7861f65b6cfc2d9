//! Sequential reading of the batches in a segment file through a buffer, so stepping over many
//! small batches costs one `pread` per chunk rather than one per batch.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::batch::{BatchOffsets, OFFSETS_PREFIX_LEN};
use crate::error::{LogError, Result};

pub(crate) struct BatchScanner<'a> {
    file: &'a File,
    path: &'a Path,
    /// File position of the next batch.
    position: u64,
    /// Bytes past this position are not read (the end of what is known to be written).
    end: u64,
    chunk: usize,
    buf: Vec<u8>,
    buf_start: u64,
}

/// A batch found by the scanner: where it starts and its offsets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScannedBatch {
    pub position: u64,
    pub offsets: BatchOffsets,
}

impl<'a> BatchScanner<'a> {
    pub fn new(file: &'a File, path: &'a Path, start: u64, end: u64, chunk: usize) -> Self {
        BatchScanner {
            file,
            path,
            position: start,
            end,
            chunk,
            buf: Vec::new(),
            buf_start: start,
        }
    }

    /// The next batch's position and offsets, or `None` at `end`. A batch whose framing is bad
    /// or which runs past `end` is a `CorruptMessage` error; the position then stays at it.
    pub fn next_batch(&mut self) -> Result<Option<ScannedBatch>> {
        if self.position >= self.end {
            return Ok(None);
        }
        let position = self.position;
        let prefix = self.bytes(position, OFFSETS_PREFIX_LEN)?;
        let offsets = BatchOffsets::parse(prefix)?;
        let total = offsets.total_len() as u64;
        if position + total > self.end {
            return Err(LogError::CorruptMessage(format!(
                "batch at position {position} of {} needs {total} bytes, only {} present",
                self.path.display(),
                self.end - position
            )));
        }
        self.position += total;
        Ok(Some(ScannedBatch { position, offsets }))
    }

    /// The whole bytes of a batch returned by [`Self::next_batch`].
    pub fn batch_bytes(&mut self, batch: &ScannedBatch) -> Result<&[u8]> {
        self.bytes(batch.position, batch.offsets.total_len())
    }

    /// `len` bytes at `position`, from the buffer or after refilling it.
    fn bytes(&mut self, position: u64, len: usize) -> Result<&[u8]> {
        let available = self.end.saturating_sub(position);
        if (len as u64) > available {
            return Err(LogError::CorruptMessage(format!(
                "{} ends {available} bytes after position {position}, {len} needed",
                self.path.display()
            )));
        }
        let buf_end = self.buf_start + self.buf.len() as u64;
        if position < self.buf_start || position + len as u64 > buf_end {
            let read_len = (len.max(self.chunk) as u64).min(available) as usize;
            self.buf.resize(read_len, 0);
            self.file
                .read_exact_at(&mut self.buf, position)
                .map_err(|e| LogError::io("reading segment", self.path, e))?;
            self.buf_start = position;
        }
        let from = (position - self.buf_start) as usize;
        Ok(&self.buf[from..from + len])
    }
}
