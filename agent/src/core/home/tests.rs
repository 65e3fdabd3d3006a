//! The home channel between cores: what one device's client is handed for the home's topic is
//! carried, as a broker would, to the others' cores; nothing else passes between them.

use ledtrad_protocol::consent::ConsentSource;
use ledtrad_protocol::{PersonId, Purpose};
use rumqttc::v5::Request;

use super::*;
use crate::core::tests::{at, build_device};
use crate::core::MqttEvent;
use crate::handle::{ConsentChange, PersonChange};

struct Screen {
    core: AgentCore,
    sent: flume::Receiver<Request>,
}

impl Screen {
    /// A connected device whose owner is anna.
    fn new(device: &str, kind: &str) -> Self {
        Self::with(device, kind, "")
    }

    /// [`Screen::new`], with `extra` lines of config.
    fn with(device: &str, kind: &str, extra: &str) -> Self {
        let (mut core, sent) = build_device(device, kind, &format!("owner = \"anna\"\n{extra}"));
        core.handle_mqtt(MqttEvent::Connected { session_present: false }, at(0, 0));
        Self { core, sent }
    }

    /// The payloads its client was handed for the home's topic since the last call.
    fn home_messages(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        while let Ok(request) = self.sent.try_recv() {
            if let Request::Publish(p) = request {
                let topic = String::from_utf8_lossy(&p.topic).into_owned();
                if topic.starts_with("ledtrad/v1/home/") {
                    out.push((topic, p.payload.to_vec()));
                }
            }
        }
        out
    }

    fn hear(&mut self, messages: &[(String, Vec<u8>)], now: Now) {
        for (topic, payload) in messages {
            let event = MqttEvent::Publish { topic: topic.clone(), payload: payload.clone(), correlation: None };
            self.core.handle_mqtt(event, now);
        }
    }

    fn consent(&mut self, person: &str, purpose: Purpose, granted: bool, now: Now) {
        let change = ConsentChange { granted, source: ConsentSource::DeviceUi, text_version: "2026-11".into() };
        self.core.set_consent(Some(anna_or(person)), purpose, change, now).expect("consent stored");
    }

    fn allows(&self, purpose: Purpose) -> bool {
        self.core.engine.consent().allows(purpose)
    }
}

fn anna_or(person: &str) -> PersonId {
    PersonId::try_new(person).unwrap()
}

/// Carries every home message each screen sent to every other screen (a broker also hands a
/// device its own messages back), until none sends anything more.
fn settle(screens: &mut [&mut Screen], now: Now) {
    for _ in 0..10 {
        let sent: Vec<_> = screens.iter().map(|s| s.home_messages()).collect();
        if sent.iter().all(Vec::is_empty) {
            return;
        }
        for screen in screens.iter_mut() {
            for messages in &sent {
                screen.hear(messages, now);
            }
        }
    }
    panic!("the home's devices kept talking after ten rounds");
}

/// A fridge that made a home and a lock screen that joined it with the fridge's code.
fn home() -> (Screen, Screen) {
    join(Screen::new("fridge-1", "fridge"), Screen::new("lock-1", "lock_screen"))
}

/// The second screen joins the home the first makes.
fn join(mut fridge: Screen, mut lock: Screen) -> (Screen, Screen) {
    let made = fridge.core.home(HomeCommand::Create, at(1, 1)).unwrap();
    let code = made.code.expect("a new home shows its code");
    let joined = lock.core.home(HomeCommand::Join(code.to_lowercase().replace('-', " ")), at(1, 1)).unwrap();
    assert_eq!(joined.home, made.home, "the code names the fridge's home");
    assert_eq!(joined.code, None, "joining does not show the code again");
    settle(&mut [&mut fridge, &mut lock], at(1, 1));
    (fridge, lock)
}

#[test]
fn a_revocation_on_the_fridge_is_in_force_on_the_lock_screen_once_it_hears_it() {
    let (mut fridge, mut lock) = home();
    lock.consent("anna", Purpose::Personalise, true, at(2, 2));
    settle(&mut [&mut fridge, &mut lock], at(2, 2));
    assert!(lock.allows(Purpose::Personalise));
    assert!(fridge.core.consent_view().unwrap().people[&anna_or("anna")].grants.personalise, "the grant was heard");

    fridge.consent("anna", Purpose::Personalise, false, at(3, 3));
    assert!(lock.allows(Purpose::Personalise), "not heard yet");
    settle(&mut [&mut fridge, &mut lock], at(3, 3));
    assert!(!lock.allows(Purpose::Personalise), "the fridge's revocation is in force on the lock screen");
    assert_eq!(lock.core.home(HomeCommand::View, at(3, 3)).unwrap().refused, 0);
}

