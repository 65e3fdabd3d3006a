//! The store's unit tests, on real SQLite files in temporary directories.

use ledtrad_protocol::caps::Window;

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

const DAY: u64 = 86_400;

fn shown(store: &Store, decision: u64, offer: &str, campaign: &str, at: u64) {
    let row = ImpressionRow {
        decision: DecisionId(decision),
        offer: OfferId::try_new(offer).unwrap(),
        campaign: CampaignId::try_new(campaign).unwrap(),
        at: UnixTime(at),
    };
    store.record_impression(&row).unwrap();
}

/// What the engine's history makes of the store's impressions and lifetime counts, as the
/// agent hands them in on start.
fn restored_history(store: &Store) -> ledtrad_engine::history::History {
    let mut history = ledtrad_engine::history::History::default();
    for row in store.impressions_since(UnixTime(0)).unwrap() {
        history.record_impression(&row.offer, &row.campaign, row.at);
    }
    for (offer, campaign, count) in store.impression_totals().unwrap() {
        history.record_untimed(&offer, &campaign, count);
    }
    history
}

const NO_BUDGET: u64 = u64::MAX;

#[test]
fn an_all_time_cap_still_counts_impressions_after_they_are_pruned() {
    let (_dir, mut store) = build_store();
    let start = 100 * DAY;
    for d in 0..5 {
        shown(&store, d + 1, "milk", "dairy", start + d * DAY);
    }
    shown(&store, 6, "butter", "dairy", start + 35 * DAY);
    let now = UnixTime(start + 36 * DAY);
    let kept = store.keep_bounded(now, NO_BUDGET).unwrap();
    assert_eq!(kept.by_retention.impressions, 5, "impressions past a month are pruned");
    assert_eq!(store.impressions_since(UnixTime(0)).unwrap().len(), 1);
    let (milk, dairy) = (OfferId::try_new("milk").unwrap(), CampaignId::try_new("dairy").unwrap());
    assert_eq!(store.impression_totals().unwrap(), vec![(milk.clone(), dairy.clone(), 5)]);
    // An all-time cap of 6 on the campaign or the device is reached; the month window is not.
    let history = restored_history(&store);
    let day_start = UnixTime(start + 36 * DAY);
    assert_eq!(history.offer_count(&milk, Window::Total, now, day_start), 5);
    assert_eq!(history.campaign_count(&dairy, Window::Total, now, day_start), 6);
    assert_eq!(history.device_count(Window::Total, now, day_start), 6);
    assert_eq!(history.offer_count(&milk, Window::Month, now, day_start), 0);
    // A second pass finds nothing more and adds nothing twice.
    assert_eq!(store.keep_bounded(now, NO_BUDGET).unwrap().by_retention.rows(), 0);
    assert_eq!(restored_history(&store).device_count(Window::Total, now, day_start), 6);
    // Decision numbering goes on past what was pruned.
    let later = UnixTime(start + 80 * DAY);
    store.keep_bounded(later, NO_BUDGET).unwrap();
    assert!(store.impressions_since(UnixTime(0)).unwrap().is_empty());
    assert_eq!(store.last_decision_id().unwrap(), 6);
}

#[test]
fn pruned_learning_rows_still_count_in_the_posterior_and_go_with_personalise() {
    let (_dir, mut store) = build_household_store(&["anna"]);
    store.append_consent(&consent_row("anna", Purpose::Personalise, true, 1), &strictest).unwrap();
    let milk = OfferId::try_new("milk").unwrap();
    let kinds = [FeedbackKind::Accepted, FeedbackKind::Dismissed, FeedbackKind::NotForMe, FeedbackKind::Accepted];
    for (i, kind) in kinds.into_iter().enumerate() {
        let (decision, at) = (i as u64 + 1, 10 * DAY + i as u64 * DAY);
        shown(&store, decision, "milk", "dairy", at);
        store.record_feedback_event(DecisionId(decision), &milk, None, kind, UnixTime(at + 60), true).unwrap();
    }
    // The last answer is to an impression pruned with the rest, though it is newer itself.
    store.keep_bounded(UnixTime(43 * DAY + 30), NO_BUDGET).unwrap();
    assert!(store.feedback().unwrap().is_empty());
    assert_eq!(store.learning_totals().unwrap(), vec![(milk.clone(), 2, 2)]);
    store.append_consent(&consent_row("anna", Purpose::Personalise, false, 50 * DAY), &strictest).unwrap();
    assert!(store.learning_totals().unwrap().is_empty(), "the folded counts are learning data too");
}

