//! The sensor link's decoder against damaged streams: frames truncated, repeated, bit-flipped
//! and mixed with garbage. It never panics, never holds more than one frame's bytes, and never
//! yields a summary that was not sent. The seed is fixed, so a run that passes always passes
//! (a random CRC-16 collision is 1 in 65,536 per damaged frame, not never).

use ledtrad_protocol::link::{encode, FrameDecoder, Quantity, Reading, Readings, Summary, LINK_VERSION, MAX_FRAME};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

fn summary(seq: u8, values: &[(u8, u8)]) -> Summary {
    let mut readings = Readings::new();
    for (q, v) in values {
        readings.push(Reading { quantity: Quantity::ALL[usize::from(*q) % Quantity::ALL.len()], value: *v });
    }
    Summary { version: LINK_VERSION, seq, readings }
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
    fn damaged_streams_never_panic_or_yield_a_summary_that_was_not_sent(
        frames in proptest::collection::vec(
            (proptest::collection::vec((any::<u8>(), 0u8..=200), 0..=8), damage()),
            1..20,
        ),
    ) {
        let mut sent = Vec::new();
        let mut stream = Vec::new();
        for (seq, (values, damage)) in frames.iter().enumerate() {
            let s = summary(seq as u8, values);
            let mut out = [0u8; MAX_FRAME];
            let frame = encode(&s, &mut out).expect("fits").to_vec();
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
            if let Some(Ok(summary)) = decoder.push(*byte) {
                prop_assert!(sent.contains(&summary), "a summary that was not sent: {summary:?}");
                good += 1;
            }
        }
        let _ = decoder.take_incomplete();
        // No more summaries than were sent, counting repeats twice.
        prop_assert!(good <= frames.len() + frames.iter().filter(|(_, d)| matches!(d, Damage::Repeat)).count());
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

/// On a clean link every frame arrives, and each of a stream's summaries is read once.
#[test]
fn a_clean_stream_reads_back_every_summary() {
    let mut stream = Vec::new();
    let sent: Vec<Summary> =
        (0..=255u8).map(|seq| summary(seq, &[(seq, seq % 201), (seq.wrapping_add(3), 7)])).collect();
    for s in &sent {
        let mut out = [0u8; MAX_FRAME];
        stream.extend_from_slice(encode(s, &mut out).expect("fits"));
    }
    let mut decoder = FrameDecoder::new();
    let read: Vec<Summary> = stream.iter().filter_map(|b| decoder.push(*b)).map(|r| r.expect("good")).collect();
    assert_eq!(read, sent);
}
