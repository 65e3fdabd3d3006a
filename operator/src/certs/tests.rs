// Tests unwrap: a panic is a failed test with its message.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;

use ledtrad_mqtt::{ClientCert, ClientTls, TlsError, TlsFiles};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, UnixTime};

use super::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn device(id: &str) -> Subject {
    Subject::Device(DeviceId::try_new(id).unwrap())
}

/// Whether `cert` chains to the CA in `ca_dir` as a client certificate, at `now`.
fn chains_to(ca_dir: &Path, cert: &Path, now: SystemTime) -> Result<(), rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(ca_dir.join(CA_CERT)).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap();
    let end_entity = CertificateDer::from_pem_file(cert).unwrap();
    let now = UnixTime::since_unix_epoch(now.duration_since(std::time::UNIX_EPOCH).unwrap());
    verifier.verify_client_cert(&end_entity, &[], now).map(|_| ())
}

#[test]
fn a_ca_issues_device_certificates_that_chain_to_it_with_keys_kept_private() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let ca = init(&dir.path().join("ca"), "home-se fleet CA", CA_DAYS, now).unwrap();
    assert_eq!((mode(&ca.key), mode(&ca.cert)), (0o600, 0o644));

    let out = dir.path().join("devices");
    let issued = issue(&dir.path().join("ca"), &device("kitchen-7f3a"), DEVICE_DAYS, &out, now).unwrap();
    assert_eq!(issued.cert, out.join("kitchen-7f3a.pem"));
    assert_eq!(mode(&issued.key), 0o600);
    chains_to(&dir.path().join("ca"), &issued.cert, now).unwrap();
    let files = TlsFiles { ca: ca.cert.clone(), client: Some(ClientCert { cert: issued.cert, key: issued.key }) };
    ClientTls::load(&files).unwrap();

    // A certificate of another CA does not chain to this one.
    let other = dir.path().join("other");
    init(&other, "another CA", CA_DAYS, now).unwrap();
    let stranger = issue(&other, &device("kitchen-7f3a"), DEVICE_DAYS, &dir.path().join("stranger"), now).unwrap();
    assert!(chains_to(&dir.path().join("ca"), &stranger.cert, now).is_err());
}

#[test]
fn certificates_expire_after_their_days() {
    let dir = tempfile::tempdir().unwrap();
    let long_ago = SystemTime::now() - DAY * 30;
    let ca = init(dir.path(), "CA", CA_DAYS, long_ago).unwrap();
    let issued = issue(dir.path(), &Subject::Service("operator".into()), 7, &dir.path().join("op"), long_ago).unwrap();
    assert!(chains_to(dir.path(), &issued.cert, long_ago + DAY).is_ok());
    let files = TlsFiles { ca: ca.cert, client: Some(ClientCert { cert: issued.cert, key: issued.key }) };
    assert!(matches!(ClientTls::load(&files), Err(TlsError::Expired { .. })));
}

