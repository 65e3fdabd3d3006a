//! The operator's MQTT connection settings (on the one transport, `ledtrad-mqtt`), shared by
//! push, status watching and the offer service, and the broker login read from a password file.

use std::path::{Path, PathBuf};

use ledtrad_mqtt::{Access, ClientOptions};
use ledtrad_protocol::broker::{BrokerUrl, Credentials, InvalidCredentials};
use rumqttc::v5::mqttbytes::v5::Publish;
use rumqttc::v5::{AsyncClient, EventLoop, MqttOptions};

/// The most QoS 1 publishes an operator client has in flight at once.
pub const MAX_INFLIGHT: u16 = 100;

/// The largest packet the operator client sends or receives.
pub const MAX_PACKET_BYTES: usize = 2 * 1024 * 1024;

/// An MQTT 5 client for `broker` with the transport's shared settings (TCP_NODELAY, room for
/// the largest catalogue), without a login. Every part of ledtrad speaks MQTT 5 (offer
/// requests need its response topic and correlation data).
pub fn connect(broker: &BrokerUrl, client_id: &str) -> (AsyncClient, EventLoop) {
    connect_as(broker, &Access::default(), client_id)
}

/// Like [`connect`], presenting `access` (a login, TLS).
pub fn connect_as(broker: &BrokerUrl, access: &Access, client_id: &str) -> (AsyncClient, EventLoop) {
    client_options(broker, access, client_id).connect()
}

/// The operator's client options for `broker`: the transport's defaults (keep-alive 30 s, a
/// clean start, TCP_NODELAY), room for the largest catalogue both ways, and `access`.
pub fn client_options(broker: &BrokerUrl, access: &Access, client_id: &str) -> ClientOptions {
    ClientOptions::new(broker, client_id)
        .max_packet_bytes(MAX_PACKET_BYTES as u32)
        .max_inflight(MAX_INFLIGHT)
        .access(access)
}

/// The rumqttc options of [`client_options`] without a login, for callers that set up a
/// client of their own (tests).
pub fn options(broker: &BrokerUrl, client_id: &str) -> MqttOptions {
    client_options(broker, &Access::default(), client_id).mqtt_options()
}

/// A publish's topic as text (`""` when it is not UTF-8, which no ledtrad topic parses as).
pub fn topic_of(publish: &Publish) -> &str {
    std::str::from_utf8(&publish.topic).unwrap_or_default()
}

/// A broker login that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The password file could not be read.
    #[error("password file '{path}': {error}; give a file you can read that holds the broker password")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        error: std::io::Error,
    },
    /// The username or the file's content is not a usable login.
    #[error("password file '{path}': {why}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: InvalidCredentials,
    },
}

/// The login for `username` with the password on the one line of `password_file`.
pub fn read_login(username: &str, password_file: &Path) -> Result<Credentials, LoginError> {
    let text = std::fs::read_to_string(password_file)
        .map_err(|error| LoginError::Read { path: password_file.into(), error })?;
    Credentials::try_new(username, &text).map_err(|why| LoginError::Invalid { path: password_file.into(), why })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_is_read_from_its_file_and_a_bad_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("operator.password");
        std::fs::write(&good, "s3cret\n").unwrap();
        let login = read_login("operator", &good).unwrap();
        assert_eq!((login.username(), login.password()), ("operator", "s3cret"));

        let missing = dir.path().join("missing");
        let err = read_login("operator", &missing).unwrap_err().to_string();
        assert!(err.starts_with(&format!("password file '{}': ", missing.display())), "{err}");
        assert!(err.contains("give a file you can read"), "{err}");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let err = read_login("operator", &empty).unwrap_err().to_string();
        assert!(err.contains("the password file is empty"), "{err}");
    }
}
