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
    assert!(caps.merge(&device("fridge"), &day(5, "butter", 1)));
    assert!(caps.merge(&device("lock-screen"), &day(5, "butter", 1)));
    // The fridge's count again, and a stale copy from before its second impression.
    assert!(caps.merge(&device("fridge"), &day(5, "butter", 2)));
    assert!(!caps.merge(&device("fridge"), &day(5, "butter", 1)), "a stale copy changes nothing");
    let home = caps.others();
    assert_eq!(home.offer(5, &butter), 3);
    assert_eq!(home.campaign(5, &CampaignId::try_new("dairy").unwrap()), 3);
    assert_eq!(home.total(5), 3);
    assert_eq!(home.offer(4, &butter), 0, "another day's count is not today's");
    // A new day starts afresh; a late message from yesterday changes nothing.
    assert!(caps.merge(&device("e-reader"), &day(6, "butter", 1)));
    assert!(!caps.merge(&device("fridge"), &day(5, "butter", 4)));
    let home = caps.others();
    assert_eq!((home.offer(6, &butter), home.total(6)), (1, 1));
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
