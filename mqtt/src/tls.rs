//! TLS to the broker: the PEM files a client is given (the CA that signed the broker's
//! certificate and, for mutual TLS, the client's own certificate and key) read, checked and
//! turned into the rustls client config rumqttc connects with. Everything that can be wrong
//! with a file is found here, before anything connects, and named with its fix.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rumqttc::v5::mqttbytes::Error as MqttError;
use rumqttc::v5::{ConnectionError, StateError};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

/// The files of a TLS client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate(s) (PEM) the broker's certificate must chain to.
    pub ca: PathBuf,
    /// The client's certificate (PEM, the chain up to the CA) and private key (PEM), for
    /// mutual TLS.
    pub client: Option<ClientCert>,
}

/// A client's certificate and key files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// The certificate chain (PEM).
    pub cert: PathBuf,
    /// The private key (PEM: PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
}

/// A TLS client set-up, read and checked: cheap to clone.
#[derive(Clone)]
pub struct ClientTls {
    files: TlsFiles,
    config: Arc<ClientConfig>,
}

/// Which file of a TLS set-up an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFile {
    /// The CA file.
    Ca,
    /// The client's certificate file.
    Cert,
    /// The client's key file.
    Key,
}

impl TlsFile {
    fn option(self) -> &'static str {
        match self {
            Self::Ca => "ca_file (--ca-file)",
            Self::Cert => "cert_file (--cert-file)",
            Self::Key => "key_file (--key-file)",
        }
    }
}

impl fmt::Display for TlsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ca => "CA file",
            Self::Cert => "certificate file",
            Self::Key => "key file",
        })
    }
}

/// Why a TLS set-up cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{file} '{path}': {error}; give {} a file this user can read", .file.option())]
    Read {
        /// Which file.
        file: TlsFile,
        /// Its path.
        path: PathBuf,
        /// The IO error.
        error: std::io::Error,
    },
    /// A file holds no PEM item of the kind it should.
    #[error(
        "{file} '{path}' holds no PEM {}; give {} the PEM file `ledtrad-op certs` wrote (text that starts with -----BEGIN {})",
        .file.item(), .file.option(), .file.pem_label()
    )]
    Empty {
        /// Which file.
        file: TlsFile,
        /// Its path.
        path: PathBuf,
    },
    /// A file's PEM or what it holds is malformed.
    #[error("{file} '{path}' is not usable: {why}; give {} a PEM file as `ledtrad-op certs` writes it", .file.option())]
    Malformed {
        /// Which file.
        file: TlsFile,
        /// Its path.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A certificate's validity ended.
    #[error(
        "{file} '{path}' expired at {not_after} (this machine's clock says {now}); issue a new certificate (ledtrad-op certs ...) and put it in place"
    )]
    Expired {
        /// Which file.
        file: TlsFile,
        /// Its path.
        path: PathBuf,
        /// The end of its validity (UTC).
        not_after: String,
        /// This machine's time (UTC).
        now: String,
    },
    /// A certificate's validity has not begun.
    #[error(
        "{file} '{path}' is valid only from {not_before}, and this machine's clock says {now}; set the clock right (NTP) or issue a certificate valid now"
    )]
    NotYetValid {
        /// Which file.
        file: TlsFile,
        /// Its path.
        path: PathBuf,
        /// The start of its validity (UTC).
        not_before: String,
        /// This machine's time (UTC).
        now: String,
    },
    /// The key is not the certificate's.
    #[error(
        "key file '{key}' does not belong to certificate file '{cert}'; give the key that was written with this certificate"
    )]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
}

impl TlsFile {
    fn item(self) -> &'static str {
        match self {
            Self::Ca | Self::Cert => "certificate",
            Self::Key => "private key",
        }
    }

    fn pem_label(self) -> &'static str {
        match self {
            Self::Ca | Self::Cert => "CERTIFICATE-----",
            Self::Key => "PRIVATE KEY-----",
        }
    }
}

