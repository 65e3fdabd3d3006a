//! Sensor-node logic for ledtrad sensor boards: `no_std`, no heap, generic over
//! embedded-hal 1.0 traits.
//!
//! Device makers run this on the microcontroller of a sensor board (shelf load cells, door
//! switch, temperature, ambient light, motion); the agent on the application processor reads
//! its frames. This first version fixes the crate's shape and its link to the wire
//! vocabulary; the drivers, the sampler and the framed link come next.
//!
//! # Layout
//!
//! - [`channel`]: the sensor channels a board reports, mapped to the agent's features.
//! - [`drivers`]: the sensors, generic over embedded-hal 1.0 traits:
//!   - [`drivers::load_cell`]: an HX711-style load-cell amplifier (shelf weight in grams);
//!   - [`drivers::door`]: the door switch, debounced on the caller's clock;
//!   - [`drivers::thermometer`]: the fridge's TMP102 (°C), through the `tmp1x2` driver;
//!   - [`drivers::light`]: the lock screen's VEML7700 (lux, and a 0–1 level);
//!   - [`drivers::motion`]: a PIR output, rising edges counted with a hold-off.
//! - [`sampler`]: readings into per-window figures (min, max, mean, last, events) and a
//!   link summary; shelf slots mapped to items and sent as fill levels.
#![no_std]

pub mod channel;
pub mod drivers;
pub mod sampler;
