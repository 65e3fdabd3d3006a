//! The link's frames: sizes, exact bytes on the wire, and each kind of damage told apart.

extern crate std;
use super::*;
use std::vec::Vec;

fn eight() -> Summary {
    let mut readings = Readings::new();
    for (q, v) in [
        (Quantity::ButterLevel, 0.12),
        (Quantity::MilkLevel, 0.5),
        (Quantity::CheeseLevel, 1.0),
        (Quantity::VegetablesLevel, 0.0),
        (Quantity::DrinksLevel, 0.75),
        (Quantity::DoorOpenings, 3.0),
        (Quantity::Temperature, 4.5),
        (Quantity::Motion, 300.0),
    ] {
        assert!(readings.push(Reading::new(q, v)));
    }
    assert!(!readings.push(Reading::new(Quantity::AmbientLight, 0.3)), "a ninth does not fit");
    Summary { version: LINK_VERSION, seq: 200, readings }
}

fn opened(seq: u8) -> Event {
    Event { version: LINK_VERSION, seq, edge: Edge::DoorOpened }
}

fn hex(bytes: &[u8]) -> std::string::String {
    bytes.iter().map(|b| std::format!("{b:02x}")).collect()
}

/// The frame's bytes without the delimiter, as the decoder sees them.
fn body(frame: &[u8]) -> &[u8] {
    &frame[..frame.len() - 1]
}

#[test]
fn an_eight_reading_summary_is_a_small_frame_that_reads_back() {
    let summary = eight();
    let mut out = [0u8; MAX_FRAME];
    let frame = encode(summary, &mut out).unwrap();
    assert!(frame.len() <= 24, "{} bytes", frame.len());
    assert_eq!(frame.last(), Some(&DELIMITER));
    assert!(!body(frame).contains(&DELIMITER));
    assert_eq!(decode(body(frame)), Ok(Frame::Summary(summary)));
    let values: Vec<_> = summary.readings.iter().map(|r| r.decoded()).collect();
    assert_eq!(values[0], Some(0.12));
    assert_eq!(values[6], Some(4.5));
    assert_eq!(values[7], Some(255.0), "counts saturate");
}

#[test]
fn the_largest_summary_takes_the_whole_budget_and_no_more() {
    // Every reading at a non-zero byte: COBS adds one byte for the run, none for zeros.
    let mut readings = Readings::new();
    for q in &Quantity::ALL[1..] {
        readings.push(Reading { quantity: *q, value: 0xff });
    }
    let mut out = [0u8; MAX_FRAME];
    let frame = encode(Summary { version: LINK_VERSION, seq: 0xff, readings }, &mut out).unwrap();
    assert_eq!(frame.len(), MAX_FRAME);
    assert_eq!(MAX_FRAME, 24, "the wire budget a summary has");
}

#[test]
fn both_kinds_read_back_as_themselves() {
    let mut out = [0u8; MAX_FRAME];
    for edge in [Edge::DoorOpened, Edge::DoorClosed] {
        let event = Event { version: LINK_VERSION, seq: 41, edge };
        let frame = encode(event, &mut out).unwrap();
        assert_eq!(frame.len(), 8, "an event is 8 bytes on the wire");
        let read = decode(body(frame)).unwrap();
        assert_eq!(read, Frame::Event(event));
        assert_eq!((read.seq(), read.version(), read.event(), read.summary()), (41, LINK_VERSION, Some(&event), None));
    }
    let summary = Frame::from(eight());
    let frame = encode(summary, &mut out).unwrap();
    assert_eq!(decode(body(frame)).map(|f| f.summary().copied()), Ok(Some(eight())));
}

/// The bytes on the wire are part of the contract between firmware and agent.
#[test]
fn golden_summary_frame() {
    let mut readings = Readings::new();
    readings.push(Reading::new(Quantity::ButterLevel, 0.25));
    readings.push(Reading::new(Quantity::DoorOpenings, 2.0));
    let summary = Summary { version: LINK_VERSION, seq: 7, readings };
    let mut out = [0u8; MAX_FRAME];
    let frame = encode(summary, &mut out).unwrap();
    // Payload 02 00 07 02 00 32 05 02 (version 2, kind 0, seq 7, 2 readings: butter 50/200,
    // door openings 2), its CRC, COBS-stuffed.
    assert_eq!(hex(frame), GOLDEN_SUMMARY);
}

const GOLDEN_SUMMARY: &str = "020203070206320502f9ec00";

/// An event's bytes: payload 02 01 08 00 (version 2, kind 1, seq 8, door opened), its CRC,
/// COBS-stuffed; closed is edge 01 (no zero in its payload, so one COBS block). The CRCs were
/// checked against an independent CRC-16/X-25 and COBS written apart from this crate, which
/// also gives version 1's old golden frame, `0401070206320502407700`.
#[test]
fn golden_event_frames() {
    let mut out = [0u8; MAX_FRAME];
    assert_eq!(hex(encode(opened(8), &mut out).unwrap()), GOLDEN_OPENED);
    let closed = Event { edge: Edge::DoorClosed, ..opened(9) };
    assert_eq!(hex(encode(closed, &mut out).unwrap()), GOLDEN_CLOSED);
}

