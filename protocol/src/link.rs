//! The serial link between a sensor node (the `firmware` crate) and the agent (DESIGN §10).
//!
//! A frame is a [`Summary`] encoded with postcard, followed by a CRC-16 of those bytes
//! (CRC-16/IBM-SDLC, little-endian), the whole COBS-encoded and ended by a `0x00` delimiter:
//!
//! ```text
//! COBS( postcard(Summary) ‖ crc16_le ) ‖ 0x00
//! ```
//!
//! Everything here works in caller-provided buffers, with no heap, so the firmware encodes with
//! the same code the agent decodes with. An 8-channel summary is at most [`MAX_FRAME`] bytes on
//! the wire. [`FrameDecoder`] takes any byte stream and tells good frames from corrupt ones
//! (bad COBS, bad CRC, unknown version, unreadable, too long); bytes cut off by the end of the
//! stream are [incomplete](FrameDecoder::take_incomplete).

use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The link's version, first in every summary; a node and an agent of different versions
/// count each other's frames as corrupt.
pub const LINK_VERSION: u8 = 1;

/// The most readings one summary carries.
pub const MAX_READINGS: usize = 8;

/// The largest encoded summary before framing: version, sequence, count and 8 readings.
pub const MAX_PAYLOAD: usize = 3 + 2 * MAX_READINGS;

/// The largest frame on the wire: the payload and its CRC, COBS's overhead byte, the delimiter.
pub const MAX_FRAME: usize = MAX_PAYLOAD + 2 + 1 + 1;

/// The frame delimiter.
pub const DELIMITER: u8 = 0;

/// The CRC over each summary's bytes.
const CRC: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_SDLC);

/// What a reading is of: the node maps its sensors (a load cell under shelf slot 2, say) to
/// these, so the agent receives levels and counts, never raw grams or identities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum Quantity {
    /// Butter's fill level on its shelf slot.
    ButterLevel,
    /// Milk's fill level.
    MilkLevel,
    /// Cheese's fill level.
    CheeseLevel,
    /// Vegetables' fill level.
    VegetablesLevel,
    /// Drinks' fill level.
    DrinksLevel,
    /// Door openings in the window.
    DoorOpenings,
    /// Compartment temperature.
    Temperature,
    /// Ambient light level.
    AmbientLight,
    /// Motion detections in the window.
    Motion,
}

impl Quantity {
    /// Every quantity.
    pub const ALL: [Self; 9] = [
        Self::ButterLevel,
        Self::MilkLevel,
        Self::CheeseLevel,
        Self::VegetablesLevel,
        Self::DrinksLevel,
        Self::DoorOpenings,
        Self::Temperature,
        Self::AmbientLight,
        Self::Motion,
    ];

    /// How its value is carried in a reading's byte.
    pub const fn scale(self) -> Scale {
        match self {
            Self::ButterLevel
            | Self::MilkLevel
            | Self::CheeseLevel
            | Self::VegetablesLevel
            | Self::DrinksLevel
            | Self::AmbientLight => Scale::Level,
            Self::DoorOpenings | Self::Motion => Scale::Count,
            Self::Temperature => Scale::HalfDegrees,
        }
    }

    /// The agent feature it feeds, if any (temperature and motion feed none yet).
    pub const fn feature(self) -> Option<&'static str> {
        match self {
            Self::ButterLevel => Some("fridge.butter.level"),
            Self::MilkLevel => Some("fridge.milk.level"),
            Self::CheeseLevel => Some("fridge.cheese.level"),
            Self::VegetablesLevel => Some("fridge.vegetables.level"),
            Self::DrinksLevel => Some("fridge.drinks.level"),
            Self::DoorOpenings => Some("fridge.door.opens"),
            Self::AmbientLight => Some("context.ambient_light"),
            Self::Temperature | Self::Motion => None,
        }
    }
}

/// How a reading's byte holds its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// A level from 0 to 1 in steps of 1/200 (0–200; above is out of range).
    Level,
    /// A count, saturating at 255.
    Count,
    /// Degrees Celsius in half degrees, as a signed byte (−64 to +63.5 °C).
    HalfDegrees,
}