#[test]
fn people_and_child_profiles_reach_every_screen() {
    let (mut fridge, mut lock) = home();
    fridge.core.put_person(anna_or("bo"), PersonChange { child: true }, at(2, 2)).unwrap();
    settle(&mut [&mut fridge, &mut lock], at(2, 2));
    let people = lock.core.consent_view().unwrap().people;
    assert!(people[&anna_or("bo")].child, "{people:?}");
}

#[test]
fn a_later_change_wins_on_every_screen_even_where_clocks_disagree() {
    let (mut fridge, mut lock) = home();
    // The lock screen's clock is 100 s ahead of the fridge's.
    lock.consent("anna", Purpose::Measure, true, at(200, 2));
    settle(&mut [&mut fridge, &mut lock], at(100, 2));
    // The fridge revokes after hearing the grant, at an earlier time by its own clock.
    fridge.consent("anna", Purpose::Measure, false, at(110, 3));
    settle(&mut [&mut fridge, &mut lock], at(210, 3));
    assert!(!lock.allows(Purpose::Measure) && !fridge.allows(Purpose::Measure));
    let ledger = fridge.core.ledger().unwrap();
    let revoked = ledger.iter().rev().find(|r| r.purpose == Purpose::Measure).unwrap();
    assert!(!revoked.granted && revoked.at > T0_PLUS_200, "entered after the grant it follows: {revoked:?}");
}

const T0_PLUS_200: ledtrad_protocol::UnixTime = ledtrad_protocol::UnixTime(1_795_428_200);

#[test]
fn hearing_the_same_messages_again_changes_nothing() {
    let (mut fridge, mut lock) = home();
    fridge.consent("anna", Purpose::Measure, true, at(2, 2));
    let sent = fridge.home_messages();
    lock.hear(&sent, at(2, 2));
    let rows = lock.core.ledger().unwrap().len();
    lock.hear(&sent, at(3, 3));
    lock.hear(&sent, at(4, 4));
    assert_eq!(lock.core.ledger().unwrap().len(), rows);
    assert!(lock.allows(Purpose::Measure));
}

#[test]
fn a_device_outside_the_home_can_neither_read_nor_forge_its_messages() {
    let (mut fridge, mut lock) = home();
    let mut stranger = Screen::new("lock-9", "lock_screen");
    stranger.core.home(HomeCommand::Create, at(1, 1)).unwrap();
    stranger.home_messages();

    // The home's messages, put on the stranger's own channel, do not open with its key.
    fridge.consent("anna", Purpose::Measure, true, at(2, 2));
    let sent = fridge.home_messages();
    let theirs = stranger.core.home(HomeCommand::View, at(2, 2)).unwrap().home.unwrap();
    let moved: Vec<_> = sent.iter().map(|(_, p)| (format!("ledtrad/v1/home/{theirs}/sync"), p.clone())).collect();
    stranger.hear(&moved, at(2, 2));
    assert_eq!(stranger.core.home(HomeCommand::View, at(2, 2)).unwrap().refused, moved.len() as u64);
    assert!(!stranger.allows(Purpose::Measure));

    // What the stranger seals, put on the home's channel, is refused there.
    stranger.consent("anna", Purpose::Personalise, true, at(3, 3));
    let forged: Vec<_> = stranger.home_messages().into_iter().map(|(_, p)| (sent[0].0.clone(), p)).collect();
    assert!(!forged.is_empty());
    lock.hear(&forged, at(3, 3));
    assert_eq!(lock.core.home(HomeCommand::View, at(3, 3)).unwrap().refused, forged.len() as u64);
    assert!(!lock.allows(Purpose::Personalise), "a forged grant is not taken");
}

#[test]
fn a_screen_that_leaves_forgets_the_key_and_hears_nothing_more() {
    let (mut fridge, mut lock) = home();
    let left = lock.core.home(HomeCommand::Leave, at(2, 2)).unwrap();
    assert_eq!(left.home, None);
    assert!(lock.core.store.home().unwrap().is_none(), "the key is gone from the database");
    fridge.consent("anna", Purpose::Measure, true, at(3, 3));
    settle(&mut [&mut fridge, &mut lock], at(3, 3));
    assert!(!lock.allows(Purpose::Measure));
    let err = lock.core.home(HomeCommand::Code, at(3, 3)).unwrap_err().to_string();
    assert!(err.contains("POST /v1/home/join"), "{err}");
}

