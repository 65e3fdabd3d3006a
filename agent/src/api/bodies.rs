//! Reading what a caller sends: the JSON bodies of signals, feedback and consent changes, and
//! the names of moments and purposes, each checked with one message naming the bad value and
//! what to send instead. The HTTP handlers and the C API (`ledtrad-ffi`) read them here, so
//! both take the same input and say the same thing about bad input.

use ledtrad_protocol::feedback::Feedback;
use ledtrad_protocol::signal::{Signal, SignalBatch, MAX_SIGNALS_PER_BATCH};
use ledtrad_protocol::{codec, Moment, Purpose};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::handle::ConsentChange;

/// One signal, or a batch of them (`POST /v1/signals`).
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum SignalsBody {
    /// Several signals, applied in order.
    Batch(SignalBatch),
    /// One signal.
    One(Signal),
}

/// The signals of a `POST /v1/signals` body: one signal or a batch, at most
/// [`MAX_SIGNALS_PER_BATCH`].
pub fn signals(body: &[u8]) -> Result<Vec<Signal>, String> {
    let signals: Vec<Signal> = match codec::from_json::<SignalsBody>(body, "signals body") {
        Ok(SignalsBody::Batch(batch)) => batch.signals,
        Ok(SignalsBody::One(signal)) => vec![signal],
        // An untagged enum's error says only that nothing matched; the batch's says what is wrong.
        Err(_) => {
            let batch_err = codec::from_json::<SignalBatch>(body, "signals body").err();
            let why =
                batch_err.map_or_else(|| "signals body: not one signal nor a batch".to_string(), |e| e.to_string());
            return Err(format!(
                "{why}; send {{\"signals\": [{{\"feature\": \"fridge.butter.level\", \"value\": 0.1}}]}}"
            ));
        }
    };
    if signals.len() > MAX_SIGNALS_PER_BATCH {
        return Err(format!(
            "{} signals in one batch is over the limit of {MAX_SIGNALS_PER_BATCH}; split it",
            signals.len()
        ));
    }
    Ok(signals)
}

/// The feedback of a `POST /v1/feedback` body.
pub fn feedback(body: &[u8]) -> Result<Feedback, String> {
    codec::from_json(body, "feedback body").map_err(|e| {
        format!("{e}; send {{\"decision\": <id>, \"kind\": \"accepted\" | \"dismissed\" | \"not_for_me\"}}")
    })
}

/// The consent change of a `PUT /v1/consent/{purpose}` body.
pub fn consent_change(body: &[u8]) -> Result<ConsentChange, String> {
    codec::from_json(body, "consent body").map_err(|e| {
        format!("{e}; send {{\"granted\": true, \"text_version\": \"2026-11\", \"source\": \"device_ui\"}}")
    })
}

/// A purpose by name (`personalise`, `request`, `measure`, `improve`).
pub fn purpose(text: &str) -> Result<Purpose, String> {
    text.parse().map_err(|e| format!("purpose {text:?}: {e}"))
}

/// A moment by name (`door_opened`, `inventory_low`, ...).
pub fn moment(text: &str) -> Result<Moment, String> {
    text.parse().map_err(|e| format!("moment {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_signal_or_a_batch_is_read_and_bad_bodies_say_what_to_send() {
        assert_eq!(signals(br#"{"feature": "fridge.butter.level", "value": 0.1}"#).unwrap().len(), 1);
        assert_eq!(signals(br#"{"signals": [{"feature": "fridge.butter.level", "value": 0.1}]}"#).unwrap().len(), 1);
        let err = signals(b"{").unwrap_err();
        assert!(err.starts_with("signals body") && err.contains("send {\"signals\""), "{err}");
        assert!(feedback(b"[]").unwrap_err().contains("\"kind\": \"accepted\""));
        assert!(consent_change(b"{}").unwrap_err().contains("text_version"));
        assert_eq!(purpose("personalise"), Ok(Purpose::Personalise));
        assert!(purpose("sell").unwrap_err().starts_with("purpose \"sell\""));
        assert!(moment("lunch").unwrap_err().contains("door_opened"));
    }
}
