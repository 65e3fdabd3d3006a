//! ledtrad's simulator: virtual homes whose devices run the real agent library against a
//! real MQTT broker, with an operator that signs and pushes a real catalogue, and an audit
//! that checks consent independently of the agents.
//!
//! # Layout
//!
//! - [`home`]: a household's devices, people, consent and answers, all from one seed.
//! - [`board`]: virtual sensors (embedded-hal) and the firmware running against them.
//! - [`bench`]: benchmarks that print their figures as JSON.
//! - [`request`]: request-mode round trips through a broker (`bench request`).
//! - [`footprint`]: the agent's resident memory with a large catalogue and a month of history.
//! - [`audit`]: an independent subscription counting what reaches the broker.
//! - [`scenario`]: scenario files: what a run simulates, written down.
//! - [`run`]: one run, end to end.
//! - [`survey`]: people's privacy attitudes from survey figures, and the consent they give.
//! - [`summary`]: the results as a table or JSON.

pub mod audit;
pub mod bench;
pub mod board;
pub mod footprint;
pub mod home;
pub mod request;
pub mod run;
pub mod scenario;
pub mod summary;
pub mod survey;

/// The example catalogue shipped with ledtrad, used when no `--catalogue` is given.
pub const EXAMPLE_CATALOGUE: &str = include_str!("../../examples/catalogues/home.toml");