#[test]
fn a_mistyped_code_is_refused_with_what_is_wrong() {
    let mut lock = Screen::new("lock-1", "lock_screen");
    let err = lock.core.home(HomeCommand::Join("7QK2M-UUUUU".into()), at(1, 1)).unwrap_err().to_string();
    assert!(err.contains('U') || err.contains("characters"), "{err}");
    assert_eq!(lock.core.home(HomeCommand::View, at(1, 1)).unwrap().home, None);
}

#[test]
fn after_reconnecting_decisions_wait_until_the_device_hears_its_own_hello() {
    let (mut fridge, mut lock) = home();
    // Offline, the fridge revokes; the lock screen's session keeps the message for it.
    lock.core.handle_mqtt(MqttEvent::Disconnected { why: "cut".into(), unsent: 0 }, at(2, 2));
    lock.consent("anna", Purpose::Personalise, true, at(2, 2));
    lock.home_messages();
    fridge.consent("anna", Purpose::Personalise, false, at(3, 3));
    let kept = fridge.home_messages();

    lock.core.handle_mqtt(MqttEvent::Connected { session_present: true }, at(4, 4_000));
    let OfferStep::Waiting(token) = lock.core.offer(Moment::ScreenWoken, at(4, 4_001)) else {
        panic!("decided before the home was in step")
    };
    assert!(lock.core.poll_answer().is_none());
    // The broker hands over what it kept, then the device's own hello.
    lock.hear(&kept, at(4, 4_002));
    let hello = lock.home_messages();
    lock.hear(&hello, at(4, 4_003));
    let (answered, outcome) = lock.core.poll_answer().expect("decided once in step");
    assert_eq!(answered, token);
    assert!(outcome.decision.shown.as_ref().is_none_or(|s| !s.personalised));
    assert!(!lock.allows(Purpose::Personalise), "the revocation came first");
}

#[test]
fn a_home_that_does_not_answer_holds_decisions_for_two_seconds_at_most() {
    let (_fridge, mut lock) = home();
    lock.core.handle_mqtt(MqttEvent::Connected { session_present: true }, at(4, 4_000));
    let OfferStep::Waiting(token) = lock.core.offer(Moment::ScreenWoken, at(4, 4_001)) else { panic!("not held") };
    assert_eq!(lock.core.poll_timeout(), Some(Duration::from_millis(4_000) + HOME_SETTLE_WAIT));
    lock.core.handle_timeout(at(5, 5_999));
    assert!(lock.core.poll_answer().is_none());
    lock.core.handle_timeout(at(6, 6_000));
    assert_eq!(lock.core.poll_answer().map(|(t, _)| t), Some(token));
}

#[test]
fn after_a_reconnection_without_a_kept_session_decisions_wait_for_another_screen_to_answer() {
    let (mut fridge, mut lock) = home();
    lock.consent("anna", Purpose::Personalise, true, at(2, 2));
    settle(&mut [&mut fridge, &mut lock], at(2, 2));
    // The lock screen restarts while the fridge revokes; its broker session is gone.
    lock.core.handle_mqtt(MqttEvent::Disconnected { why: "restart".into(), unsent: 0 }, at(3, 3));
    fridge.consent("anna", Purpose::Personalise, false, at(3, 3));
    fridge.home_messages();

    lock.core.handle_mqtt(MqttEvent::Connected { session_present: false }, at(4, 4_000));
    let OfferStep::Waiting(token) = lock.core.offer(Moment::ScreenWoken, at(4, 4_001)) else { panic!("not held") };
    let hello = lock.home_messages();
    lock.hear(&hello, at(4, 4_002));
    assert!(lock.core.poll_answer().is_none(), "its own hello back is not enough: nothing was kept for it");
    // The fridge answers the hello with its ledger: the revocation is in force, then the offer.
    fridge.hear(&hello, at(4, 4_003));
    lock.hear(&fridge.home_messages(), at(4, 4_004));
    assert!(!lock.allows(Purpose::Personalise));
    assert_eq!(lock.core.poll_answer().map(|(t, _)| t), Some(token));
}