#[test]
fn a_not_for_me_holds_its_90_days_and_a_conversion_outlives_pruning() {
    let (_dir, mut store) = build_store();
    let (butter, milk) = (OfferId::try_new("butter").unwrap(), OfferId::try_new("milk").unwrap());
    let t = 200 * DAY;
    store
        .record_feedback_event(DecisionId(1), &butter, Some("food.dairy"), FeedbackKind::NotForMe, UnixTime(t), false)
        .unwrap();
    for (decision, at) in [(2, t), (3, t + DAY)] {
        store
            .record_feedback_event(DecisionId(decision), &milk, None, FeedbackKind::Converted, UnixTime(at), false)
            .unwrap();
    }
    let restored = |store: &Store, now: u64| {
        let mut answers = ledtrad_engine::answers::Answers::default();
        for (offer, category, kind, at) in store.answers_since(UnixTime(now - 90 * DAY)).unwrap() {
            answers.record(&offer, category.as_deref(), kind, at);
        }
        answers
    };
    // On day 89 the suppression still holds after pruning, and is still stored.
    let day_89 = t + 89 * DAY;
    store.keep_bounded(UnixTime(day_89), NO_BUDGET).unwrap();
    assert_eq!(restored(&store, day_89).suppressed_until("food.dairy", UnixTime(day_89)), Some(UnixTime(t + 90 * DAY)));
    // After day 90 it has ended, and its row goes.
    let day_91 = t + 91 * DAY;
    let kept = store.keep_bounded(UnixTime(day_91), NO_BUDGET).unwrap();
    assert_eq!(kept.by_retention.answers, 2, "the not-for-me, and the older of the two conversions");
    assert_eq!(restored(&store, day_91).suppressed_until("food.dairy", UnixTime(day_91)), None);
    // A year on, the offer taken up is still excluded, from one row.
    let later = t + 400 * DAY;
    store.keep_bounded(UnixTime(later), NO_BUDGET).unwrap();
    assert!(restored(&store, later).converted(&milk));
    assert_eq!(store.feedback_rows().unwrap().len(), 1);
}

#[test]
fn a_database_over_its_budget_gets_back_under_it_keeping_the_ledger_and_unacknowledged_reports() {
    let (_dir, mut store) = build_household_store(&["anna"]);
    for i in 0..40 {
        store.append_consent(&consent_row("anna", Purpose::Measure, i % 2 == 0, i), &strictest).unwrap();
    }
    let report = vec![b'r'; 2_000];
    for i in 0..20 {
        store.enqueue(Purpose::Measure, "ledtrad/v1/fleet/home/reports", &report, UnixTime(i)).unwrap();
    }
    // Three weeks of impressions and answers, all within their retention windows.
    let start = 1_000 * DAY;
    let offer = |i: u64| format!("offer-with-a-long-name-{:03}", i % 200);
    for i in 0..12_000u64 {
        let at = start + i * 150;
        shown(&store, i + 1, &offer(i), "campaign-with-a-long-name", at);
        let id = OfferId::try_new(offer(i)).unwrap();
        store
            .record_feedback_event(
                DecisionId(i + 1),
                &id,
                Some("food.dairy"),
                FeedbackKind::Dismissed,
                UnixTime(at),
                false,
            )
            .unwrap();
    }
    let now = UnixTime(start + 21 * DAY);
    let before = store.database_bytes();
    let budget = 512 * 1024;
    assert!(before > budget, "the test fills the database past its budget: {before} bytes");
    let kept = store.keep_bounded(now, budget).unwrap();
    assert_eq!(kept.by_retention.rows(), 0, "nothing was past its window");
    assert!(kept.by_budget.impressions > 0 && kept.by_budget.answers > 0, "{kept:?}");
    assert!(kept.bytes <= budget, "{} bytes after pruning, budget {budget}", kept.bytes);
    assert_eq!(kept.bytes, store.database_bytes());
    assert_eq!(store.ledger().unwrap().len(), 40, "the consent ledger is kept whole");
    assert_eq!(store.outbox().unwrap().len(), 20, "unacknowledged reports are kept");
    // The newest data is what stays, and the pruned impressions still count for good.
    let left = store.impressions_since(UnixTime(0)).unwrap();
    assert_eq!(left.last().map(|r| r.decision), Some(DecisionId(12_000)));
    let total: u32 = store.impression_totals().unwrap().iter().map(|t| t.2).sum();
    assert_eq!(total as usize + left.len(), 12_000);
}

#[test]
fn opening_a_database_made_before_retention_turns_on_incremental_vacuum() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.db");
    {
        let mut conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        let before: Vec<_> = migrations_up_to(7);
        Migrations::new(before).to_latest(&mut conn).unwrap();
        let mode: i64 = conn.pragma_query_value(None, "auto_vacuum", |r| r.get(0)).unwrap();
        assert_eq!(mode, 0, "databases made before had no auto-vacuum");
        conn.execute("INSERT INTO impressions (decision_id, offer, campaign, at) VALUES (41, 'milk', 'dairy', 5)", [])
            .unwrap();
    }
    let mut store = Store::open(&path).unwrap();
    let mode: i64 = store.conn.pragma_query_value(None, "auto_vacuum", |r| r.get(0)).unwrap();
    assert_eq!(mode, 2, "incremental");
    assert_eq!(store.last_decision_id().unwrap(), 41, "the rows came through the rebuild");
    // Freed pages now go back to the file system.
    let payload = vec![0u8; 4_000];
    for i in 0..200 {
        store.enqueue(Purpose::Measure, "t", &payload, UnixTime(i)).unwrap();
    }
    store.compact();
    let full = store.database_bytes();
    for row in store.outbox().unwrap() {
        store.outbox_remove(row.id).unwrap();
    }
    store.keep_bounded(UnixTime(DAY), NO_BUDGET).unwrap();
    let emptied = store.database_bytes();
    assert!(emptied + 700_000 < full, "{full} bytes full, {emptied} after deleting and compacting");
    drop(store);
    // And opening it again changes nothing more.
    let store = Store::open(&path).unwrap();
    assert_eq!(store.last_decision_id().unwrap(), 41);
}

