//! Tenant API keys: stored as salted SHA-256 hashes (`sha256:<salt hex>:<digest hex>`, the
//! line `lora-router keys hash` prints), checked in constant time.
//!
//! A key is checked against every stored hash once; the match is then remembered under a
//! SHA-256 of a per-process secret and the key, so later requests with the same key cost one
//! hash and one lookup however many tenants there are. Unknown keys are never remembered
//! (a flood of them cannot grow the cache).

use std::collections::HashMap;
use std::sync::RwLock;

use sha2::{Digest, Sha256};

use crate::plan::{KeySpec, PlanError};
use crate::util::rng;
use crate::util::secret::same_bytes;

/// A stored key: whose it is and how to check it.
struct StoredKey {
    tenant: usize,
    id: std::sync::Arc<str>,
    salt: Vec<u8>,
    digest: [u8; 32],
}

/// The most keys remembered; beyond it the cache starts over (keys in use come back at once).
const CACHE_LIMIT: usize = 65_536;

pub struct KeyIndex {
    keys: Vec<StoredKey>,
    pepper: [u8; 32],
    known: RwLock<HashMap<[u8; 32], usize>>,
}

/// Who a key belongs to: the tenant's index and the key's id (never the key).
#[derive(Debug, Clone)]
pub struct KeyMatch {
    pub tenant: usize,
    pub id: std::sync::Arc<str>,
}

impl KeyIndex {
    pub fn new() -> KeyIndex {
        let mut pepper = [0u8; 32];
        for chunk in pepper.chunks_mut(8) {
            chunk.copy_from_slice(&rng::next_u64().to_le_bytes());
        }
        KeyIndex { keys: Vec::new(), pepper, known: RwLock::new(HashMap::new()) }
    }

    pub fn add(&mut self, tenant: usize, spec: &KeySpec, path: &str) -> Result<(), PlanError> {
        let salt = decode_hex(&spec.salt_hex).ok_or_else(|| PlanError::new(format!("{path}.salt_hex"), "not hex"))?;
        let digest: [u8; 32] = decode_hex(&spec.digest_hex)
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| PlanError::new(format!("{path}.digest_hex"), "not a hex SHA-256 digest"))?;
        self.keys.push(StoredKey { tenant, id: spec.id.as_str().into(), salt, digest });
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The tenant a presented key belongs to, if any.
    pub fn find(&self, key: &[u8]) -> Option<KeyMatch> {
        let fingerprint: [u8; 32] = Sha256::new().chain_update(self.pepper).chain_update(key).finalize().into();
        if let Some(&i) = self.known.read().ok()?.get(&fingerprint) {
            let k = &self.keys[i];
            return Some(KeyMatch { tenant: k.tenant, id: k.id.clone() });
        }
        // Every stored key is checked, so the time taken does not say which one matched.
        let mut found = None;
        for (i, k) in self.keys.iter().enumerate() {
            let d: [u8; 32] = Sha256::new().chain_update(&k.salt).chain_update(key).finalize().into();
            if same_bytes(&d, &k.digest) && found.is_none() {
                found = Some(i);
            }
        }
        let i = found?;
        if let Ok(mut known) = self.known.write() {
            if known.len() >= CACHE_LIMIT {
                known.clear();
            }
            known.insert(fingerprint, i);
        }
        let k = &self.keys[i];
        Some(KeyMatch { tenant: k.tenant, id: k.id.clone() })
    }
}

impl Default for KeyIndex {
    fn default() -> Self {
        KeyIndex::new()
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, salt: &str, key: &str) -> KeySpec {
        let d = Sha256::new().chain_update(decode_hex(salt).unwrap()).chain_update(key.as_bytes()).finalize();
        let digest_hex = d.iter().map(|b| format!("{b:02x}")).collect();
        KeySpec { id: id.into(), salt_hex: salt.into(), digest_hex }
    }

    #[test]
    fn finds_the_owner_and_only_the_owner() {
        let mut idx = KeyIndex::new();
        idx.add(0, &spec("a/1", "00ff10", "key-a"), "k").unwrap();
        idx.add(1, &spec("b/1", "abcdef", "key-b"), "k").unwrap();
        for _ in 0..2 {
            assert_eq!(idx.find(b"key-a").map(|m| m.tenant), Some(0));
            assert_eq!(&*idx.find(b"key-b").unwrap().id, "b/1");
        }
        assert!(idx.find(b"key-c").is_none());
        assert!(idx.find(b"").is_none());
        assert!(idx.find(b"key-a ").is_none());
    }

    #[test]
    fn bad_hex_is_a_plan_error() {
        let mut idx = KeyIndex::new();
        let bad = KeySpec { id: "x".into(), salt_hex: "zz".into(), digest_hex: "00".into() };
        assert_eq!(idx.add(0, &bad, "tenants[0].keys[0]").unwrap_err().path, "tenants[0].keys[0].salt_hex");
    }
}
