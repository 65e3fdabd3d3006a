//! The agent's TOML config: plain data ([`RawConfig`]) read from a reader or a path, then
//! checked into [`Config`], where every value is valid.

use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use ledtrad_engine::{LocalTime, ModelError, Policy, RuntimeKind, TrustedKeys};
use ledtrad_mqtt::{Access, ClientCert, ClientTls, TlsFile, TlsFiles};
use ledtrad_protocol::broker::{BrokerUrl, Credentials, InvalidCredentials};
use ledtrad_protocol::{DeviceId, DeviceKind, FleetId, KeyId, PersonId};

use crate::api::listen::ApiAddress;
use crate::household::Sharing;
use serde::{Deserialize, Serialize};

/// The owner a config names when it names none. A home's screens must each name theirs (the
/// same person's id on every screen of the home), so joining a home refuses this one.
pub const DEFAULT_OWNER: &str = "owner";

/// The config as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The device's pseudonymous id (not a serial number).
    pub device_id: String,
    /// `fridge`, `ereader` or `lock_screen`.
    pub kind: String,
    /// The fleet whose catalogue the device follows.
    pub fleet: String,
    /// The MQTT broker, `mqtt://HOST:PORT`, or `mqtts://HOST:PORT` for TLS (then `ca_file`).
    pub broker: String,
    /// For an `mqtts://` broker: the CA certificate (PEM) that signed the broker's certificate.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// For mutual TLS: this device's certificate (PEM; its identity is the device_id, which a
    /// broker set up as `deploy/mosquitto/fleet-tls.conf` takes as the username).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// For mutual TLS: the private key of `cert_file` (PEM, mode 0600).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The username to log in to the broker with. Defaults to `device_id` when
    /// `mqtt_password_file` is given, which is what the shipped Mosquitto ACL expects.
    #[serde(default)]
    pub mqtt_username: Option<String>,
    /// A file holding the broker password on one line; the password itself never goes in the
    /// config. Without it the agent connects without a login.
    #[serde(default)]
    pub mqtt_password_file: Option<PathBuf>,
    /// The SQLite database file.
    pub database: PathBuf,
    /// The local HTTP API's address: a loopback address ("127.0.0.1:7878") or a Unix socket
    /// ("unix:/run/ledtrad/api.sock"). Omit it to run without.
    #[serde(default)]
    pub api: Option<String>,
    /// The Unix socket's mode, octal (default "0600"; "0660" lets its group connect).
    #[serde(default)]
    pub api_socket_mode: Option<String>,
    /// The group given the Unix socket, e.g. the UI's ("ledtrad-ui").
    #[serde(default)]
    pub api_socket_group: Option<String>,
    /// `personal` (its owner's consent applies) or `shared` (the strictest consent of the people
    /// it serves). Defaults: fridges are shared, e-readers and lock screens personal.
    #[serde(default)]
    pub sharing: Option<Sharing>,
    /// The person who owns the device; `PUT /v1/consent/{purpose}` changes their consent.
    #[serde(default)]
    pub owner: Option<String>,
    /// The device's offset from UTC in minutes (e.g. 60 for CET), when no `timezone` is given.
    #[serde(default)]
    pub utc_offset_minutes: i32,
    /// The device's time zone, e.g. "Europe/Stockholm": local days and quiet hours then follow
    /// daylight saving. Overrides `utc_offset_minutes`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// The privacy parameter of the noise on each reported count (default 1; smaller is noisier).
    #[serde(default)]
    pub report_epsilon: Option<f64>,
    /// The share of shown offers drawn from the broadly eligible ones instead of the top score
    /// (0 to 0.5; default 0.1).
    #[serde(default)]
    pub camouflage_share: Option<f64>,
    /// The runtime for the fleet's scoring model: "tract" (default) or "tflite" (builds with the
    /// `tflite` feature only).
    #[serde(default)]
    pub model_runtime: Option<String>,
    /// Seeds the agent's random draws (camouflage, report noise, reconnect jitter) so a run can
    /// be repeated exactly: for simulations and tests only. Omit it on real devices.
    #[serde(default)]
    pub rng_seed: Option<u64>,
    /// Request mode: when the catalogue has no offer for a moment and `request` consent is
    /// granted, ask the fleet's offer service (`ledtrad-op serve`) and wait this many
    /// milliseconds (10 to 5000) for its answer before going on with nothing. Omit it to never
    /// ask.
    #[serde(default)]
    pub offer_request_timeout_ms: Option<u64>,
    /// The sensor board's link: a serial device's path (e.g. "/dev/ttyACM0"; a pty works the
    /// same) or, for a simulated board, "tcp://IP:PORT". Omit it when signals come only
    /// through the local API.
    #[serde(default)]
    pub sensor_link: Option<String>,
    /// The serial link's baud rate (default 115200).
    #[serde(default)]
    pub sensor_baud: Option<u32>,
    /// Serve the reference device UI at `/ui/` on the local API (default false).
    #[serde(default)]
    pub ui: bool,
    /// Raise moments from signals (a level running low, a door opened, a book finished, the
    /// reader put to sleep, the screen woken) and decide at each, sending what to show on
    /// `/v1/events` (default true). Off, only callers of `GET /v1/offer` choose moments.
    #[serde(default)]
    pub raise_moments: Option<bool>,
    /// The level (0 to 1, default 0.2) below which a shelf item counts as running low: the
    /// `inventory_low` moment, at most once per item a day, and again only after the level
    /// rose 0.1 above it.
    #[serde(default)]
    pub inventory_low_below: Option<f64>,
    /// The most the database (with its write-ahead log) may take on disk, in bytes (default
    /// 4194304, 4 MiB; at least 262144). Past it, the agent prunes the oldest data it may
    /// (never the consent ledger, never an unacknowledged report).
    #[serde(default)]
    pub database_budget_bytes: Option<u64>,
    /// Pinned operator public keys.
    #[serde(default)]
    pub operator_keys: Vec<RawKey>,
}