impl TlsError {
    /// The file at fault.
    pub fn file(&self) -> TlsFile {
        match self {
            Self::Read { file, .. }
            | Self::Empty { file, .. }
            | Self::Malformed { file, .. }
            | Self::Expired { file, .. }
            | Self::NotYetValid { file, .. } => *file,
            Self::KeyMismatch { .. } => TlsFile::Key,
        }
    }
}

impl ClientTls {
    /// Reads and checks `files` against this machine's clock.
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        Self::load_at(files, SystemTime::now())
    }

    /// Reads and checks `files` as at `now`: the CA file must hold certificates; the client's
    /// certificate must be valid at `now` and its key must be the certificate's.
    pub fn load_at(files: &TlsFiles, now: SystemTime) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = Arc::new(read_roots(&files.ca)?);
        let verifier = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| malformed(TlsFile::Ca, &files.ca, e))?;
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| malformed(TlsFile::Ca, &files.ca, e))?
            .with_webpki_verifier(verifier);
        let config = match &files.client {
            None => builder.with_no_client_auth(),
            Some(client) => {
                let chain = read_certificates(TlsFile::Cert, &client.cert)?;
                check_validity(&client.cert, &chain, &roots, &provider, now)?;
                let key = read_key(&client.key)?;
                builder.with_client_auth_cert(chain, key).map_err(|e| match e {
                    rustls::Error::InconsistentKeys(_) => {
                        TlsError::KeyMismatch { cert: client.cert.clone(), key: client.key.clone() }
                    }
                    e => malformed(TlsFile::Key, &client.key, e),
                })?
            }
        };
        Ok(Self { files: files.clone(), config: Arc::new(config) })
    }

    /// A config that trusts no CA: every handshake fails. For an `mqtts://` broker given no CA
    /// file, so that it is never reached in clear.
    pub fn trusting_none() -> Arc<ClientConfig> {
        let config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring's provider has suites for TLS 1.2 and 1.3")
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth();
        Arc::new(config)
    }

    /// The files this was read from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The rustls client config.
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls").field("files", &self.files).finish_non_exhaustive()
    }
}

impl PartialEq for ClientTls {
    fn eq(&self, other: &Self) -> bool {
        self.files == other.files
    }
}

fn malformed(file: TlsFile, path: &Path, why: impl fmt::Display) -> TlsError {
    TlsError::Malformed { file, path: path.into(), why: why.to_string() }
}

fn read(file: TlsFile, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read { file, path: path.into(), error })
}

/// The certificates of a PEM file, at least one.
fn read_certificates(file: TlsFile, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(file, path)?;
    let chain =
        CertificateDer::pem_slice_iter(&bytes).collect::<Result<Vec<_>, _>>().map_err(|e| malformed(file, path, e))?;
    if chain.is_empty() {
        return Err(TlsError::Empty { file, path: path.into() });
    }
    Ok(chain)
}

fn read_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for certificate in read_certificates(TlsFile::Ca, path)? {
        roots.add(certificate).map_err(|e| malformed(TlsFile::Ca, path, e))?;
    }
    Ok(roots)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(TlsFile::Key, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::Empty { file: TlsFile::Key, path: path.into() },
        e => malformed(TlsFile::Key, path, e),
    })
}

