//! The store's unit tests, on real SQLite files in temporary directories.

use super::*;

fn build_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("agent.db")).unwrap();
    (dir, store)
}

fn consent_row(person: &str, purpose: Purpose, granted: bool, at: u64) -> LedgerRow {
    LedgerRow {
        person: PersonId::try_new(person).unwrap(),
        purpose,
        granted,
        at: UnixTime(at),
        source: ConsentSource::DeviceUi,
        text_version: "v1".into(),
    }
}

/// A shared device's rule, for the tests: the strictest consent of everyone.
fn strictest(h: &Household) -> ConsentState {
    if h.is_empty() {
        return ConsentState::NONE;
    }
    h.values().fold(ConsentState::all(), |s, m| s.and(m.consent))
}

fn build_household_store(people: &[&str]) -> (tempfile::TempDir, Store) {
    let (dir, mut store) = build_store();
    for p in people {
        store.put_person(&PersonId::try_new(*p).unwrap(), false, UnixTime(0), &strictest).unwrap();
    }
    (dir, store)
}

#[test]
fn migrations_are_valid() {
    migrations().validate().unwrap();
}

#[test]
fn consent_state_is_derived_from_the_append_only_ledger() {
    let (_dir, mut store) = build_household_store(&["anna"]);
    let anna = PersonId::try_new("anna").unwrap();
    assert_eq!(store.household().unwrap()[&anna].consent, ConsentState::NONE);
    store.append_consent(&consent_row("anna", Purpose::Personalise, true, 1), &strictest).unwrap();
    store.append_consent(&consent_row("anna", Purpose::Measure, true, 2), &strictest).unwrap();
    let (household, purge) =
        store.append_consent(&consent_row("anna", Purpose::Personalise, false, 3), &strictest).unwrap();
    let state = purge.after();
    assert_eq!(purge.lost().collect::<Vec<_>>(), vec![Purpose::Personalise]);
    assert!(!state.allows(Purpose::Personalise));
    assert!(state.allows(Purpose::Measure));
    assert_eq!(household[&anna].consent, state);
    assert_eq!(store.ledger().unwrap().len(), 3);
    let update = store.conn.execute("UPDATE consent_ledger SET granted = 1", []);
    assert!(update.unwrap_err().to_string().contains("append-only"));
}

#[test]
fn consent_is_kept_per_person() {
    let (_dir, mut store) = build_household_store(&["anna", "bo"]);
    store.append_consent(&consent_row("anna", Purpose::Personalise, true, 1), &strictest).unwrap();
    let (household, purge) = store.append_consent(&consent_row("bo", Purpose::Measure, true, 2), &strictest).unwrap();
    let state = purge.after();
    assert!(household[&PersonId::try_new("anna").unwrap()].consent.allows(Purpose::Personalise));
    assert!(!household[&PersonId::try_new("bo").unwrap()].consent.allows(Purpose::Personalise));
    assert_eq!(state, ConsentState::NONE, "nothing is granted by both");
}

#[test]
fn making_someone_a_child_revokes_what_children_cannot_grant() {
    let (_dir, mut store) = build_household_store(&["kim"]);
    for p in Purpose::ALL {
        store.append_consent(&consent_row("kim", p, true, 1), &strictest).unwrap();
    }
    let kim = PersonId::try_new("kim").unwrap();
    let (household, _) = store.put_person(&kim, true, UnixTime(5), &strictest).unwrap();
    assert!(household[&kim].child);
    assert_eq!(household[&kim].consent, ConsentState::NONE.with(Purpose::Measure, true));
    let ledger = store.ledger().unwrap();
    assert_eq!(ledger.iter().filter(|r| r.text_version == "child-profile" && !r.granted).count(), 3);
}

#[test]
fn losing_personalise_deletes_learning_data_in_the_same_transaction() {
    let (_dir, mut store) = build_household_store(&["anna"]);
    store.append_consent(&consent_row("anna", Purpose::Personalise, true, 1), &strictest).unwrap();
    let offer = OfferId::try_new("milk").unwrap();
    let campaign = CampaignId::try_new("dairy").unwrap();
    store
        .record_impression(&ImpressionRow { decision: DecisionId(4), offer: offer.clone(), campaign, at: UnixTime(2) })
        .unwrap();
    store.record_feedback_event(DecisionId(4), &offer, None, FeedbackKind::Accepted, UnixTime(3), true).unwrap();
    assert_eq!(store.feedback().unwrap().len(), 1);
    store.append_consent(&consent_row("anna", Purpose::Personalise, false, 4), &strictest).unwrap();
    assert!(store.feedback().unwrap().is_empty());
    assert_eq!(store.last_decision_id().unwrap(), 4);
    assert_eq!(store.impressions_since(UnixTime(0)).unwrap().len(), 1);
}

