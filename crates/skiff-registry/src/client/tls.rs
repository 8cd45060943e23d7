//! TLS for one registry host: the system's roots plus the CAs and client certificate found
//! in docker's `certs.d/<host:port>/` layout (`*.crt` are CAs, `NAME.cert` + `NAME.key` a
//! client certificate), looked up in each configured directory (`/etc/docker/certs.d` and
//! skiff's own).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::error::{ClientError, Result};

/// What was found for a host under the `certs.d` directories.
#[derive(Debug, Default)]
pub struct HostCerts {
    pub cas: Vec<PathBuf>,
    /// (certificate, key) pairs.
    pub client: Vec<(PathBuf, PathBuf)>,
}

/// Looks for `<dir>/<host>/` in each directory.
pub fn host_certs(dirs: &[PathBuf], host: &str) -> HostCerts {
    let mut found = HostCerts::default();
    for dir in dirs {
        let d = dir.join(host);
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        for p in names {
            match p.extension().and_then(|e| e.to_str()) {
                Some("crt") => found.cas.push(p),
                Some("cert") => {
                    let key = p.with_extension("key");
                    if key.exists() {
                        found.client.push((p, key));
                    } else {
                        log::warn!(
                            "{}: client certificate without {}",
                            p.display(),
                            key.display()
                        );
                    }
                }
                _ => {}
            }
        }
    }
    found
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs: std::result::Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| ClientError::Config(format!("{}: {e}", path.display())))?
        .collect();
    certs.map_err(|e| ClientError::Config(format!("{}: {e}", path.display())))
}

/// The rustls configuration for `host`. `verify` false accepts any certificate (insecure
/// registries, as docker's `InsecureSkipVerify`).
pub fn client_config(dirs: &[PathBuf], host: &str, verify: bool) -> Result<ClientConfig> {
    let certs = host_certs(dirs, host);
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Config(format!("TLS setup: {e}")))?;
    let builder = if verify {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            log::debug!("system certificates: {e}");
        }
        let (added, ignored) = roots.add_parsable_certificates(native.certs);
        log::debug!("system roots: {added} added, {ignored} ignored");
        for ca in &certs.cas {
            for c in read_certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| ClientError::Config(format!("{}: {e}", ca.display())))?;
            }
        }
        builder.with_root_certificates(roots)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
    };
    let config = match certs.client.first() {
        Some((cert, key)) => {
            let chain = read_certs(cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| ClientError::Config(format!("{}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ClientError::Config(format!("{}: {e}", cert.display())))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(config)
}

/// Accepts any server certificate (still checking the handshake signatures).
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn certs_d_layout_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("reg.example:5000");
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(host.join("ca.crt"), "").unwrap();
        std::fs::write(host.join("client.cert"), "").unwrap();
        std::fs::write(host.join("client.key"), "").unwrap();
        std::fs::write(host.join("lonely.cert"), "").unwrap();
        let found = host_certs(&[dir.path().to_owned()], "reg.example:5000");
        assert_eq!(found.cas, vec![host.join("ca.crt")]);
        assert_eq!(
            found.client,
            vec![(host.join("client.cert"), host.join("client.key"))]
        );
        assert!(host_certs(&[dir.path().to_owned()], "other").cas.is_empty());
    }
}
