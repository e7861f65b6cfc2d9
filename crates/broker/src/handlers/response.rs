//! An encoded response: its bytes, plus ranges of segment files that go between them.
//!
//! A fetch answer is mostly records that already lie in the page cache. Copying them into the
//! response and then into the socket cost most of the fetch path's CPU; instead the answer
//! names the file ranges and the connection `sendfile`s them in place, as Kafka does.
//!
//! The protocol encoder only knows byte slices, so a spliced partition's records are a
//! placeholder of the right length pointing into [`PLACEHOLDER`]; [`SpliceEncoder`] notices that
//! slice by its address and records the file range's place instead of copying. The placeholder
//! bytes are never read.

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;
use std::collections::VecDeque;
use std::ops::Range;
use strom_log::FileRange;

/// The longest file range sent in place; longer ones (a client asking more than this per
/// partition) are read into memory. A zeroed static lives in .bss: address space, no memory.
const PLACEHOLDER_LEN: usize = 8 << 20;
static PLACEHOLDER: [u8; PLACEHOLDER_LEN] = [0; PLACEHOLDER_LEN];

/// Stand-in records for a range to be spliced in, or `None` when the range is too long.
pub(crate) fn placeholder(range: &FileRange) -> Option<Bytes> {
    PLACEHOLDER
        .get(..range.len())
        .filter(|p| !p.is_empty())
        .map(Bytes::from_static)
}

#[derive(Debug, Default)]
pub struct Response {
    /// The size prefix, header and body, except the spliced ranges.
    pub bytes: BytesMut,
    /// File ranges and the position in `bytes` each one goes before, in order.
    pub splices: Vec<(usize, FileRange)>,
}

impl From<BytesMut> for Response {
    fn from(bytes: BytesMut) -> Self {
        Response {
            bytes,
            splices: Vec::new(),
        }
    }
}

impl Response {
    /// Bytes on the wire, the spliced ranges included.
    pub fn wire_len(&self) -> usize {
        self.bytes.len() + self.splices.iter().map(|(_, r)| r.len()).sum::<usize>()
    }
}

/// Encodes into a `BytesMut`, except that each placeholder slice becomes the next pending
/// file range, spliced in at that point.
pub(crate) struct SpliceEncoder {
    pub out: BytesMut,
    pending: VecDeque<FileRange>,
    pub splices: Vec<(usize, FileRange)>,
}

impl SpliceEncoder {
    pub fn new(out: BytesMut, ranges: Vec<FileRange>) -> Self {
        SpliceEncoder {
            out,
            splices: Vec::with_capacity(ranges.len()),
            pending: ranges.into(),
        }
    }

    /// Ranges that no placeholder claimed (an encoding bug if any).
    pub fn unclaimed(&self) -> usize {
        self.pending.len()
    }
}

// SAFETY: every method that touches the buffer's memory delegates to `BytesMut`'s own
// implementation; `put_slice` only decides whether to copy.
unsafe impl BufMut for SpliceEncoder {
    fn remaining_mut(&self) -> usize {
        self.out.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's promise about `cnt` is passed on unchanged.
        unsafe { self.out.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.out.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        let is_placeholder = !src.is_empty()
            && std::ptr::eq(src.as_ptr(), PLACEHOLDER.as_ptr())
            && self.pending.front().is_some_and(|r| r.len() == src.len());
        if is_placeholder && let Some(range) = self.pending.pop_front() {
            self.splices.push((self.out.len(), range));
        } else {
            self.out.put_slice(src);
        }
    }
}

impl ByteBufMut for SpliceEncoder {
    fn offset(&self) -> usize {
        self.out.offset()
    }

    fn seek(&mut self, offset: usize) {
        self.out.seek(offset)
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        self.out.range(r)
    }
}
