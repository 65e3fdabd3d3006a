//! Turns readings into fixed-size window summaries: per channel the min, max, mean, last
//! value and event count of the window, and at the window's end one
//! [`Summary`](ledtrad_protocol::link::Summary) of at most eight readings.
//!
//! Shelf slots are mapped to items here: slot 2 holds butter whose full weight is 250 g, say,
//! so the node sends butter's fill level (0–1), never grams or slot numbers.

use core::fmt;

use heapless::Vec;
use ledtrad_protocol::link::{Quantity, Scale};
use ledtrad_protocol::link::{Reading, Readings, Summary, LINK_VERSION, MAX_READINGS};

use crate::channel::Channel;
use crate::drivers::door::DoorEvent;
use crate::drivers::light::level_from_lux;

/// The most channels a sampler keeps: one reading each in a summary.
pub const MAX_CHANNELS: usize = MAX_READINGS;

/// One reading from the board's drivers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sample {
    /// A shelf slot's load cell, in grams.
    Weight {
        /// The slot.
        slot: u8,
        /// The weight on it.
        grams: f32,
    },
    /// The compartment temperature, in °C.
    Temperature(f32),
    /// The ambient light, in lux (kept as its level, [`level_from_lux`]).
    Light {
        /// Lux.
        lux: f32,
    },
    /// A door event; openings are counted.
    Door(DoorEvent),
    /// Motion detections since the last sample.
    Motion {
        /// How many.
        detections: u16,
    },
}

impl Sample {
    /// The channel the sample is of.
    pub fn channel(self) -> Channel {
        match self {
            Self::Weight { slot, .. } => Channel::ShelfLevel { slot },
            Self::Temperature(_) => Channel::Temperature,
            Self::Light { .. } => Channel::AmbientLight,
            Self::Door(_) => Channel::DoorOpenings,
            Self::Motion { .. } => Channel::Motion,
        }
    }
}

/// A channel's figures over the current window. Values are in the channel's unit: a level
/// 0–1 for shelves and light, °C for temperature; door and motion channels count events.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// The least value (`f32::INFINITY` before the first).
    pub min: f32,
    /// The greatest value (`f32::NEG_INFINITY` before the first).
    pub max: f32,
    /// The latest value.
    pub last: Option<f32>,
    /// The sum of values, for the mean.
    sum: f32,
    /// How many values.
    pub count: u32,
    /// How many events.
    pub events: u32,
}

impl Stats {
    const EMPTY: Self = Self { min: f32::INFINITY, max: f32::NEG_INFINITY, last: None, sum: 0.0, count: 0, events: 0 };

    /// The mean value, if there was one.
    pub fn mean(&self) -> Option<f32> {
        (self.count > 0).then(|| self.sum / self.count as f32)
    }

    fn add(&mut self, value: f32) {
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.last = Some(value);
        self.sum += value;
        self.count = self.count.saturating_add(1);
    }
}

/// A channel the sampler keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry {
    channel: Channel,
    quantity: Quantity,
    /// For shelf slots, the item's full weight in grams.
    full_grams: f32,
    stats: Stats,
}

/// A channel or sample the sampler refuses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerError {
    /// All [`MAX_CHANNELS`] channels are in use.
    Full,
    /// The channel is already kept.
    Duplicate(Channel),
    /// Shelf slots are added with [`Sampler::add_slot`], which says what the slot holds.
    ShelfNeedsItem(Channel),
    /// A slot's item must be a fill level (butter, milk, …).
    NotALevel(Quantity),
    /// A slot's full weight must be a positive number of grams.
    InvalidFullWeight {
        /// The slot.
        slot: u8,
        /// The weight given.
        grams: f32,
    },
    /// A sample of a channel the sampler does not keep.
    UnknownChannel(Channel),
}

impl fmt::Display for SamplerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => write!(f, "all {MAX_CHANNELS} channels are in use: a summary carries no more"),
            Self::Duplicate(c) => write!(f, "channel {c:?} is already kept"),
            Self::ShelfNeedsItem(c) => write!(f, "channel {c:?}: add shelf slots with add_slot and the item they hold"),
            Self::NotALevel(q) => write!(f, "slot item {q:?} is not a fill level: use a level such as ButterLevel"),
            Self::InvalidFullWeight { slot, grams } => {
                write!(f, "slot {slot}: full weight {grams} g; give the full item's weight in grams, above 0")
            }
            Self::UnknownChannel(c) => write!(f, "a sample of channel {c:?}, which is not kept: add it first"),
        }
    }
}

/// Keeps up to [`MAX_CHANNELS`] channels' figures over a window, in fixed memory.
#[derive(Debug, Clone, Default)]
pub struct Sampler {
    entries: Vec<Entry, MAX_CHANNELS>,
}