/// Refuses a client certificate outside its validity at `now`. WebPKI checks the dates before it
/// looks for the issuer, so this holds whether or not `roots` (the CA the broker's certificate
/// chains to) also issued the client's certificate; an unknown issuer is the broker's to judge.
fn check_validity(
    path: &Path,
    chain: &[CertificateDer<'static>],
    roots: &Arc<RootCertStore>,
    provider: &Arc<CryptoProvider>,
    now: SystemTime,
) -> Result<(), TlsError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| malformed(TlsFile::Ca, path, e))?;
    let seconds = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let Some((end_entity, intermediates)) = chain.split_first() else {
        return Err(TlsError::Empty { file: TlsFile::Cert, path: path.into() });
    };
    let file = TlsFile::Cert;
    match verifier.verify_client_cert(end_entity, intermediates, UnixTime::since_unix_epoch(seconds)) {
        Err(rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { time, not_after })) => {
            Err(TlsError::Expired { file, path: path.into(), not_after: utc(not_after), now: utc(time) })
        }
        Err(rustls::Error::InvalidCertificate(CertificateError::NotValidYetContext { time, not_before })) => {
            Err(TlsError::NotYetValid { file, path: path.into(), not_before: utc(not_before), now: utc(time) })
        }
        Err(rustls::Error::InvalidCertificate(CertificateError::BadEncoding)) => {
            Err(malformed(file, path, "the certificate is not valid DER"))
        }
        Err(rustls::Error::InvalidCertificate(
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. },
        )) => Err(malformed(file, path, "the certificate is not for a client (a broker's server certificate?)")),
        _ => Ok(()),
    }
}

/// What a failed connection says about TLS, with the fix, if it failed on TLS: the broker's
/// alert about this client's certificate, or what this client found wrong with the broker's.
pub fn tls_problem(error: &ConnectionError) -> Option<&'static str> {
    // rumqttc keeps a read's IO error as a deserialization error, without a `source()`.
    if let ConnectionError::MqttState(StateError::Deserialization(MqttError::Io(io))) = error {
        return io.get_ref().and_then(|e| e.downcast_ref()).and_then(describe);
    }
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = next {
        let tls = error.downcast_ref::<rustls::Error>().or_else(|| {
            error.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).and_then(|e| e.downcast_ref())
        });
        if let Some(problem) = tls.and_then(describe) {
            return Some(problem);
        }
        next = error.source();
    }
    None
}

fn describe(error: &rustls::Error) -> Option<&'static str> {
    use rustls::AlertDescription as Alert;
    Some(match error {
        rustls::Error::AlertReceived(Alert::CertificateRequired) => {
            "the broker asks for a client certificate; set cert_file and key_file (--cert-file, --key-file) to one the fleet CA issued"
        }
        rustls::Error::AlertReceived(Alert::HandshakeFailure) => {
            "the broker refused the TLS handshake; check that this client presents a certificate (cert_file, key_file) and that the broker accepts TLS 1.2 or 1.3"
        }
        rustls::Error::AlertReceived(Alert::UnknownCA | Alert::BadCertificate | Alert::UnsupportedCertificate) => {
            "the broker does not trust this client's certificate; use one issued by the CA the broker's cafile names (ledtrad-op certs device / operator / collector), or, if it was, check the broker's crlfile (a revocation list of another CA, or not valid yet)"
        }
        rustls::Error::AlertReceived(Alert::CertificateExpired) => {
            "the broker finds this client's certificate expired, or its own revocation list (crlfile) expired; issue a new certificate (ledtrad-op certs ...), or sign the list again (ledtrad-op certs crl) and restart the broker"
        }
        rustls::Error::AlertReceived(Alert::CertificateRevoked) => {
            "the broker has revoked this client's certificate; ask the fleet's operator for a new one"
        }
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer | CertificateError::BadSignature) => {
            "the broker's certificate is not from the CA in ca_file (--ca-file); give the CA that signed it"
        }
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => {
            "the broker's certificate does not name the host of the mqtts:// URL; connect to a name it holds, or reissue it (ledtrad-op certs broker --host)"
        }
        rustls::Error::InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. }) => {
            "the broker's certificate has expired; renew it (ledtrad-op certs broker) and reload the broker"
        }
        rustls::Error::InvalidCertificate(_) => {
            "the broker's certificate is not acceptable; check it against the CA in ca_file (--ca-file)"
        }
        _ => return None,
    })
}

/// A time as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc(time: UnixTime) -> String {
    ledtrad_protocol::UnixTime(time.as_secs()).to_string()
}

#[cfg(test)]
mod tests;
