use super::*;
use ledtrad_protocol::{CampaignId, OfferId};

fn device(name: &str) -> DeviceId {
    DeviceId::try_new(name).unwrap()
}

fn anna() -> PersonId {
    PersonId::try_new("anna").unwrap()
}

fn row(at: u64, on: &str, seq: u64, purpose: Purpose, granted: bool) -> HomeLedgerRow {
    HomeLedgerRow {
        at: UnixTime(at),
        device: device(on),
        seq,
        person: anna(),
        purpose,
        granted,
        source: ConsentSource::DeviceUi,
        text_version: "2026-11".into(),
    }
}

fn day(day: u64, offer: &str, n: u32) -> DayShown {
    DayShown {
        day,
        offers: [(OfferId::try_new(offer).unwrap(), n)].into(),
        campaigns: [(CampaignId::try_new("dairy").unwrap(), n)].into(),
        total: n,
    }
}

#[test]
fn home_caps_add_each_devices_own_count_however_often_it_is_heard() {
    let butter = OfferId::try_new("butter").unwrap();
    let mut caps = HomeCaps::default();
    let mut take = |on: &str, boot: u64, counts: DayShown| caps.merge(&device(on), boot, &counts, 5).unwrap();
    assert!(take("fridge", 1, day(5, "butter", 1)));
    assert!(take("lock-screen", 2, day(5, "butter", 1)));
    // The fridge's count again, and a stale copy from before its second impression.
    assert!(take("fridge", 1, day(5, "butter", 2)));
    assert!(!take("fridge", 1, day(5, "butter", 1)), "a stale copy changes nothing");
    let home = caps.others();
    assert_eq!(home.offer(5, &butter), 3);
    assert_eq!(home.campaign(5, &CampaignId::try_new("dairy").unwrap()), 3);
    assert_eq!(home.total(5), 3);
    assert_eq!(home.offer(4, &butter), 0, "another day's count is not today's");
}

#[test]
fn a_screen_past_midnight_leaves_the_others_counts_alone() {
    let butter = OfferId::try_new("butter").unwrap();
    let mut caps = HomeCaps::default();
    caps.merge(&device("fridge"), 1, &day(5, "butter", 1), 5).unwrap();
    // The lock screen's clock is past midnight already: its day 6 is its own.
    caps.merge(&device("lock-screen"), 2, &day(6, "butter", 2), 5).unwrap();
    let home = caps.others();
    assert_eq!((home.offer(5, &butter), home.offer(6, &butter)), (1, 2));
    // A late copy of the fridge's yesterday changes nothing once it is on a new day.
    caps.merge(&device("fridge"), 1, &day(6, "butter", 1), 6).unwrap();
    assert!(!caps.merge(&device("fridge"), 1, &day(5, "butter", 4), 6).unwrap());
    assert_eq!(caps.others().offer(6, &butter), 3);
    // A day far from this device's is refused, and changes nothing.
    let far = caps.merge(&device("e-reader"), 3, &day(u64::MAX, "butter", 9), 6).unwrap_err();
    assert!(far.to_string().contains("clock or time zone"), "{far}");
    assert_eq!(caps.others().total(6), 3);
}

#[test]
fn counts_from_a_restarted_screen_replace_its_old_ones() {
    let butter = OfferId::try_new("butter").unwrap();
    let mut caps = HomeCaps::default();
    caps.merge(&device("fridge"), 1, &day(5, "butter", 3), 5).unwrap();
    // After a restart the fridge counts 2 (what it kept): that is its count now.
    assert!(caps.merge(&device("fridge"), 7, &day(5, "butter", 2), 5).unwrap());
    assert_eq!(caps.others().offer(5, &butter), 2);
}

#[test]
fn a_message_round_trips_through_its_encoding_and_garbage_is_refused() {
    let message = HomeMessage {
        from: device("fridge"),
        seq: 3,
        body: HomeBody::Household {
            people: vec![(anna(), false)],
            rows: vec![row(100, "fridge", 1, Purpose::Personalise, true)],
        },
    };
    assert_eq!(HomeMessage::decode(&message.encode()).unwrap(), message);
    let hello = HomeMessage { from: device("fridge"), seq: 4, body: HomeBody::Hello { nonce: 7 } };
    assert_eq!(HomeMessage::decode(&hello.encode()).unwrap(), hello);
    let err = HomeMessage::decode(&[0xff, 0xff, 0xff]).unwrap_err().to_string();
    assert!(err.contains("home message"), "{err}");
}

#[test]
fn sealed_messages_carry_no_plaintext_for_the_broker() {
    let key = super::super::HomeKey::generate();
    let message = HomeMessage {
        from: device("fridge-42"),
        seq: 1,
        body: HomeBody::Household {
            people: vec![(anna(), false)],
            rows: vec![row(100, "fridge-42", 1, Purpose::Personalise, false)],
        },
    };
    let sealed = key.seal(&key.topic(), &message.encode());
    for word in [&b"anna"[..], b"fridge-42", b"2026-11", b"personalise"] {
        assert!(!sealed.windows(word.len()).any(|w| w == word), "{:?} in the clear", String::from_utf8_lossy(word));
    }
    let opened = key.open(&key.topic(), &sealed).unwrap();
    assert_eq!(HomeMessage::decode(&opened).unwrap(), message);
}
