//! Drivers for the board's sensors, each generic over embedded-hal 1.0 traits, with an
//! `Error<CommE>` or `Error<PinE>` of its own and a `destroy()` that gives the bus or pins
//! back. None reads a clock: where timing matters (debounce, hold-off), time comes in.

pub mod door;
pub mod light;
pub mod load_cell;
pub mod motion;
pub mod thermometer;
