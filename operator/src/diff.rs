//! What changes for devices between two catalogues (`ledtrad-op catalogue diff OLD NEW`):
//! offers, campaigns and consent prompts added, removed or changed field by field (matched by
//! id), and the device-wide policy. Fields are compared as devices read them, after parsing,
//! so reformatting a file or reordering its keys changes nothing.

use std::collections::BTreeMap;
use std::fmt;

use ledtrad_protocol::catalogue::Catalogue;
use ledtrad_protocol::DeviceKind;
use serde::Serialize;
use serde_json::Value;

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    /// The field, e.g. `caps` or `step`.
    pub field: String,
    /// Its old value (JSON), `null` where it was not set.
    pub old: Value,
    /// Its new value (JSON).
    pub new: Value,
}

/// An item (offer, campaign or prompt) that is in both catalogues but differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Changed {
    /// Its id.
    pub id: String,
    /// What differs.
    pub fields: Vec<FieldChange>,
}

/// How one kind of item changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ItemsDiff {
    /// Ids only in the new catalogue.
    pub added: Vec<String>,
    /// Ids only in the old one.
    pub removed: Vec<String>,
    /// Items in both that differ.
    pub changed: Vec<Changed>,
}

impl ItemsDiff {
    fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// What changes for devices.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CatalogueDiff {
    /// Offers.
    pub offers: ItemsDiff,
    /// Campaign settings: holdout, caps, journeys.
    pub campaigns: ItemsDiff,
    /// Consent prompts.
    pub prompts: ItemsDiff,
    /// Device-wide rules.
    pub policy: Vec<FieldChange>,
    /// The device kinds whose offers or prompts change.
    pub device_kinds: Vec<DeviceKind>,
}

impl CatalogueDiff {
    /// Whether devices would see no difference.
    pub fn is_empty(&self) -> bool {
        self.offers.is_empty() && self.campaigns.is_empty() && self.prompts.is_empty() && self.policy.is_empty()
    }
}

/// Compares two parsed catalogues.
pub fn diff(old: &Catalogue, new: &Catalogue) -> CatalogueDiff {
    let offers = items(&old.offers, &new.offers, |o| o.id.to_string());
    let campaigns = items(&old.campaigns, &new.campaigns, |c| c.id.to_string());
    let prompts = items(&old.prompts, &new.prompts, |p| p.id.to_string());
    let policy = fields(&to_value(&old.policy), &to_value(&new.policy));
    // Which kinds of device see a difference: those of every offer or prompt touched, in
    // either version; a policy change reaches them all.
    let mut kinds: Vec<DeviceKind> = Vec::new();
    let touched = |ids: &ItemsDiff, id: &str| {
        ids.added.iter().chain(&ids.removed).any(|a| a == id) || ids.changed.iter().any(|c| c.id == id)
    };
    for offer in old.offers.iter().chain(&new.offers).filter(|o| touched(&offers, o.id.as_str())) {
        kinds.extend(&offer.device_kinds);
    }
    for prompt in old.prompts.iter().chain(&new.prompts).filter(|p| touched(&prompts, p.id.as_str())) {
        kinds.extend(&prompt.device_kinds);
    }
    // A campaign's settings reach the devices of its offers.
    for campaign in campaigns.added.iter().chain(&campaigns.removed).chain(campaigns.changed.iter().map(|c| &c.id)) {
        for offer in old.offers.iter().chain(&new.offers).filter(|o| o.campaign.as_str() == campaign) {
            kinds.extend(&offer.device_kinds);
        }
    }
    if !policy.is_empty() {
        kinds.extend(DeviceKind::ALL);
    }
    let mut device_kinds: Vec<DeviceKind> = DeviceKind::ALL.iter().copied().filter(|k| kinds.contains(k)).collect();
    device_kinds.dedup();
    CatalogueDiff { offers, campaigns, prompts, policy, device_kinds }
}

fn to_value<T: Serialize>(item: &T) -> Value {
    serde_json::to_value(item).unwrap_or(Value::Null)
}

/// Matches items by id and compares each pair field by field.
fn items<T: Serialize>(old: &[T], new: &[T], id: impl Fn(&T) -> String) -> ItemsDiff {
    let old: BTreeMap<String, Value> = old.iter().map(|i| (id(i), to_value(i))).collect();
    let new_ids: Vec<String> = new.iter().map(&id).collect();
    let new: BTreeMap<String, Value> = new.iter().map(|i| (id(i), to_value(i))).collect();
    ItemsDiff {
        // New items in the order the new file lists them.
        added: new_ids.iter().filter(|i| !old.contains_key(*i)).cloned().collect(),
        removed: old.keys().filter(|i| !new.contains_key(*i)).cloned().collect(),
        changed: new_ids
            .iter()
            .filter(|i| old.contains_key(*i))
            .map(|i| Changed { id: i.clone(), fields: fields(&old[i], &new[i]) })
            .filter(|c| !c.fields.is_empty())
            .collect(),
    }
}

