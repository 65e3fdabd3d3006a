//! `ledtrad-sim`: run a fleet of virtual homes against a real broker.

mod cli_run;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ledtrad_agent::broker::EmbeddedBroker;
use ledtrad_agent::engine::Policy;
use ledtrad_agent::engine::{ModelError, RuntimeKind};
use ledtrad_operator::load::{load_catalogue, parse_catalogue};
use ledtrad_protocol::UnixTime;

use cli_run::{run_command, RunArgs};

/// Simulate ledtrad homes: real agents, a real broker, a signed catalogue, simulated people.
#[derive(Parser)]
#[command(name = "ledtrad-sim", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run homes (a fridge each, lock screens and e-readers by their people) through
    /// simulated days.
    Run {
        #[command(flatten)]
        args: RunArgs,
        /// How offers are put: clues (ledtrad's: questions, coarse whys, camouflage, an
        /// intrusiveness penalty) or blunt (statements, precise whys, neither).
        #[arg(long, default_value = "clues")]
        policy: Policy,
    },
    /// Run the same households under each policy and put the results side by side.
    Compare {
        #[command(flatten)]
        args: RunArgs,
        /// The policies, in order (clues is ledtrad's; blunt states offers, gives the reading
        /// as the why, and has neither camouflage nor an intrusiveness penalty).
        #[arg(long, value_delimiter = ',', default_value = "clues,blunt")]
        policies: Vec<Policy>,
    },
    /// Run one slice of a larger run's homes, driven over standard input and output (started
    /// by `run` and `compare`, not by hand).
    #[command(hide = true)]
    Worker,
    /// Benchmarks; figures as JSON lines with --json.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Run the embedded MQTT 5 broker (rumqttd) alone on loopback, for agents, `ledtrad-op` and
    /// tools in other processes, until Ctrl-C. It keeps retained messages and sessions in
    /// memory only: after a restart, push catalogues again (`ledtrad-op catalogue push --keep`
    /// does so by itself), and devices keep their reports until a collector is back.
    Broker {
        /// The loopback port (0: a free one, printed on start).
        #[arg(long, default_value_t = 1883)]
        port: u16,
        /// The most clients at once.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        max_connections: u64,
        /// Also stop when standard input closes: a run's broker processes end with the run,
        /// however it ends.
        #[arg(long, hide = true)]
        until_stdin_closes: bool,
    },
    /// Fridges through simulated hours or days with the broker (a Mosquitto of the soak's own)
    /// killed or stopped every 15 simulated minutes: reports queued, acknowledged and stored,
    /// memory and the databases' size over the run, decision time at the start and the end.
    Soak {
        /// Simulated hours (default 24).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=24 * 365))]
        hours: Option<u64>,
        /// Simulated days, instead of --hours.
        #[arg(long, conflicts_with = "hours", value_parser = clap::value_parser!(u64).range(1..=3 * 365))]
        days: Option<u64>,
        /// Agents (fridges, each a real agent with its own database).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=5000))]
        devices: u64,
        /// Simulated minutes between broker restarts (a multiple of 5).
        #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(5..=1440))]
        restart_minutes: u64,
        /// Seed for who does what when.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The catalogue to push (default: the shipped examples/catalogues/home.toml).
        #[arg(long, value_name = "FILE")]
        catalogue: Option<PathBuf>,
        /// Print the figures as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// The agent's resident memory with a large catalogue, the shipped model and days of
    /// history (a real agent with SQLite, deciding offline).
    Footprint {
        /// Offers in the generated catalogue.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=2_000))]
        offers: u64,
        /// Simulated days of signals, decisions and answers (96 moments a day).
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=365))]
        days: u64,
        /// Without the fleet's scoring model (the catalogue's built-in scorers only).
        #[arg(long)]
        no_model: bool,
        /// Seed for the catalogue and the inputs.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The builds to compile and measure: full (release, default features) and/or device
        /// (the device profile and feature set, and the C library).
        #[arg(long, default_value = "full,device", value_delimiter = ',')]
        builds: Vec<ledtrad_sim::footprint::Build>,
        /// Print one line of JSON.
        #[arg(long)]
        json: bool,
    },
    /// The firmware's sizes: an 8-reading summary's frame on the wire and the node's state in
    /// RAM (one line).
    Firmware {
        /// Print one line of JSON.
        #[arg(long)]
        json: bool,
    },
    /// What mutual TLS costs: the same run against a Mosquitto of its own in plain TCP and over
    /// mutual TLS (fleet-tls.conf, a certificate per agent), alternately; wall and CPU time per
    /// device of each (one line).
    Tls {
        /// Homes per run.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=5000))]
        homes: u64,
        /// Simulated days per run.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=30))]
        days: u64,
        /// Runs per transport; the figures are medians.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=20))]
        rounds: u64,
        /// Seed: both transports simulate the same homes.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print one line of JSON.
        #[arg(long)]
        json: bool,
    },
    /// The operator's report collectors: reports stored a second and the wait from a report's
    /// publish to its commit, for each store, through a Mosquitto of the bench's own (one line
    /// each).
    Collect {
        /// The stores: sqlite (one collector), postgres (one), postgres-2 (two on the shared
        /// subscription).
        #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres,postgres-2")]
        stores: Vec<ledtrad_sim::collect_bench::Setup>,
        /// Reports sent at a steady pace, for the wait from publish to commit.
        #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(10..=1_000_000))]
        paced: u64,
        /// The pace, reports a second (below what the stores take, so that the wait is the
        /// store's, not a queue's).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        rate: u32,
        /// Reports sent at once, for the rate the collectors store a backlog at.
        #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(10..=10_000_000))]
        burst: u64,
        /// A PostgreSQL database on the server where the bench makes (and drops) a database of
        /// its own for each PostgreSQL store; the user needs CREATEDB.
        #[arg(long, default_value = "postgres://root@127.0.0.1:5432/ledtrad_test")]
        postgres: String,
        /// Print one line of JSON per store.
        #[arg(long)]
        json: bool,
    },
    /// Request-mode round trips: a real agent asks a real offer service through each broker,
    /// one request at a time (one line each).
    Request {
        /// The brokers: embedded (rumqttd in this process), mosquitto (one of the bench's own,
        /// from deploy/mosquitto/ledtrad.conf) or a running broker's mqtt://HOST:PORT.
        #[arg(long, value_delimiter = ',', default_value = "embedded,mosquitto")]
        brokers: Vec<ledtrad_sim::request::BenchBroker>,
        /// Round trips to time per broker (after 50 to warm up).
        #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(10..=1_000_000))]
        requests: u64,
        /// Print one line of JSON per broker.
        #[arg(long)]
        json: bool,
    },
    /// From a sensor's edge to the offer at a UI following `GET /v1/events`: a real agent on a
    /// board link raises the moment itself (one line per path).
    Moment {
        /// The paths: level (a summary frame whose butter level ran low) and door.
        #[arg(long, value_delimiter = ',', default_value = "level,door")]
        paths: Vec<ledtrad_sim::moment::MomentPath>,
        /// Samples to time per path (after 20 to warm up).
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..=100_000))]
        samples: u64,
        /// Print one line of JSON per path.
        #[arg(long)]
        json: bool,
    },
    /// Decision latency of the engine with caps, consent and each scorer: the built-in one and
    /// the shipped TFLite model in every runtime this build has (one line each).
    Decide {
        /// Only this scorer: builtin, tract or tflite.
        #[arg(long)]
        scorer: Option<String>,
        /// Offers in the generated catalogue.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=20_000))]
        offers: u64,
        /// Decisions to time.
        #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(100..=10_000_000))]
        decisions: u64,
        /// Seed for the catalogue and the inputs.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print one line of JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The scorers to benchmark: the one named, or the built-in one and every model runtime in
/// this build.
fn bench_scorers(name: Option<&str>) -> Result<Vec<Option<RuntimeKind>>, String> {
    let all = RuntimeKind::ALL.into_iter().filter(|k| k.available());
    match name {
        None => Ok(std::iter::once(None).chain(all.map(Some)).collect()),
        Some("builtin") => Ok(vec![None]),
        Some(other) => {
            let kind = other.parse::<RuntimeKind>().map_err(|_| {
                format!("unknown scorer {other:?}; use \"builtin\", \"tract\", \"dense\" or \"tflite\"")
            })?;
            if kind.available() {
                Ok(vec![Some(kind)])
            } else {
                Err(ModelError::RuntimeMissing(kind).to_string())
            }
        }
    }
}

fn print_footprint(
    offers: u64,
    days: u64,
    seed: u64,
    model: bool,
    builds: &[ledtrad_sim::footprint::Build],
    json: bool,
) -> ExitCode {
    let offers = usize::try_from(offers).unwrap_or(usize::MAX);
    match ledtrad_sim::footprint::footprint(offers, days, seed, model, builds) {
        Ok(f) if json => {
            println!("{}", serde_json::to_string(&f).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(f) => {
            let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
            println!(
                "footprint ({} offers, {} days, {} decisions, {} shown, model {})",
                f.offers,
                f.days,
                f.decisions,
                f.shown,
                if f.model { "applied" } else { "none" }
            );
            for (name, b) in [("full", &f.full), ("device", &f.device)] {
                let Some(b) = b else { continue };
                let library = b.library_bytes.map(|l| format!(", C library {:.1} MiB", mib(l))).unwrap_or_default();
                let day2 = b
                    .rss_day2_bytes
                    .zip(b.rss_growth_from_day2)
                    .map(|(d, g)| format!(" ({:.1} MiB on day 2, {:+.1}% since)", mib(d), g * 100.0))
                    .unwrap_or_default();
                println!(
                    "  {name:6} ledtrad-agent {:.1} MiB{library}; process {:.1} MiB resident at the end{day2} ({:.1} MiB before the agent started, peak {:.1} MiB); the agent {:.1} MiB ({:.1} MiB allocated, {:.1} MiB code and files)",
                    mib(b.binary_bytes),
                    mib(b.rss_bytes),
                    mib(b.baseline_rss_bytes),
                    mib(b.peak_rss_bytes),
                    mib(b.agent_rss_bytes),
                    mib(b.agent_anon_bytes),
                    mib(b.agent_file_bytes)
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn print_requests(brokers: &[ledtrad_sim::request::BenchBroker], requests: usize, json: bool) -> ExitCode {
    let Some(runtime) = async_runtime() else { return ExitCode::from(2) };
    for broker in brokers {
        match runtime.block_on(ledtrad_sim::request::bench(broker, requests)) {
            Ok(f) if json => println!("{}", serde_json::to_string(&f).unwrap_or_default()),
            Ok(f) => println!(
                "request ({} broker, {} round trips, {} answered): p50 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs, {:.1} per second",
                f.broker, f.requests, f.answered, f.p50_us, f.p99_us, f.p999_us, f.rps
            ),
            Err(e) => {
                eprintln!("error: {broker:?}: {e:#}");
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::SUCCESS
}

fn print_collect(options: &ledtrad_sim::collect_bench::CollectOptions, json: bool) -> ExitCode {
    let Some(runtime) = async_runtime() else { return ExitCode::from(2) };
    match runtime.block_on(ledtrad_sim::collect_bench::bench(options)) {
        Ok(figures) => {
            for f in figures {
                if json {
                    println!("{}", serde_json::to_string(&f).unwrap_or_default());
                } else {
                    println!(
                        "collect ({}, {} collector(s)): {} paced at {}/s: publish to commit p50 {:.2} ms, p99 {:.2} ms; burst of {}: {:.0} reports/s stored, p99 {:.0} ms; {} stored, {} duplicates",
                        f.store, f.collectors, f.paced, f.rate, f.p50_ms, f.p99_ms, f.burst, f.reports_per_s, f.burst_p99_ms, f.stored, f.duplicates
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn print_moments(paths: &[ledtrad_sim::moment::MomentPath], samples: usize, json: bool) -> ExitCode {
    let Some(runtime) = async_runtime() else { return ExitCode::from(2) };
    for path in paths {
        match runtime.block_on(ledtrad_sim::moment::moment(*path, samples)) {
            Ok(f) if json => println!("{}", serde_json::to_string(&f).unwrap_or_default()),
            Ok(f) => println!(
                "moment ({} path, {} samples, {} showed nothing): edge to event p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
                f.path, f.samples, f.nothing_shown, f.p50_us, f.p99_us, f.max_us
            ),
            Err(e) => {
                eprintln!("error: moment bench ({path}): {e:#}");
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "error,rumqttd=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Run { args, policy } => run_command(args, &[policy], false),
        Command::Compare { args, policies } => run_command(args, &policies, true),
        Command::Worker => {
            let Some(runtime) = async_runtime() else { return ExitCode::from(2) };
            match runtime.block_on(ledtrad_sim::worker::serve()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: worker: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Broker { port, max_connections, until_stdin_closes } => {
            broker_command(port, max_connections, until_stdin_closes)
        }
        Command::Soak { hours, days, devices, restart_minutes, seed, catalogue, json } => {
            let hours = days.map_or(hours.unwrap_or(24), |d| d * 24);
            soak_command(hours, devices, restart_minutes, seed, catalogue.as_deref(), json)
        }
        Command::Bench(BenchCommand::Firmware { json }) => {
            let f = ledtrad_sim::bench::firmware();
            if json {
                println!("{}", serde_json::to_string(&f).unwrap_or_default());
            } else {
                println!(
                    "firmware: an {}-reading summary is at most {} bytes framed ({} for a typical fridge's); the node's state is {} bytes, the agent's link decoder {}",
                    f.readings, f.frame_bytes_max, f.frame_bytes_typical, f.node_bytes, f.decoder_bytes
                );
            }
            ExitCode::SUCCESS
        }
        Command::Bench(BenchCommand::Moment { paths, samples, json }) => {
            print_moments(&paths, usize::try_from(samples).unwrap_or(usize::MAX), json)
        }
        Command::Bench(BenchCommand::Tls { homes, days, rounds, seed, json }) => {
            print_tls_cost(homes, days, rounds, seed, json)
        }
        Command::Bench(BenchCommand::Collect { stores, paced, rate, burst, postgres, json }) => {
            let options = ledtrad_sim::collect_bench::CollectOptions {
                setups: stores,
                paced: usize::try_from(paced).unwrap_or(usize::MAX),
                rate,
                burst: usize::try_from(burst).unwrap_or(usize::MAX),
                postgres,
            };
            print_collect(&options, json)
        }
        Command::Bench(BenchCommand::Request { brokers, requests, json }) => {
            print_requests(&brokers, usize::try_from(requests).unwrap_or(usize::MAX), json)
        }
        Command::Bench(BenchCommand::Footprint { offers, days, seed, json, no_model, builds }) => {
            print_footprint(offers, days, seed, !no_model, &builds, json)
        }
        Command::Bench(BenchCommand::Decide { offers, decisions, seed, json, scorer }) => {
            let (offers, decisions) =
                (usize::try_from(offers).unwrap_or(usize::MAX), usize::try_from(decisions).unwrap_or(usize::MAX));
            let scorers = match bench_scorers(scorer.as_deref()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            for scorer in scorers {
                match ledtrad_sim::bench::decide(offers, decisions, seed, scorer) {
                    Ok(f) if json => println!("{}", serde_json::to_string(&f).unwrap_or_default()),
                    Ok(f) => println!(
                        "decide ({} scorer, {} offers, {} features, {} decisions, {} shown): full decisions ({:.0}%) p50 {:.2} µs, p99 {:.2} µs, p99.9 {:.2} µs; blocked p99 {:.2} µs; all p50 {:.2} µs, p99 {:.2} µs; {:.0} decisions/s",
                        f.scorer, f.offers, f.features, f.decisions, f.shown, f.full_share * 100.0, f.full_p50_us,
                        f.full_p99_us, f.full_p999_us, f.blocked_p99_us, f.p50_us, f.p99_us, f.decisions_per_s
                    ),
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        return ExitCode::from(2);
                    }
                }
            }
            ExitCode::SUCCESS
        }
    }
}

/// `bench tls`: the same run in plain TCP and over mutual TLS, and what TLS cost.
fn print_tls_cost(homes: u64, days: u64, rounds: u64, seed: u64, json: bool) -> ExitCode {
    let start = ledtrad_protocol::UnixTime(1_795_392_000);
    let Some(catalogue) = catalogue_or_shipped(None, start) else { return ExitCode::from(2) };
    let Some(runtime) = async_runtime() else { return ExitCode::from(2) };
    let mut options =
        ledtrad_sim::run::RunOptions::new(usize::try_from(homes).unwrap_or(usize::MAX), days, seed, catalogue, start);
    options.progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    options.worker_exe = std::env::current_exe().ok();
    match runtime.block_on(ledtrad_sim::tls_cost::bench(&options, usize::try_from(rounds).unwrap_or(1))) {
        Ok(c) if json => println!("{}", serde_json::to_string(&c).unwrap_or_default()),
        Ok(c) => println!(
            "tls ({} devices, {} day(s), median of {}): plain {:.1} s wall, {:.1} ms CPU per device; TLS {:.1} s wall, {:.1} ms CPU per device; TLS/plain wall {:.2}x, CPU {:.2}x",
            c.devices, c.days, c.rounds, c.plain.wall_s, c.plain.cpu_ms_per_device, c.tls.wall_s, c.tls.cpu_ms_per_device, c.wall_ratio, c.cpu_ratio
        ),
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

/// Runs the embedded broker until Ctrl-C; says where it listens on standard output.
fn broker_command(port: u16, max_connections: u64, until_stdin_closes: bool) -> ExitCode {
    let max_connections = usize::try_from(max_connections).unwrap_or(usize::MAX);
    // A socket per client: raise the open-file limit to match, or say what it allows.
    if let Err(e) = ledtrad_sim::files::allow(ledtrad_sim::files::needed(max_connections, true, 0)) {
        eprintln!("warning: fewer than {max_connections} clients may connect: {e:#}");
    }
    let started = match port {
        0 => EmbeddedBroker::start(max_connections),
        port => EmbeddedBroker::start_on(port, max_connections),
    };
    let broker = match started {
        Ok(broker) => broker,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    println!("{}{}; Ctrl-C to stop", ledtrad_sim::run::BROKER_LISTENING, broker.url());
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let Some(runtime) = async_runtime() else { return ExitCode::from(2) };
    if until_stdin_closes {
        std::thread::spawn(|| {
            // Reads nothing it keeps: the end of input is the signal.
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            std::process::exit(0);
        });
    }
    match runtime.block_on(tokio::signal::ctrl_c()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot wait for Ctrl-C: {e}");
            ExitCode::from(2)
        }
    }
}

/// The catalogue at `path`, or the shipped example, checked as of `start`; `None` (with the
/// error printed) when it does not load.
pub(crate) fn catalogue_or_shipped(
    path: Option<&Path>,
    start: UnixTime,
) -> Option<ledtrad_protocol::catalogue::Catalogue> {
    let loaded = match path {
        Some(path) => load_catalogue(path, Some(start)),
        None => {
            parse_catalogue(Path::new("examples/catalogues/home.toml"), ledtrad_sim::EXAMPLE_CATALOGUE, Some(start))
        }
    };
    loaded.map_err(|e| eprintln!("error: {e}")).ok()
}

/// `ledtrad-sim soak`.
fn soak_command(
    hours: u64,
    devices: u64,
    restart_minutes: u64,
    seed: u64,
    catalogue: Option<&Path>,
    json: bool,
) -> ExitCode {
    let start = UnixTime(1_795_392_000); // 2026-11-23T00:00:00Z, as `run` starts
    let Some(catalogue) = catalogue_or_shipped(catalogue, start) else { return ExitCode::from(2) };
    let options = ledtrad_sim::soak::SoakOptions {
        hours,
        devices: usize::try_from(devices).unwrap_or(usize::MAX),
        restart_minutes,
        seed,
        catalogue,
        start,
        progress: !json,
    };
    let Some(runtime) = async_runtime() else { return ExitCode::from(2) };
    match runtime.block_on(ledtrad_sim::soak::soak(options)) {
        Ok(f) if json => {
            println!("{}", serde_json::to_string(&f).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(f) => {
            println!(
                "ledtrad soak: {} fridges over {} simulated hours, the broker restarted {} times ({} SIGKILL, {} SIGTERM)\n  \
                 decisions {}; reports queued {}, acknowledged {}, stored {} ({} duplicates dropped; {} restarts before the collector caught up)\n  \
                 memory {:.1} MB after the first hour, {} at the end of day 2, {:.1} MB at the end (databases {:.1} MB, then {:.1} MB, the largest {:.0} KB); decision p99 {:.1} µs in the first hour, {:.1} µs in the last; {:.0} s",
                f.devices,
                f.hours,
                f.broker_restarts,
                f.sigkill,
                f.sigterm,
                f.decisions,
                f.reports_queued,
                f.reports_acknowledged,
                f.reports_stored,
                f.duplicates_dropped,
                f.restarts_before_collector_caught_up,
                f.rss_after_first_hour_bytes as f64 / 1e6,
                f.rss_day2_bytes.map_or_else(|| "-".to_string(), |b| format!("{:.1} MB", b as f64 / 1e6)),
                f.rss_end_bytes as f64 / 1e6,
                f.databases_after_first_hour_bytes as f64 / 1e6,
                f.databases_end_bytes as f64 / 1e6,
                f.databases_end_bytes_max as f64 / 1e3,
                f.decide_p99_first_hour_us,
                f.decide_p99_last_hour_us,
                f.wall_seconds
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: soak: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The async runtime for a command, or `None` after saying why it could not start.
pub(crate) fn async_runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().map_err(|e| eprintln!("error: starting the async runtime: {e}")).ok()
}
