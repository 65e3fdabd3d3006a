//! The agent's footprint: its binary's size and its resident memory with a large catalogue, in
//! the full build and in the device build (docs/device-build.md).
//!
//! The bench prepares an agent's config and database (a signed catalogue and, if asked, the
//! fleet's model, stored as after a restart), then for each build compiles `ledtrad-agent` and
//! the footprint workload (`agent/examples/footprint.rs`) with cargo and runs the workload in
//! its own process: a real agent (SQLite, runtime, engine, model) driven through 30 simulated
//! days of signals, decisions and answers, its resident memory read from `/proc/self/status`.
//! The device build also compiles the C library (`ledtrad-ffi`), whose size it reports.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;
use ledtrad_agent::store::Store;
use ledtrad_operator::model::sign_model;
use ledtrad_operator::{sign_catalogue, OperatorKey, SignOptions};
use ledtrad_protocol::{FleetId, KeyId, UnixTime};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::bench::{build_catalogue, shipped_model};

/// Where the simulated month starts.
const START: UnixTime = UnixTime(1_795_428_000);

/// The time zone the workload's config names: the one the device build carries.
const ZONE: &str = "Europe/Stockholm";

/// The device build's environment, as a device maker sets it.
const DEVICE_ENV: &str = include_str!("../../deploy/device-build.env");

/// The `KEY="VALUE"` lines of an environment file, comments and blank lines skipped; any other
/// line is an error that quotes it.
fn parse_env(text: &str) -> anyhow::Result<Vec<(&str, &str)>> {
    let mut vars = Vec::new();
    for (n, line) in text.lines().enumerate().map(|(n, l)| (n + 1, l.trim())) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = line.split_once('=').and_then(|(name, value)| {
            let value = value.strip_prefix('"')?.strip_suffix('"')?;
            let named =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            named.then_some((name, value))
        });
        vars.push(parsed.with_context(|| format!("line {n}, {line:?}, is not KEY=\"VALUE\" (or a # comment)"))?);
    }
    Ok(vars)
}

/// A build of the agent the bench measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// The release profile with the default features (embedded broker, API client).
    Full,
    /// The `device` profile with the device feature set.
    Device,
}

impl Build {
    /// Cargo's arguments for this build's profile and features.
    fn cargo_args(self) -> &'static [&'static str] {
        match self {
            Build::Full => &["--release"],
            Build::Device => &["--profile", "device", "--no-default-features", "--features", "device"],
        }
    }

    /// The environment of its cargo build: the device build's from `deploy/device-build.env`
    /// (only the time zone the workload's config names, a smaller SQLite); for the full build,
    /// the same variables unset.
    fn cargo_env(self) -> anyhow::Result<Vec<(&'static str, Option<&'static str>)>> {
        let device = parse_env(DEVICE_ENV).context("deploy/device-build.env")?;
        Ok(match self {
            Build::Full => device.into_iter().map(|(name, _)| (name, None)).collect(),
            Build::Device => device.into_iter().map(|(name, value)| (name, Some(value))).collect(),
        })
    }

    /// Its name in `--builds` and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Build::Full => "full",
            Build::Device => "device",
        }
    }
}

impl std::str::FromStr for Build {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name.trim() {
            "full" => Ok(Build::Full),
            "device" => Ok(Build::Device),
            other => Err(format!("unknown build {other:?}: use full, device or full,device")),
        }
    }
}

/// What the workload process printed: its resident memory before the agent started and while
/// it ran.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Workload {
    /// Offers in the catalogue the agent applied.
    pub offers: usize,
    /// Decisions the agent made.
    pub decisions: u64,
    /// Offers it showed.
    pub shown: u64,
    /// Before the agent started (the binary, its libraries and the async runtime).
    pub baseline_rss_bytes: u64,
    /// Anonymous memory then.
    pub baseline_anon_bytes: u64,
    /// File-backed memory then.
    pub baseline_file_bytes: u64,
    /// At the end, while the agent still ran.
    pub rss_bytes: u64,
    /// At the end of the second simulated day (runs of two days or more).
    #[serde(default)]
    pub rss_day2_bytes: Option<u64>,
    /// Anonymous memory at the end.
    pub anon_bytes: u64,
    /// File-backed memory at the end.
    pub file_bytes: u64,
    /// The process's peak.
    pub peak_rss_bytes: u64,
}