/// The top-level fields of two JSON objects that differ.
fn fields(old: &Value, new: &Value) -> Vec<FieldChange> {
    let empty = serde_json::Map::new();
    let (o, n) = (old.as_object().unwrap_or(&empty), new.as_object().unwrap_or(&empty));
    let mut names: Vec<&String> = o.keys().chain(n.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| {
            let (a, b) = (o.get(name).unwrap_or(&Value::Null), n.get(name).unwrap_or(&Value::Null));
            (a != b).then(|| FieldChange { field: name.clone(), old: a.clone(), new: b.clone() })
        })
        .collect()
}

impl fmt::Display for CatalogueDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(f, "no changes for devices");
        }
        for (kind, items) in [("offer", &self.offers), ("campaign", &self.campaigns), ("prompt", &self.prompts)] {
            for id in &items.added {
                writeln!(f, "+ {kind} {id}")?;
            }
            for id in &items.removed {
                writeln!(f, "- {kind} {id}")?;
            }
            for changed in &items.changed {
                writeln!(f, "~ {kind} {}", changed.id)?;
                for c in &changed.fields {
                    writeln!(f, "    {}: {} -> {}", c.field, c.old, c.new)?;
                }
            }
        }
        for c in &self.policy {
            writeln!(f, "~ policy {}: {} -> {}", c.field, c.old, c.new)?;
        }
        let kinds: Vec<&str> = self.device_kinds.iter().map(|k| k.as_str()).collect();
        writeln!(
            f,
            "{} offer(s) added, {} removed, {} changed; {} campaign(s) and {} prompt(s) changed; devices affected: {}",
            self.offers.added.len(),
            self.offers.removed.len(),
            self.offers.changed.len(),
            self.campaigns.added.len() + self.campaigns.removed.len() + self.campaigns.changed.len(),
            self.prompts.added.len() + self.prompts.removed.len() + self.prompts.changed.len(),
            kinds.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn example() -> Catalogue {
        crate::load_catalogue(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/catalogues/home.toml"), None)
            .unwrap()
    }

    #[test]
    fn the_same_catalogue_has_no_changes() {
        let d = diff(&example(), &example());
        assert!(d.is_empty());
        assert_eq!(d.to_string(), "no changes for devices\n");
    }

    #[test]
    fn added_removed_and_changed_items_are_listed_with_their_fields_and_the_devices_they_reach() {
        let old = example();
        let mut new = example();
        let film = new.offers.iter().position(|o| o.id.as_str() == "evening-film").unwrap();
        new.offers.remove(film);
        let care = new.offers.iter_mut().find(|o| o.id.as_str() == "fridge-care").unwrap();
        care.value = 0.8;
        care.caps.per_week = Some(2);
        let mut added = care.clone();
        added.id = ledtrad_protocol::OfferId::try_new("fridge-care-2").unwrap();
        new.offers.push(added);
        new.campaigns.iter_mut().find(|c| c.id.as_str() == "dairy-winter").unwrap().holdout = 0.2;
        new.policy.min_gap_minutes = Some(45);
        let d = diff(&old, &new);
        assert_eq!(d.offers.added, ["fridge-care-2"]);
        assert_eq!(d.offers.removed, ["evening-film"]);
        assert_eq!(d.offers.changed.len(), 1);
        let fields: Vec<&str> = d.offers.changed[0].fields.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["caps", "value"]);
        assert_eq!(d.campaigns.changed[0].id, "dairy-winter");
        assert_eq!(d.campaigns.changed[0].fields[0].new, serde_json::json!(0.2));
        assert_eq!(d.policy[0].field, "min_gap_minutes");
        assert_eq!(d.device_kinds, DeviceKind::ALL, "a policy change reaches every kind");
        let text = d.to_string();
        for line in ["+ offer fridge-care-2", "- offer evening-film", "~ offer fridge-care", "    value: 0.5 -> 0.8"] {
            assert!(text.contains(line), "{line:?} in {text}");
        }
        assert!(text.contains("~ policy min_gap_minutes: null -> 45"), "{text}");
    }

    #[test]
    fn a_change_reaches_only_the_devices_of_what_changed() {
        let old = example();
        let mut new = example();
        new.offers.iter_mut().find(|o| o.id.as_str() == "free-sample").unwrap().priority = 2.0;
        let d = diff(&old, &new);
        assert_eq!(d.device_kinds, [DeviceKind::Ereader]);
    }
}