#[test]
fn erasing_revokes_records_and_deletes_device_data_at_once() {
    let (_dir, mut store) = build_household_store(&["anna"]);
    let anna = PersonId::try_new("anna").unwrap();
    store.append_consent(&consent_row("anna", Purpose::Personalise, true, 1), &strictest).unwrap();
    store.append_consent(&consent_row("anna", Purpose::Measure, true, 1), &strictest).unwrap();
    let offer = OfferId::try_new("milk").unwrap();
    let campaign = CampaignId::try_new("dairy").unwrap();
    store
        .record_impression(&ImpressionRow { decision: DecisionId(1), offer: offer.clone(), campaign, at: UnixTime(2) })
        .unwrap();
    store.record_feedback_event(DecisionId(1), &offer, None, FeedbackKind::Accepted, UnixTime(3), true).unwrap();
    let (household, purge) = store.erase(&anna, true, UnixTime(9), ConsentSource::DeviceUi, &strictest).unwrap();
    let state = purge.after();
    assert_eq!((household[&anna].consent, state), (ConsentState::NONE, ConsentState::NONE));
    assert!(store.feedback_rows().unwrap().is_empty());
    assert!(store.impressions_since(UnixTime(0)).unwrap().is_empty());
    assert_eq!(store.erasures(&anna).unwrap(), vec![(UnixTime(9), "device_ui".to_string())]);
    assert_eq!(store.ledger().unwrap().iter().filter(|r| r.text_version == "erasure").count(), 2);
    // The records themselves cannot be rewritten or removed.
    assert!(store.conn.execute("DELETE FROM erasures", []).unwrap_err().to_string().contains("append-only"));
    assert!(store.conn.execute("DELETE FROM consent_ledger", []).unwrap_err().to_string().contains("append-only"));
}

#[test]
fn losing_a_purpose_deletes_its_queued_messages_in_the_same_transaction() {
    let (_dir, mut store) = build_household_store(&["anna"]);
    store.append_consent(&consent_row("anna", Purpose::Measure, true, 1), &strictest).unwrap();
    store.append_consent(&consent_row("anna", Purpose::Request, true, 1), &strictest).unwrap();
    store.enqueue(Purpose::Measure, "ledtrad/v1/fleet/home/reports", b"{}", UnixTime(2)).unwrap();
    store.enqueue(Purpose::Request, "ledtrad/v1/offers/request", b"{}", UnixTime(2)).unwrap();
    store.append_consent(&consent_row("anna", Purpose::Measure, false, 3), &strictest).unwrap();
    let left = store.outbox().unwrap();
    assert_eq!(left.iter().map(|r| r.purpose).collect::<Vec<_>>(), vec![Purpose::Request]);
    store.outbox_remove(left[0].id).unwrap();
    assert!(store.outbox().unwrap().is_empty());
}

#[test]
fn catalogues_keep_the_newest() {
    let (_dir, store) = build_store();
    for v in 1..=5 {
        store.save_catalogue(v, "home", &[v as u8], UnixTime(v)).unwrap();
    }
    assert_eq!(store.latest_catalogue().unwrap(), Some((5, vec![5])));
    let count: i64 = store.conn.query_row("SELECT COUNT(*) FROM catalogues", [], |r| r.get(0)).unwrap();
    assert_eq!(count, 3);
}

#[test]
fn a_presence_change_that_loses_a_purpose_purges_in_its_own_transaction() {
    let (_dir, mut store) = build_household_store(&["anna", "bo"]);
    let anna = PersonId::try_new("anna").unwrap();
    for (person, purpose) in [("anna", Purpose::Personalise), ("anna", Purpose::Measure), ("bo", Purpose::Measure)] {
        store.append_consent(&consent_row(person, purpose, true, 1), &strictest).unwrap();
    }
    store.enqueue(Purpose::Measure, "ledtrad/v1/fleet/home/reports", b"{}", UnixTime(2)).unwrap();
    let offer = OfferId::try_new("milk").unwrap();
    let campaign = ledtrad_protocol::CampaignId::try_new("dairy").unwrap();
    let shown =
        crate::store::ImpressionRow { decision: DecisionId(1), offer: offer.clone(), campaign, at: UnixTime(2) };
    store.record_impression(&shown).unwrap();
    store.record_feedback_event(DecisionId(1), &offer, None, FeedbackKind::Accepted, UnixTime(3), true).unwrap();
    // Anna alone present: her consent; then Bo alone: his, without personalise.
    let only = |who: &'static str| move |h: &Household| h[&PersonId::try_new(who).unwrap()].consent;
    let (_, purge) = store.change_presence(&only("bo"), &only("anna")).unwrap();
    assert!(purge.is_empty(), "gaining a purpose purges nothing");
    assert_eq!(store.feedback().unwrap().len(), 1);
    let (household, purge) = store.change_presence(&only("anna"), &only("bo")).unwrap();
    assert_eq!(purge.lost().collect::<Vec<_>>(), vec![Purpose::Personalise]);
    assert!(store.feedback().unwrap().is_empty(), "learning data goes with personalise");
    assert_eq!(store.outbox().unwrap().len(), 1, "measure is kept, and so is its report");
    assert!(household[&anna].consent.allows(Purpose::Personalise), "the ledger is unchanged");
}
