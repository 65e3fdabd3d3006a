//! Golden tests: the exact bytes of every message kind in JSON and postcard. A change to a
//! wire format must change these on purpose.

// Test helpers unwrap: a panic is a failed test with its message.
#![allow(clippy::unwrap_used)]

use ledtrad_protocol::catalogue::{Caps, Catalogue, Condition, Offer, Op};
use ledtrad_protocol::codec::{from_json, from_postcard, to_json, to_postcard};
use ledtrad_protocol::decision::{
    Candidate, Decision, DecisionId, FeatureUse, Rejection, ScorerUsed, ShownOffer, Verdict,
};
use ledtrad_protocol::envelope::{Envelope, SignedCatalogue};
use ledtrad_protocol::feature::FeatureName;
use ledtrad_protocol::feedback::{Feedback, FeedbackKind};
use ledtrad_protocol::model::{ModelInput, ModelManifest, SignedModel};
use ledtrad_protocol::offers::{OfferRequest, OfferResponse};
use ledtrad_protocol::report::{Arm, Report, ReportId};
use ledtrad_protocol::signal::{Signal, SignalBatch};
use ledtrad_protocol::status::{Connection, DeviceStatus};
use ledtrad_protocol::taxonomy::Category;
use ledtrad_protocol::{CampaignId, DeviceId, DeviceKind, FleetId, KeyId, Moment, OfferId, Purpose, UnixTime};
use serde::de::DeserializeOwned;
use serde::Serialize;

const T: UnixTime = UnixTime(1_795_456_800);

fn build_offer() -> Offer {
    Offer {
        id: OfferId::try_new("butter").unwrap(),
        campaign: CampaignId::try_new("dairy").unwrap(),
        title: "Butter".into(),
        question: "Butter?".into(),
        body: "B".into(),
        image: None,
        category: "food.dairy".into(),
        device_kinds: vec![DeviceKind::Fridge],
        moments: vec![Moment::DoorOpened],
        conditions: vec![Condition { feature: "fridge.butter.level".into(), op: Op::Lt, value: 0.25 }],
        value: 2.0,
        priority: 1.0,
        valid_from: UnixTime(0),
        valid_until: T,
        caps: Caps { per_day: 1, ..Caps::default() },
        personalised: true,
        propensity: None,
    }
}

fn build_decision() -> Decision {
    Decision {
        id: DecisionId(7),
        moment: Moment::DoorOpened,
        at: T,
        catalogue_version: Some(3),
        shown: Some(Box::new(ShownOffer {
            offer: OfferId::try_new("butter").unwrap(),
            campaign: CampaignId::try_new("dairy").unwrap(),
            title: "Butter".into(),
            question: "Butter?".into(),
            body: "B".into(),
            image: None,
            why: "Because.".into(),
            personalised: true,
        })),
        candidates: vec![
            Candidate { offer: OfferId::try_new("butter").unwrap(), verdict: Verdict::Chosen { score: 1.5 } },
            Candidate {
                offer: OfferId::try_new("film").unwrap(),
                verdict: Verdict::Rejected { reason: Rejection::NeedsConsent { purpose: Purpose::Personalise } },
            },
        ],
        features_used: vec![FeatureUse {
            feature: FeatureName::try_new("fridge.butter.level").unwrap(),
            allowed_by: Some(Purpose::Personalise),
        }],
        camouflage: false,
        prompt: None,
        would_have_shown: None,
        scores: vec![],
        scorer: ScorerUsed::Model { name: "m".into(), version: 2, runtime: "tract".into() },
    }
}