#[test]
fn a_new_database_takes_small_pages_and_an_old_one_keeps_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let page_size = |store: &Store| -> i64 { store.conn.pragma_query_value(None, "page_size", |r| r.get(0)).unwrap() };
    let fresh = dir.path().join("new.db");
    let store = Store::open(&fresh).unwrap();
    assert_eq!(page_size(&store), super::retention::PAGE_SIZE);
    let empty = store.database_bytes();
    assert!(empty < 64 * 1024, "an empty database takes {empty} bytes");
    drop(store);
    assert_eq!(page_size(&Store::open(&fresh).unwrap()), super::retention::PAGE_SIZE, "reopened");
    // A database made with SQLite's default pages, as agents made before: it keeps them, and
    // its rows.
    let old = dir.path().join("old.db");
    {
        let mut conn = Connection::open(&old).unwrap();
        conn.pragma_update(None, "page_size", 4096).unwrap();
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL").unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        migrations().to_latest(&mut conn).unwrap();
        conn.execute("INSERT INTO impressions (decision_id, offer, campaign, at) VALUES (7, 'milk', 'dairy', 5)", [])
            .unwrap();
    }
    let store = Store::open(&old).unwrap();
    assert_eq!(page_size(&store), 4096);
    assert_eq!(store.last_decision_id().unwrap(), 7);
}

#[test]
fn a_migrated_database_is_left_without_sqlites_temporary_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.db");
    let schemas = |store: &Store| -> Vec<String> {
        let mut stmt = store.conn.prepare("PRAGMA database_list").unwrap();
        stmt.query_map([], |r| r.get::<_, String>(1)).unwrap().map(Result::unwrap).collect()
    };
    // A migration renames a table, which opens the temporary database; the store opens the
    // file again after migrating, so the agent does not keep it (and its cache) open.
    let store = Store::open(&path).unwrap();
    assert_eq!(schemas(&store), ["main"]);
    assert_eq!(store.last_decision_id().unwrap(), 0);
    drop(store);
    assert_eq!(schemas(&Store::open(&path).unwrap()), ["main"], "reopened");
    // Half migrated, as an agent of an earlier release left it: migrated on, then opened again.
    let older = dir.path().join("older.db");
    Migrations::new(migrations_up_to(5)).to_latest(&mut Connection::open(&older).unwrap()).unwrap();
    let store = Store::open(&older).unwrap();
    assert_eq!(schemas(&store), ["main"]);
    let latest = migrations_up_to(usize::MAX).len();
    assert_eq!(store.conn.pragma_query_value(None, "user_version", |r| r.get::<_, usize>(0)).unwrap(), latest);
    // An in-memory database is migrated and kept, not opened again empty.
    let memory = Store::open(Path::new(":memory:")).unwrap();
    assert_eq!(memory.last_decision_id().unwrap(), 0);
}

/// The bytes SQLite counts for this database's page cache (its pages and the pager itself).
#[allow(unsafe_code)]
fn cache_bytes(store: &Store) -> i32 {
    let (mut current, mut highest) = (0, 0);
    // SAFETY: the handle is the store's open connection, used on this thread only while the
    // store is borrowed; the call only writes the two integers it is given.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_db_status(
            store.conn.handle(),
            rusqlite::ffi::SQLITE_DBSTATUS_CACHE_USED,
            &mut current,
            &mut highest,
            0,
        )
    };
    assert_eq!(rc, rusqlite::ffi::SQLITE_OK);
    current
}

/// A store at rest holds no page of its database, and reads what it needs again; SQLite is
/// built to keep no block of room for pages either, which `release_memory` could not free.
#[test]
fn a_store_at_rest_frees_its_page_cache_and_reads_the_pages_again() {
    let (_dir, store) = build_store();
    for at in 0..40 {
        store.enqueue(Purpose::Measure, "ledtrad/v1/reports/t", &[7u8; 300], UnixTime(at)).unwrap();
    }
    let working = cache_bytes(&store);
    store.release_memory();
    let resting = cache_bytes(&store);
    assert!(resting + 4 * 1024 <= working, "{working} bytes at work, {resting} at rest");
    assert_eq!(store.outbox_len().unwrap(), 40);
    store.outbox_remove(store.outbox().unwrap()[0].id).unwrap();
    assert_eq!(store.outbox_len().unwrap(), 39);
    let options: Vec<String> = store
        .conn
        .prepare("PRAGMA compile_options")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(options.iter().any(|o| o == "DEFAULT_PCACHE_INITSZ=0"), "{options:?}");
}