#[test]
fn an_old_hello_played_again_does_not_end_the_wait() {
    let (_fridge, mut lock) = home();
    lock.core.handle_mqtt(MqttEvent::Connected { session_present: true }, at(2, 2_000));
    let old = lock.home_messages();
    lock.core.handle_mqtt(MqttEvent::Connected { session_present: true }, at(3, 3_000));
    let OfferStep::Waiting(_) = lock.core.offer(Moment::ScreenWoken, at(3, 3_001)) else { panic!("not held") };
    lock.hear(&old, at(3, 3_002));
    assert!(lock.core.poll_answer().is_none(), "a replayed hello is not this connection's");
    let now = lock.home_messages();
    lock.hear(&now, at(3, 3_003));
    assert!(lock.core.poll_answer().is_some());
}

#[test]
fn a_revocation_and_a_grant_made_apart_in_the_same_second_end_revoked_on_both_and_after_leaving() {
    let (mut fridge, mut lock) = home();
    fridge.consent("anna", Purpose::Measure, true, at(2, 2));
    settle(&mut [&mut fridge, &mut lock], at(2, 2));
    // Neither has heard the other's change when making its own.
    fridge.consent("anna", Purpose::Measure, false, at(10, 10));
    lock.consent("anna", Purpose::Measure, true, at(10, 10));
    settle(&mut [&mut fridge, &mut lock], at(10, 10));
    assert!(!fridge.allows(Purpose::Measure) && !lock.allows(Purpose::Measure), "the revocation wins");
    lock.core.home(HomeCommand::Leave, at(11, 11)).unwrap();
    let view = lock.core.consent_view().unwrap();
    assert!(!view.people[&anna_or("anna")].grants.measure, "leaving changes no order");
}

#[test]
fn a_screen_whose_database_was_lost_is_heard_again_under_the_same_device_id() {
    let (mut fridge, mut lock) = home();
    lock.consent("anna", Purpose::Measure, true, at(2, 2));
    settle(&mut [&mut fridge, &mut lock], at(2, 2));
    let code = fridge.core.home(HomeCommand::Code, at(3, 3)).unwrap().code.unwrap();
    // The same lock screen, a new database: its first rows are numbered from 1 again.
    let mut again = Screen::new("lock-1", "lock_screen");
    again.core.home(HomeCommand::Join(code), at(4, 4)).unwrap();
    settle(&mut [&mut fridge, &mut again], at(4, 4));
    again.consent("anna", Purpose::Measure, false, at(5, 5));
    settle(&mut [&mut fridge, &mut again], at(5, 5));
    assert!(!fridge.core.consent_view().unwrap().people[&anna_or("anna")].grants.measure);
}

#[test]
fn a_device_in_a_home_or_without_its_owner_named_cannot_make_or_join_another() {
    let (mut fridge, _lock) = home();
    let err = fridge.core.home(HomeCommand::Create, at(2, 2)).unwrap_err().to_string();
    assert!(err.contains("DELETE /v1/home"), "{err}");
    let (mut unnamed, _) = build_device("fridge-9", "fridge", "");
    let err = unnamed.home(HomeCommand::Create, at(2, 2)).unwrap_err().to_string();
    assert!(err.contains("owner = \"anna\""), "{err}");
    assert_eq!(unnamed.home(HomeCommand::View, at(2, 2)).unwrap().home, None);
}

#[test]
fn rows_heard_in_any_order_and_any_number_of_times_end_in_the_same_consent() {
    let (mut fridge, mut lock) = home();
    lock.consent("anna", Purpose::Personalise, true, at(2, 2));
    lock.consent("anna", Purpose::Measure, true, at(3, 3));
    lock.consent("anna", Purpose::Personalise, false, at(4, 4));
    let sent = lock.home_messages();
    let mut reversed = sent.clone();
    reversed.reverse();
    let mut other = Screen::new("fridge-2", "fridge");
    let code = fridge.core.home(HomeCommand::Code, at(5, 5)).unwrap().code.unwrap();
    other.core.home(HomeCommand::Join(code), at(5, 5)).unwrap();
    other.home_messages();
    fridge.hear(&sent, at(5, 5));
    other.hear(&reversed, at(5, 5));
    other.hear(&sent, at(6, 6));
    for screen in [&fridge, &other] {
        let anna = screen.core.consent_view().unwrap().people[&anna_or("anna")].grants;
        assert!(!anna.personalise && anna.measure, "{anna:?}");
    }
}