/// A pinned operator key as written (the content of a `.pub` file from `ledtrad-op keygen`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    /// The key id.
    pub id: String,
    /// The Ed25519 public key, 64 hex digits.
    pub public_key: String,
    /// Refuse what this key signs (after a key rotation, or when it may have leaked).
    #[serde(default)]
    pub retired: bool,
}

/// A checked config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The device's pseudonym.
    pub device: DeviceId,
    /// Its kind.
    pub kind: DeviceKind,
    /// Its fleet.
    pub fleet: FleetId,
    /// The broker.
    pub broker: BrokerUrl,
    /// What the agent presents to the broker: its login, if the broker asks for one, and its
    /// TLS set-up for an `mqtts://` broker.
    pub mqtt: Access,
    /// The database file.
    pub database: PathBuf,
    /// The most the database may take on disk, in bytes.
    pub database_budget: u64,
    /// The local API address (loopback), if any.
    pub api: Option<ApiAddress>,
    /// Whether the device is personal or shared.
    pub sharing: Sharing,
    /// The device's owner.
    pub owner: PersonId,
    /// Local time.
    pub local: LocalTime,
    /// The noise parameter for reports.
    pub report_epsilon: f64,
    /// The camouflage share.
    pub camouflage_share: f64,
    /// The runtime for the fleet's scoring model.
    pub model_runtime: RuntimeKind,
    /// How offers are put and chosen. Always [`Policy::Clues`] from a configuration file; the
    /// simulator sets [`Policy::Blunt`] to measure ledtrad against it.
    pub policy: Policy,
    /// A fixed seed for the agent's random draws, if any.
    pub rng_seed: Option<u64>,
    /// How long to wait for the offer service, if the agent asks it at all (request mode).
    pub offer_request_timeout: Option<std::time::Duration>,
    /// Where the sensor board's frames come from, if anywhere.
    pub sensor_link: Option<crate::link::LinkSource>,
    /// Pinned operator keys.
    pub keys: TrustedKeys,
    /// Whether the local API serves the reference device UI at `/ui/`.
    pub ui: bool,
    /// Moments raised from signals, if the agent raises them.
    pub moments: Option<MomentRules>,
    /// Compiled catalogues shared with the other agents of this process, if it holds many
    /// (the simulator); not from the file: a device's agent is alone in its process.
    pub shared_catalogues: Option<ledtrad_engine::SharedCatalogues>,
}

/// A config that cannot be used, naming the field, the value and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config '{path}': {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The text is not valid TOML for a config.
    #[error("config '{origin}': {detail}")]
    Syntax {
        /// Where the text came from.
        origin: String,
        /// The parser's message, with line and column.
        detail: String,
    },
    /// A field has a bad value.
    #[error("config '{origin}': field '{field}': {message}")]
    Field {
        /// Where the text came from.
        origin: String,
        /// The field.
        field: &'static str,
        /// What is wrong and the fix.
        message: String,
    },
}

impl Config {
    /// The engine's view of the device: who it decides for, and how.
    pub fn engine_profile(&self) -> ledtrad_engine::DeviceProfile {
        ledtrad_engine::DeviceProfile {
            device: self.device.clone(),
            kind: self.kind,
            fleet: self.fleet.clone(),
            local: self.local,
            camouflage_share: self.camouflage_share,
            model_runtime: self.model_runtime,
            policy: self.policy,
        }
    }

