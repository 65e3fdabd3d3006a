//! Revocation: the CA directory keeps `issued.tsv` (one line per certificate issued: serial,
//! common name, end of validity, file stem) and `revoked.tsv` (serial, when revoked), and
//! `ca.crl`, the certificate revocation list the broker reads (`crlfile`), signed by the CA
//! with the revoked serials and valid for a number of days: sign it again before then.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams, SerialNumber};

use super::{read_text, signer, CertsError, DAY};

/// Certificates issued by a CA, one line each.
pub const ISSUED: &str = "issued.tsv";
/// Certificates revoked, one line each.
pub const REVOKED: &str = "revoked.tsv";
/// The certificate revocation list (PEM).
pub const CRL: &str = "ca.crl";

/// One issued certificate, as `issued.tsv` records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedLine {
    /// Its serial number, hex.
    pub serial: String,
    /// Its common name (the identity the broker takes as username).
    pub name: String,
    /// The end of its validity, seconds since 1970.
    pub not_after: u64,
}

/// Records a certificate the CA in `ca_dir` issued.
pub(super) fn record(ca_dir: &Path, serial: &[u8], name: &str, not_after: SystemTime) -> Result<(), CertsError> {
    let line = format!("{}\t{name}\t{}\n", hex::encode(serial), unix(not_after));
    append(&ca_dir.join(ISSUED), &line)
}

/// The certificates the CA in `ca_dir` issued.
pub fn issued(ca_dir: &Path) -> Result<Vec<IssuedLine>, CertsError> {
    let path = ca_dir.join(ISSUED);
    let text = if path.exists() { read_text(&path)? } else { String::new() };
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let (serial, name, not_after) = (fields.next()?, fields.next()?, fields.next()?.parse().ok()?);
            Some(IssuedLine { serial: serial.into(), name: name.into(), not_after })
        })
        .collect())
}

/// The serials revoked so far, with when.
fn revoked(ca_dir: &Path) -> Result<Vec<(String, u64)>, CertsError> {
    let path = ca_dir.join(REVOKED);
    let text = if path.exists() { read_text(&path)? } else { String::new() };
    Ok(text
        .lines()
        .filter_map(|line| {
            let (serial, at) = line.split_once('\t')?;
            Some((serial.into(), at.parse().ok()?))
        })
        .collect())
}

/// Revokes every unexpired certificate the CA in `ca_dir` issued to `name`, and writes the CRL
/// anew, valid `crl_days`. Returns the serials revoked now.
pub fn revoke(ca_dir: &Path, name: &str, crl_days: u32, now: SystemTime) -> Result<Vec<String>, CertsError> {
    let already: Vec<String> = revoked(ca_dir)?.into_iter().map(|(serial, _)| serial).collect();
    let issued = issued(ca_dir)?;
    let known = issued.iter().any(|c| c.name == name);
    let serials: Vec<String> = issued
        .into_iter()
        .filter(|c| c.name == name && c.not_after > unix(now) && !already.contains(&c.serial))
        .map(|c| c.serial)
        .collect();
    if serials.is_empty() {
        return Err(CertsError::BadSubject(if known {
            format!("every certificate of '{name}' has expired or is revoked already; nothing to revoke")
        } else {
            format!(
                "the CA in '{}' issued no certificate to '{name}'; give a device id or service name from its {ISSUED}",
                ca_dir.display()
            )
        }));
    }
    // The list is signed with the new serials first: were they recorded and the signing then
    // failed, they would count as revoked without being on the list.
    let newly: Vec<(String, u64)> = serials.iter().map(|serial| (serial.clone(), unix(now))).collect();
    sign_crl(ca_dir, crl_days, now, &newly)?;
    for (serial, at) in &newly {
        append(&ca_dir.join(REVOKED), &format!("{serial}\t{at}\n"))?;
    }
    Ok(serials)
}

/// Writes `ca.crl` with every revoked serial, signed by the CA, valid `days` from `now`.
pub fn write_crl(ca_dir: &Path, days: u32, now: SystemTime) -> Result<PathBuf, CertsError> {
    sign_crl(ca_dir, days, now, &[])
}

/// Writes `ca.crl` with every revoked serial and `newly`, signed by the CA, valid `days` from
/// `now`, numbered by its second of signing (so each list's number is above the last's).
fn sign_crl(ca_dir: &Path, days: u32, now: SystemTime, newly: &[(String, u64)]) -> Result<PathBuf, CertsError> {
    if !(1..=super::MAX_DAYS).contains(&days) {
        return Err(CertsError::NoDays);
    }
    let issuer = signer(ca_dir)?;
    let mut revoked = revoked(ca_dir)?;
    revoked.extend_from_slice(newly);
    let revoked_certs = revoked
        .iter()
        .filter_map(|(serial, at)| {
            Some(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&hex::decode(serial).ok()?),
                revocation_time: (UNIX_EPOCH + Duration::from_secs(*at)).into(),
                reason_code: Some(RevocationReason::Unspecified),
                invalidity_date: None,
            })
        })
        .collect();
    let params = CertificateRevocationListParams {
        this_update: (now - Duration::from_secs(3600)).into(),
        next_update: (now + DAY * days).into(),
        crl_number: SerialNumber::from(unix(now).max(1)),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(&issuer)?;
    let path = ca_dir.join(CRL);
    let temporary = ca_dir.join(format!("{CRL}.{}.new", std::process::id()));
    std::fs::write(&temporary, crl.pem()?)
        .and_then(|()| std::fs::rename(&temporary, &path))
        .map_err(|error| CertsError::Io { path: path.clone(), error })?;
    Ok(path)
}

fn append(path: &Path, line: &str) -> Result<(), CertsError> {
    let io = |error| CertsError::Io { path: path.into(), error };
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
    file.write_all(line.as_bytes()).and_then(|()| file.sync_all()).map_err(io)
}

fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}
