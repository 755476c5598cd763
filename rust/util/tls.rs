//! TLS set-up shared by every TLS client and server in the process.

/// Makes ring the process's rustls crypto provider (once; a provider installed before wins).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
