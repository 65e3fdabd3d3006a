//! The shelf's load cell through an HX711-style amplifier: a 24-bit sample clocked out of its
//! data pin (channel A, gain 128), tare, calibration against a known weight, and grams.
//!
//! Written here rather than taken from a crate: `hx711` and `loadcell` are on embedded-hal 0.2
//! (and `loadcell` on the ESP32's HAL), `hx711_spi` needs an SPI bus of its own; none offers
//! tare or calibration.

use core::fmt;
use embedded_hal::delay::DelayNs;
use embedded_hal::digital::{InputPin, OutputPin};

/// How many times the driver looks for a ready sample, a millisecond apart, before it gives
/// up: the amplifier makes 10 samples a second, so this is one sample period and a margin.
pub const READY_POLLS: u32 = 120;

/// A load cell's failure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Error<PinE> {
    /// A pin could not be read or set.
    Pin(PinE),
    /// No sample was ready within [`READY_POLLS`] ms: the amplifier is unpowered or unwired.
    NotReady,
    /// A known weight that is not a positive number of grams.
    InvalidWeight(f32),
    /// The known weight did not move the reading from the tare.
    NoChange,
}

impl<PinE: fmt::Debug> fmt::Display for Error<PinE> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pin(e) => write!(f, "load cell pin: {e:?}"),
            Self::NotReady => {
                write!(f, "no load cell sample in {READY_POLLS} ms: check the amplifier's power and wiring")
            }
            Self::InvalidWeight(g) => write!(f, "known weight {g} g: give a positive weight in grams"),
            Self::NoChange => {
                write!(f, "the known weight did not change the reading: put it on the cell, then calibrate")
            }
        }
    }
}

/// What turns counts into grams: the counts with nothing on the cell and the counts per gram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// The raw reading of the empty cell.
    pub offset: i32,
    /// Counts per gram above the offset (never 0).
    pub counts_per_gram: f32,
}

impl Default for Calibration {
    fn default() -> Self {
        Self { offset: 0, counts_per_gram: 1.0 }
    }
}

/// An HX711-style amplifier on a clock output pin and a data input pin.
#[derive(Debug)]
pub struct LoadCell<CLK, DATA, D> {
    clock: CLK,
    data: DATA,
    delay: D,
    calibration: Calibration,
}

impl<CLK, DATA, D, E> LoadCell<CLK, DATA, D>
where
    CLK: OutputPin<Error = E>,
    DATA: InputPin<Error = E>,
    D: DelayNs,
{
    /// A load cell on `clock` (the amplifier's PD_SCK) and `data` (its DOUT), uncalibrated.
    pub fn new(clock: CLK, data: DATA, delay: D) -> Self {
        Self { clock, data, delay, calibration: Calibration::default() }
    }

    /// The calibration in use.
    pub fn calibration(&self) -> Calibration {
        self.calibration
    }

    /// Uses a calibration kept from an earlier [`tare`](Self::tare) and
    /// [`calibrate`](Self::calibrate); a zero or non-finite `counts_per_gram` is refused.
    pub fn set_calibration(&mut self, calibration: Calibration) -> Result<(), Error<E>> {
        if calibration.counts_per_gram == 0.0 || !calibration.counts_per_gram.is_finite() {
            return Err(Error::NoChange);
        }
        self.calibration = calibration;
        Ok(())
    }

    /// Whether a sample is ready (the amplifier pulls its data line low).
    pub fn is_ready(&mut self) -> Result<bool, Error<E>> {
        self.data.is_low().map_err(Error::Pin)
    }

    /// One raw 24-bit sample, sign-extended, and selects channel A at gain 128 for the next.
    pub fn read_raw(&mut self) -> Result<i32, Error<E>> {
        let mut polls = 0;
        while !self.is_ready()? {
            polls += 1;
            if polls >= READY_POLLS {
                return Err(Error::NotReady);
            }
            self.delay.delay_ms(1);
        }
        let mut raw: u32 = 0;
        for _ in 0..24 {
            self.clock.set_high().map_err(Error::Pin)?;
            self.delay.delay_us(1);
            let bit = self.data.is_high().map_err(Error::Pin)?;
            self.clock.set_low().map_err(Error::Pin)?;
            self.delay.delay_us(1);
            raw = (raw << 1) | u32::from(bit);
        }
        // A 25th pulse: channel A, gain 128, for the next conversion.
        self.clock.set_high().map_err(Error::Pin)?;
        self.delay.delay_us(1);
        self.clock.set_low().map_err(Error::Pin)?;
        self.delay.delay_us(1);
        Ok(sign_extend_24(raw))
    }

    /// The mean of `samples` raw samples (at least one).
    pub fn read_average(&mut self, samples: u8) -> Result<i32, Error<E>> {
        let n = samples.max(1);
        let mut sum: i64 = 0;
        for _ in 0..n {
            sum += i64::from(self.read_raw()?);
        }
        // The mean of 24-bit values is a 24-bit value.
        Ok(i32::try_from(sum / i64::from(n)).unwrap_or(0))
    }

    /// Takes the mean of `samples` samples of the empty cell as its zero, and returns it.
    pub fn tare(&mut self, samples: u8) -> Result<i32, Error<E>> {
        let offset = self.read_average(samples)?;
        self.calibration.offset = offset;
        Ok(offset)
    }

    /// With `known_grams` on the tared cell, sets and returns the counts per gram.
    pub fn calibrate(&mut self, known_grams: f32, samples: u8) -> Result<f32, Error<E>> {
        if !(known_grams.is_finite() && known_grams > 0.0) {
            return Err(Error::InvalidWeight(known_grams));
        }
        let counts = self.read_average(samples)?.saturating_sub(self.calibration.offset);
        if counts == 0 {
            return Err(Error::NoChange);
        }
        let counts_per_gram = counts as f32 / known_grams;
        self.calibration.counts_per_gram = counts_per_gram;
        Ok(counts_per_gram)
    }

    /// The weight on the cell in grams, from the mean of `samples` samples.
    pub fn read_grams(&mut self, samples: u8) -> Result<f32, Error<E>> {
        let raw = self.read_average(samples)?;
        Ok(self.grams(raw))
    }

    /// Grams for a raw reading, by the calibration in use.
    pub fn grams(&self, raw: i32) -> f32 {
        raw.saturating_sub(self.calibration.offset) as f32 / self.calibration.counts_per_gram
    }

    /// Gives back the pins and the delay.
    pub fn destroy(self) -> (CLK, DATA, D) {
        (self.clock, self.data, self.delay)
    }
}

