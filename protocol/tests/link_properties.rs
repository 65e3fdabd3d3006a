//! The sensor link's decoder against damaged streams of summaries and events: frames
//! truncated, repeated, bit-flipped and mixed with garbage. It never panics, never holds more
//! than one frame's bytes, and never yields a frame that was not sent. The seed is fixed, so a run that passes always passes
//! (a random CRC-16 collision is 1 in 65,536 per damaged frame, not never).

use ledtrad_protocol::link::{
    encode, Edge, Event, Frame, FrameDecoder, Quantity, Reading, Readings, Summary, LINK_VERSION, MAX_FRAME,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

fn summary(seq: u8, values: &[(u8, u8)]) -> Summary {
    let mut readings = Readings::new();
    for (q, v) in values {
        readings.push(Reading { quantity: Quantity::ALL[usize::from(*q) % Quantity::ALL.len()], value: *v });
    }
    Summary { version: LINK_VERSION, seq, readings }
}

/// A frame numbered `seq`: an event when `edge` says which, else a summary of `values`.
fn frame(seq: u8, edge: Option<bool>, values: &[(u8, u8)]) -> Frame {
    match edge {
        Some(opened) => Frame::Event(Event {
            version: LINK_VERSION,
            seq,
            edge: if opened { Edge::DoorOpened } else { Edge::DoorClosed },
        }),
        None => Frame::Summary(summary(seq, values)),
    }
}

/// How a frame is damaged on its way.
#[derive(Debug, Clone)]
enum Damage {
    None,
    Truncate(usize),
    Repeat,
    Flip(usize, u8),
    GarbageBefore(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        4 => Just(Damage::None),
        1 => (0usize..MAX_FRAME).prop_map(Damage::Truncate),
        1 => Just(Damage::Repeat),
        2 => (0usize..MAX_FRAME, 0u8..8).prop_map(|(i, bit)| Damage::Flip(i, bit)),
        1 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(Damage::GarbageBefore),
    ]
}

proptest! {
    #![proptest_config(Config { cases: 2_000, rng_seed: RngSeed::Fixed(20_261_124), failure_persistence: None, ..Config::default() })]

    #[test]
    fn damaged_streams_never_panic_or_yield_a_frame_that_was_not_sent(
        frames in proptest::collection::vec(
            (proptest::option::of(any::<bool>()), proptest::collection::vec((any::<u8>(), 0u8..=200), 0..=8), damage()),
            1..20,
        ),
    ) {
        let mut sent = Vec::new();
        let mut stream = Vec::new();
        for (seq, (edge, values, damage)) in frames.iter().enumerate() {
            let s = frame(seq as u8, *edge, values);
            let mut out = [0u8; MAX_FRAME];
            let frame = encode(s, &mut out).expect("fits").to_vec();
            sent.push(s);
            match damage {
                Damage::None => stream.extend_from_slice(&frame),
                Damage::Truncate(n) => stream.extend_from_slice(&frame[..(*n).min(frame.len())]),
                Damage::Repeat => {
                    stream.extend_from_slice(&frame);
                    stream.extend_from_slice(&frame);
                }
                Damage::Flip(i, bit) => {
                    let mut f = frame.clone();
                    let i = *i % f.len();
                    f[i] ^= 1 << bit;
                    stream.extend_from_slice(&f);
                }
                Damage::GarbageBefore(garbage) => {
                    stream.extend_from_slice(garbage);
                    stream.extend_from_slice(&frame);
                }
            }
        }
        let mut decoder = FrameDecoder::new();
        let mut good = 0;
        for byte in &stream {
            if let Some(Ok(frame)) = decoder.push(*byte) {
                prop_assert!(sent.contains(&frame), "a frame that was not sent: {frame:?}");
                good += 1;
            }
        }
        let _ = decoder.take_incomplete();
        // No more frames than were sent, counting repeats twice.
        prop_assert!(good <= frames.len() + frames.iter().filter(|(_, _, d)| matches!(d, Damage::Repeat)).count());
    }

    #[test]
    fn any_bytes_at_all_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4_096)) {
        let mut decoder = FrameDecoder::new();
        for byte in &bytes {
            let _ = decoder.push(*byte);
        }
        let _ = decoder.take_incomplete();
        prop_assert!(!decoder.take_incomplete());
    }
}

/// On a clean link every frame arrives, and each of a stream's summaries and events is read
/// once, in order.
#[test]
fn a_clean_stream_reads_back_every_frame() {
    let mut stream = Vec::new();
    let sent: Vec<Frame> = (0..=255u8)
        .map(|seq| {
            let edge = (seq % 3 != 0).then_some(seq % 3 == 1);
            frame(seq, edge, &[(seq, seq % 201), (seq.wrapping_add(3), 7)])
        })
        .collect();
    for s in &sent {
        let mut out = [0u8; MAX_FRAME];
        stream.extend_from_slice(encode(s, &mut out).expect("fits"));
    }
    let mut decoder = FrameDecoder::new();
    let read: Vec<Frame> = stream.iter().filter_map(|b| decoder.push(*b)).map(|r| r.expect("good")).collect();
    assert_eq!(read, sent);
    assert_eq!(read.iter().filter(|f| f.event().is_some()).count(), 170);
}
