//! Small helpers with no better home: a fast non-cryptographic RNG, wall-clock formatting,
//! request ids, stable hashing, bearer-key checks and histograms.

pub mod hash;
pub mod histogram;
pub mod rng;
pub mod secret;
pub mod time;
pub mod tls;
