//! The fleet's small PKI for mutual TLS (`ledtrad-op certs`): a CA, and certificates it issues
//! to the broker (a server certificate for its host names) and to clients: devices (their
//! identity is the device id), the operator and the report collectors (their identity is the
//! service user of `deploy/mosquitto/fleet.acl`). Keys are ECDSA P-256, written mode 0600 and
//! never over an existing file. A broker set up as `deploy/mosquitto/fleet-tls.conf` takes a
//! client certificate's common name as its username, so the ACL's patterns apply unchanged.
//! The CA directory records what it issued and revoked, and keeps the certificate revocation
//! list the broker reads (`ca.crl`).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ledtrad_protocol::DeviceId;
use rand::RngCore as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SerialNumber,
};

/// The CA's certificate file in a CA directory.
pub const CA_CERT: &str = "ca.pem";
/// The CA's private key file in a CA directory.
pub const CA_KEY: &str = "ca.key";

/// Days a CA is valid unless told.
pub const CA_DAYS: u32 = 3650;
/// Days a device certificate is valid unless told: devices run for years.
pub const DEVICE_DAYS: u32 = 1825;
/// Days a broker, operator or collector certificate is valid unless told.
pub const SERVICE_DAYS: u32 = 365;

/// The longest validity asked for: a hundred years.
pub const MAX_DAYS: u32 = 36_500;

/// The broker users of `deploy/mosquitto/fleet.acl` that are not devices.
pub const SERVICE_USERS: [&str; 2] = ["operator", "offer-service"];

const DAY: Duration = Duration::from_secs(86_400);

/// Whom a certificate is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// The broker: a server certificate for these host names or IP addresses.
    Broker {
        /// The names clients connect to (the host of their `mqtts://` URL).
        hosts: Vec<String>,
    },
    /// A device: its identity is its device id.
    Device(DeviceId),
    /// A service client (the operator, a report collector): its identity is its broker user.
    Service(String),
}

impl Subject {
    /// The common name: the identity a broker takes as the username.
    pub fn common_name(&self) -> String {
        match self {
            Self::Broker { hosts } => hosts.first().cloned().unwrap_or_default(),
            Self::Device(device) => device.as_str().to_string(),
            Self::Service(user) => user.clone(),
        }
    }

    /// Refuses a name that cannot be a broker username or a file name, and a device named as
    /// a service user of `fleet.acl` (its certificate would carry that user's rights).
    fn check(&self) -> Result<(), CertsError> {
        match self {
            Self::Broker { .. } => Ok(()),
            Self::Device(device) if SERVICE_USERS.contains(&device.as_str()) => Err(CertsError::BadSubject(format!(
                "device id '{device}' is a service user of fleet.acl; a device's certificate with that identity would have its rights, so give the device another id"
            ))),
            Self::Device(_) => Ok(()),
            Self::Service(name) => DeviceId::try_new(name).map(|_| ()).map_err(|e| {
                CertsError::BadSubject(format!("--name {name:?}: {e}; a service user's name follows the same rules as a device id"))
            }),
        }
    }

    /// The file stem the certificate and key are written under.
    pub fn file_stem(&self) -> String {
        match self {
            Self::Broker { .. } => "broker".into(),
            _ => self.common_name(),
        }
    }
}

/// Files written by [`init`] or [`issue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// The private key (PEM, mode 0600).
    pub key: PathBuf,
    /// The end of its validity.
    pub not_after: SystemTime,
}