impl Scale {
    /// The byte for `value` (clamped to the scale's range; NaN is 0).
    pub fn encode(self, value: f32) -> u8 {
        let value = if value.is_nan() { 0.0 } else { value };
        match self {
            Self::Level => round(value.clamp(0.0, 1.0) * 200.0) as u8,
            Self::Count => round(value.clamp(0.0, 255.0)) as u8,
            Self::HalfDegrees => (round((value * 2.0).clamp(-128.0, 127.0)) as i8) as u8,
        }
    }

    /// The value of `byte`, or `None` where the scale has no such value (a level above 200).
    pub fn decode(self, byte: u8) -> Option<f64> {
        match self {
            Self::Level => (byte <= 200).then(|| f64::from(byte) / 200.0),
            Self::Count => Some(f64::from(byte)),
            Self::HalfDegrees => Some(f64::from(byte as i8) / 2.0),
        }
    }
}

/// Rounds half away from zero without `std`.
fn round(x: f32) -> f32 {
    if x >= 0.0 {
        (x + 0.5) as i32 as f32
    } else {
        (x - 0.5) as i32 as f32
    }
}

/// One reading: what it is of and its byte on the quantity's [`Scale`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reading {
    /// What it is of.
    pub quantity: Quantity,
    /// Its value on the quantity's scale.
    pub value: u8,
}

impl Reading {
    /// A reading of `value` (in the quantity's unit: a level 0–1, a count, °C).
    pub fn new(quantity: Quantity, value: f32) -> Self {
        Self { quantity, value: quantity.scale().encode(value) }
    }

    /// Its value in the quantity's unit, or `None` if the byte is out of the scale's range.
    pub fn decoded(self) -> Option<f64> {
        self.quantity.scale().decode(self.value)
    }
}

/// Up to [`MAX_READINGS`] readings, in a fixed array (no heap); encoded as a count and the
/// readings in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Readings {
    items: [Option<Reading>; MAX_READINGS],
    len: u8,
}

impl Readings {
    /// No readings.
    pub const fn new() -> Self {
        Self { items: [None; MAX_READINGS], len: 0 }
    }

    /// Adds a reading; `false` (and nothing added) when all [`MAX_READINGS`] are in use.
    pub fn push(&mut self, reading: Reading) -> bool {
        match self.items.get_mut(usize::from(self.len)) {
            Some(slot) => {
                *slot = Some(reading);
                self.len += 1;
                true
            }
            None => false,
        }
    }

    /// The readings in use.
    pub fn iter(&self) -> impl Iterator<Item = Reading> + '_ {
        self.items.iter().take(usize::from(self.len)).flatten().copied()
    }

    /// How many are in use.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Serialize for Readings {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // A count, then the readings in use: a tuple keeps postcard from adding its own length.
        let mut tuple = serializer.serialize_tuple(1 + self.len())?;
        tuple.serialize_element(&self.len)?;
        for reading in self.iter() {
            tuple.serialize_element(&reading)?;
        }
        tuple.end()
    }
}

impl<'de> Deserialize<'de> for Readings {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ReadingsVisitor;
        impl<'de> Visitor<'de> for ReadingsVisitor {
            type Value = Readings;

            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "a count of at most {MAX_READINGS} and that many readings")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Readings, A::Error> {
                let len: u8 = seq.next_element()?.ok_or_else(|| serde::de::Error::invalid_length(0, &self))?;
                if usize::from(len) > MAX_READINGS {
                    return Err(serde::de::Error::invalid_length(usize::from(len), &self));
                }
                let mut readings = Readings::new();
                for i in 0..usize::from(len) {
                    let reading = seq.next_element()?.ok_or_else(|| serde::de::Error::invalid_length(i + 1, &self))?;
                    readings.push(reading);
                }
                Ok(readings)
            }
        }
        // Postcard reads as many elements as the visitor asks for, up to the tuple's length.
        deserializer.deserialize_tuple(1 + MAX_READINGS, ReadingsVisitor)
    }
}

