//! TLS for the signaling port: `https://` and `wss://` on the same socket as
//! the plain protocol would use, with rustls (ring) through tokio-rustls.
//!
//! A game page served over https may only open `wss://`, so a public server
//! needs TLS; terminating it here spares a game the reverse proxy. The
//! certificate and key are PEM files (what certbot and every CA hand out),
//! read again when either file changes, so a renewal needs no restart: the
//! accept loop calls [`TlsConfig::reload_if_changed`] every
//! [`RELOAD_CHECK_EVERY`]; a broken renewal keeps the old certificate and
//! logs why.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

use crate::server::lock;

/// Largest certificate or key file read (a chain of a few certificates is
/// a few KiB).
pub const MAX_PEM_FILE_BYTES: u64 = 1024 * 1024;

/// How often the accept loop looks at the certificate files' modification
/// times.
pub const RELOAD_CHECK_EVERY: Duration = Duration::from_secs(60);

/// Why a certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file is larger than [`MAX_PEM_FILE_BYTES`].
    #[error("{path} is larger than {MAX_PEM_FILE_BYTES} bytes: not a PEM certificate or key")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// No `CERTIFICATE` block in the certificate PEM.
    #[error("no certificate in the certificate PEM")]
    NoCertificate,
    /// The PEM text is malformed, or holds no private key.
    #[error("bad PEM: {0}")]
    Pem(String),
    /// rustls refused the pair (for example a key that does not match the
    /// certificate, or an unsupported key type).
    #[error("unusable certificate or key: {0}")]
    Rustls(#[from] tokio_rustls::rustls::Error),
}

/// Where the certificate came from, for reloading.
struct Files {
    cert: PathBuf,
    key: PathBuf,
    /// Both files' modification times when last loaded.
    loaded: (Option<SystemTime>, Option<SystemTime>),
}

/// The server's certificate, swapped whole on reload.
#[derive(Debug)]
struct Current(Mutex<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(lock(&self.0).clone())
    }
}

/// A certificate chain and key to serve `https://` and `wss://` with.
///
/// ```
/// # fn main() -> Result<(), volley_server::tls::TlsError> {
/// let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
/// let tls = volley_server::tls::TlsConfig::from_pem(
///     cert.cert.pem().as_bytes(),
///     cert.signing_key.serialize_pem().as_bytes(),
/// )?;
/// let config = volley_server::ServerConfig { tls: Some(tls), ..Default::default() };
/// # let _ = config; Ok(()) }
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    current: Arc<Current>,
    acceptor: TlsAcceptor,
    files: Option<Arc<Mutex<Files>>>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let files = self.files.as_ref().map(|files| {
            let files = lock(files);
            (files.cert.clone(), files.key.clone())
        });
        f.debug_struct("TlsConfig").field("files", &files).finish()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// Parses a PEM certificate chain and private key into what rustls signs with.
fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(format!("certificate: {e}")))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| TlsError::Pem(format!("private key: {e}")))?;
    Ok(CertifiedKey::from_der(chain, key, &provider())?)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    let error = |source| TlsError::Read {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(error)?.len();
    if size > MAX_PEM_FILE_BYTES {
        return Err(TlsError::TooLarge {
            path: path.to_owned(),
        });
    }
    std::fs::read(path).map_err(error)
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl TlsConfig {
    /// From PEM text: the certificate chain (leaf first) and its private key
    /// (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        Self::new(certified_key(cert_pem, key_pem)?, None)
    }

    /// From PEM files (as `--tls-cert` and `--tls-key` name them), read
    /// again by [`TlsConfig::reload_if_changed`] when either changes.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let loaded = (modified(cert), modified(key));
        let pair = certified_key(&read(cert)?, &read(key)?)?;
        let files = Files {
            cert: cert.to_owned(),
            key: key.to_owned(),
            loaded,
        };
        Self::new(pair, Some(Arc::new(Mutex::new(files))))
    }

    fn new(pair: CertifiedKey, files: Option<Arc<Mutex<Files>>>) -> Result<Self, TlsError> {
        let current = Arc::new(Current(Mutex::new(Arc::new(pair))));
        let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        // hyper serves HTTP/1.1 only (WebSocket upgrades need it).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsConfig {
            current,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            files,
        })
    }

    /// Reads the files again if either one's modification time changed
    /// since the last load; a pair that does not load keeps the old one.
    /// Returns whether a new certificate is in use. Without files (built
    /// [`TlsConfig::from_pem`]) there is nothing to reload.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let Some(files) = &self.files else {
            return Ok(false);
        };
        let mut files = lock(files);
        let now = (modified(&files.cert), modified(&files.key));
        if now == files.loaded {
            return Ok(false);
        }
        // Remember the attempt either way: a broken file is reported once,
        // not every minute, and a fixed one is picked up when written again.
        files.loaded = now;
        let pair = certified_key(&read(&files.cert)?, &read(&files.key)?)?;
        *lock(&self.current.0) = Arc::new(pair);
        Ok(true)
    }

    /// The certificate chain in use (leaf first), as DER.
    pub fn chain(&self) -> Vec<Vec<u8>> {
        lock(&self.current.0)
            .cert
            .iter()
            .map(|c| c.as_ref().to_vec())
            .collect()
    }

    pub(crate) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }
}

