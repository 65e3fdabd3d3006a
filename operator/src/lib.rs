//! ledtrad-op's library: operator keys, catalogue and model checks, signing and pushing to fleets.
//! The `ledtrad-op` binary is a thin CLI over it, and the simulator uses it directly.
//!
//! # Layout
//!
//! - [`campaigns`]: the campaigns a report store holds (`ledtrad-op report` without a campaign).
//! - [`canary`]: a staged rollout's canary against the rest of the fleet, by dismiss rate.
//! - [`certs`]: the fleet's PKI for mutual TLS: a CA, the broker's, devices' and services'
//!   certificates.
//! - [`collect`]: the store of the fleet's reports, as received (SQLite).
//! - [`html`]: the report page, one self-contained HTML file with a plot of the daily rates.
//! - [`keys`]: generating, saving and loading Ed25519 operator keys.
//! - [`load`]: reading catalogues from TOML or JSON and reporting every problem at once.
//! - [`sign`]: the canonical encoding and the signed envelope.
//! - [`model`]: checking a scoring model and its manifest the way devices will, and signing it.
//! - [`offline`]: envelopes signed without a broker, written to files, inspected and checked
//!   before `ledtrad-op publish` sends them.
//! - [`mqtt`]: connection settings shared by the MQTT commands, and the broker login.
//! - [`push`]: publishing an envelope retained, QoS 1, on a fleet's catalogue topic.
//! - [`report`]: `ledtrad-op report`, a campaign's summary from the report store as a table.
//! - [`serve`]: the offer service: answering offer requests (MQTT 5 request/response) and
//!   collecting reports.
//! - [`reports`]: summing devices' noised reports into totals with intervals; small groups suppressed.
//! - [`uplift`]: a campaign's per-arm rates, uplift and daily series, with intervals for
//!   sampling and noise.
//! - [`status`]: reading devices' retained status topics (which version each device applied).

pub mod campaigns;
pub mod canary;
pub mod certs;
pub mod collect;
pub mod diff;
pub mod html;
pub mod keys;
pub mod load;
pub mod model;
pub mod mqtt;
pub mod offers;
pub mod offline;
pub mod push;
pub mod report;
pub mod reports;
pub mod serve;
pub mod sign;
pub mod status;
pub mod uplift;

pub use keys::OperatorKey;
pub use load::{load_catalogue, LoadError};
pub use push::{keep_retained, publish_retained, publish_retained_as, push_envelope, KeepEnd, Kept, PushError};
pub use sign::{sign_catalogue, SignOptions};
