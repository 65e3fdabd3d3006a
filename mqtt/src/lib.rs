//! ledtrad's one MQTT transport: how a client is configured ([`ClientOptions`]), how long it
//! waits between attempts ([`Backoff`]) and how it reconnects ([`Connection`]).
//!
//! This crate alone touches rumqttc's internals (see [`discard_unsent`]); `tests/contract.rs`
//! pins each rumqttc behaviour the rest of ledtrad relies on, against a real broker, which is
//! why rumqttc is pinned to one exact version in the workspace.
//!
//! With the `embedded-broker` feature, [`broker`] starts the brokers the demo, the simulator
//! and the tests use: the embedded rumqttd, and Mosquitto as a process of a test's own.

mod backoff;
#[cfg(feature = "embedded-broker")]
pub mod broker;
mod connection;
mod options;
mod tls;

pub use backoff::Backoff;
pub use connection::{discard_unsent, Connection, Polled};
pub use options::{Access, AccessError, ClientOptions, LastWill, DEFAULT_CONNECT_TIMEOUT};
pub use tls::{tls_problem, ClientCert, ClientTls, TlsError, TlsFile, TlsFiles};

/// The rumqttc types a caller of this crate handles (events, packets, the client).
pub use rumqttc;

/// The longest a client waits between two connection attempts unless it asks otherwise.
pub const DEFAULT_RETRY_CAP: std::time::Duration = std::time::Duration::from_secs(30);

/// The first wait after a failed connection attempt unless a caller asks otherwise.
pub const DEFAULT_RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(100);
