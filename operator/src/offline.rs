//! Offline signing: envelopes signed on a machine without a broker, written to a file, and
//! published later from the online host by `ledtrad-op publish`, which reads back what an
//! envelope is (kind, fleet, version, key, expiry) and refuses one that devices would refuse
//! anyway: expired, or not newer than what the fleet's devices report.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use ledtrad_protocol::envelope::{Envelope, SignedCatalogue};
use ledtrad_protocol::model::SignedModel;
use ledtrad_protocol::status::DeviceStatus;
use ledtrad_protocol::topic::Topic;
use ledtrad_protocol::{codec, FleetId, KeyId, UnixTime};

/// What an envelope carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An offer catalogue.
    Catalogue,
    /// The fleet's scoring model.
    Model,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Catalogue => "catalogue",
            Kind::Model => "model",
        })
    }
}

/// What a signed envelope says about itself (read without its key: the devices check the
/// signature).
#[derive(Debug, Clone, PartialEq)]
pub struct Signed {
    /// Catalogue or model.
    pub kind: Kind,
    /// The fleet it is for.
    pub fleet: FleetId,
    /// Its version.
    pub version: u64,
    /// The key that signed it.
    pub key_id: KeyId,
    /// When it was signed.
    pub issued_at: UnixTime,
    /// When devices stop accepting it.
    pub expires_at: UnixTime,
    /// For a staged rollout's stage, the share of devices that apply it.
    pub share: Option<f64>,
    /// What is inside, for people: "15 offers", "model 'propensity-mlp' (12 inputs)".
    pub contents: String,
    /// The envelope's size.
    pub bytes: usize,
}

/// What a fleet's devices report of one kind of envelope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FleetReports {
    /// The highest version any of them applied.
    pub applied: Option<u64>,
    /// Whether some wait for the envelope's version in a staged rollout not yet at them.
    pub rollout_waiting: bool,
}

/// Why an envelope cannot be written, read or published.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// The output file exists already.
    #[error("'{}' exists already: an envelope is never overwritten; choose another --out or remove that file first", .0.display())]
    Exists(PathBuf),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not a signed envelope.
    #[error("'{}' is not a signed ledtrad envelope ({detail}); pass a file written by `ledtrad-op catalogue sign` or `ledtrad-op model sign`", path.display())]
    NotAnEnvelope {
        /// The file.
        path: PathBuf,
        /// What did not decode.
        detail: String,
    },
    /// The envelope has expired.
    #[error("{signed} expired at {} (it is {now}): devices would refuse it; sign it again with a later --expires-in-days", signed.expires_at)]
    Expired {
        /// The envelope.
        signed: Box<Signed>,
        /// The time now.
        now: UnixTime,
    },
    /// Devices of the fleet already report this version or a newer one.
    #[error("devices of fleet '{}' report {} version {applied}: {signed} is not newer, and they would refuse it; sign it again with --version {} or more", signed.fleet, signed.kind, applied + 1)]
    NotNewer {
        /// The envelope.
        signed: Box<Signed>,
        /// The highest version the fleet's devices report.
        applied: u64,
    },
}

