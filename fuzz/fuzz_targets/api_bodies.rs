//! The bodies the local API reads, each decoded as its route does: signals (one or a batch),
//! feedback, consent changes, people, presence and prompt answers.
#![no_main]

use ledtrad_agent::handle::{ConsentChange, PersonChange, Presence, PromptAnswer};
use ledtrad_protocol::codec;
use ledtrad_protocol::feedback::Feedback;
use ledtrad_protocol::signal::{Signal, SignalBatch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = codec::from_json::<SignalBatch>(data, "signals body");
    let _ = codec::from_json::<Signal>(data, "signal body");
    let _ = codec::from_json::<Feedback>(data, "feedback body");
    let _ = codec::from_json::<ConsentChange>(data, "consent body");
    let _ = codec::from_json::<PersonChange>(data, "person body");
    let _ = codec::from_json::<Presence>(data, "presence body");
    let _ = codec::from_json::<PromptAnswer>(data, "prompt answer");
});