/// What one build measured.
#[derive(Debug, Clone, Serialize)]
pub struct BuildFigures {
    /// `ledtrad-agent`'s size on disk, as built.
    pub binary_bytes: u64,
    /// The C library's size (`libledtrad.so`), for the device build.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub library_bytes: Option<u64>,
    /// The workload process's resident memory at the end (binary, runtime and agent).
    pub rss_bytes: u64,
    /// At the end of the second simulated day, for runs of two days or more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_day2_bytes: Option<u64>,
    /// `rss_bytes` against `rss_day2_bytes`, as a fraction (0.05 is 5% more at the end).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_growth_from_day2: Option<f64>,
    /// Before the agent started.
    pub baseline_rss_bytes: u64,
    /// What the agent added: `rss_bytes - baseline_rss_bytes`.
    pub agent_rss_bytes: u64,
    /// Of that, anonymous memory (heap and stacks).
    pub agent_anon_bytes: u64,
    /// Of that, file-backed pages (mostly code, shared and evictable).
    pub agent_file_bytes: u64,
    /// The process's peak.
    pub peak_rss_bytes: u64,
}

/// What the footprint bench measured. The top-level memory fields are the full build's (as
/// before there was a device build); `device` and `full` hold each build's own.
#[derive(Debug, Clone, Serialize)]
pub struct FootprintFigures {
    /// "footprint".
    pub bench: &'static str,
    /// Offers in the catalogue.
    pub offers: usize,
    /// Simulated days of history.
    pub days: u64,
    /// Decisions the agent made (in each build: the same inputs).
    pub decisions: u64,
    /// Offers it showed.
    pub shown: u64,
    /// Whether the fleet's scoring model was applied.
    pub model: bool,
    /// The full build's `ledtrad-agent` (release profile, default features), if measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_binary_bytes: Option<u64>,
    /// The device build's `ledtrad-agent` (`device` profile, device features), if measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_binary_bytes: Option<u64>,
    /// The device build's C library.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_library_bytes: Option<u64>,
    /// The device build's workload process at the end (the target: at most 8 MB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_rss_bytes: Option<u64>,
    /// The full build's figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full: Option<BuildFigures>,
    /// The device build's figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<BuildFigures>,
}

/// Prepares the workload, then builds and runs it for each of `builds`.
pub fn footprint(
    offers: usize,
    days: u64,
    seed: u64,
    model: bool,
    builds: &[Build],
) -> anyhow::Result<FootprintFigures> {
    let dir = tempfile::tempdir().context("creating a directory for the agent's config and database")?;
    let config = prepare(dir.path(), offers, seed, model)?;
    let mut figures = FootprintFigures {
        bench: "footprint",
        offers,
        days,
        decisions: 0,
        shown: 0,
        model,
        full_binary_bytes: None,
        device_binary_bytes: None,
        device_library_bytes: None,
        device_rss_bytes: None,
        full: None,
        device: None,
    };
    for &build in builds {
        let artifacts = compile(build)?;
        // Each run starts from the same database.
        let database = dir.path().join(format!("{}.db", build.name()));
        std::fs::copy(dir.path().join("agent.db"), &database).context("copying the prepared database")?;
        let run_config = dir.path().join(format!("{}.toml", build.name()));
        std::fs::write(&run_config, config.replace("agent.db", &format!("{}.db", build.name())))?;
        let workload = run_workload(&artifacts.workload, &run_config, days, seed)?;
        anyhow::ensure!(
            workload.offers == offers,
            "the {} build applied {} offers, not {offers}",
            build.name(),
            workload.offers
        );
        figures.decisions = workload.decisions;
        figures.shown = workload.shown;
        let measured = BuildFigures {
            binary_bytes: file_size(&artifacts.agent)?,
            library_bytes: artifacts.library.as_deref().map(file_size).transpose()?,
            rss_bytes: workload.rss_bytes,
            rss_day2_bytes: workload.rss_day2_bytes,
            rss_growth_from_day2: workload.rss_day2_bytes.filter(|d| *d > 0).map(|d| {
                #[allow(clippy::cast_precision_loss)]
                let growth = (workload.rss_bytes as f64 - d as f64) / d as f64;
                growth
            }),
            baseline_rss_bytes: workload.baseline_rss_bytes,
            agent_rss_bytes: workload.rss_bytes.saturating_sub(workload.baseline_rss_bytes),
            agent_anon_bytes: workload.anon_bytes.saturating_sub(workload.baseline_anon_bytes),
            agent_file_bytes: workload.file_bytes.saturating_sub(workload.baseline_file_bytes),
            peak_rss_bytes: workload.peak_rss_bytes,
        };
        match build {
            Build::Full => {
                figures.full_binary_bytes = Some(measured.binary_bytes);
                figures.full = Some(measured);
            }
            Build::Device => {
                figures.device_binary_bytes = Some(measured.binary_bytes);
                figures.device_library_bytes = measured.library_bytes;
                figures.device_rss_bytes = Some(measured.rss_bytes);
                figures.device = Some(measured);
            }
        }
    }
    Ok(figures)
}