/// What a node sends each window: its readings, numbered so the agent can count lost frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// [`LINK_VERSION`].
    pub version: u8,
    /// Counts up by one per frame sent, wrapping at 255.
    pub seq: u8,
    /// The readings.
    pub readings: Readings,
}

/// A frame that could not be made or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The output buffer is too small for the frame.
    #[error("the frame needs more room than the buffer has ({MAX_FRAME} bytes is always enough)")]
    BufferTooSmall,
    /// More bytes than any frame has arrived before a delimiter.
    #[error("more than {MAX_FRAME} bytes without a delimiter")]
    TooLong,
    /// The bytes are not valid COBS.
    #[error("not valid COBS")]
    BadCobs,
    /// Too short to hold a summary and its CRC.
    #[error("too short for a summary and its CRC")]
    TooShort,
    /// The CRC does not match.
    #[error("CRC mismatch")]
    BadCrc,
    /// The CRC matches but the summary cannot be read.
    #[error("the summary cannot be read")]
    Unreadable,
    /// A summary of another link version.
    #[error("link version {0}, this side speaks {LINK_VERSION}")]
    UnknownVersion(u8),
}

/// Encodes `summary` as a frame into `out` and returns the frame's bytes (delimiter included).
pub fn encode<'a>(summary: &Summary, out: &'a mut [u8]) -> Result<&'a [u8], LinkError> {
    let mut payload = [0u8; MAX_PAYLOAD + 2];
    let used = postcard::to_slice(summary, &mut payload[..MAX_PAYLOAD]).map_err(|_| LinkError::BufferTooSmall)?.len();
    let crc = CRC.checksum(&payload[..used]).to_le_bytes();
    payload[used..used + 2].copy_from_slice(&crc);
    let n = cobs::try_encode(&payload[..used + 2], out).map_err(|_| LinkError::BufferTooSmall)?;
    let end = out.get_mut(n).ok_or(LinkError::BufferTooSmall)?;
    *end = DELIMITER;
    Ok(&out[..=n])
}

/// Reads one frame's bytes (without its delimiter), checking COBS, CRC and version.
pub fn decode(frame: &[u8]) -> Result<Summary, LinkError> {
    let mut buf = [0u8; MAX_FRAME];
    let src = buf.get_mut(..frame.len()).ok_or(LinkError::TooLong)?;
    src.copy_from_slice(frame);
    let n = cobs::decode_in_place(src).map_err(|_| LinkError::BadCobs)?;
    let decoded = &src[..n];
    if n < 3 {
        return Err(LinkError::TooShort);
    }
    let (payload, crc) = decoded.split_at(n - 2);
    if CRC.checksum(payload).to_le_bytes() != [crc[0], crc[1]] {
        return Err(LinkError::BadCrc);
    }
    if payload[0] != LINK_VERSION {
        return Err(LinkError::UnknownVersion(payload[0]));
    }
    match postcard::take_from_bytes::<Summary>(payload) {
        Ok((summary, [])) => Ok(summary),
        _ => Err(LinkError::Unreadable),
    }
}

/// Splits a byte stream into frames at each delimiter and decodes them; keeps no more than
/// [`MAX_FRAME`] bytes, so any stream fits in fixed memory.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    buf: [u8; MAX_FRAME],
    len: usize,
    overflowed: bool,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// A decoder waiting for a frame.
    pub const fn new() -> Self {
        Self { buf: [0; MAX_FRAME], len: 0, overflowed: false }
    }

    /// Takes one byte; at a delimiter, returns the frame it ends (an empty frame, two
    /// delimiters in a row, is skipped).
    pub fn push(&mut self, byte: u8) -> Option<Result<Summary, LinkError>> {
        if byte != DELIMITER {
            match self.buf.get_mut(self.len) {
                Some(slot) => {
                    *slot = byte;
                    self.len += 1;
                }
                None => self.overflowed = true,
            }
            return None;
        }
        let (len, overflowed) = (self.len, self.overflowed);
        self.len = 0;
        self.overflowed = false;
        match (len, overflowed) {
            (_, true) => Some(Err(LinkError::TooLong)),
            (0, false) => None,
            (len, false) => Some(decode(&self.buf[..len])),
        }
    }

    /// Whether bytes of an unfinished frame are waiting, forgetting them: call it when the
    /// stream ends or goes quiet, to count a frame cut short.
    pub fn take_incomplete(&mut self) -> bool {
        let waiting = self.len > 0 || self.overflowed;
        self.len = 0;
        self.overflowed = false;
        waiting
    }
}

