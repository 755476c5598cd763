//! Small helpers with no better home: a fast non-cryptographic RNG, wall-clock formatting,
//! request ids, and stable hashing.

pub mod hash;
pub mod rng;
pub mod time;