/// Writes the agent's database (the signed catalogue, and model if `model`, stored as after a
/// restart) into `dir`; returns the config, naming `agent.db` there.
pub fn prepare(dir: &Path, offers: usize, seed: u64, model: bool) -> anyhow::Result<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let catalogue = build_catalogue(offers, &mut rng);
    let key = OperatorKey::from_secret(KeyId::try_new("bench")?, [9; 32]);
    let fleet = FleetId::try_new("bench")?;
    let options =
        SignOptions { fleet: fleet.clone(), version: 1, issued_at: START, expires_at: START.plus_secs(400 * 86_400) };
    let database = dir.join("agent.db");
    let store = Store::open(&database)?;
    store.save_catalogue(1, fleet.as_str(), &sign_catalogue(&catalogue, &key, &options)?, START)?;
    if model {
        store.save_model(1, fleet.as_str(), &sign_model(&shipped_model()?, &key, &options)?, START)?;
    }
    let database = toml::Value::String(database.display().to_string());
    // Nothing listens on the broker's port: the agent decides offline and keeps its reports
    // queued. The workload chooses its moments itself.
    Ok(format!(
        "device_id = \"footprint\"\nkind = \"fridge\"\nfleet = \"{fleet}\"\nbroker = \"mqtt://127.0.0.1:9\"\n\
         database = {database}\ntimezone = \"{ZONE}\"\nrng_seed = {seed}\nraise_moments = false\n\n\
         [[operator_keys]]\nid = \"{}\"\npublic_key = \"{}\"\n",
        key.id,
        key.public_hex()
    ))
}

/// What a build produced.
struct Artifacts {
    agent: PathBuf,
    workload: PathBuf,
    library: Option<PathBuf>,
}

/// Compiles `ledtrad-agent` and the workload (and, for the device build, the C library) with
/// cargo, in this workspace; where cargo put them.
fn compile(build: Build) -> anyhow::Result<Artifacts> {
    eprintln!("footprint: compiling the {} build (the first time takes minutes)", build.name());
    // The binary on its own: built beside the example, it would take the features of the
    // example's dev-dependencies too.
    let agent = cargo_build(build, &["-p", "ledtrad-agent", "--bin", "ledtrad-agent"])?
        .remove("ledtrad-agent")
        .context("cargo built no ledtrad-agent")?;
    let workload = cargo_build(build, &["-p", "ledtrad-agent", "--example", "footprint"])?
        .remove("footprint")
        .context("cargo built no footprint workload")?;
    let library = match build {
        Build::Full => None,
        Build::Device => {
            let mut built = cargo_build(build, &["-p", "ledtrad-ffi", "--lib"])?;
            Some(built.remove("libledtrad.so").context("cargo built no libledtrad.so")?)
        }
    };
    Ok(Artifacts { agent, workload, library })
}

