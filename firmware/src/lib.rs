//! Sensor-node logic for ledtrad sensor boards: `no_std`, no heap, generic over
//! embedded-hal 1.0 traits.
//!
//! Device makers run this on the microcontroller of a sensor board (shelf load cells, door
//! switch, temperature, ambient light, motion); the agent on the application processor reads
//! its frames. Nothing here reads a clock or allocates: time comes in as `now_ms`, memory is
//! fixed at build time, and no path panics.
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
//! - [`node`]: the node's sans-IO state machine: when to sample, when to send a summary, a
//!   door edge sent at once, retries with backoff and a bounded queue of unsent frames;
//!   frames encoded with `ledtrad_protocol::link`.
#![no_std]

pub mod channel;
pub mod drivers;
pub mod node;
pub mod sampler;
