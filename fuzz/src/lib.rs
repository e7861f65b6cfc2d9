//! Shared pieces of strom's fuzz targets: a structure-aware description of record batches v2
//! (mostly valid, with fuzzed fields, the CRC fixed up unless the fuzzer chooses otherwise) and
//! a model of what `strom_log::validate::check` must answer for them.

// Nightly only, as cargo-fuzz is: lets `tolerate_known_oom` turn allocation failure into a panic.
#![feature(alloc_error_hook)]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use strom_log::LogError;

/// Bytes of a record batch v2 header (up to and including `recordsCount`).
pub const HEADER_LEN: usize = 61;
/// `baseOffset` + `batchLength`.
const LOG_OVERHEAD: usize = 12;
/// The CRC covers the batch from the attributes on.
const ATTRIBUTES_OFFSET: usize = 21;
const CRC_OFFSET: usize = 17;

#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Magic {
    V2,
    Other(i8),
}

#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Counts {
    /// `recordsCount = n + 1`, `lastOffsetDelta = n`: what a producer writes.
    Consistent(u16),
    Raw {
        records_count: i32,
        last_offset_delta: i32,
    },
}

#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Producer {
    /// No producer id: -1, -1, -1.
    None,
    /// An idempotent producer with a non-negative id and sequence.
    Idempotent {
        id: u32,
        epoch: i16,
        sequence: u16,
    },
    Raw {
        id: i64,
        epoch: i16,
        sequence: i32,
    },
}

#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Length {
    /// `batchLength` matches the bytes.
    Exact,
    /// `batchLength` off by this much (framing errors, swallowed or split batches).
    Off(i16),
    Raw(i32),
}

#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Crc {
    /// CRC-32C of the bytes from the attributes to the end the `batchLength` declares.
    Fixed,
    Raw(u32),
}

/// One record batch v2, described field by field. The record bytes are opaque to the log's
/// validation (it never decompresses), so they are fuzzed as a blob.
#[derive(Debug, Clone, Arbitrary)]
pub struct FuzzBatch {
    pub base_offset: i64,
    pub partition_leader_epoch: i32,
    pub magic: Magic,
    pub attributes: i16,
    pub counts: Counts,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer: Producer,
    pub length: Length,
    pub crc: Crc,
    pub records: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Corrupt,
    Invalid,
    Magic,
    Compression,
    TooLarge,
    Other,
}

pub fn kind(error: &LogError) -> ErrorKind {
    match error {
        LogError::CorruptMessage(_) => ErrorKind::Corrupt,
        LogError::InvalidRecord(_) => ErrorKind::Invalid,
        LogError::UnsupportedMagic(_) => ErrorKind::Magic,
        LogError::UnsupportedCompression(_) => ErrorKind::Compression,
        LogError::MessageTooLarge { .. } => ErrorKind::TooLarge,
        _ => ErrorKind::Other,
    }
}

impl FuzzBatch {
    fn counts(&self) -> (i32, i32) {
        match self.counts {
            Counts::Consistent(n) => (i32::from(n) + 1, i32::from(n)),
            Counts::Raw {
                records_count,
                last_offset_delta,
            } => (records_count, last_offset_delta),
        }
    }

    fn producer_fields(&self) -> (i64, i16, i32) {
        match self.producer {
            Producer::None => (-1, -1, -1),
            Producer::Idempotent {
                id,
                epoch,
                sequence,
            } => (i64::from(id), epoch, i32::from(sequence)),
            Producer::Raw {
                id,
                epoch,
                sequence,
            } => (id, epoch, sequence),
        }
    }

    fn magic(&self) -> i8 {
        match self.magic {
            Magic::V2 => 2,
            Magic::Other(m) => m,
        }
    }

