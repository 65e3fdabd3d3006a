// Tests unwrap: a panic is a failed test with its message.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};

use super::*;

const DAY: Duration = Duration::from_secs(86_400);

/// A CA and the PEM files of a client certificate it issued, in a temporary directory.
struct Files {
    dir: tempfile::TempDir,
    ca_key: KeyPair,
    ca_params: CertificateParams,
}

impl Files {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
        ca_params.distinguished_name.push(DnType::CommonName, "test fleet CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Self { dir, ca_key, ca_params }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `NAME.pem` and `NAME.key`: a client certificate valid from `from` to `until`.
    fn client(&self, name: &str, from: SystemTime, until: SystemTime) -> ClientCert {
        self.issue(name, from, until, Vec::new())
    }

    /// Like [`Files::client`], for the extended key usages `purposes`.
    fn issue(
        &self,
        name: &str,
        from: SystemTime,
        until: SystemTime,
        purposes: Vec<ExtendedKeyUsagePurpose>,
    ) -> ClientCert {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.extended_key_usages = purposes;
        params.distinguished_name.push(DnType::CommonName, name);
        params.not_before = from.into();
        params.not_after = until.into();
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        let certificate = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(self.path(&format!("{name}.pem")), certificate.pem()).unwrap();
        std::fs::write(self.path(&format!("{name}.key")), key.serialize_pem()).unwrap();
        ClientCert { cert: self.path(&format!("{name}.pem")), key: self.path(&format!("{name}.key")) }
    }

    fn tls(&self, client: Option<ClientCert>) -> TlsFiles {
        TlsFiles { ca: self.path("ca.pem"), client }
    }
}

fn now() -> SystemTime {
    SystemTime::now()
}

#[test]
fn a_ca_alone_and_a_valid_client_certificate_load() {
    let files = Files::new();
    assert!(ClientTls::load(&files.tls(None)).is_ok());
    let client = files.client("fridge-1", now() - DAY, now() + 365 * DAY);
    let tls = ClientTls::load(&files.tls(Some(client.clone()))).unwrap();
    assert_eq!(tls.files().client.as_ref(), Some(&client));
}

#[test]
fn an_expired_or_not_yet_valid_certificate_is_named_with_its_dates() {
    let files = Files::new();
    let expired = files.client("old", now() - 30 * DAY, now() - DAY);
    let err = ClientTls::load(&files.tls(Some(expired))).unwrap_err();
    assert!(matches!(err, TlsError::Expired { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("old.pem") && text.contains("expired at") && text.contains("ledtrad-op certs"), "{text}");

    let early = files.client("early", now() + DAY, now() + 30 * DAY);
    let err = ClientTls::load(&files.tls(Some(early))).unwrap_err();
    assert!(matches!(err, TlsError::NotYetValid { .. }), "{err:?}");
    assert!(err.to_string().contains("set the clock right"), "{err}");
}

#[test]
fn an_expired_certificate_of_another_ca_is_still_found_expired() {
    let files = Files::new();
    let other = Files::new();
    let expired = other.client("old", now() - 30 * DAY, now() - DAY);
    let err = ClientTls::load(&files.tls(Some(expired))).unwrap_err();
    assert!(matches!(err, TlsError::Expired { .. }), "{err:?}");
    // Valid and from another CA: the broker decides (it may trust that CA).
    let valid = other.client("fine", now() - DAY, now() + DAY);
    assert!(ClientTls::load(&files.tls(Some(valid))).is_ok());
}

#[test]
fn a_servers_certificate_is_not_taken_as_a_clients() {
    let files = Files::new();
    let server = files.issue("broker", now() - DAY, now() + DAY, vec![ExtendedKeyUsagePurpose::ServerAuth]);
    let err = ClientTls::load(&files.tls(Some(server))).unwrap_err();
    assert!(matches!(err, TlsError::Malformed { file: TlsFile::Cert, .. }), "{err:?}");
    assert!(err.to_string().contains("not for a client"), "{err}");
}

#[test]
fn a_key_of_another_certificate_is_a_mismatch() {
    let files = Files::new();
    let a = files.client("a", now() - DAY, now() + DAY);
    let b = files.client("b", now() - DAY, now() + DAY);
    let mixed = ClientCert { cert: a.cert.clone(), key: b.key.clone() };
    let err = ClientTls::load(&files.tls(Some(mixed))).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("b.key") && text.contains("a.pem"), "{text}");
}

#[test]
fn missing_empty_and_swapped_files_are_named_with_the_option_to_fix() {
    let files = Files::new();
    let client = files.client("c", now() - DAY, now() + DAY);

    let missing = TlsFiles { ca: files.path("nowhere.pem"), client: None };
    let err = ClientTls::load(&missing).unwrap_err();
    assert!(matches!(err, TlsError::Read { file: TlsFile::Ca, .. }), "{err:?}");
    assert!(err.to_string().contains("nowhere.pem") && err.to_string().contains("ca_file"), "{err}");

    std::fs::write(files.path("empty.pem"), "").unwrap();
    let err = ClientTls::load(&TlsFiles { ca: files.path("empty.pem"), client: None }).unwrap_err();
    assert!(matches!(err, TlsError::Empty { file: TlsFile::Ca, .. }), "{err:?}");
    assert!(err.to_string().contains("-----BEGIN CERTIFICATE-----"), "{err}");

    // The key given as the certificate and the certificate as the key.
    let swapped = ClientCert { cert: client.key.clone(), key: client.cert.clone() };
    let err = ClientTls::load(&files.tls(Some(swapped))).unwrap_err();
    assert!(matches!(err, TlsError::Empty { file: TlsFile::Cert, .. }), "{err:?}");
    assert!(err.to_string().contains("cert_file"), "{err}");

    let keyless = ClientCert { cert: client.cert.clone(), key: client.cert.clone() };
    let err = ClientTls::load(&files.tls(Some(keyless))).unwrap_err();
    assert!(matches!(err, TlsError::Empty { file: TlsFile::Key, .. }), "{err:?}");
    assert!(err.to_string().contains("PRIVATE KEY"), "{err}");

    std::fs::write(files.path("junk.pem"), "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")
        .unwrap();
    let err = ClientTls::load(&TlsFiles { ca: files.path("junk.pem"), client: None }).unwrap_err();
    assert!(matches!(err, TlsError::Malformed { file: TlsFile::Ca, .. }), "{err:?}");
}
