//! Scenario files (`ledtrad-sim run --scenario FILE`, TOML, in `examples/scenarios/`): what a
//! run simulates, written down so it can be shared, repeated and compared.

use std::path::{Path, PathBuf};

use ledtrad_protocol::UnixTime;
use serde::Deserialize;

use crate::home::{ConsentMode, Households, SensorPath};
use crate::people::Responses;
use crate::survey::Survey;

/// A scenario as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// What it is, for people.
    pub name: String,
    /// Homes.
    pub homes: u64,
    /// Simulated days.
    pub days: u64,
    /// The seed: the same scenario and seed give the same results.
    pub seed: u64,
    /// The first simulated day, RFC 3339 (default 2026-11-23T00:00:00Z).
    #[serde(default)]
    pub start: Option<String>,
    /// How people consent (default `survey`).
    #[serde(default)]
    pub consent: Option<ConsentMode>,
    /// The catalogue, relative to the scenario file (default: the shipped example).
    #[serde(default)]
    pub catalogue: Option<PathBuf>,
    /// How sensor signals reach the agents (default `direct`).
    #[serde(default)]
    pub sensors: Option<SensorPath>,
    /// The survey figures people's consent is drawn from.
    #[serde(default)]
    pub survey: Survey,
    /// How homes are made up: people per home, children, devices.
    #[serde(default)]
    pub households: Households,
    /// How people answer offers (the response model in `simulator/src/people.rs`).
    #[serde(default)]
    pub responses: Responses,
}

/// A scenario that cannot be used, naming the file and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("scenario '{}': {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a scenario.
    #[error("scenario '{}': {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column where the parser knows them.
        message: String,
    },
}

impl Scenario {
    /// Reads and checks a scenario file; the catalogue path comes back relative to the
    /// working directory.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read { path: path.into(), source })?;
        let invalid = |message: String| ScenarioError::Invalid { path: path.into(), message };
        let mut scenario: Scenario = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        if scenario.homes == 0 || scenario.days == 0 {
            return Err(invalid("homes and days must be at least 1".into()));
        }
        scenario.survey.check().map_err(|e| invalid(e.to_string()))?;
        scenario.households.check().map_err(invalid)?;
        scenario.responses.check().map_err(|e| invalid(e.to_string()))?;
        if let Some(start) = &scenario.start {
            UnixTime::parse_rfc3339(start).map_err(|e| invalid(format!("start {start:?}: {e}")))?;
        }
        if let Some(catalogue) = &scenario.catalogue {
            scenario.catalogue = Some(path.parent().unwrap_or(Path::new(".")).join(catalogue));
        }
        Ok(scenario)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_scenarios_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/scenarios");
        let mut loaded = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(scenario.catalogue.as_ref().is_none_or(|c| c.is_file()), "{path:?}");
            loaded += 1;
        }
        assert!(loaded >= 1);
        // The shipped week writes out every default, so what it says is what the code does.
        let week = Scenario::load(&dir.join("stockholm-week.toml")).unwrap();
        assert_eq!(week.responses, Responses::default());
        assert_eq!(week.households, Households::default());
    }

    #[test]
    fn a_bad_scenario_names_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "name = \"x\"\nhomes = 3\ndays = 1\nseed = 1\n[survey]\nthird_parties = 4\n").unwrap();
        let err = Scenario::load(&path).unwrap_err().to_string();
        assert!(err.contains("bad.toml") && err.contains("'third_parties' is 4"), "{err}");
        std::fs::write(&path, "name = \"x\"\nhomes = 3\ndays = 1\nseed = 1\ncolour = 2\n").unwrap();
        let err = Scenario::load(&path).unwrap_err().to_string();
        assert!(err.contains("unknown field `colour`"), "{err}");
        std::fs::write(&path, "name = \"x\"\nhomes = 3\ndays = 1\nseed = 1\n[responses]\nrevoke_base = 3\n").unwrap();
        let err = Scenario::load(&path).unwrap_err().to_string();
        assert!(err.contains("'revoke_base' is 3; a chance must be from 0 to 1"), "{err}");
        std::fs::write(&path, "name = \"x\"\nhomes = 3\ndays = 1\nseed = 1\n[households]\nlock_screen = -1\n").unwrap();
        let err = Scenario::load(&path).unwrap_err().to_string();
        assert!(err.contains("households.lock_screen is -1"), "{err}");
    }
}
