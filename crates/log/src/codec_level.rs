//! Compression at a topic's chosen level (`compression.gzip.level`, `compression.lz4.level`,
//! `compression.zstd.level`, KIP-390). The protocol crate's codecs compress at fixed levels
//! only, so recompression with a level calls the same codec libraries directly, with the same
//! framing (gzip stream, LZ4 frame of independent blocks, zstd frame).
//!
//! Must not touch: batch headers (the caller rewrites length, attributes and CRC).

use std::io::Write;

/// `raw` compressed with codec `codec_id` (1 gzip, 3 lz4, 4 zstd) at `level`. Levels are
/// range-checked when the topic config is set; a level the library still refuses is an error.
pub(crate) fn compress(codec_id: u8, raw: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(raw.len() / 2 + 64);
    match codec_id {
        1 => {
            let level = u32::try_from(level).map_err(|_| invalid("gzip", level))?;
            let mut e = flate2::write::GzEncoder::new(out, flate2::Compression::new(level));
            e.write_all(raw)?;
            out = e.finish()?;
        }
        3 => {
            let level = u32::try_from(level).map_err(|_| invalid("lz4", level))?;
            let mut e = lz4::EncoderBuilder::new()
                .level(level)
                .block_mode(lz4::BlockMode::Independent)
                .build(out)?;
            e.write_all(raw)?;
            let (w, done) = e.finish();
            done?;
            out = w;
        }
        4 => zstd::stream::copy_encode(raw, &mut out, level)?,
        other => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("codec {other} has no compression level"),
            ));
        }
    }
    Ok(out)
}

fn invalid(codec: &str, level: i32) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("{codec} compression level {level} is out of range"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::records_section;

    /// Compressible but not trivial input: a higher level must find more.
    fn input() -> Vec<u8> {
        (0..20_000u32)
            .flat_map(|i| {
                format!(
                    "record {} value {:x} ",
                    i % 97,
                    i.wrapping_mul(2_654_435_761) % 4096
                )
                .into_bytes()
            })
            .collect()
    }

    fn round_trip(codec_id: u8, compressed: &[u8]) -> Vec<u8> {
        // records_section decompresses the payload after a batch header.
        let mut batch = vec![0u8; crate::batch::BATCH_HEADER_LEN];
        batch[crate::batch::ATTRIBUTES_OFFSET + 1] = codec_id;
        batch.extend_from_slice(compressed);
        let header = crate::batch::BatchHeader::parse(&batch).expect("header");
        records_section(&batch, &header)
            .expect("decompress")
            .to_vec()
    }

    #[test]
    fn levels_change_the_output_and_decode_back() {
        let raw = input();
        for (codec, low, high) in [(1u8, 1, 9), (3, 1, 12), (4, -5, 19)] {
            let a = compress(codec, &raw, low).expect("low level");
            let b = compress(codec, &raw, high).expect("high level");
            assert!(
                b.len() < a.len(),
                "codec {codec}: level {high} gave {} bytes, level {low} {}",
                b.len(),
                a.len()
            );
            assert_eq!(round_trip(codec, &a), raw, "codec {codec} level {low}");
            assert_eq!(round_trip(codec, &b), raw, "codec {codec} level {high}");
        }
    }

    #[test]
    fn snappy_and_bad_levels_are_errors() {
        assert!(compress(2, b"x", 1).is_err());
        assert!(compress(1, b"x", -3).is_err());
    }
}
