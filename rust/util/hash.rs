//! Stable 64-bit hashing (FNV-1a, finished with a splitmix mixer). Used where a hash must
//! give the same answer in every process and across restarts: rendezvous placement and
//! sticky experiment arms. Never for secrets.

pub fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Continues an unfinished hash with one more part.
pub fn extend(mut h: u64, part: &[u8]) -> u64 {
    for b in part {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Separate parts so ("ab","c") and ("a","bc") differ.
    h ^= 0xff;
    h.wrapping_mul(0x0000_0100_0000_01b3)
}

/// The unfinished hash of `parts`: `mix64(extend(partial(a), b)) == stable_hash(&[a..., b])`,
/// so a hash over a common first part is computed once.
pub fn partial(parts: &[&[u8]]) -> u64 {
    parts.iter().fold(FNV_OFFSET, |h, p| extend(h, p))
}

pub fn stable_hash(parts: &[&[u8]]) -> u64 {
    mix64(partial(parts))
}

/// Maps a hash to a float in [0, 1).
pub fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_part_sensitive() {
        assert_eq!(stable_hash(&[b"a", b"b"]), stable_hash(&[b"a", b"b"]));
        assert_ne!(stable_hash(&[b"ab", b"c"]), stable_hash(&[b"a", b"bc"]));
        assert_eq!(mix64(extend(partial(&[b"ab"]), b"c")), stable_hash(&[b"ab", b"c"]));
    }
}