/// Runs cargo build with `build`'s profile and features and `what`; the files it produced, by
/// file name (executables by their name, libraries by their file's name).
fn cargo_build(build: Build, what: &[&str]) -> anyhow::Result<std::collections::HashMap<String, PathBuf>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut command = Command::new(&cargo);
    for (name, value) in build.cargo_env()? {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    let output = command
        .current_dir(&workspace)
        .arg("build")
        .args(build.cargo_args())
        .args(what)
        .args(["--message-format", "json-render-diagnostics"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {} build {}", cargo.to_string_lossy(), what.join(" ")))?;
    anyhow::ensure!(
        output.status.success(),
        "cargo build {} {} failed ({}); its errors are above",
        build.cargo_args().join(" "),
        what.join(" "),
        output.status
    );
    let mut built = std::collections::HashMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let files = message["executable"].as_str().into_iter().chain(
            message["filenames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str())
                .filter(|f| f.ends_with(".so")),
        );
        for file in files {
            let path = PathBuf::from(file);
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            built.insert(name, path);
        }
    }
    Ok(built)
}

/// Runs the workload built at `exe` with `config`; what it printed.
fn run_workload(exe: &Path, config: &Path, days: u64, seed: u64) -> anyhow::Result<Workload> {
    let output = Command::new(exe)
        .arg("--config")
        .arg(config)
        .args(["--days", &days.to_string(), "--seed", &seed.to_string(), "--start", &START.0.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", exe.display()))?;
    anyhow::ensure!(output.status.success(), "{} failed ({})", exe.display(), output.status);
    parse_workload(&String::from_utf8_lossy(&output.stdout))
}

/// The workload's figures from the line it printed.
pub fn parse_workload(printed: &str) -> anyhow::Result<Workload> {
    let line = printed.lines().last().context("the footprint workload printed nothing")?;
    serde_json::from_str(line).with_context(|| format!("the footprint workload printed {line:?}, not its figures"))
}

fn file_size(path: &Path) -> anyhow::Result<u64> {
    Ok(std::fs::metadata(path).with_context(|| format!("reading the size of {}", path.display()))?.len())
}

/// A field of `/proc/self/status` in bytes (e.g. `VmRSS`).
pub(crate) fn proc_status(field: &str) -> anyhow::Result<u64> {
    proc_status_of("self", field)
}

/// A size field (kB) of process `pid`'s `/proc/<pid>/status` ("self" for this one), in bytes.
pub(crate) fn proc_status_of(pid: &str, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {path} (the simulator measures resident memory on Linux)"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .with_context(|| format!("no {field} in {path}"))?;
    let kib: u64 = line[field.len() + 1..].trim().trim_end_matches("kB").trim().parse().context("parsing the size")?;
    Ok(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prepared_config_names_a_database_holding_the_signed_catalogue() {
        let dir = tempfile::tempdir().expect("dir");
        let config = prepare(dir.path(), 50, 3, true).expect("prepare");
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, &config).expect("write");
        let checked = ledtrad_agent::Config::from_path(&path).expect("the agent accepts the config");
        assert_eq!(checked.database, dir.path().join("agent.db"));
        let store = Store::open(&checked.database).expect("open");
        assert_eq!(store.highest_catalogue_version().expect("read"), Some(1));
        assert_eq!(store.highest_model_version().expect("read"), Some(1));
    }

    #[test]
    fn the_device_environment_parses_and_carries_the_zone_the_workload_names() {
        let env = parse_env(DEVICE_ENV).expect("deploy/device-build.env parses");
        let zones = env.iter().find(|(name, _)| *name == "CHRONO_TZ_TIMEZONE_FILTER").expect("a zone filter");
        assert!(zones.1.contains(ZONE), "{zones:?}");
        assert!(env.iter().any(|(name, value)| *name == "LIBSQLITE3_FLAGS" && value.contains("-DSQLITE_OMIT_JSON")));
        let full = Build::Full.cargo_env().expect("parses");
        assert!(full.iter().all(|(_, value)| value.is_none()), "the full build unsets the device's variables");
        let err = parse_env("# fine\nZONES=Europe/Oslo\n").expect_err("unquoted").to_string();
        assert!(err.contains("line 2") && err.contains("ZONES=Europe/Oslo"), "{err}");
    }

    #[test]
    fn builds_are_named_and_a_bad_name_says_what_to_use() {
        assert_eq!(["full", "device"].map(|n| n.parse::<Build>().expect("known")), [Build::Full, Build::Device]);
        let err = "tiny".parse::<Build>().expect_err("unknown");
        assert!(err.contains("\"tiny\"") && err.contains("full,device"), "{err}");
    }

    #[test]
    fn the_workload_line_parses_and_anything_else_is_an_error_quoting_it() {
        let line = r#"{"offers":10,"decisions":96,"shown":4,"baseline_rss_bytes":1,"baseline_anon_bytes":2,"baseline_file_bytes":3,"rss_bytes":4,"rss_day2_bytes":8,"anon_bytes":5,"file_bytes":6,"peak_rss_bytes":7}"#;
        let parsed = parse_workload(&format!("noise\n{line}\n")).expect("parses");
        assert_eq!((parsed.decisions, parsed.rss_bytes, parsed.peak_rss_bytes), (96, 4, 7));
        assert_eq!(parsed.rss_day2_bytes, Some(8));
        let err = parse_workload("oops").expect_err("not figures").to_string();
        assert!(err.contains("\"oops\""), "{err}");
    }
}
