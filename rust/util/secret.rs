//! Checking bearer keys: reading `Authorization: Bearer <key>`, and comparing a key without
//! an early exit, so the time taken says nothing about how much of it matched. Used for the
//! admin key (proxy/admin.rs) and tenant keys (tenants/keys.rs).

use http::header::AUTHORIZATION;
use http::HeaderMap;

/// The key of an `Authorization: Bearer <key>` header (the scheme in either case, RFC 9110
/// §11.1), trimmed; `None` if absent, of another scheme, or empty.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let key = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer "))?.trim();
    (!key.is_empty()).then_some(key)
}

/// Equal lengths and bytes, without an early exit.
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in b.iter().enumerate() {
        diff |= usize::from(x ^ a.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_fully() {
        assert!(same_bytes(b"secret", b"secret"));
        assert!(!same_bytes(b"secre", b"secret"));
        assert!(!same_bytes(b"secretX", b"secret"));
        assert!(!same_bytes(b"", b"secret"));
        assert!(!same_bytes(b"ab", b"abc"));
        assert!(!same_bytes(b"abcd", b"abc"));
    }

    #[test]
    fn bearer_keys() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        for (value, key) in
            [("Bearer k1 ", Some("k1")), ("bearer k2", Some("k2")), ("Basic k3", None), ("Bearer  ", None)]
        {
            h.insert(AUTHORIZATION, value.parse().unwrap());
            assert_eq!(bearer(&h), key, "{value}");
        }
    }
}
