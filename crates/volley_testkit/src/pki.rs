//! Certificates made at test time: a CA, and a server certificate it signed
//! for `localhost` and 127.0.0.1, as PEM for the server, DER for a native
//! client's roots, and the SPKI hash Chromium's
//! `--ignore-certificate-errors-spki-list` takes.

use base64::Engine;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, PublicKeyData};
use sha2::{Digest, Sha256};
use volley_net::TlsRoots;
use volley_server::tls::TlsConfig;

/// A CA and the server certificate it signed.
pub struct Pki {
    /// The CA's certificate, PEM: what a native client trusts.
    pub root_pem: String,
    /// The CA's certificate, DER.
    pub root_der: Vec<u8>,
    /// The server's chain (leaf, CA) and key, PEM.
    pub chain_pem: String,
    /// The server's private key, PEM.
    pub key_pem: String,
    /// base64(SHA-256(the leaf's SubjectPublicKeyInfo)).
    pub spki_sha256: String,
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

impl Pki {
    /// A fresh CA and a `localhost`/127.0.0.1 certificate it signed.
    pub fn new() -> Pki {
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = params.self_signed(&ca_key).expect("the CA certificate");
        let issuer = Issuer::new(params, ca_key);
        let key = KeyPair::generate().expect("a server key");
        let leaf = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("server params")
            .signed_by(&key, &issuer)
            .expect("the server certificate");
        let spki = Sha256::digest(key.subject_public_key_info());
        Pki {
            root_pem: ca.pem(),
            root_der: ca.der().to_vec(),
            chain_pem: format!("{}{}", leaf.pem(), ca.pem()),
            key_pem: key.serialize_pem(),
            spki_sha256: base64::engine::general_purpose::STANDARD.encode(spki),
        }
    }

    /// The server's TLS configuration.
    pub fn server(&self) -> TlsConfig {
        TlsConfig::from_pem(self.chain_pem.as_bytes(), self.key_pem.as_bytes())
            .expect("the test certificate loads")
    }

    /// What a native client trusts: the CA only.
    pub fn roots(&self) -> TlsRoots {
        TlsRoots::from_pem(self.root_pem.as_bytes()).expect("the CA certificate parses")
    }
}
