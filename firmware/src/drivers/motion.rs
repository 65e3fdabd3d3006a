//! A motion (PIR) sensor's output: rising edges counted as detections, with a hold-off so
//! one presence that retriggers the sensor counts once. Time comes in as `now_ms`.

use core::fmt;
use embedded_hal::digital::InputPin;

/// A motion input's failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error<PinE> {
    /// The pin could not be read.
    Pin(PinE),
}

impl<PinE: fmt::Debug> fmt::Display for Error<PinE> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pin(e) => write!(f, "motion sensor pin: {e:?}"),
        }
    }
}

/// A PIR sensor's output pin (high while it sees motion).
#[derive(Debug)]
pub struct MotionSensor<P> {
    pin: P,
    hold_off_ms: u32,
    last_high: Option<bool>,
    last_counted_ms: Option<u64>,
    count: u16,
}

impl<P: InputPin> MotionSensor<P> {
    /// A sensor on `pin`; a rising edge within `hold_off_ms` of the last counted one is not counted.
    pub fn new(pin: P, hold_off_ms: u32) -> Self {
        Self { pin, hold_off_ms, last_high: None, last_counted_ms: None, count: 0 }
    }

    /// Reads the pin at `now_ms`; `true` when a detection was counted. A sensor already high at
    /// the first poll has not risen and does not count.
    pub fn poll(&mut self, now_ms: u64) -> Result<bool, Error<P::Error>> {
        let high = self.pin.is_high().map_err(Error::Pin)?;
        let rose = self.last_high == Some(false) && high;
        self.last_high = Some(high);
        let held_off = self.last_counted_ms.is_some_and(|t| now_ms.saturating_sub(t) < u64::from(self.hold_off_ms));
        if !rose || held_off {
            return Ok(false);
        }
        self.last_counted_ms = Some(now_ms);
        self.count = self.count.saturating_add(1);
        Ok(true)
    }

    /// The detections counted since the last call (saturating at `u16::MAX`), and starts again.
    pub fn take_count(&mut self) -> u16 {
        core::mem::take(&mut self.count)
    }

    /// Gives back the pin.
    pub fn destroy(self) -> P {
        self.pin
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use embedded_hal_mock::eh1::digital::{Mock as PinMock, State, Transaction as Pin};
    use std::vec::Vec;

    #[test]
    fn rising_edges_count_outside_the_hold_off() {
        use State::{High, Low};
        let levels = [(0, High), (10, Low), (20, High), (30, Low), (500, High), (600, Low), (1100, High), (1200, High)];
        let expected: Vec<_> = levels.iter().map(|(_, s)| Pin::get(*s)).collect();
        let mut pir = MotionSensor::new(PinMock::new(&expected), 1000);
        let counted: Vec<u64> = levels.iter().filter(|(t, _)| pir.poll(*t).unwrap()).map(|(t, _)| *t).collect();
        // High at start is no edge; 500 is within 1000 ms of 20; 1100 is not.
        assert_eq!(counted, [20, 1100]);
        assert_eq!(pir.take_count(), 2);
        assert_eq!(pir.take_count(), 0);
        pir.destroy().done();
    }
}
