//! The partition a keyed record lands in, computed as the producers compute it: Kafka's default
//! partitioner for records with a key is `toPositive(murmur2(key bytes)) % partitions`, and the
//! stream threads' producers use librdkafka's `murmur2_random`, which is the same function. Key
//! queries (`query_metadata_for_key`) must agree with that, or they would name the wrong host.

/// MurmurHash2 (32-bit) with Kafka's seed, as the Java client computes it.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        if tail.len() >= 3 {
            h ^= u32::from(tail[2]) << 16;
        }
        if tail.len() >= 2 {
            h ^= u32::from(tail[1]) << 8;
        }
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of a record with key bytes `key` in a topic with `partitions` partitions.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    if partitions <= 0 {
        return 0;
    }
    (murmur2(key) & 0x7fff_ffff) % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // Values the Java client's Utils.murmur2 returns for these strings' UTF-8 bytes.
        for (s, want) in [
            ("21", -973932308),
            ("foobar", -790332482),
            ("a-little-bit-long-string", -985981536),
            ("a-little-bit-longer-string", -1486304829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            ("abc", 479470107),
        ] {
            assert_eq!(murmur2(s.as_bytes()), want, "{s}");
        }
    }

    #[test]
    fn partitions_are_in_range_and_stable() {
        for k in ["a", "b", "kafka", "strom", ""] {
            let p = partition_for_key(k.as_bytes(), 4);
            assert!((0..4).contains(&p), "{k}: {p}");
            assert_eq!(p, partition_for_key(k.as_bytes(), 4));
        }
    }
}