/// Two fridges of one home (a kitchen's and a pantry's) with the example catalogue, no
/// camouflage and no moments of their own, and anna's `personalise` granted on the kitchen's.
fn two_fridges() -> (Screen, Screen) {
    use crate::core::tests::{example_envelope, publish};
    let extra = "camouflage_share = 0.0\nraise_moments = false";
    let (mut kitchen, mut pantry) =
        join(Screen::with("fridge-1", "fridge", extra), Screen::with("fridge-2", "fridge", extra));
    for screen in [&mut kitchen, &mut pantry] {
        let catalogue = publish(Topic::Catalogue(screen.core.config.fleet.clone()), example_envelope(), None);
        screen.core.handle_mqtt(catalogue, at(1, 1));
    }
    kitchen.consent("anna", Purpose::Personalise, true, at(2, 2));
    settle(&mut [&mut kitchen, &mut pantry], at(2, 2));
    (kitchen, pantry)
}

/// A butter level running low.
fn butter_low() -> Vec<ledtrad_protocol::signal::Signal> {
    let feature = ledtrad_protocol::feature::FeatureName::try_new("fridge.butter.level").unwrap();
    vec![ledtrad_protocol::signal::Signal { feature, value: 0.1 }]
}

#[test]
fn an_offer_with_personal_conditions_shown_on_one_screen_is_not_shown_on_another_that_day() {
    use ledtrad_protocol::decision::{Rejection, Verdict};
    let (mut kitchen, mut pantry) = two_fridges();
    let shown = |screen: &mut Screen, now: Now| {
        screen.core.handle_signals(butter_low(), now);
        let OfferStep::Decided(outcome) = screen.core.offer(Moment::DoorOpened, now) else { panic!("not decided") };
        outcome.decision
    };

    let first = shown(&mut kitchen, at(10, 10));
    assert_eq!(first.shown.as_ref().map(|s| s.offer.as_str()), Some("butter-refill"));
    assert!(first.shown.as_ref().is_some_and(|s| s.personalised));
    settle(&mut [&mut kitchen, &mut pantry], at(10, 10));
    let view = pantry.core.home(HomeCommand::View, at(11, 11)).unwrap();
    assert_eq!(view.shown_today, 1, "the kitchen's offer counts in the pantry's view of the home");
    let told =
        std::iter::from_fn(|| pantry.core.poll_event()).any(|e| matches!(e, UiEvent::Home(v) if v.shown_today == 1));
    assert!(told, "a home event tells the pantry's UI");

    let second = shown(&mut pantry, at(20, 20));
    assert_ne!(second.shown.as_ref().map(|s| s.offer.as_str()), Some("butter-refill"));
    let traced = pantry.core.decision(second.id).expect("traced");
    let butter = traced.candidates.iter().find(|c| c.offer.as_str() == "butter-refill").unwrap();
    assert_eq!(butter.verdict, Verdict::Rejected { reason: Rejection::ShownOnAnotherScreen });
    // The next local day, it may be shown on either again.
    let tomorrow = at(86_400 + 20, 86_400_000);
    assert_eq!(shown(&mut pantry, tomorrow).shown.map(|s| s.offer.to_string()).as_deref(), Some("butter-refill"));
}

#[test]
fn a_screen_that_reconnects_without_its_session_counts_what_the_home_showed_meanwhile() {
    let (mut kitchen, mut pantry) = two_fridges();
    // The pantry is cut off (its broker session lost); meanwhile the kitchen shows the offer.
    pantry.core.handle_mqtt(MqttEvent::Disconnected { why: "restart".into(), unsent: 0 }, at(3, 3));
    kitchen.core.handle_signals(butter_low(), at(10, 10));
    let OfferStep::Decided(first) = kitchen.core.offer(Moment::DoorOpened, at(10, 10)) else { panic!("not decided") };
    assert_eq!(first.decision.shown.map(|s| s.offer.to_string()).as_deref(), Some("butter-refill"));
    let _lost = kitchen.home_messages();
    // Back without its session: its first decision waits for the kitchen's answer, whose
    // counts come before the household that ends the wait.
    pantry.core.handle_mqtt(MqttEvent::Connected { session_present: false }, at(20, 20_000));
    pantry.core.handle_signals(butter_low(), at(20, 20_000));
    let OfferStep::Waiting(_) = pantry.core.offer(Moment::DoorOpened, at(20, 20_000)) else { panic!("not held") };
    settle(&mut [&mut kitchen, &mut pantry], at(20, 20_001));
    let (_, held) = pantry.core.poll_answer().expect("answered once the kitchen answered");
    assert_ne!(held.decision.shown.map(|s| s.offer.to_string()).as_deref(), Some("butter-refill"));
}
