//! The ledtrad agent: a synchronous core and a thin tokio shell around [`ledtrad_engine`]. It keeps the device's state in
//! SQLite, follows its fleet's signed catalogue over MQTT, sends only what consent allows
//! through one egress gate, and answers the device UI on a loopback HTTP API.
//!
//! # Layout
//!
//! - [`config`]: the TOML config, checked into [`config::Config`].
//! - [`clock`]: where time comes from (system, or manual for simulation and tests).
//! - [`store`]: SQLite with migrations: consent ledger, catalogues, impressions, feedback.
//! - [`egress`]: the one place messages leave the device, checking consent per purpose.
//! - [`explain`]: a decision explained as text (`ledtrad-agent explain`).
//! - [`reports`]: measurement counts, noised before they leave.
//! - [`household`]: whose consent a personal or shared device works under.
//! - [`handle`]: the cloneable command handle and its replies.
//! - [`core`]: the agent's synchronous core: takes events with the time, puts consent
//!   transitions, delivery, offer requests, report tallies and status in force.
//! - [`purge`]: what the device loses with a consent change, computed once per transition.
//! - [`runtime`]: the tokio shell: the one `select!` loop that feeds the core and carries its
//!   answers out.
//! - [`api`]: the local HTTP API.
//! - [`link`]: the sensor board's serial (or TCP) link: frames read, checked and counted.
//! - [`memory`]: what the daily prune freed, given back to the system.
//! - [`broker`]: an embedded MQTT broker for demos, the simulator and tests.

pub mod api;
#[cfg(feature = "embedded-broker")]
pub use ledtrad_mqtt::broker;
pub mod clock;
pub mod config;
pub mod core;
pub mod egress;
pub mod events;
pub mod explain;
pub mod handle;
pub mod home;
pub mod household;
pub mod link;
pub mod memory;
pub mod purge;
pub mod reports;
pub mod runtime;
pub mod store;

/// The pure decision core the agent wraps, for embedders and benchmarks.
pub use ledtrad_engine as engine;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Config, ConfigError, RawConfig, RawKey};
pub use handle::{
    AgentError, AgentHandle, AgentStatus, ConsentChange, ConsentView, OfferOutcome, OutboxStatus, SignalsOutcome,
    StorageStatus,
};
pub use runtime::{spawn, RunningAgent, StartError};
