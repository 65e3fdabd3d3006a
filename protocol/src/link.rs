//! The serial link between a sensor node (the `firmware` crate) and the agent (DESIGN §10).
//!
//! A [`Frame`] is either a window's [`Summary`] or an [`Event`] (the door opened or closed
//! just now). Its payload is the link version, the frame's kind, its sequence number and the
//! kind's body, encoded with postcard; a CRC-16 of those bytes follows (CRC-16/IBM-SDLC,
//! little-endian), the whole COBS-encoded and ended by a `0x00` delimiter:
//!
//! ```text
//! COBS( version ‖ kind ‖ seq ‖ postcard(body) ‖ crc16_le ) ‖ 0x00
//! kind 0, a summary: body = count ‖ (quantity ‖ value) × count
//! kind 1, an event:   body = edge (0 door opened, 1 door closed)
//! ```
//!
//! Both kinds share one sequence, so a lost frame of either kind shows as a gap. Everything
//! here works in caller-provided buffers, with no heap, so the firmware encodes with the same
//! code the agent decodes with. An 8-channel summary is at most [`MAX_FRAME`] bytes on the
//! wire, an event 8. [`FrameDecoder`] takes any byte stream and tells good frames from corrupt
//! ones (bad COBS, bad CRC, unknown version or kind, unreadable, too long); bytes cut off by
//! the end of the stream are [incomplete](FrameDecoder::take_incomplete).

use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The link's version, first in every frame; a node and an agent of different versions
/// count each other's frames as corrupt. Version 1 carried summaries only, without a kind
/// byte; version 2 added the kind byte and event frames.
pub const LINK_VERSION: u8 = 2;

/// The most readings one summary carries.
pub const MAX_READINGS: usize = 8;

/// The largest payload before framing: version, kind, sequence, count and 8 readings.
pub const MAX_PAYLOAD: usize = 4 + 2 * MAX_READINGS;

/// The largest frame on the wire: the payload and its CRC, COBS's overhead byte, the delimiter.
pub const MAX_FRAME: usize = MAX_PAYLOAD + 2 + 1 + 1;

/// The frame delimiter.
pub const DELIMITER: u8 = 0;

/// The kind byte of a [`Summary`].
const KIND_SUMMARY: u8 = 0;

/// The kind byte of an [`Event`].
const KIND_EVENT: u8 = 1;

/// The CRC over each payload's bytes.
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

/// A change a node reports the moment it happens rather than at its window's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum Edge {
    /// The door opened.
    DoorOpened,
    /// The door closed.
    DoorClosed,
}

/// What a node sends at once on an [`Edge`], numbered in the same sequence as its summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// [`LINK_VERSION`].
    pub version: u8,
    /// Counts up by one per frame sent (summaries and events alike), wrapping at 255.
    pub seq: u8,
    /// What happened.
    pub edge: Edge,
}

/// One frame of either kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A window's readings.
    Summary(Summary),
    /// A door edge, sent at once.
    Event(Event),
}

impl Frame {
    /// The frame's sequence number.
    pub const fn seq(&self) -> u8 {
        match self {
            Self::Summary(s) => s.seq,
            Self::Event(e) => e.seq,
        }
    }

    /// The link version it claims.
    pub const fn version(&self) -> u8 {
        match self {
            Self::Summary(s) => s.version,
            Self::Event(e) => e.version,
        }
    }

    /// The summary, if it is one.
    pub const fn summary(&self) -> Option<&Summary> {
        match self {
            Self::Summary(s) => Some(s),
            Self::Event(_) => None,
        }
    }

    /// The event, if it is one.
    pub const fn event(&self) -> Option<&Event> {
        match self {
            Self::Summary(_) => None,
            Self::Event(e) => Some(e),
        }
    }
}

impl From<Summary> for Frame {
    fn from(summary: Summary) -> Self {
        Self::Summary(summary)
    }
}

impl From<&Summary> for Frame {
    fn from(summary: &Summary) -> Self {
        Self::Summary(*summary)
    }
}

impl From<Event> for Frame {
    fn from(event: Event) -> Self {
        Self::Event(event)
    }
}

impl From<&Event> for Frame {
    fn from(event: &Event) -> Self {
        Self::Event(*event)
    }
}

impl From<&Frame> for Frame {
    fn from(frame: &Frame) -> Self {
        *frame
    }
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
    /// Too short to hold a payload and its CRC.
    #[error("too short for a payload and its CRC")]
    TooShort,
    /// The CRC does not match.
    #[error("CRC mismatch")]
    BadCrc,
    /// The CRC matches but the frame's body cannot be read.
    #[error("the frame's body cannot be read")]
    Unreadable,
    /// A frame of another link version.
    #[error(
        "link version {0}, this side speaks {LINK_VERSION}: update the board's firmware or the agent so both speak one version"
    )]
    UnknownVersion(u8),
    /// A frame of a kind this side does not know (a newer node's, say).
    #[error("frame kind {0}, this side reads summaries ({KIND_SUMMARY}) and events ({KIND_EVENT}): update the agent")]
    UnknownKind(u8),
}

/// Encodes `frame` (a [`Summary`], an [`Event`] or a [`Frame`]) into `out` and returns the
/// frame's bytes, delimiter included.
pub fn encode(frame: impl Into<Frame>, out: &mut [u8]) -> Result<&[u8], LinkError> {
    let frame = frame.into();
    let mut payload = [0u8; MAX_PAYLOAD + 2];
    let written = match &frame {
        Frame::Summary(s) => {
            postcard::to_slice(&(s.version, KIND_SUMMARY, s.seq, s.readings), &mut payload[..MAX_PAYLOAD])
        }
        Frame::Event(e) => postcard::to_slice(&(e.version, KIND_EVENT, e.seq, e.edge), &mut payload[..MAX_PAYLOAD]),
    };
    let used = written.map_err(|_| LinkError::BufferTooSmall)?.len();
    let crc = CRC.checksum(&payload[..used]).to_le_bytes();
    payload[used..used + 2].copy_from_slice(&crc);
    let n = cobs::try_encode(&payload[..used + 2], out).map_err(|_| LinkError::BufferTooSmall)?;
    let end = out.get_mut(n).ok_or(LinkError::BufferTooSmall)?;
    *end = DELIMITER;
    Ok(&out[..=n])
}

/// Reads one frame's bytes (without its delimiter), checking COBS, CRC, version and kind.
pub fn decode(frame: &[u8]) -> Result<Frame, LinkError> {
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
    let version = payload[0];
    if version != LINK_VERSION {
        return Err(LinkError::UnknownVersion(version));
    }
    let (kind, body) = payload[1..].split_first().ok_or(LinkError::Unreadable)?;
    match *kind {
        KIND_SUMMARY => match postcard::take_from_bytes::<(u8, Readings)>(body) {
            Ok(((seq, readings), [])) => Ok(Frame::Summary(Summary { version, seq, readings })),
            _ => Err(LinkError::Unreadable),
        },
        KIND_EVENT => match postcard::take_from_bytes::<(u8, Edge)>(body) {
            Ok(((seq, edge), [])) => Ok(Frame::Event(Event { version, seq, edge })),
            _ => Err(LinkError::Unreadable),
        },
        other => Err(LinkError::UnknownKind(other)),
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
    pub fn push(&mut self, byte: u8) -> Option<Result<Frame, LinkError>> {
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
mod tests;