/// Reads what `envelope` (from the file `path`, for messages) carries.
pub fn inspect(envelope: &[u8], path: &Path) -> Result<Signed, OfflineError> {
    let not = |detail: String| OfflineError::NotAnEnvelope { path: path.into(), detail };
    let outer: Envelope = codec::from_postcard(envelope, "envelope").map_err(|e| not(e.to_string()))?;
    let catalogue = codec::from_postcard::<SignedCatalogue>(&outer.signed, "signed catalogue");
    let model = codec::from_postcard::<SignedModel>(&outer.signed, "signed model");
    let signed = match (catalogue, model) {
        (Ok(c), Err(_)) => Signed {
            kind: Kind::Catalogue,
            contents: format!("{} offers", c.catalogue.offers.len()),
            share: c.rollout.map(|r| r.share),
            fleet: c.fleet,
            version: c.version,
            key_id: c.key_id,
            issued_at: c.issued_at,
            expires_at: c.expires_at,
            bytes: envelope.len(),
        },
        (Err(_), Ok(m)) => Signed {
            kind: Kind::Model,
            contents: format!("model '{}' ({} inputs)", m.manifest.name, m.manifest.inputs.len()),
            share: None,
            fleet: m.fleet,
            version: m.version,
            key_id: m.key_id,
            issued_at: m.issued_at,
            expires_at: m.expires_at,
            bytes: envelope.len(),
        },
        (Ok(_), Ok(_)) => return Err(not("it reads both as a catalogue and as a model".into())),
        (Err(c), Err(_)) => return Err(not(format!("neither a catalogue nor a model: {c}"))),
    };
    if signed.key_id != outer.key_id {
        return Err(not(format!("signed by '{}' but labelled '{}'", signed.key_id, outer.key_id)));
    }
    Ok(signed)
}

/// Writes `envelope` to `path`, which must not exist yet, readable by its owner only (the file
/// is not secret, but it is what the fleet will trust).
pub fn write(path: &Path, envelope: &[u8]) -> Result<(), OfflineError> {
    let io = |source| OfflineError::Io { path: path.into(), source };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => OfflineError::Exists(path.into()),
        _ => io(e),
    })?;
    file.write_all(envelope).and_then(|()| file.sync_all()).map_err(io)
}

/// Reads the envelope file at `path` and what it carries.
pub fn read(path: &Path) -> Result<(Vec<u8>, Signed), OfflineError> {
    let envelope = std::fs::read(path).map_err(|source| OfflineError::Io { path: path.into(), source })?;
    let signed = inspect(&envelope, path)?;
    Ok((envelope, signed))
}

impl Signed {
    /// The retained topic it is published on.
    pub fn topic(&self) -> Topic {
        match self.kind {
            Kind::Catalogue => Topic::Catalogue(self.fleet.clone()),
            Kind::Model => Topic::Model(self.fleet.clone()),
        }
    }

    /// What the fleet's devices among `statuses` report of this kind: the highest version
    /// applied, and whether some wait for this very version in a staged rollout.
    pub fn fleet_reports<'a>(&self, statuses: impl IntoIterator<Item = &'a DeviceStatus>) -> FleetReports {
        let mut reports = FleetReports::default();
        for status in statuses.into_iter().filter(|s| s.fleet == self.fleet) {
            let applied = match self.kind {
                Kind::Catalogue => status.catalogue_version,
                Kind::Model => status.model_version,
            };
            reports.applied = reports.applied.max(applied);
            reports.rollout_waiting |= self.kind == Kind::Catalogue && status.rollout_waiting == Some(self.version);
        }
        reports
    }

    /// Whether devices would take it at `now`, given what they report: a version above the
    /// highest applied, or the same version widening a rollout some devices still wait for.
    pub fn check(&self, now: UnixTime, reports: FleetReports) -> Result<(), OfflineError> {
        if self.expires_at <= now {
            return Err(OfflineError::Expired { signed: Box::new(self.clone()), now });
        }
        match reports.applied {
            Some(applied) if self.version == applied && reports.rollout_waiting => Ok(()),
            Some(applied) if self.version <= applied => {
                Err(OfflineError::NotNewer { signed: Box::new(self.clone()), applied })
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Signed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} version {} of fleet '{}'", self.kind, self.version, self.fleet)
    }
}

impl Signed {
    /// Everything it says, on one line: what `publish` shows before it sends.
    pub fn describe(&self) -> String {
        let reach = self.share.map_or_else(|| "every device".into(), |s| format!("{:.0}% of the devices", s * 100.0));
        format!(
            "{self}: {}, for {reach}, signed by key '{}' at {}, expires {}, {} bytes",
            self.contents, self.key_id, self.issued_at, self.expires_at, self.bytes
        )
    }
}

#[cfg(test)]
mod tests;