impl Sampler {
    /// A sampler with no channels.
    pub const fn new() -> Self {
        Self { entries: Vec::new() }
    }

    /// Keeps a shelf slot that holds `item` (a level quantity) weighing `full_grams` when full.
    pub fn add_slot(&mut self, slot: u8, item: Quantity, full_grams: f32) -> Result<(), SamplerError> {
        if item.scale() != Scale::Level || item == Quantity::AmbientLight {
            return Err(SamplerError::NotALevel(item));
        }
        if !(full_grams.is_finite() && full_grams > 0.0) {
            return Err(SamplerError::InvalidFullWeight { slot, grams: full_grams });
        }
        self.push(Channel::ShelfLevel { slot }, item, full_grams)
    }

    /// Keeps a door, temperature, light or motion channel.
    pub fn add(&mut self, channel: Channel) -> Result<(), SamplerError> {
        let quantity = match channel {
            Channel::ShelfLevel { .. } => return Err(SamplerError::ShelfNeedsItem(channel)),
            Channel::DoorOpenings => Quantity::DoorOpenings,
            Channel::Temperature => Quantity::Temperature,
            Channel::AmbientLight => Quantity::AmbientLight,
            Channel::Motion => Quantity::Motion,
        };
        self.push(channel, quantity, 0.0)
    }

    fn push(&mut self, channel: Channel, quantity: Quantity, full_grams: f32) -> Result<(), SamplerError> {
        if self.entries.iter().any(|e| e.channel == channel) {
            return Err(SamplerError::Duplicate(channel));
        }
        let entry = Entry { channel, quantity, full_grams, stats: Stats::EMPTY };
        self.entries.push(entry).map_err(|_| SamplerError::Full)
    }

    /// Adds a sample to its channel's figures. NaN and infinite values are ignored (the
    /// sensor gave none), except infinite lux, which is full light.
    pub fn record(&mut self, sample: Sample) -> Result<(), SamplerError> {
        let channel = sample.channel();
        let entry =
            self.entries.iter_mut().find(|e| e.channel == channel).ok_or(SamplerError::UnknownChannel(channel))?;
        let value = match sample {
            Sample::Weight { grams, .. } => (grams / entry.full_grams).clamp(0.0, 1.0),
            Sample::Temperature(celsius) => celsius,
            Sample::Light { lux } if lux.is_nan() => return Ok(()),
            Sample::Light { lux } => level_from_lux(lux),
            Sample::Door(DoorEvent::Opened) => {
                entry.stats.events = entry.stats.events.saturating_add(1);
                return Ok(());
            }
            Sample::Door(DoorEvent::Closed) => return Ok(()),
            Sample::Motion { detections } => {
                entry.stats.events = entry.stats.events.saturating_add(u32::from(detections));
                return Ok(());
            }
        };
        if value.is_finite() {
            entry.stats.add(value);
        }
        Ok(())
    }

    /// A channel's figures over the current window.
    pub fn stats(&self, channel: Channel) -> Option<Stats> {
        self.entries.iter().find(|e| e.channel == channel).map(|e| e.stats)
    }

    /// The window's summary numbered `seq`: shelf levels send their last level, door and
    /// motion their event count, temperature its mean °C, light its mean level. A level,
    /// temperature or light channel with no value in the window is left out.
    pub fn summary(&self, seq: u8) -> Summary {
        let mut readings = Readings::new();
        for entry in &self.entries {
            let value = match entry.channel {
                Channel::ShelfLevel { .. } => entry.stats.last,
                Channel::DoorOpenings | Channel::Motion => Some(entry.stats.events as f32),
                Channel::Temperature | Channel::AmbientLight => entry.stats.mean(),
            };
            if let Some(value) = value {
                // At most MAX_CHANNELS entries, so every push fits.
                readings.push(Reading::new(entry.quantity, value));
            }
        }
        Summary { version: LINK_VERSION, seq, readings }
    }

    /// Starts a new window: every channel's figures are cleared.
    pub fn reset(&mut self) {
        for entry in &mut self.entries {
            entry.stats = Stats::EMPTY;
        }
    }