    /// Reads and checks a config file.
    pub fn from_path(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.into(), source })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Reads and checks config text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| ConfigError::Syntax { origin: origin.into(), detail: e.to_string() })?;
        Self::from_raw(raw, origin)
    }

    /// Checks a raw config: each field, then the whole.
    pub fn from_raw(raw: RawConfig, origin: &str) -> Result<Self, ConfigError> {
        let field =
            |(field, message): (&'static str, String)| ConfigError::Field { origin: origin.into(), field, message };
        let device = DeviceId::try_new(&raw.device_id).map_err(|e| field(("device_id", e.to_string())))?;
        let kind = raw.kind.parse::<DeviceKind>().map_err(|e| field(("kind", format!("{:?}: {e}", raw.kind))))?;
        let fleet = FleetId::try_new(&raw.fleet).map_err(|e| field(("fleet", e.to_string())))?;
        let broker = raw.broker.parse::<BrokerUrl>().map_err(|e| field(("broker", e.to_string())))?;
        let login = mqtt_login(&raw, &device).map_err(field)?;
        let tls = mqtt_tls(&raw).map_err(field)?;
        let mqtt = Access { login, tls };
        mqtt.check(&broker).map_err(|e| field(("broker", e.to_string())))?;
        if raw.database.as_os_str().is_empty() {
            return Err(field((
                "database",
                "is empty; give the path of the SQLite file, e.g. \"/var/lib/ledtrad/agent.db\"".into(),
            )));
        }
        let database_budget = database_budget(&raw).map_err(field)?;
        let api = api_address(&raw).map_err(field)?;
        let owner = PersonId::try_new(raw.owner.as_deref().unwrap_or(DEFAULT_OWNER))
            .map_err(|e| field(("owner", e.to_string())))?;
        let tuning = Tuning::check(&raw).map_err(field)?;
        let sensor_link = sensor_link(&raw).map_err(field)?;
        let keys = trusted_keys(&raw).map_err(field)?;
        let local = local_time(&raw).map_err(field)?;
        let moments = moment_rules(&raw).map_err(field)?;
        Ok(Self {
            device,
            kind,
            fleet,
            broker,
            mqtt,
            database: raw.database,
            database_budget,
            api,
            sharing: raw.sharing.unwrap_or_else(|| Sharing::default_for(kind)),
            owner,
            local,
            report_epsilon: tuning.report_epsilon,
            camouflage_share: tuning.camouflage_share,
            model_runtime: tuning.model_runtime,
            policy: Policy::Clues,
            rng_seed: raw.rng_seed,
            offer_request_timeout: tuning.offer_request_timeout,
            sensor_link,
            keys,
            ui: raw.ui,
            moments,
            shared_catalogues: None,
        })
    }
}

/// How the agent raises moments from signals (`raise_moments`, `inventory_low_below`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MomentRules {
    /// The level below which a shelf item runs low.
    pub low_below: f64,
}

impl MomentRules {
    /// The default level below which a shelf item runs low.
    pub const DEFAULT_LOW: f64 = 0.2;
    /// How far above `low_below` a level must rise before it can run low again.
    pub const REARM: f64 = 0.1;
}

