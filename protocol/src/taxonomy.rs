//! Offer categories. Offers target interests, never opinions or feelings: the sensitive
//! branches below cannot be targeted, and a catalogue that tries is rejected.

use alloc::string::String;

/// An allowed category and the coarse words a "why" text may use for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CategoryInfo {
    /// The dotted path, e.g. `food.dairy`.
    pub path: &'static str,
    /// A coarse, plural description, e.g. `dairy`.
    pub label: &'static str,
}

/// The categories offers may target.
pub const CATEGORIES: &[CategoryInfo] = &[
    CategoryInfo { path: "food.dairy", label: "dairy" },
    CategoryInfo { path: "food.produce", label: "fresh produce" },
    CategoryInfo { path: "food.bakery", label: "bread and baking" },
    CategoryInfo { path: "food.drinks", label: "drinks" },
    CategoryInfo { path: "food.meals", label: "meals" },
    CategoryInfo { path: "food.snacks", label: "snacks" },
    CategoryInfo { path: "home.kitchen", label: "kitchen things" },
    CategoryInfo { path: "home.cleaning", label: "cleaning" },
    CategoryInfo { path: "books.crime", label: "crime stories" },
    CategoryInfo { path: "books.cooking", label: "cookbooks" },
    CategoryInfo { path: "books.travel", label: "travel books" },
    CategoryInfo { path: "books.fiction", label: "novels" },
    CategoryInfo { path: "books.children", label: "children's books" },
    CategoryInfo { path: "media.music", label: "music" },
    CategoryInfo { path: "media.film", label: "films and series" },
    CategoryInfo { path: "leisure.outdoor", label: "outdoor activities" },
    CategoryInfo { path: "leisure.games", label: "games" },
    CategoryInfo { path: "services.delivery", label: "deliveries" },
    CategoryInfo { path: "services.energy", label: "home energy" },
];

/// Branches that can never be targeted (DESIGN §2): health, religion, politics, sexuality,
/// ethnicity, union membership, emotions and financial distress.
pub const SENSITIVE_BRANCHES: &[&str] =
    &["health", "religion", "politics", "sexuality", "ethnicity", "union", "emotions", "finance.distress"];

/// A category from [`CATEGORIES`]. Deserialising checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Category(&'static CategoryInfo);

/// Why a category cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCategory {
    /// The category is in a sensitive branch.
    #[error(
        "category {0:?} is sensitive and can never be targeted; choose an interest category such as \"food.dairy\""
    )]
    Sensitive(String),
    /// The category is not in the taxonomy.
    #[error("unknown category {0:?}; use one of the taxonomy's categories, e.g. \"food.dairy\", \"books.crime\", \"home.cleaning\"")]
    Unknown(String),
}

impl Category {
    /// Looks up `path`, refusing sensitive and unknown categories.
    pub fn try_new(path: &str) -> Result<Self, InvalidCategory> {
        let sensitive = SENSITIVE_BRANCHES
            .iter()
            .any(|b| path == *b || (path.starts_with(b) && path.as_bytes().get(b.len()) == Some(&b'.')));
        if sensitive {
            return Err(InvalidCategory::Sensitive(path.into()));
        }
        CATEGORIES.iter().find(|c| c.path == path).map(Self).ok_or_else(|| InvalidCategory::Unknown(path.into()))
    }

    /// The dotted path.
    pub fn path(self) -> &'static str {
        self.0.path
    }

    /// The coarse label for "why" texts.
    pub fn label(self) -> &'static str {
        self.0.label
    }
}

crate::table_name!(Category, path);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_branches_are_refused_at_any_depth() {
        for path in ["health", "health.diet", "emotions.sad", "finance.distress.loans"] {
            assert_eq!(Category::try_new(path), Err(InvalidCategory::Sensitive(path.into())));
        }
        // A prefix that only looks like a branch is not sensitive, just unknown.
        assert_eq!(Category::try_new("healthy-snacks"), Err(InvalidCategory::Unknown("healthy-snacks".into())));
    }

    #[test]
    fn nothing_the_device_knows_touches_a_sensitive_branch() {
        // The agent never derives a sensitive interest: no allowed category and no feature
        // lies in, or speaks of, a sensitive branch.
        for c in CATEGORIES {
            let root = c.path.split('.').next().unwrap_or_default();
            assert!(
                !SENSITIVE_BRANCHES.iter().any(|b| b.split('.').next() == Some(root) && c.path.starts_with(b)),
                "{}",
                c.path
            );
        }
        for f in crate::feature::FEATURES {
            for word in ["health", "religio", "politic", "sexual", "ethnic", "union", "emotion", "mood", "debt", "loan"]
            {
                assert!(!f.name.contains(word) && !f.why.contains(word), "{} speaks of {word}", f.name);
            }
        }
    }

    #[test]
    fn every_listed_category_is_allowed() {
        for c in CATEGORIES {
            assert_eq!(Category::try_new(c.path).unwrap().label(), c.label);
        }
    }
}