/// Why the PKI could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// A file to be written exists already.
    #[error("'{0}' exists already; move it away first (certificates and keys are never overwritten), or write elsewhere with --out")]
    Exists(PathBuf),
    /// A file could not be read or written.
    #[error("'{path}': {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The IO error.
        error: std::io::Error,
    },
    /// The CA directory does not hold a usable CA.
    #[error("'{path}' is not a CA file ledtrad-op can sign with ({why}); give --ca the directory `ledtrad-op certs init` wrote")]
    BadCa {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A broker certificate without a host, or a name that cannot be in a certificate.
    #[error("{0}")]
    BadSubject(String),
    /// Validity of zero days, or more than [`MAX_DAYS`].
    #[error("--days must be from 1 to {MAX_DAYS}")]
    NoDays,
    /// Making the certificate failed.
    #[error("cannot make the certificate: {0}")]
    Make(#[from] rcgen::Error),
}

/// Creates a CA in `dir` (created if missing): `ca.pem` and `ca.key` (0600), named `name`,
/// valid `days` from `now`.
pub fn init(dir: &Path, name: &str, days: u32, now: SystemTime) -> Result<Issued, CertsError> {
    let (cert, key) = (dir.join(CA_CERT), dir.join(CA_KEY));
    refuse_existing(&[&cert, &key])?;
    let mut params = params(name, days, now)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let key_pair = KeyPair::generate()?;
    let certificate = params.self_signed(&key_pair)?;
    create_dir(dir)?;
    write_new(&key, key_pair.serialize_pem().as_bytes(), 0o600)?;
    write_new(&cert, certificate.pem().as_bytes(), 0o644)?;
    Ok(Issued { cert, key, not_after: now + DAY * days })
}

/// Issues a certificate for `subject` signed by the CA in `ca_dir`, valid `days` from `now`,
/// written to `out` (created if missing) as `STEM.pem` and `STEM.key` (0600).
pub fn issue(ca_dir: &Path, subject: &Subject, days: u32, out: &Path, now: SystemTime) -> Result<Issued, CertsError> {
    subject.check()?;
    let stem = subject.file_stem();
    let (cert, key) = (out.join(format!("{stem}.pem")), out.join(format!("{stem}.key")));
    refuse_existing(&[&cert, &key])?;
    let issuer = signer(ca_dir)?;
    let mut params = params(&subject.common_name(), days, now)?;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    match subject {
        Subject::Broker { hosts } => {
            if hosts.is_empty() {
                return Err(CertsError::BadSubject(
                    "a broker certificate needs the names clients connect to: --host broker.example (repeat for each name or IP address)".into(),
                ));
            }
            if let Some(bad) = hosts.iter().find(|h| !is_host(h)) {
                return Err(CertsError::BadSubject(format!(
                    "--host {bad:?} is neither a DNS name nor an IP address; give the name clients connect to, e.g. broker.example or 192.0.2.10"
                )));
            }
            params.subject_alt_names = CertificateParams::new(hosts.clone())
                .map_err(|e| CertsError::BadSubject(format!("--host {hosts:?}: {e}; give DNS names or IP addresses")))?
                .subject_alt_names;
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        }
        Subject::Device(_) | Subject::Service(_) => {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
    }
    let key_pair = KeyPair::generate()?;
    let certificate = params.signed_by(&key_pair, &issuer)?;
    create_dir(out)?;
    // Recorded first: a certificate the CA has no record of could never be revoked.
    let not_after = now + DAY * days;
    let serial = params.serial_number.as_ref().map(SerialNumber::to_bytes).unwrap_or_default();
    revoke::record(ca_dir, &serial, &subject.common_name(), not_after)?;
    write_new(&key, key_pair.serialize_pem().as_bytes(), 0o600)?;
    write_new(&cert, certificate.pem().as_bytes(), 0o644)?;
    Ok(Issued { cert, key, not_after })
}

/// The CA of `ca_dir`, to sign with.
fn signer(ca_dir: &Path) -> Result<Issuer<'static, KeyPair>, CertsError> {
    let (ca_key, ca_cert) = (read_text(&ca_dir.join(CA_KEY))?, read_text(&ca_dir.join(CA_CERT))?);
    let bad_ca = |path: &str, e: rcgen::Error| CertsError::BadCa { path: ca_dir.join(path), why: e.to_string() };
    let ca_key = KeyPair::from_pem(&ca_key).map_err(|e| bad_ca(CA_KEY, e))?;
    Issuer::from_ca_cert_pem(&ca_cert, ca_key).map_err(|e| bad_ca(CA_CERT, e))
}

/// Parameters every certificate shares: its name, a random serial and its validity (from an
/// hour before `now`, for clocks a little behind).
fn params(common_name: &str, days: u32, now: SystemTime) -> Result<CertificateParams, CertsError> {
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(CertsError::NoDays);
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, common_name);
    let mut serial = [0u8; 16];
    rand::rng().fill_bytes(&mut serial);
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.not_before = (now - Duration::from_secs(3600)).into();
    params.not_after = (now + DAY * days).into();
    Ok(params)
}

/// A DNS name (letters, digits, '-', labels of 1 to 63 between dots, a leading "*." allowed) or
/// an IP address.
fn is_host(host: &str) -> bool {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn refuse_existing(paths: &[&Path]) -> Result<(), CertsError> {
    match paths.iter().find(|p| p.exists()) {
        Some(path) => Err(CertsError::Exists(path.to_path_buf())),
        None => Ok(()),
    }
}

fn create_dir(dir: &Path) -> Result<(), CertsError> {
    std::fs::create_dir_all(dir).map_err(|error| CertsError::Io { path: dir.into(), error })
}

fn read_text(path: &Path) -> Result<String, CertsError> {
    std::fs::read_to_string(path).map_err(|error| CertsError::Io { path: path.into(), error })
}

/// Writes a file that must not exist yet, with `mode` from its creation on.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CertsError> {
    let io = |error: std::io::Error| match error.kind() {
        std::io::ErrorKind::AlreadyExists => CertsError::Exists(path.into()),
        _ => CertsError::Io { path: path.into(), error },
    };
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(io)?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(io)
}

mod revoke;

pub use revoke::{issued, revoke, write_crl, IssuedLine, CRL, ISSUED, REVOKED};

#[cfg(test)]
mod tests;