#[test]
fn nothing_is_overwritten_and_bad_requests_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    init(dir.path(), "CA", CA_DAYS, now).unwrap();
    let before = std::fs::read(dir.path().join(CA_KEY)).unwrap();
    let err = init(dir.path(), "CA", CA_DAYS, now).unwrap_err();
    assert!(matches!(&err, CertsError::Exists(p) if p.ends_with(CA_CERT)), "{err}");
    assert_eq!(std::fs::read(dir.path().join(CA_KEY)).unwrap(), before, "the CA key is kept");

    issue(dir.path(), &device("fridge-1"), 1, dir.path(), now).unwrap();
    let err = issue(dir.path(), &device("fridge-1"), 1, dir.path(), now).unwrap_err().to_string();
    assert!(err.contains("fridge-1.pem") && err.contains("never overwritten"), "{err}");

    let err = issue(dir.path(), &Subject::Broker { hosts: Vec::new() }, 1, dir.path(), now).unwrap_err();
    assert!(err.to_string().contains("--host"), "{err}");
    let err = issue(dir.path(), &device("fridge-2"), 0, dir.path(), now).unwrap_err();
    assert!(matches!(err, CertsError::NoDays), "{err}");
    let err = issue(dir.path(), &device("fridge-2"), MAX_DAYS + 1, dir.path(), now).unwrap_err();
    assert!(matches!(err, CertsError::NoDays), "{err}");
    // A device named as a service user would carry its rights; a service name must be a name.
    let err = issue(dir.path(), &device("operator"), 1, dir.path(), now).unwrap_err().to_string();
    assert!(err.contains("'operator' is a service user"), "{err}");
    for bad in ["../escape", "a\tb", ""] {
        let err = issue(dir.path(), &Subject::Service(bad.into()), 1, dir.path(), now).unwrap_err().to_string();
        assert!(err.contains("--name"), "{bad:?}: {err}");
    }
    assert_eq!(issued(dir.path()).unwrap().len(), 1, "only fridge-1 was issued");

    let empty = tempfile::tempdir().unwrap();
    let err = issue(empty.path(), &device("fridge-3"), 1, empty.path(), now).unwrap_err().to_string();
    assert!(err.contains("ca.key"), "{err}");
    std::fs::write(empty.path().join(CA_KEY), "not a key").unwrap();
    std::fs::write(empty.path().join(CA_CERT), "not a certificate").unwrap();
    let err = issue(empty.path(), &device("fridge-3"), 1, empty.path(), now).unwrap_err().to_string();
    assert!(err.contains("ca.key") && err.contains("certs init"), "{err}");
    assert!(!empty.path().join("fridge-3.key").exists(), "nothing is written for a refused request");
}

#[test]
fn a_broker_certificate_names_its_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    init(dir.path(), "CA", CA_DAYS, now).unwrap();
    let hosts = vec!["broker.example".to_string(), "127.0.0.1".to_string()];
    let issued = issue(dir.path(), &Subject::Broker { hosts }, SERVICE_DAYS, dir.path(), now).unwrap();
    assert_eq!(issued.cert, dir.path().join("broker.pem"));
    let err = issue(dir.path(), &Subject::Broker { hosts: vec!["bad name!".into()] }, 1, &dir.path().join("x"), now)
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad name!"), "{err}");
}

/// Whether `cert` chains to the CA in `ca_dir` given its revocation list.
fn chains_with_crl(ca_dir: &Path, cert: &Path) -> Result<(), rustls::Error> {
    use rustls::pki_types::CertificateRevocationListDer;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(ca_dir.join(CA_CERT)).unwrap()).unwrap();
    let crl = CertificateRevocationListDer::from_pem_file(ca_dir.join(CRL)).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .with_crls([crl])
        .build()
        .unwrap();
    let now = UnixTime::since_unix_epoch(SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap());
    verifier.verify_client_cert(&CertificateDer::from_pem_file(cert).unwrap(), &[], now).map(|_| ())
}

#[test]
fn a_revoked_certificate_is_on_the_ca_revocation_list_and_the_others_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    init(dir.path(), "CA", CA_DAYS, now).unwrap();
    let lost = issue(dir.path(), &device("fridge-lost"), 30, &dir.path().join("a"), now).unwrap();
    let kept = issue(dir.path(), &device("fridge-kept"), 30, &dir.path().join("b"), now).unwrap();
    assert_eq!(
        issued(dir.path()).unwrap().iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["fridge-lost", "fridge-kept"]
    );

    let serials = revoke(dir.path(), "fridge-lost", 30, now).unwrap();
    assert_eq!(serials.len(), 1);
    let err = chains_with_crl(dir.path(), &lost.cert).unwrap_err();
    assert!(matches!(err, rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)), "{err:?}");
    chains_with_crl(dir.path(), &kept.cert).unwrap();

    // Signed again later, it still lists the revoked one.
    write_crl(dir.path(), 7, now + DAY).unwrap();
    assert!(chains_with_crl(dir.path(), &lost.cert).is_err());
    chains_with_crl(dir.path(), &kept.cert).unwrap();

    let err = revoke(dir.path(), "fridge-lost", 30, now).unwrap_err().to_string();
    assert!(err.contains("revoked already"), "{err}");
    let err = revoke(dir.path(), "fridge-unknown", 30, now).unwrap_err().to_string();
    assert!(err.contains("issued no certificate to 'fridge-unknown'"), "{err}");
    assert!(matches!(write_crl(dir.path(), 0, now), Err(CertsError::NoDays)));
}