/// The first byte of a TLS record carrying a handshake (a ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Whether a connection's first byte says it speaks plain HTTP to the TLS
/// port (a request line starts with an upper-case method name), so it can
/// be told to use `https://`/`wss://` instead of failing a handshake.
pub(crate) fn looks_like_plain_http(first: u8) -> bool {
    first != TLS_HANDSHAKE_RECORD && first.is_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let cert = rcgen::generate_simple_self_signed(vec![name.into()]).unwrap();
        (cert.cert.pem(), cert.signing_key.serialize_pem())
    }

    #[test]
    fn pem_errors_are_named() {
        let (cert, key) = pair("localhost");
        assert!(TlsConfig::from_pem(cert.as_bytes(), key.as_bytes()).is_ok());
        assert!(matches!(
            TlsConfig::from_pem(b"", key.as_bytes()),
            Err(TlsError::NoCertificate)
        ));
        assert!(matches!(
            TlsConfig::from_pem(cert.as_bytes(), b"not a key"),
            Err(TlsError::Pem(_))
        ));
        let (_, other_key) = pair("localhost");
        assert!(matches!(
            TlsConfig::from_pem(cert.as_bytes(), other_key.as_bytes()),
            Err(TlsError::Rustls(_))
        ));
    }

    #[test]
    fn files_reload_when_changed_and_a_broken_renewal_keeps_the_old_pair() {
        let dir = std::env::temp_dir().join(format!("volley-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        let (cert, key) = pair("one.example");
        std::fs::write(&cert_path, &cert).unwrap();
        std::fs::write(&key_path, &key).unwrap();
        let tls = TlsConfig::from_pem_files(&cert_path, &key_path).unwrap();
        let first = tls.chain();
        assert!(!tls.reload_if_changed().unwrap(), "nothing changed");

        // A renewal: new files, a later modification time.
        let (cert2, key2) = pair("two.example");
        std::fs::write(&cert_path, &cert2).unwrap();
        std::fs::write(&key_path, &key2).unwrap();
        let later = SystemTime::now() + Duration::from_secs(5);
        for path in [&cert_path, &key_path] {
            std::fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(later)
                .unwrap();
        }
        assert!(tls.reload_if_changed().unwrap());
        let second = tls.chain();
        assert_ne!(first, second);

        // A broken renewal (the key does not match): an error, the pair stays.
        std::fs::write(&key_path, &key).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&key_path)
            .unwrap()
            .set_modified(later + Duration::from_secs(5))
            .unwrap();
        assert!(matches!(tls.reload_if_changed(), Err(TlsError::Rustls(_))));
        assert_eq!(tls.chain(), second);
        assert!(!tls.reload_if_changed().unwrap(), "reported once");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn oversized_files_are_refused() {
        let dir = std::env::temp_dir().join(format!("volley-tls-big-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("big.pem");
        std::fs::write(&big, vec![b'A'; MAX_PEM_FILE_BYTES as usize + 1]).unwrap();
        assert!(matches!(
            TlsConfig::from_pem_files(&big, &big),
            Err(TlsError::TooLarge { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn plain_http_is_told_apart_from_a_client_hello() {
        assert!(looks_like_plain_http(b'G'));
        assert!(looks_like_plain_http(b'P'));
        assert!(!looks_like_plain_http(TLS_HANDSHAKE_RECORD));
        assert!(!looks_like_plain_http(0));
        assert!(!looks_like_plain_http(b'g'));
    }
}
