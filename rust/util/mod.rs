//! Small helpers with no better home: a fast non-cryptographic RNG, wall-clock formatting,
//! request ids, stable hashing, and bearer-key checks.

pub mod hash;
pub mod rng;
pub mod secret;
pub mod time;