/// A 24-bit two's complement value as an `i32`.
fn sign_extend_24(raw: u32) -> i32 {
    ((raw << 8) as i32) >> 8
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use embedded_hal_mock::eh1::delay::NoopDelay;
    use embedded_hal_mock::eh1::digital::{Mock as PinMock, State, Transaction as Pin};
    use std::vec::Vec;

    /// The pins' transactions for one sample of `raw` (24 bits), ready at once.
    fn sample(raw: i32, clock: &mut Vec<Pin>, data: &mut Vec<Pin>) {
        data.push(Pin::get(State::Low));
        let bits = (raw as u32) & 0x00ff_ffff;
        for i in (0..24).rev() {
            clock.push(Pin::set(State::High));
            data.push(Pin::get(if bits >> i & 1 == 1 { State::High } else { State::Low }));
            clock.push(Pin::set(State::Low));
        }
        clock.push(Pin::set(State::High));
        clock.push(Pin::set(State::Low));
    }

    fn build_cell(raws: &[i32]) -> LoadCell<PinMock, PinMock, NoopDelay> {
        let (mut clock, mut data) = (Vec::new(), Vec::new());
        for raw in raws {
            sample(*raw, &mut clock, &mut data);
        }
        LoadCell::new(PinMock::new(&clock), PinMock::new(&data), NoopDelay::new())
    }

    fn done(cell: LoadCell<PinMock, PinMock, NoopDelay>) {
        let (mut clock, mut data, _) = cell.destroy();
        clock.done();
        data.done();
    }

    #[test]
    fn reads_positive_and_negative_24_bit_samples() {
        let mut cell = build_cell(&[0x12_3456, -5, 0x7f_ffff, -0x80_0000]);
        assert_eq!(cell.read_raw().unwrap(), 0x12_3456);
        assert_eq!(cell.read_raw().unwrap(), -5);
        assert_eq!(cell.read_raw().unwrap(), 0x7f_ffff);
        assert_eq!(cell.read_raw().unwrap(), -0x80_0000);
        done(cell);
    }

    #[test]
    fn waits_for_the_data_line_then_gives_up() {
        let mut data = std::vec![Pin::get(State::High), Pin::get(State::High)];
        let mut clock = Vec::new();
        sample(42, &mut clock, &mut data);
        data.extend(std::iter::repeat_n(Pin::get(State::High), READY_POLLS as usize));
        let mut cell = LoadCell::new(PinMock::new(&clock), PinMock::new(&data), NoopDelay::new());
        assert_eq!(cell.read_raw().unwrap(), 42);
        assert_eq!(cell.read_raw(), Err(Error::NotReady));
        done(cell);
    }

    #[test]
    fn tare_and_calibration_give_grams() {
        // Empty: 1000 and 1002 (mean 1001); 500 g on: 22001 twice; then 250 g.
        let mut cell = build_cell(&[1000, 1002, 22_001, 22_001, 11_501]);
        assert_eq!(cell.tare(2).unwrap(), 1001);
        assert_eq!(cell.calibrate(500.0, 2).unwrap(), 42.0);
        assert_eq!(cell.read_grams(1).unwrap(), 250.0);
        assert_eq!(cell.calibration(), Calibration { offset: 1001, counts_per_gram: 42.0 });
        assert_eq!(cell.calibrate(-1.0, 1), Err(Error::InvalidWeight(-1.0)));
        done(cell);
    }

    #[test]
    fn a_weight_that_changes_nothing_is_refused() {
        let mut cell = build_cell(&[7, 7]);
        cell.tare(1).unwrap();
        assert_eq!(cell.calibrate(100.0, 1), Err(Error::NoChange));
        assert_eq!(cell.set_calibration(Calibration { offset: 0, counts_per_gram: 0.0 }), Err(Error::NoChange));
        done(cell);
    }
}
