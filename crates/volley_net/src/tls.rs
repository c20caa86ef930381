//! Which certificate authorities a native client trusts when it reaches the
//! signaling server over `wss://` (and its `/api/ice` over `https://`).
//!
//! By default the public web PKI, as a browser does: a server with a
//! certificate from a public CA (Let's Encrypt, for one) needs nothing set.
//! A server with a private CA or a self-signed certificate (a LAN server, a
//! test, a staging cluster) is reached by naming that certificate with
//! [`TlsRoots::Only`]. The browser always uses its own trust store and
//! ignores this.

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// The roots a native client's TLS connections must chain to.
///
/// ```
/// use volley_net::TlsRoots;
/// let pem = b"not a certificate";
/// assert!(TlsRoots::from_pem(pem).is_err());
/// assert_eq!(TlsRoots::default(), TlsRoots::PublicWeb);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TlsRoots {
    /// Mozilla's root store, compiled in (`webpki-roots`).
    #[default]
    PublicWeb,
    /// Only these certificates (DER): a private CA, or the server's own
    /// self-signed certificate.
    Only(Vec<Vec<u8>>),
}

/// Why roots could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsRootsError {
    /// The PEM text holds no usable certificate.
    #[error("no certificate in the PEM text: {0}")]
    Pem(String),
    /// The PEM file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

impl TlsRoots {
    /// [`TlsRoots::Only`] the `CERTIFICATE` blocks of PEM text (a CA's
    /// `ca.pem`, or a self-signed server's `cert.pem`).
    pub fn from_pem(pem: &[u8]) -> Result<Self, TlsRootsError> {
        let certificates = CertificateDer::pem_slice_iter(pem)
            .map(|c| c.map(|c| c.as_ref().to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsRootsError::Pem(e.to_string()))?;
        if certificates.is_empty() {
            return Err(TlsRootsError::Pem("no CERTIFICATE block".into()));
        }
        Ok(TlsRoots::Only(certificates))
    }

    /// [`TlsRoots::from_pem`] of a file (as `--tls-root ca.pem` names it).
    pub fn from_pem_file(path: &std::path::Path) -> Result<Self, TlsRootsError> {
        let pem = std::fs::read(path).map_err(|e| TlsRootsError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_pem(&pem)
    }
}

/// The TLS set-up of the signaling WebSocket and the ICE fetch for `roots`
/// (`None`: the libraries' defaults, the public web PKI).
#[cfg(all(feature = "transport", not(target_arch = "wasm32")))]
pub(crate) mod native {
    use std::sync::Arc;

    use futures_rustls::rustls::{self, RootCertStore};

    use super::TlsRoots;

    fn only(certificates: &[Vec<u8>]) -> Result<RootCertStore, String> {
        let mut store = RootCertStore::empty();
        for der in certificates {
            store
                .add(der.clone().into())
                .map_err(|e| format!("a trusted root is not a usable certificate: {e}"))?;
        }
        Ok(store)
    }

    /// The connector for `wss://`.
    pub(crate) fn connector(
        roots: &TlsRoots,
    ) -> Result<Option<futures_rustls::TlsConnector>, String> {
        let TlsRoots::Only(certificates) = roots else {
            return Ok(None);
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(only(certificates)?)
            .with_no_client_auth();
        Ok(Some(futures_rustls::TlsConnector::from(Arc::new(config))))
    }

    /// ureq's TLS configuration for `https://`.
    pub(crate) fn ureq_config(roots: &TlsRoots) -> ureq::tls::TlsConfig {
        let roots = match roots {
            TlsRoots::PublicWeb => ureq::tls::RootCerts::WebPki,
            TlsRoots::Only(certificates) => certificates
                .iter()
                .map(|der| ureq::tls::Certificate::from_der(der).to_owned())
                .collect::<Vec<_>>()
                .into(),
        };
        ureq::tls::TlsConfig::builder().root_certs(roots).build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n\
                       -----BEGIN CERTIFICATE-----\nBAUG\n-----END CERTIFICATE-----\n";

    #[test]
    fn pem_blocks_become_roots() {
        assert_eq!(
            TlsRoots::from_pem(PEM.as_bytes()),
            Ok(TlsRoots::Only(vec![vec![1, 2, 3], vec![4, 5, 6]]))
        );
        assert!(TlsRoots::from_pem(b"").is_err());
        assert!(TlsRoots::from_pem(b"-----BEGIN CERTIFICATE-----\n!!\n").is_err());
        let missing = TlsRoots::from_pem_file(std::path::Path::new("/nonexistent/ca.pem"));
        assert!(
            matches!(missing, Err(TlsRootsError::Read { .. })),
            "{missing:?}"
        );
    }
}
