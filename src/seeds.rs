//! The one seed scheme: every random stream of a run is derived from the
//! run's seed (or a forward's seed) by [`mix`] with a tag of its own
//! ([`stream`]) and a counter, so two streams never share draws and each
//! is a pure function of (seed, tag, counter): resume needs no generator
//! state.
//!
//! Not a generator itself: each user seeds its own (`StdRng`) from the
//! value [`mix`] returns.

/// SplitMix64's finaliser over `seed`, the stream tag `what` and the
/// counter `n`: a fresh seed per (seed, stream, counter).
pub fn mix(seed: u64, what: u64, n: u64) -> u64 {
    let mut z = seed ^ what.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ n.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Stream tags for [`mix`].
pub mod stream {
    /// The data split (counter 0).
    pub const SPLIT: u64 = 1;
    /// An epoch's order (counter: the epoch).
    pub const SHUFFLE: u64 = 2;
    /// A training pass's forward seed (counter: step and pass).
    pub const STEP: u64 = 3;
    /// The initial weights (counter 0).
    pub const WEIGHTS: u64 = 4;
    /// A forward's dropout masks (from the forward's seed).
    pub const DROPOUT: u64 = 5;
    /// A forward's exploration noise (from the forward's seed).
    pub const NOISE: u64 = 6;
    /// A forward's lesion permutations (from the forward's seed).
    pub const LESION: u64 = 7;
    /// The learned baselines' weights and epoch orders (`train::baselines`).
    pub const BASELINE: u64 = 8;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_and_counters_give_distinct_seeds() {
        let mut all: Vec<u64> = (1..=8).flat_map(|what| (0..4).map(move |n| mix(42, what, n))).collect();
        let len = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), len);
        assert_eq!(mix(42, stream::STEP, 3), mix(42, stream::STEP, 3));
        assert_ne!(mix(42, stream::STEP, 3), mix(43, stream::STEP, 3));
    }
}
