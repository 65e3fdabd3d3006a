//! ledtrad's pure decision core (DESIGN §8).
//!
//! The engine never reads a clock, a random source, the network or a file: time comes in as
//! `now` arguments, stored state is handed back in by the agent on start
//! ([`Engine::restore_impression`], [`Engine::restore_feedback`]), and results are returned
//! as values. A `clippy.toml` beside this crate disallows clock and file calls, and CI checks
//! that the crate pulls in no tokio, rumqttc or rusqlite.
//!
//! # Layout
//!
//! No module imports one that imports it back; this root only declares and re-exports.
//!
//! - `context`: what one decision reads of its moment, as plain values (a leaf).
//! - [`trust`]: verifying signed catalogue envelopes against pinned keys.
//! - [`compiled`]: a catalogue (and its journeys) compiled once at load.
//! - [`answers`]: what people's answers rule out (dismissal blocks, suppressions, conversions).
//! - [`features`]: signal windows into features (sources and, in bounded memory, the windows
//!   derived from them), with consent on entry and purge on revoke.
//! - [`home`]: what a home's screens showed on a local day, for the home-wide caps (a leaf).
//! - [`history`]: impressions per offer per day, and Beta posteriors from feedback.
//! - [`model`]: the fleet's TensorFlow Lite scoring model behind one runtime interface (tract
//!   by default, TensorFlow Lite's own with the `tflite` feature).
//! - [`journey`]: where the device stands in each campaign's journey.
//! - `eligibility`: the eligibility stages, each rejection named.
//! - `scoring`: propensity (the fleet model's or the built-in logistic prior, run on all
//!   candidates in one batch; Beta posterior; Thompson sampling), value,
//!   priority and the intrusiveness penalty.
//! - [`prompts`]: when to ask for consent.
//! - [`why`]: the coarse, truthful "why".
//! - `pipeline`: DESIGN §8's ten steps, one function each, run in order in one place.
//! - [`remote`]: the offer service's answer as candidates under the catalogue's rules.
//! - [`DeviceProfile`] and [`Engine`]: who the engine decides for, and the state of one device,
//!   tying these together.

pub mod answers;
pub mod compiled;
mod context;
mod eligibility;
mod engine;
pub mod features;
pub mod history;
pub mod home;
pub mod journey;
mod maps;
pub mod model;
mod pipeline;
mod profile;
pub mod prompts;
pub mod remote;
mod scoring;
pub mod share;
pub mod trust;
mod verdict;
pub mod why;

pub use compiled::AppliedCatalogue;
pub use context::{Draw, Policy};
pub use eligibility::in_holdout;
pub use engine::{Engine, FeedbackApplied, FeedbackError, Purged, RECENT_DECISIONS, RECENT_TRACES};
pub use features::{LocalTime, SignalOutcome};
pub use maps::{FastMap, FastSet};
pub use model::{FleetModel, ModelError, RuntimeKind};
pub use profile::{DeviceProfile, DEFAULT_CAMOUFLAGE_SHARE};
pub use remote::{RemoteError, RemoteOffers, MAX_REMOTE_OFFERS};
pub use scoring::{INTRUSIVENESS, PRIOR_WEIGHT, TRACE_SCORES};
pub use share::SharedCatalogues;
pub use trust::{Refusal, TrustedKeys};

#[cfg(test)]
mod tests;
