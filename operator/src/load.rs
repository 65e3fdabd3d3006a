//! Reading catalogues. TOML is the authoring format; JSON is accepted (by extension `.json`,
//! or when the file starts with `{`). Every problem is reported at once.

use std::path::{Path, PathBuf};

use ledtrad_protocol::catalogue::{Catalogue, Problem};
use ledtrad_protocol::UnixTime;

/// A catalogue that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("catalogue '{path}': {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or JSON.
    #[error("catalogue '{path}': not valid {format}: {detail}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// "TOML" or "JSON".
        format: &'static str,
        /// The parser's message, with line and column.
        detail: String,
    },
    /// The catalogue breaks the catalogue rules.
    #[error("catalogue '{}': {} problem(s):\n{}", path.display(), problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Problems {
        /// The file.
        path: PathBuf,
        /// Every problem.
        problems: Vec<Problem>,
    },
}

/// Parses catalogue text; `path` names it in errors and picks the format.
pub fn parse_catalogue(path: &Path, text: &str, now: Option<UnixTime>) -> Result<Catalogue, LoadError> {
    let is_json =
        path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) || text.trim_start().starts_with('{');
    let value: serde_json::Value = if is_json {
        serde_json::from_str(text).map_err(|e| LoadError::Syntax {
            path: path.into(),
            format: "JSON",
            detail: e.to_string(),
        })?
    } else {
        let table: toml::Table = toml::from_str(text).map_err(|e| LoadError::Syntax {
            path: path.into(),
            format: "TOML",
            detail: e.to_string(),
        })?;
        serde_json::to_value(table).map_err(|e| LoadError::Syntax {
            path: path.into(),
            format: "TOML",
            detail: e.to_string(),
        })?
    };
    let catalogue =
        Catalogue::from_value(value).map_err(|problems| LoadError::Problems { path: path.into(), problems })?;
    let unused: Vec<_> = catalogue.prompts.iter().filter_map(|p| p.unused_purpose()).collect();
    if !unused.is_empty() {
        return Err(LoadError::Problems { path: path.into(), problems: unused });
    }
    if let Some(now) = now {
        let problems = catalogue.problems_at(now);
        if !problems.is_empty() {
            return Err(LoadError::Problems { path: path.into(), problems });
        }
    }
    Ok(catalogue)
}

/// Reads and checks a catalogue file. With `now`, offers whose window has ended are problems.
pub fn load_catalogue(path: &Path, now: Option<UnixTime>) -> Result<Catalogue, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io { path: path.into(), source })?;
    parse_catalogue(path, &text, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixTime = UnixTime(1_795_456_800);

    fn example() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/catalogues/home.toml")
    }

    #[test]
    fn the_example_catalogue_is_valid_and_covers_every_device_kind() {
        let catalogue = load_catalogue(&example(), Some(NOW)).unwrap();
        assert!(catalogue.offers.len() >= 12);
        for kind in ledtrad_protocol::DeviceKind::ALL {
            assert!(catalogue.offers.iter().any(|o| o.device_kinds.contains(&kind)), "{kind}");
        }
    }

    #[test]
    fn json_is_accepted_too() {
        let toml_cat = load_catalogue(&example(), None).unwrap();
        let json = serde_json::to_string(&toml_cat).unwrap();
        let json_cat = parse_catalogue(Path::new("home.json"), &json, None).unwrap();
        assert_eq!(toml_cat, json_cat);
    }

    #[test]
    fn every_problem_is_reported_with_offer_and_field() {
        let text = r#"
[[offer]]
id = "oat-milk"
campaign = "c"
title = "Oat milk"
question = "Buy oat milk now."
body = "b"
category = "health.diet"
device_kinds = ["fridge"]
moments = ["door_opened", "book_finished"]
conditions = [{ feature = "fridge.oat.level", op = "lt", value = 0.1 }]
value = 1
valid_from = "2026-01-01T00:00:00Z"
valid_until = "2026-02-01T00:00:00Z"
caps = { per_day = 0 }

[[offer]]
id = "oat-milk"
campaign = "c"
title = "t"
question = "q?"
body = "b"
category = "food.dairy"
device_kinds = ["toaster"]
moments = ["door_opened"]
value = 1
valid_from = "2026-01-01T00:00:00Z"
valid_until = "2030-01-01T00:00:00Z"
"#;
        let err = parse_catalogue(Path::new("spring.toml"), text, Some(NOW)).unwrap_err();
        let LoadError::Problems { problems, .. } = &err else { panic!("{err}") };
        let has = |field: &str, words: &str| {
            problems
                .iter()
                .any(|p| p.offer.as_deref() == Some("oat-milk") && p.field == field && p.message.contains(words))
        };
        assert!(has("question", "statement"), "{err}");
        assert!(has("category", "sensitive"), "{err}");
        assert!(has("moments", "book_finished"), "{err}");
        assert!(has("conditions[0].feature", "fridge.oat.level"), "{err}");
        assert!(has("caps.per_day", "never be shown"), "{err}");
        assert!(has("offer", "toaster"), "{err}");
        let text = err.to_string();
        assert!(text.starts_with("catalogue 'spring.toml': "), "{text}");
        assert!(text.contains("offer 'oat-milk', field 'category': category \"health.diet\" is sensitive"), "{text}");
    }

    #[test]
    fn a_prompt_for_a_purpose_this_version_does_not_use_is_refused_with_the_fix() {
        let text = std::fs::read_to_string(example()).unwrap()
            + "\n[[prompt]]\nid = \"ask-improve\"\npurpose = \"improve\"\nquestion = \"Could the fridge help improve suggestions?\"\n\
               incentive = \"Better suggestions\"\ntext_version = \"2026-11\"\ndevice_kinds = [\"fridge\"]\nmoments = [\"door_opened\"]\n";
        let err = parse_catalogue(Path::new("ask.toml"), &text, None).unwrap_err().to_string();
        assert!(err.contains("'ask-improve', field 'purpose': improve is not used by this version"), "{err}");
        assert!(err.contains("ask for personalise, request or measure"), "{err}");
    }

    #[test]
    fn an_ended_offer_is_a_problem_only_when_checked_against_now() {
        let text = std::fs::read_to_string(example()).unwrap().replace("2030-01-01T00:00:00Z", "2026-06-01T00:00:00Z");
        assert!(parse_catalogue(Path::new("old.toml"), &text, None).is_ok());
        let err = parse_catalogue(Path::new("old.toml"), &text, Some(NOW)).unwrap_err().to_string();
        assert!(err.contains("field 'valid_until': the offer ended at 2026-06-01T00:00:00Z"), "{err}");
    }

    #[test]
    fn syntax_errors_name_the_file_and_position() {
        let err = parse_catalogue(Path::new("broken.toml"), "[[offer]\nid = 1", None).unwrap_err().to_string();
        assert!(err.starts_with("catalogue 'broken.toml': not valid TOML"), "{err}");
        assert!(err.contains("line 1"), "{err}");
    }
}
