//! `ledtrad-sim run` and `compare` on the command line: their flags, the scenario or flags
//! made into run options, a run per policy, and what they print and write.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ledtrad_agent::engine::Policy;
use ledtrad_protocol::broker::BrokerUrl;
use ledtrad_protocol::UnixTime;
use ledtrad_sim::home::{ConsentMode, Population};
use ledtrad_sim::lab_report::{LabReport, Parameter};
use ledtrad_sim::run::{run, RunOptions};
use ledtrad_sim::summary::Summary;

/// TLS to an `mqtts://` --broker: the simulator's own clients (audit, operator, collector)
/// present --cert-file, and each agent a certificate issued from --device-ca as it starts.
#[derive(clap::Args)]
struct TlsArgs {
    /// The CA certificate (PEM) that signed the broker's certificate.
    #[arg(long, value_name = "PEM", requires_all = ["broker", "cert_file", "key_file", "device_ca"])]
    ca_file: Option<PathBuf>,
    /// The simulator's client certificate (PEM): the broker's ACL must let its identity read
    /// and write the run's topics (`ledtrad-op certs collector --name ledtrad-sim`).
    #[arg(long, value_name = "PEM", requires = "ca_file")]
    cert_file: Option<PathBuf>,
    /// The private key of --cert-file (PEM).
    #[arg(long, value_name = "PEM", requires = "ca_file")]
    key_file: Option<PathBuf>,
    /// The fleet CA directory (`ledtrad-op certs init --dir`) to issue the agents'
    /// certificates from; they are written under the run's temporary directory.
    #[arg(long, value_name = "DIR", requires = "ca_file")]
    device_ca: Option<PathBuf>,
}

impl TlsArgs {
    /// The run's TLS for an external broker, if asked.
    fn run_tls(self) -> anyhow::Result<Option<ledtrad_sim::tls::RunTls>> {
        let (Some(ca), Some(cert), Some(key), Some(device_ca)) =
            (self.ca_file, self.cert_file, self.key_file, self.device_ca)
        else {
            return Ok(None);
        };
        let files = ledtrad_mqtt::TlsFiles { ca, client: Some(ledtrad_mqtt::ClientCert { cert, key }) };
        ledtrad_sim::tls::RunTls::external(&files, &device_ca).map(Some)
    }
}

/// What `ledtrad-sim run` simulates and prints.
#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// Number of homes (35,000 make about 100,000 devices).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=50_000))]
    homes: u64,
    /// Simulated days.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=365))]
    days: u64,
    /// Seed: the same seed gives the same homes, people, signals and answers.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Use this broker (mqtt://HOST:PORT, or mqtts://HOST:PORT with the TLS flags below)
    /// instead of starting one of the run's own.
    #[arg(long)]
    broker: Option<BrokerUrl>,
    /// The broker the run starts when --broker is not given: the embedded one, a Mosquitto
    /// (deploy/mosquitto/ledtrad.conf), or a Mosquitto over mutual TLS (fleet-tls.conf and
    /// fleet.acl, a fresh fleet CA, a certificate for each agent).
    #[arg(long, value_enum, default_value_t = ledtrad_sim::run::OwnBroker::Embedded, conflicts_with = "broker")]
    own_broker: ledtrad_sim::run::OwnBroker,
    #[command(flatten)]
    tls: TlsArgs,
    /// How the simulated people consent.
    #[arg(long, value_enum, default_value_t = ConsentMode::Mixed)]
    consent: ConsentMode,
    /// The catalogue to push (default: the shipped examples/catalogues/home.toml).
    #[arg(long)]
    catalogue: Option<PathBuf>,
    /// The first simulated day: the homes (at UTC+1) start at its local midnight.
    #[arg(long, default_value = "2026-11-23T00:00:00Z", value_parser = parse_time)]
    start: UnixTime,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Store the fleet's reports in this SQLite file, as the operator's collector does, for
    /// `ledtrad-op report --db FILE`; or in PostgreSQL as postgres://USER@HOST:PORT/DATABASE
    /// (the database must exist), for `ledtrad-op report --db postgres://…`.
    #[arg(long, value_name = "FILE|URL")]
    reports: Option<ledtrad_operator::collect::ReportsAt>,
    /// How sensor signals reach the agents: direct, or through the firmware (virtual
    /// sensors, the firmware's drivers and node, frames over a socket to each agent).
    #[arg(long, value_enum, default_value_t = ledtrad_sim::home::SensorPath::Direct)]
    sensors: ledtrad_sim::home::SensorPath,
    /// On the firmware path, the share of frames the link damages with a flipped bit, e.g. 0.01.
    #[arg(long, default_value_t = 0.0, value_parser = parse_flips)]
    link_flips: f64,
    /// Take homes, days, seed, start, consent, catalogue, sensors and the survey figures
    /// from this scenario file (see examples/scenarios/) instead of their flags.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["homes", "days", "seed", "consent", "catalogue", "start", "sensors"])]
    scenario: Option<PathBuf>,
    /// Homes per process: more homes than this run in worker processes, a slice each (every
    /// agent holds a few files open, and a process may hold only so many).
    #[arg(long, default_value_t = ledtrad_sim::run::HOMES_PER_PROCESS as u64, value_parser = clap::value_parser!(u64).range(1..=5000))]
    homes_per_process: u64,
    /// Run the embedded broker in processes of at most this many connections each, homes
    /// spread over them as a fleet over a broker cluster's nodes (by default only when this
    /// process may not open a socket for every device: past its open-file limit). At most
    /// 20,000: the connections one loopback address takes.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(20..=20_000))]
    connections_per_broker: Option<u64>,
    /// Also write the laboratory report, one self-contained HTML page with the scenario, the
    /// model's assumptions, the figures and their plots.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

