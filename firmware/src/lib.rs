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
#![no_std]

pub mod channel;