const GOLDEN_OPENED: &str = "0402010803b45100";
const GOLDEN_CLOSED: &str = "0702010901e55900";

#[test]
fn each_kind_of_damage_is_told_apart() {
    let mut out = [0u8; MAX_FRAME];
    let good = encode(eight(), &mut out).unwrap().to_vec();
    let mut flipped = body(&good).to_vec();
    flipped[4] ^= 0x10;
    assert!(matches!(decode(&flipped), Err(LinkError::BadCrc | LinkError::BadCobs)));
    assert_eq!(decode(&[0x05, 0x01]), Err(LinkError::BadCobs));
    assert_eq!(decode(&[0x02, 0x01]), Err(LinkError::TooShort));
    let other = Summary { version: 3, ..eight() };
    let mut out2 = [0u8; MAX_FRAME];
    let frame = encode(other, &mut out2).unwrap();
    assert_eq!(decode(body(frame)), Err(LinkError::UnknownVersion(3)));
    assert_eq!(decode(&[0xff; MAX_FRAME + 1]), Err(LinkError::TooLong));
    let mut tiny = [0u8; 4];
    assert_eq!(encode(eight(), &mut tiny), Err(LinkError::BufferTooSmall));
}

/// Builds a frame around any payload with a good CRC, for bodies the encoder cannot make.
fn framed(payload: &[u8]) -> Vec<u8> {
    let mut raw = payload.to_vec();
    raw.extend_from_slice(&CRC.checksum(payload).to_le_bytes());
    let mut out = [0u8; 64];
    let n = cobs::encode(&raw, &mut out);
    out[..n].to_vec()
}

#[test]
fn an_events_damage_is_told_apart_too() {
    let mut out = [0u8; MAX_FRAME];
    let good = body(encode(opened(3), &mut out).unwrap()).to_vec();
    for i in 0..good.len() {
        let mut flipped = good.clone();
        flipped[i] ^= 0x01;
        assert!(
            matches!(decode(&flipped), Err(LinkError::BadCrc | LinkError::BadCobs | LinkError::TooShort)),
            "byte {i}: {:?}",
            decode(&flipped)
        );
    }
    // A good CRC around what this side cannot read.
    assert_eq!(decode(&framed(&[LINK_VERSION, 1, 3, 2])), Err(LinkError::Unreadable), "edge 2 is none");
    assert_eq!(decode(&framed(&[LINK_VERSION, 1, 3, 0, 0])), Err(LinkError::Unreadable), "a byte too many");
    assert_eq!(decode(&framed(&[LINK_VERSION, 1, 3])), Err(LinkError::Unreadable), "no edge");
    assert_eq!(decode(&framed(&[LINK_VERSION])), Err(LinkError::Unreadable), "no kind");
    assert_eq!(decode(&framed(&[LINK_VERSION, 7, 3, 0])), Err(LinkError::UnknownKind(7)));
    // A version-1 summary (no kind byte) from an old board.
    assert_eq!(decode(&framed(&[1, 7, 1, 0, 50])), Err(LinkError::UnknownVersion(1)));
}

#[test]
fn errors_name_the_value_and_the_fix() {
    let version = std::format!("{}", LinkError::UnknownVersion(1));
    assert!(version.contains("version 1") && version.contains("update"), "{version}");
    let kind = std::format!("{}", LinkError::UnknownKind(7));
    assert!(kind.contains("kind 7") && kind.contains("update the agent"), "{kind}");
}

#[test]
fn the_decoder_splits_a_stream_and_counts_what_is_cut_off() {
    let mut out = [0u8; MAX_FRAME];
    let frame = encode(eight(), &mut out).unwrap().to_vec();
    let mut out2 = [0u8; MAX_FRAME];
    let event = encode(opened(201), &mut out2).unwrap().to_vec();
    let mut stream = Vec::new();
    stream.extend_from_slice(&frame);
    stream.push(DELIMITER);
    stream.extend_from_slice(&event);
    stream.extend_from_slice(&frame[..5]);
    stream.extend_from_slice(&frame);
    stream.extend_from_slice(&[0x33; 40]);
    stream.push(DELIMITER);
    stream.extend_from_slice(&frame[..3]);
    let mut decoder = FrameDecoder::new();
    let results: Vec<_> = stream.iter().filter_map(|b| decoder.push(*b)).collect();
    assert_eq!(results.len(), 4);
    assert_eq!(results[0], Ok(Frame::Summary(eight())));
    assert_eq!(results[1], Ok(Frame::Event(opened(201))));
    assert!(results[2].is_err(), "a cut frame runs into the next and fails its checks");
    assert_eq!(results[3], Err(LinkError::TooLong));
    assert!(decoder.take_incomplete());
    assert!(!decoder.take_incomplete());
}