#[cfg(test)]
mod tests {
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

    fn hex(bytes: &[u8]) -> std::string::String {
        bytes.iter().map(|b| std::format!("{b:02x}")).collect()
    }

    #[test]
    fn an_eight_reading_summary_is_a_small_frame_that_reads_back() {
        let summary = eight();
        let mut out = [0u8; MAX_FRAME];
        let frame = encode(&summary, &mut out).unwrap();
        assert!(frame.len() <= 24, "{} bytes", frame.len());
        assert_eq!(frame.last(), Some(&DELIMITER));
        assert!(!frame[..frame.len() - 1].contains(&DELIMITER));
        assert_eq!(decode(&frame[..frame.len() - 1]), Ok(summary));
        let values: Vec<_> = summary.readings.iter().map(|r| r.decoded()).collect();
        assert_eq!(values[0], Some(0.12));
        assert_eq!(values[6], Some(4.5));
        assert_eq!(values[7], Some(255.0), "counts saturate");
    }

    /// The bytes on the wire are part of the contract between firmware and agent.
    #[test]
    fn golden_frame() {
        let mut readings = Readings::new();
        readings.push(Reading::new(Quantity::ButterLevel, 0.25));
        readings.push(Reading::new(Quantity::DoorOpenings, 2.0));
        let summary = Summary { version: LINK_VERSION, seq: 7, readings };
        let mut out = [0u8; MAX_FRAME];
        let frame = encode(&summary, &mut out).unwrap();
        assert_eq!(hex(frame), GOLDEN);
    }

    const GOLDEN: &str = "0401070206320502407700";

    #[test]
    fn each_kind_of_damage_is_told_apart() {
        let mut out = [0u8; MAX_FRAME];
        let good = encode(&eight(), &mut out).unwrap().to_vec();
        let body = &good[..good.len() - 1];
        let mut flipped = body.to_vec();
        flipped[4] ^= 0x10;
        assert!(matches!(decode(&flipped), Err(LinkError::BadCrc | LinkError::BadCobs)));
        assert_eq!(decode(&[0x05, 0x01]), Err(LinkError::BadCobs));
        assert_eq!(decode(&[0x02, 0x01]), Err(LinkError::TooShort));
        let other = Summary { version: 2, ..eight() };
        let mut out2 = [0u8; MAX_FRAME];
        let frame = encode(&other, &mut out2).unwrap();
        assert_eq!(decode(&frame[..frame.len() - 1]), Err(LinkError::UnknownVersion(2)));
        assert_eq!(decode(&[0xff; MAX_FRAME + 1]), Err(LinkError::TooLong));
        let mut tiny = [0u8; 4];
        assert_eq!(encode(&eight(), &mut tiny), Err(LinkError::BufferTooSmall));
    }

    #[test]
    fn the_decoder_splits_a_stream_and_counts_what_is_cut_off() {
        let mut out = [0u8; MAX_FRAME];
        let frame = encode(&eight(), &mut out).unwrap().to_vec();
        let mut stream = Vec::new();
        stream.extend_from_slice(&frame);
        stream.push(DELIMITER);
        stream.extend_from_slice(&frame[..5]);
        stream.extend_from_slice(&frame);
        stream.extend_from_slice(&[0x33; 40]);
        stream.push(DELIMITER);
        stream.extend_from_slice(&frame[..3]);
        let mut decoder = FrameDecoder::new();
        let results: Vec<_> = stream.iter().filter_map(|b| decoder.push(*b)).collect();
        assert_eq!(results.len(), 3);
        assert_eq!(results[0], Ok(eight()));
        assert!(results[1].is_err(), "a cut frame runs into the next and fails its checks");
        assert_eq!(results[2], Err(LinkError::TooLong));
        assert!(decoder.take_incomplete());
        assert!(!decoder.take_incomplete());
    }
}