    /// Whole size of the encoded batch in bytes.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.records.len()
    }

    /// Appends the encoded batch to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let exact = (self.encoded_len() - LOG_OVERHEAD) as i32;
        let batch_length = match self.length {
            Length::Exact => exact,
            Length::Off(delta) => exact.wrapping_add(i32::from(delta)),
            Length::Raw(raw) => raw,
        };
        let (records_count, last_offset_delta) = self.counts();
        let (producer_id, producer_epoch, base_sequence) = self.producer_fields();
        out.extend_from_slice(&self.base_offset.to_be_bytes());
        out.extend_from_slice(&batch_length.to_be_bytes());
        out.extend_from_slice(&self.partition_leader_epoch.to_be_bytes());
        out.push(self.magic() as u8);
        out.extend_from_slice(&[0; 4]); // CRC, below
        out.extend_from_slice(&self.attributes.to_be_bytes());
        out.extend_from_slice(&last_offset_delta.to_be_bytes());
        out.extend_from_slice(&self.base_timestamp.to_be_bytes());
        out.extend_from_slice(&self.max_timestamp.to_be_bytes());
        out.extend_from_slice(&producer_id.to_be_bytes());
        out.extend_from_slice(&producer_epoch.to_be_bytes());
        out.extend_from_slice(&base_sequence.to_be_bytes());
        out.extend_from_slice(&records_count.to_be_bytes());
        out.extend_from_slice(&self.records);
        debug_assert_eq!(out.len() - start, self.encoded_len());
        let crc = match self.crc {
            Crc::Raw(raw) => raw,
            Crc::Fixed => {
                // Over what the declared length covers, as far as the buffer goes.
                let declared_end = start
                    .saturating_add(LOG_OVERHEAD)
                    .saturating_add(batch_length.max(0) as usize)
                    .min(out.len());
                let from = (start + ATTRIBUTES_OFFSET).min(declared_end);
                crc32c::crc32c(&out[from..declared_end])
            }
        };
        out[start + CRC_OFFSET..start + CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    }

    /// Whether the framing is exactly what the bytes are, so that the model below is exact.
    pub fn framing_exact(&self) -> bool {
        matches!(self.length, Length::Exact)
    }

    /// What `validate::check` must say about this batch alone, assuming exact framing: the
    /// checks in the order Kafka's `LogValidator` (and strom) make them.
    pub fn expected(&self, max_message_bytes: usize) -> Result<(), ErrorKind> {
        debug_assert!(self.framing_exact());
        if self.magic() != 2 {
            return Err(ErrorKind::Magic);
        }
        if self.encoded_len() > max_message_bytes {
            return Err(ErrorKind::TooLarge);
        }
        if let Crc::Raw(raw) = self.crc {
            let mut bytes = Vec::with_capacity(self.encoded_len());
            let mut fixed = self.clone();
            fixed.crc = Crc::Fixed;
            fixed.encode(&mut bytes);
            if u32::from_be_bytes(bytes[CRC_OFFSET..CRC_OFFSET + 4].try_into().unwrap()) != raw {
                return Err(ErrorKind::Corrupt);
            }
        }
        if self.attributes & 0x07 > 4 {
            return Err(ErrorKind::Compression);
        }
        let (records_count, last_offset_delta) = self.counts();
        if records_count < 1 || i64::from(records_count) != i64::from(last_offset_delta) + 1 {
            return Err(ErrorKind::Invalid);
        }
        let (producer_id, _, base_sequence) = self.producer_fields();
        let control = self.attributes & 0x20 != 0;
        // Transaction markers (control batches) carry a producer id but no sequence.
        if producer_id >= 0 && base_sequence < 0 && !control {
            return Err(ErrorKind::Invalid);
        }
        let transactional = self.attributes & 0x10 != 0;
        if transactional && producer_id < 0 {
            return Err(ErrorKind::Invalid);
        }
        Ok(())
    }
}

/// Several batches of one append, then possibly trailing junk.
#[derive(Debug, Clone, Arbitrary)]
pub struct FuzzAppend {
    pub batches: Vec<FuzzBatch>,
    pub trailing: Vec<u8>,
}

impl FuzzAppend {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for batch in &self.batches {
            batch.encode(&mut out);
        }
        out.extend_from_slice(&self.trailing);
        out
    }

    /// What `validate::check` must answer, when the model is exact (every batch's framing
    /// exact and no trailing bytes); `None` otherwise.
    pub fn expected(&self, max_message_bytes: usize) -> Option<Result<usize, ErrorKind>> {
        if !self.trailing.is_empty() || !self.batches.iter().all(FuzzBatch::framing_exact) {
            return None;
        }
        if self.batches.is_empty() {
            return Some(Err(ErrorKind::Invalid));
        }
        for batch in &self.batches {
            if let Err(kind) = batch.expected(max_message_bytes) {
                return Some(Err(kind));
            }
        }
        Some(Ok(self.batches.len()))
    }
}

/// kafka-protocol 0.18 sizes `Vec`s from counts read off the wire before decoding anything
/// (`Array`/`CompactArray` lengths, a record batch's `recordsCount`, a record's header count),
/// so a few bytes can ask for hundreds of GiB and abort the process. That bug is known and
/// reported; to keep fuzzing past it, this installs an alloc error hook that panics instead of
/// aborting, and the runs make ASAN return null for huge allocations instead of dying
/// (`ASAN_OPTIONS=allocator_may_return_null=1:max_allocation_size_mb=2048`, with libFuzzer's
/// `-malloc_limit_mb` above that; see docs/fuzzing.md). This runs `f` and returns `None` when
/// it failed such an allocation; any other panic still aborts as a finding.
///
/// Set `STROM_FUZZ_ABORT_ON_OOM=1` to make those allocation failures findings again.
pub fn tolerate_known_oom<R>(f: impl FnOnce() -> R + std::panic::UnwindSafe) -> Option<R> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    static SKIPPED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    if std::env::var_os("STROM_FUZZ_ABORT_ON_OOM").is_some_and(|v| v == "1") {
        return Some(f());
    }
    HOOK.call_once(|| {
        std::alloc::set_alloc_error_hook(|layout| {
            panic!("memory allocation of {} bytes failed", layout.size())
        });
        // libfuzzer-sys's hook aborts on every panic; let allocation failures unwind to us.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !is_alloc_failure(info.payload()) {
                previous(info);
            }
        }));
    });
    match std::panic::catch_unwind(f) {
        Ok(result) => Some(result),
        Err(payload) if is_alloc_failure(&*payload) => {
            let skipped = SKIPPED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if skipped.is_power_of_two() {
                eprintln!("strom-fuzz: {skipped} inputs hit kafka-protocol's unbounded allocation");
            }
            None
        }
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

fn is_alloc_failure(payload: &(dyn std::any::Any + Send)) -> bool {
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied());
    message.is_some_and(|m| m.starts_with("memory allocation of") || m == "capacity overflow")
}