    /// The window's summary, and starts a new window.
    pub fn close_window(&mut self, seq: u8) -> Summary {
        let summary = self.summary(seq);
        self.reset();
        summary
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec as StdVec;

    /// A fridge board: butter in slot 2 (250 g full), milk in slot 0 (1030 g), door, temperature.
    pub(crate) fn build_fridge() -> Sampler {
        let mut sampler = Sampler::new();
        sampler.add_slot(2, Quantity::ButterLevel, 250.0).unwrap();
        sampler.add_slot(0, Quantity::MilkLevel, 1030.0).unwrap();
        sampler.add(Channel::DoorOpenings).unwrap();
        sampler.add(Channel::Temperature).unwrap();
        sampler
    }

    fn values(summary: &Summary) -> StdVec<(Quantity, f64)> {
        summary.readings.iter().map(|r| (r.quantity, r.decoded().unwrap())).collect()
    }

    #[test]
    fn a_window_becomes_levels_counts_and_means() {
        let mut sampler = build_fridge();
        for grams in [250.0, 200.0, 125.0] {
            sampler.record(Sample::Weight { slot: 2, grams }).unwrap();
        }
        sampler.record(Sample::Weight { slot: 0, grams: 2000.0 }).unwrap();
        for t in [3.0, 4.0, 5.5] {
            sampler.record(Sample::Temperature(t)).unwrap();
        }
        sampler.record(Sample::Door(DoorEvent::Opened)).unwrap();
        sampler.record(Sample::Door(DoorEvent::Closed)).unwrap();
        sampler.record(Sample::Door(DoorEvent::Opened)).unwrap();

        let butter = sampler.stats(Channel::ShelfLevel { slot: 2 }).unwrap();
        assert_eq!((butter.min, butter.max, butter.last, butter.count), (0.5, 1.0, Some(0.5), 3));
        assert!((butter.mean().unwrap() - 0.7667).abs() < 1e-3);

        let summary = sampler.close_window(9);
        assert_eq!(summary.seq, 9);
        assert_eq!(
            values(&summary),
            [
                (Quantity::ButterLevel, 0.5),
                (Quantity::MilkLevel, 1.0), // more than full is full
                (Quantity::DoorOpenings, 2.0),
                (Quantity::Temperature, 4.0), // the mean of 3, 4 and 5.5 is 4.17, sent in half degrees
            ]
        );
        // A fresh window with nothing measured sends only its counts.
        assert_eq!(values(&sampler.close_window(10)), [(Quantity::DoorOpenings, 0.0)]);
    }

    #[test]
    fn light_and_motion_for_a_lock_screen() {
        let mut sampler = Sampler::new();
        sampler.add(Channel::AmbientLight).unwrap();
        sampler.add(Channel::Motion).unwrap();
        sampler.record(Sample::Light { lux: 200.0 }).unwrap();
        sampler.record(Sample::Light { lux: 1000.0 }).unwrap();
        sampler.record(Sample::Light { lux: f32::NAN }).unwrap();
        sampler.record(Sample::Motion { detections: 3 }).unwrap();
        sampler.record(Sample::Motion { detections: 1 }).unwrap();
        assert_eq!(values(&sampler.summary(0)), [(Quantity::AmbientLight, 0.7), (Quantity::Motion, 4.0)]);
    }

    #[test]
    fn channels_are_checked_when_added_and_sampled() {
        let mut sampler = build_fridge();
        assert_eq!(
            sampler.add_slot(2, Quantity::CheeseLevel, 100.0),
            Err(SamplerError::Duplicate(Channel::ShelfLevel { slot: 2 }))
        );
        assert_eq!(
            sampler.add_slot(3, Quantity::Temperature, 100.0),
            Err(SamplerError::NotALevel(Quantity::Temperature))
        );
        assert_eq!(
            sampler.add_slot(3, Quantity::AmbientLight, 100.0),
            Err(SamplerError::NotALevel(Quantity::AmbientLight))
        );
        assert_eq!(
            sampler.add_slot(3, Quantity::CheeseLevel, 0.0),
            Err(SamplerError::InvalidFullWeight { slot: 3, grams: 0.0 })
        );
        assert_eq!(
            sampler.add(Channel::ShelfLevel { slot: 4 }),
            Err(SamplerError::ShelfNeedsItem(Channel::ShelfLevel { slot: 4 }))
        );
        assert_eq!(
            sampler.record(Sample::Weight { slot: 7, grams: 1.0 }),
            Err(SamplerError::UnknownChannel(Channel::ShelfLevel { slot: 7 }))
        );
        for slot in 3..7 {
            sampler.add_slot(slot, Quantity::CheeseLevel, 100.0).unwrap();
        }
        assert_eq!(sampler.add(Channel::Motion), Err(SamplerError::Full));
        for slot in [0, 2, 3, 4, 5, 6] {
            sampler.record(Sample::Weight { slot, grams: 50.0 }).unwrap();
        }
        sampler.record(Sample::Temperature(4.0)).unwrap();
        assert_eq!(sampler.summary(0).readings.len(), MAX_READINGS);
    }
}