/// A share of frames from 0 to 1, as `--link-flips` takes it.
fn parse_flips(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err(format!("{s:?} is not a share from 0 to 1 (0.01 damages one frame in a hundred)")),
    }
}

/// An RFC 3339 time, as `--start` takes it.
pub(crate) fn parse_time(s: &str) -> Result<UnixTime, String> {
    UnixTime::parse_rfc3339(s).map_err(|e| format!("{s:?}: {e}"))
}

/// What a run was, for its report: each parameter with its source where it has one.
fn scenario_parameters(name: &str, options: &RunOptions) -> Vec<Parameter> {
    let p = |name: &str, value: String, source: Option<&str>| Parameter {
        name: name.into(),
        value,
        source: source.map(str::to_string),
    };
    let pop = &options.population;
    let survey = "Insight Intelligence, Delade meningar (2015), 1,000 Swedes";
    let pct = |v: f64| format!("{:.0}%", v * 100.0);
    let h = &pop.households;
    vec![
        p("scenario", name.into(), None),
        p("homes", options.homes.to_string(), None),
        p("days", options.days.to_string(), None),
        p("seed", options.seed.to_string(), None),
        p("start", options.start.to_string(), None),
        p("consent", format!("{:?}", pop.consent).to_lowercase(), None),
        p("sensors", format!("{:?}", options.sensors).to_lowercase(), None),
        p(
            "people per home (1 to 5)",
            h.sizes.iter().map(|s| pct(*s)).collect::<Vec<_>>().join(", "),
            Some("roughly Statistics Sweden's households by size"),
        ),
        p(
            "children",
            format!("past the first two people; second of two with {}", pct(h.single_parent)),
            Some("assumed"),
        ),
        p("lock screens", format!("{} of people aged 13 or more", pct(h.lock_screen)), Some("assumed")),
        p("e-readers", format!("{} of people aged 16 or more", pct(h.ereader)), Some("assumed")),
        p("share data for something back", pct(pop.survey.share_for_benefit), Some(survey)),
        p("share as little as possible", pct(pop.survey.as_little_as_possible), Some(survey)),
        p(
            "share interests, 16–28 / 65–70",
            format!("{} / {}", pct(pop.survey.interests_young), pct(pop.survey.interests_old)),
            Some(survey),
        ),
        p(
            "comfortable sharing interests / opinions and feelings",
            format!("{} / {}", pct(pop.survey.comfortable_interests), pct(pop.survey.comfortable_opinions)),
            Some(survey),
        ),
        p("accept sharing with third parties", pct(pop.survey.third_parties), Some(survey)),
    ]
}