/// Checks both encodings byte for byte and that each decodes back to the value.
fn golden<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T, json: &str, postcard_hex: &str) {
    let got_json = String::from_utf8(to_json(value)).unwrap();
    assert_eq!(got_json, json, "JSON");
    assert_eq!(&from_json::<T>(json.as_bytes(), "golden").unwrap(), value);
    let got_postcard = to_postcard(value);
    assert_eq!(hex(&got_postcard), postcard_hex, "postcard");
    assert_eq!(&from_postcard::<T>(&got_postcard, "golden").unwrap(), value);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn golden_signal() {
    golden(
        &Signal { feature: FeatureName::try_new("fridge.butter.level").unwrap(), value: 0.125 },
        r#"{"feature":"fridge.butter.level","value":0.125}"#,
        "136672696467652e6275747465722e6c6576656c000000000000c03f",
    );
}

#[test]
fn golden_batch() {
    golden(
        &SignalBatch {
            signals: vec![Signal { feature: FeatureName::try_new("fridge.door.opens").unwrap(), value: 1.0 }],
        },
        r#"{"signals":[{"feature":"fridge.door.opens","value":1.0}]}"#,
        "01116672696467652e646f6f722e6f70656e73000000000000f03f",
    );
}

#[test]
fn golden_offer() {
    golden(
        &build_offer(),
        r#"{"id":"butter","campaign":"dairy","title":"Butter","question":"Butter?","body":"B","image":null,"category":"food.dairy","device_kinds":["fridge"],"moments":["door_opened"],"conditions":[{"feature":"fridge.butter.level","op":"lt","value":0.25}],"value":2.0,"priority":1.0,"valid_from":"1970-01-01T00:00:00Z","valid_until":"2026-11-23T18:00:00Z","caps":{"per_day":1,"per_hour":null,"per_week":null,"per_month":null,"total":null,"per_home_per_day":null},"personalised":true,"propensity":null}"#,
        "0662757474657205646169727906427574746572074275747465723f0142000a666f6f642e64616972790100010001136672696467652e6275747465722e6c6576656c00000000000000d03f0000000000000040000000000000f03f00a0fe91d8060100000000000100",
    );
}

#[test]
fn golden_catalogue() {
    golden(
        &Catalogue { name: "n".into(), offers: vec![build_offer()], prompts: vec![], campaigns: vec![], policy: Default::default() },
        r#"{"name":"n","offer":[{"id":"butter","campaign":"dairy","title":"Butter","question":"Butter?","body":"B","image":null,"category":"food.dairy","device_kinds":["fridge"],"moments":["door_opened"],"conditions":[{"feature":"fridge.butter.level","op":"lt","value":0.25}],"value":2.0,"priority":1.0,"valid_from":"1970-01-01T00:00:00Z","valid_until":"2026-11-23T18:00:00Z","caps":{"per_day":1,"per_hour":null,"per_week":null,"per_month":null,"total":null,"per_home_per_day":null},"personalised":true,"propensity":null}],"prompt":[],"campaign":[],"policy":{"device_per_hour":null,"device_per_day":null,"min_gap_minutes":null,"quiet_hours":null,"home_per_day":null}}"#,
        "016e010662757474657205646169727906427574746572074275747465723f0142000a666f6f642e64616972790100010001136672696467652e6275747465722e6c6576656c00000000000000d03f0000000000000040000000000000f03f00a0fe91d806010000000000010000000000000000",
    );
}

#[test]
fn golden_signed() {
    golden(
        &SignedCatalogue {
            fleet: FleetId::try_new("home").unwrap(),
            version: 3,
            issued_at: UnixTime(1),
            expires_at: T,
            key_id: KeyId::try_new("op").unwrap(),
            catalogue: Catalogue {
                name: String::new(),
                offers: vec![],
                prompts: vec![],
                campaigns: vec![],
                policy: Default::default(),
            },
            rollout: Some(ledtrad_protocol::envelope::Rollout { share: 0.25 }),
        },
        r#"{"fleet":"home","version":3,"issued_at":"1970-01-01T00:00:01Z","expires_at":"2026-11-23T18:00:00Z","key_id":"op","catalogue":{"name":"","offer":[],"prompt":[],"campaign":[],"policy":{"device_per_hour":null,"device_per_day":null,"min_gap_minutes":null,"quiet_hours":null,"home_per_day":null}},"rollout":{"share":0.25}}"#,
        "04686f6d650301a0fe91d806026f7000000000000000000001000000000000d03f",
    );
}

#[test]
fn golden_signed_model() {
    golden(
        &SignedModel {
            fleet: FleetId::try_new("home").unwrap(),
            version: 2,
            issued_at: UnixTime(1),
            expires_at: T,
            key_id: KeyId::try_new("op").unwrap(),
            manifest: ModelManifest {
                name: "m".into(),
                inputs: vec![ModelInput { name: "offer.value".into(), missing: 0.5 }],
            },
            tflite: vec![0x54, 0x46, 0x4c, 0x33],
        },
        r#"{"fleet":"home","version":2,"issued_at":"1970-01-01T00:00:01Z","expires_at":"2026-11-23T18:00:00Z","key_id":"op","manifest":{"name":"m","input":[{"name":"offer.value","missing":0.5}]},"tflite":[84,70,76,51]}"#,
        "04686f6d650201a0fe91d806026f70016d010b6f666665722e76616c7565000000000000e03f0454464c33",
    );
}

#[test]
fn golden_envelope() {
    golden(
        &Envelope { key_id: KeyId::try_new("op").unwrap(), signed: vec![1, 2, 3], signature: vec![9; 4] },
        r#"{"key_id":"op","signed":[1,2,3],"signature":[9,9,9,9]}"#,
        "026f70030102030409090909",
    );
}

#[test]
fn golden_decision() {
    golden(
        &build_decision(),
        r#"{"id":7,"moment":"door_opened","at":"2026-11-23T18:00:00Z","catalogue_version":3,"shown":{"offer":"butter","campaign":"dairy","title":"Butter","question":"Butter?","body":"B","image":null,"why":"Because.","personalised":true},"candidates":[{"offer":"butter","verdict":{"chosen":{"score":1.5}}},{"offer":"film","verdict":{"rejected":{"reason":{"needs_consent":{"purpose":"personalise"}}}}}],"features_used":[{"feature":"fridge.butter.level","allowed_by":"personalise"}],"camouflage":false,"prompt":null,"would_have_shown":null,"scores":[],"scorer":{"model":{"name":"m","version":2,"runtime":"tract"}}}"#,
        "0700a0fe91d8060103010662757474657205646169727906427574746572074275747465723f01420008426563617573652e01020662757474657200000000000000f83f0466696c6d02040001136672696467652e6275747465722e6c6576656c01000000000001016d02057472616374",
    );
}

#[test]
fn golden_feedback() {
    golden(
        &Feedback { decision: DecisionId(7), kind: FeedbackKind::NotForMe },
        r#"{"decision":7,"kind":"not_for_me"}"#,
        "0702",
    );
}

#[test]
fn golden_status() {
    golden(
        &DeviceStatus {
            device: DeviceId::try_new("d1").unwrap(),
            fleet: FleetId::try_new("home").unwrap(),
            state: Connection::Online,
            agent_version: "0.1.0".into(),
            catalogue_version: Some(3),
            last_refusal: None,
            model_version: Some(2),
            last_model_refusal: None,
            rollout_waiting: Some(4),
        },
        r#"{"device":"d1","fleet":"home","state":"online","agent_version":"0.1.0","catalogue_version":3,"last_refusal":null,"model_version":2,"last_model_refusal":null,"rollout_waiting":4}"#,
        "02643104686f6d650005302e312e300103000102000104",
    );
}

#[test]
fn golden_request() {
    golden(
        &OfferRequest {
            device_kind: DeviceKind::Ereader,
            moment: Moment::BookFinished,
            interests: vec![Category::try_new("books.crime").unwrap()],
            time_of_day: ledtrad_protocol::offers::TimeOfDay::Evening,
        },
        r#"{"device_kind":"ereader","moment":"book_finished","interests":["books.crime"],"time_of_day":"evening"}"#,
        "0102010b626f6f6b732e6372696d6502",
    );
}

#[test]
fn golden_response() {
    golden(&OfferResponse { offers: vec![] }, r#"{"offers":[]}"#, "00");
}

#[test]
fn golden_report() {
    golden(
        &Report {
            campaign: CampaignId::try_new("dairy").unwrap(),
            arm: Arm::Holdout,
            day: 20415,
            catalogue_version: 7,
            epsilon: 1.0,
            impressions: 3,
            accepts: 1,
            dismissals: -2,
            conversions: 0,
            id: Some(ReportId(0x0123_4567_89ab_cdef_0011_2233_4455_6677)),
        },
        r#"{"campaign":"dairy","arm":"holdout","day":20415,"catalogue_version":7,"epsilon":1.0,"impressions":3,"accepts":1,"dismissals":-2,"conversions":0,"id":"0123456789abcdef0011223344556677"}"#,
        "05646169727901bf9f0107000000000000f03f0602030001203031323334353637383961626364656630303131323233333434353536363737",
    );
}