/// A field at fault and what is wrong with it.
type FieldError = (&'static str, String);

/// The database budget: at least what an empty database and a consent ledger need.
fn database_budget(raw: &RawConfig) -> Result<u64, FieldError> {
    use crate::store::retention::{DEFAULT_BUDGET_BYTES, MIN_BUDGET_BYTES};
    match raw.database_budget_bytes {
        None => Ok(DEFAULT_BUDGET_BYTES),
        Some(bytes) if bytes >= MIN_BUDGET_BYTES => Ok(bytes),
        Some(bytes) => Err((
            "database_budget_bytes",
            format!(
                "{bytes} is below {MIN_BUDGET_BYTES}, too small to hold the database's tables and the consent ledger, which is kept whole; give at least {MIN_BUDGET_BYTES} (256 KiB), or omit the field for the default {DEFAULT_BUDGET_BYTES} (4 MiB)"
            ),
        )),
    }
}

/// The local API's address: loopback TCP or a Unix socket.
fn api_address(raw: &RawConfig) -> Result<Option<ApiAddress>, FieldError> {
    match &raw.api {
        Some(text) => {
            ApiAddress::parse(text, raw.api_socket_mode.as_deref(), raw.api_socket_group.as_deref()).map(Some)
        }
        None if raw.api_socket_mode.is_some() || raw.api_socket_group.is_some() => Err((
            "api",
            "is not set, but api_socket_mode or api_socket_group is; set api = \"unix:/run/ledtrad/api.sock\"".into(),
        )),
        None => Ok(None),
    }
}

/// How the agent raises moments from signals, if it does.
fn moment_rules(raw: &RawConfig) -> Result<Option<MomentRules>, FieldError> {
    if raw.raise_moments == Some(false) {
        return Ok(None);
    }
    let below = raw.inventory_low_below.unwrap_or(MomentRules::DEFAULT_LOW);
    if !(below > 0.0 && below < 0.9) {
        return Err((
            "inventory_low_below",
            format!("{below} is outside 0 to 0.9 (exclusive); a shelf level is a share of a full slot, e.g. 0.2"),
        ));
    }
    Ok(Some(MomentRules { low_below: below }))
}

/// The device's local time: a time zone by name, or a fixed offset.
fn local_time(raw: &RawConfig) -> Result<LocalTime, FieldError> {
    if !(-14 * 60..=14 * 60).contains(&raw.utc_offset_minutes) {
        return Err((
            "utc_offset_minutes",
            format!("{} is outside -840..=840 (UTC-14 to UTC+14)", raw.utc_offset_minutes),
        ));
    }
    match &raw.timezone {
        None => Ok(LocalTime::fixed(raw.utc_offset_minutes * 60)),
        Some(name) => name.parse::<chrono_tz::Tz>().map(LocalTime::zone).map_err(|_| {
            let fix = match option_env!("CHRONO_TZ_TIMEZONE_FILTER") {
                Some(filter) if cfg!(feature = "device") => format!(
                    "; this device build carries only the zones matching CHRONO_TZ_TIMEZONE_FILTER={filter:?}: name one of them, or build again with this zone in the filter"
                ),
                _ => String::new(),
            };
            ("timezone", format!("{name:?} is not a time zone name; use an IANA name such as \"Europe/Stockholm\"{fix}"))
        }),
    }
}

/// The settings that tune decisions, reports and requests, each within its range.
struct Tuning {
    report_epsilon: f64,
    camouflage_share: f64,
    model_runtime: RuntimeKind,
    offer_request_timeout: Option<std::time::Duration>,
}

impl Tuning {
    fn check(raw: &RawConfig) -> Result<Self, FieldError> {
        let report_epsilon = raw.report_epsilon.unwrap_or(crate::reports::DEFAULT_EPSILON);
        let range = ledtrad_protocol::report::EPSILON_RANGE;
        if !range.contains(&report_epsilon) {
            return Err((
                "report_epsilon",
                format!(
                    "{report_epsilon} is outside {}..={}; 1 is the default, smaller adds more noise",
                    range.start(),
                    range.end()
                ),
            ));
        }
        let camouflage_share = raw.camouflage_share.unwrap_or(ledtrad_engine::DEFAULT_CAMOUFLAGE_SHARE);
        if !(0.0..=0.5).contains(&camouflage_share) {
            return Err((
                "camouflage_share",
                format!("{camouflage_share} is outside 0..=0.5; 0.1 (one shown offer in ten) is the default"),
            ));
        }
        let model_runtime = match raw.model_runtime.as_deref() {
            None => RuntimeKind::default(),
            Some(name) => {
                let kind = name.parse::<RuntimeKind>().map_err(|e| ("model_runtime", e.to_string()))?;
                if !kind.available() {
                    return Err(("model_runtime", ModelError::RuntimeMissing(kind).to_string()));
                }
                kind
            }
        };
        let offer_request_timeout = match raw.offer_request_timeout_ms {
            None => None,
            Some(ms @ 10..=5000) => Some(std::time::Duration::from_millis(ms)),
            Some(ms) => {
                return Err((
                    "offer_request_timeout_ms",
                    format!(
                    "{ms} is outside 10..=5000; 300 suits a service on the same network, omit the field to never ask"
                ),
                ))
            }
        };
        Ok(Self { report_epsilon, camouflage_share, model_runtime, offer_request_timeout })
    }
}

/// The sensor board's link, if the config names one.
fn sensor_link(raw: &RawConfig) -> Result<Option<crate::link::LinkSource>, FieldError> {
    let baud = raw.sensor_baud.unwrap_or(115_200);
    if !(300..=4_000_000).contains(&baud) {
        return Err(("sensor_baud", format!("{baud} is outside 300..=4000000; 115200 is the default")));
    }
    match &raw.sensor_link {
        None => Ok(None),
        Some(text) => crate::link::LinkSource::parse(text, baud).map(Some).map_err(|why| ("sensor_link", why)),
    }
}

/// The pinned operator keys, retired ones included as such; at least one in force.
fn trusted_keys(raw: &RawConfig) -> Result<TrustedKeys, FieldError> {
    if raw.operator_keys.is_empty() {
        return Err((
            "operator_keys",
            "no key is pinned, so every catalogue would be refused; add the [[operator_keys]] entry printed by `ledtrad-op keygen`".into(),
        ));
    }
    let mut keys = TrustedKeys::new();
    for k in &raw.operator_keys {
        let id = KeyId::try_new(&k.id).map_err(|e| ("operator_keys.id", e.to_string()))?;
        let key = parse_public_key(&k.public_key)
            .map_err(|why| ("operator_keys.public_key", format!("key '{id}': {why}")))?;
        if k.retired {
            keys.retire(id);
        } else {
            keys.insert(id, key);
        }
    }
    if keys.is_empty() {
        return Err((
            "operator_keys",
            "every pinned key is retired, so every catalogue would be refused; pin the current key without 'retired = true'".into(),
        ));
    }
    Ok(keys)
}

/// The broker login from `mqtt_username` and the file `mqtt_password_file` names, or the field
/// at fault and what is wrong with it.
fn mqtt_login(raw: &RawConfig, device: &DeviceId) -> Result<Option<Credentials>, FieldError> {
    let path = match (&raw.mqtt_password_file, &raw.mqtt_username) {
        (None, None) => return Ok(None),
        (None, Some(username)) => {
            return Err((
                "mqtt_username",
                format!(
                    "{username:?} is set but mqtt_password_file is not; add mqtt_password_file = \"/etc/ledtrad/mqtt-password\" (a file holding the broker password), or remove mqtt_username to connect without a login"
                ),
            ))
        }
        (Some(path), _) => path,
    };
    if path.as_os_str().is_empty() {
        return Err((
            "mqtt_password_file",
            "is empty; give the path of a file holding the broker password, e.g. \"/etc/ledtrad/mqtt-password\"".into(),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        (
            "mqtt_password_file",
            format!(
                "'{}': {e}; give a file the agent can read (and no one else: mode 0600) holding the broker password",
                path.display()
            ),
        )
    })?;
    let username = raw.mqtt_username.as_deref().unwrap_or(device.as_str());
    Credentials::try_new(username, &text).map(Some).map_err(|e| match e {
        InvalidCredentials::EmptyUsername | InvalidCredentials::BadUsername(_) => ("mqtt_username", e.to_string()),
        InvalidCredentials::EmptyPassword | InvalidCredentials::MultiLinePassword => {
            ("mqtt_password_file", format!("'{}': {e}", path.display()))
        }
    })
}

/// The TLS set-up from `ca_file`, `cert_file` and `key_file`, read and checked (a certificate
/// that expired or a key of another certificate is refused here, at start).
fn mqtt_tls(raw: &RawConfig) -> Result<Option<ClientTls>, FieldError> {
    let client = match (&raw.cert_file, &raw.key_file) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(ClientCert { cert: cert.clone(), key: key.clone() }),
        (Some(_), None) => {
            return Err((
                "key_file",
                "is missing while cert_file is set; give the private key written with the certificate, e.g. \"/etc/ledtrad/device.key\"".into(),
            ))
        }
        (None, Some(_)) => {
            return Err((
                "cert_file",
                "is missing while key_file is set; give the device's certificate, e.g. \"/etc/ledtrad/device.pem\"".into(),
            ))
        }
    };
    let Some(ca) = &raw.ca_file else {
        return match client {
            None => Ok(None),
            Some(_) => Err((
                "ca_file",
                "is missing while cert_file and key_file are set; give the CA certificate that signed the broker's certificate, e.g. \"/etc/ledtrad/ca.pem\"".into(),
            )),
        };
    };
    let files = TlsFiles { ca: ca.clone(), client };
    ClientTls::load(&files).map(Some).map_err(|e| {
        let field = match e.file() {
            TlsFile::Ca => "ca_file",
            TlsFile::Cert => "cert_file",
            TlsFile::Key => "key_file",
        };
        (field, e.to_string())
    })
}

/// Parses a hex Ed25519 public key.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    let bytes =
        hex::decode(text.trim()).map_err(|e| format!("{text:?} is not hex ({e}); copy it from the .pub file"))?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("has {} bytes; an Ed25519 public key has 32 (64 hex digits)", b.len()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| "is not a valid Ed25519 public key".to_string())
}

#[cfg(test)]
mod tests;
