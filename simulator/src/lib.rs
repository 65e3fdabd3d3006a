//! ledtrad's simulator: virtual homes whose devices run the real agent library against a
//! real MQTT broker, with an operator that signs and pushes a real catalogue, and an audit
//! that checks consent independently of the agents.
//!
//! # Layout
//!
//! - [`home`]: a household's people and devices, all from one seed.
//! - [`people`]: how people answer offers: relevance and intrusiveness.
//! - [`board`]: virtual sensors (embedded-hal) and the firmware running against them.
//! - [`bench`]: benchmarks that print their figures as JSON.
//! - [`request`]: request-mode round trips through a broker (`bench request`).
//! - [`footprint`]: the agent's resident memory with a large catalogue and a month of history.
//! - [`audit`]: an independent subscription counting what reaches the broker.
//! - [`clock`]: the homes' local time, the simulation step, and local midnight.
//! - [`scenario`]: scenario files: what a run simulates, written down.
//! - [`run`]: one run, end to end.
//! - [`files`]: the open files a run needs (sockets, databases) and raising the limit.
//! - [`shard`]: a slice of a run's homes and their agents, stepped on a virtual clock.
//! - [`worker`]: worker processes that each run a shard for a larger run.
//! - [`survey`]: people's privacy attitudes from survey figures, and the consent they give.
//! - [`summary`]: the results as a table or JSON.
//! - [`tls`]: mutual TLS for a simulated fleet: a certificate per agent, a Mosquitto of the
//!   run's own from `fleet-tls.conf`, and what the run's processes spent in CPU time.
//! - [`tls_cost`]: what mutual TLS costs a run against plain TCP (`bench tls`).
//! - [`lab_report`]: the laboratory report, one HTML page of a run's or a comparison's figures and plots.

pub mod audit;
pub mod bench;
pub mod board;
pub mod clock;
pub mod collect_bench;
pub mod files;
pub mod footprint;
pub mod home;
pub mod lab_report;
pub mod moment;
pub mod people;
pub mod request;
pub mod run;
pub mod scenario;
pub mod shard;
pub mod soak;
pub mod summary;
pub mod survey;
pub mod tls;
pub mod tls_cost;
pub mod worker;

/// The example catalogue shipped with ledtrad, used when no `--catalogue` is given.
pub const EXAMPLE_CATALOGUE: &str = include_str!("../../examples/catalogues/home.toml");