/// `ledtrad-sim run` and `compare`: the scenario or the flags, the catalogue, a run per
/// policy, and the summary, the comparison and the report.
pub(crate) fn run_command(args: RunArgs, policies: &[Policy], compare: bool) -> ExitCode {
    let (json, html) = (args.json, args.html.clone());
    let Some((name, options)) = run_options(args, policies.len()) else { return ExitCode::from(2) };
    let Some(summaries) = run_policies(&options, policies) else { return ExitCode::from(2) };
    print_summaries(&summaries, json, compare);
    if let Some(path) = html {
        if !write_lab_report(&path, &name, &options, policies, &summaries, compare) {
            return ExitCode::from(2);
        }
    }
    let violations: u64 = summaries.iter().map(|s| s.consent_violations).sum();
    let unmarked: u64 = summaries.iter().map(|s| s.personal_influence_unmarked).sum();
    let without_consent: u64 = summaries.iter().map(|s| s.personal_influence_without_consent).sum();
    if violations > 0 {
        eprintln!("error: {violations} consent violation(s) found");
    }
    if unmarked > 0 {
        eprintln!("error: personal data changed {unmarked} shown offer(s) not marked personalised");
    }
    if without_consent > 0 {
        eprintln!("error: personal data changed {without_consent} decision(s) on devices without personalise");
    }
    let over_home_caps: u64 = summaries.iter().map(|s| s.home_cap_violations).sum();
    if over_home_caps > 0 {
        eprintln!("error: {over_home_caps} shown offer(s) broke a home cap");
    }
    if violations + unmarked + without_consent + over_home_caps > 0 {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// The options of `runs` runs from the scenario file or the flags, with the scenario's name;
/// `None` (with the error printed) when the scenario or the catalogue does not load, or when
/// `--reports` is given for more than one run.
fn run_options(args: RunArgs, runs: usize) -> Option<(String, RunOptions)> {
    let RunArgs {
        homes,
        days,
        seed,
        broker,
        own_broker,
        tls,
        consent,
        catalogue,
        start,
        json: _,
        reports,
        sensors,
        link_flips,
        scenario,
        homes_per_process,
        connections_per_broker,
        html: _,
    } = args;
    let mut population = Population { consent, ..Population::default() };
    let mut name = "from the command line".to_string();
    let (homes, days, seed, catalogue, start, sensors) = match &scenario {
        None => (homes, days, seed, catalogue, start, sensors),
        Some(path) => match ledtrad_sim::scenario::Scenario::load(path) {
            Ok(s) => {
                population = Population {
                    consent: s.consent.unwrap_or(ConsentMode::Survey),
                    survey: s.survey,
                    households: s.households,
                    responses: s.responses,
                };
                name = format!("{} ({})", s.name, path.display());
                (
                    s.homes,
                    s.days,
                    s.seed,
                    s.catalogue,
                    s.start.as_deref().map_or(Ok(start), parse_time).unwrap_or(start),
                    s.sensors.unwrap_or_default(),
                )
            }
            Err(e) => {
                eprintln!("error: {e}");
                return None;
            }
        },
    };
    if reports.is_some() && runs > 1 {
        eprintln!("error: --reports keeps one run's reports; use it with 'run', not 'compare'");
        return None;
    }
    let catalogue = crate::catalogue_or_shipped(catalogue.as_deref(), start)?;
    let mut options = RunOptions::new(usize::try_from(homes).unwrap_or(usize::MAX), days, seed, catalogue, start);
    options.tls = match tls.run_tls() {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("error: {e:#}");
            return None;
        }
    };
    if let (Some(url), None) = (&broker, &options.tls) {
        if url.tls {
            eprintln!("error: broker {url} is TLS; give --ca-file, --cert-file, --key-file and --device-ca");
            return None;
        }
    }
    options.broker = broker;
    options.own_broker = own_broker;
    options.population = population;
    options.progress = std::io::stderr().is_terminal();
    options.reports = reports;
    options.sensors = sensors;
    options.link_flips = link_flips;
    options.homes_per_process = usize::try_from(homes_per_process).unwrap_or(usize::MAX);
    options.worker_exe = std::env::current_exe().ok();
    options.connections_per_broker = connections_per_broker.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    Some((name, options))
}

/// One run per policy, on the same homes; `None` (with the error printed) when one fails.
fn run_policies(options: &RunOptions, policies: &[Policy]) -> Option<Vec<Summary>> {
    let runtime = crate::async_runtime()?;
    let mut summaries = Vec::with_capacity(policies.len());
    for policy in policies {
        if options.progress && policies.len() > 1 {
            eprintln!("policy {}:", policy.as_str());
        }
        match runtime.block_on(run(RunOptions { policy: *policy, ..options.clone() })) {
            Ok(summary) => summaries.push(summary),
            Err(e) => {
                eprintln!("error: {e:#}");
                return None;
            }
        }
    }
    Some(summaries)
}

/// The summary as a table, the policies side by side, or either as JSON.
fn print_summaries(summaries: &[Summary], json: bool, compare: bool) {
    if json && compare {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "policies": summaries })).unwrap_or_default());
    } else if json {
        println!("{}", serde_json::to_string_pretty(&summaries[0]).unwrap_or_default());
    } else if compare {
        print!("{}", ledtrad_sim::summary::comparison(summaries));
    } else {
        print!("{}", summaries[0].table());
    }
}

/// Writes the laboratory report to `path`; false (with the error printed) when it cannot.
fn write_lab_report(
    path: &Path,
    name: &str,
    options: &RunOptions,
    policies: &[Policy],
    summaries: &[Summary],
    compare: bool,
) -> bool {
    let title = if compare {
        format!(
            "{}: {} homes, {} days",
            policies.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(" vs "),
            options.homes,
            options.days
        )
    } else {
        format!("{} homes, {} days, policy {}", options.homes, options.days, policies[0].as_str())
    };
    let report = LabReport {
        title,
        scenario: scenario_parameters(name, options),
        assumptions: options.population.responses.assumptions(),
        policies: summaries.iter().map(|s| s.policy_run()).collect(),
    };
    if let Err(e) = std::fs::write(path, ledtrad_sim::lab_report::page(&report)) {
        eprintln!("error: writing the report to '{}': {e}", path.display());
        return false;
    }
    eprintln!("report written to {}", path.display());
    true
}
