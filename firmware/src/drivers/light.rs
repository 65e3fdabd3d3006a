//! The lock screen's ambient-light sensor: a VEML7700 on I2C (gain 1, 100 ms integration),
//! read in lux, and the 0–1 level the agent's `context.ambient_light` feature takes.
//!
//! Written here rather than taken from a crate: `veml6030` (embedded-hal 1.0) and `veml7700`
//! generate their blocking and async APIs with maybe-async proc-macros, whose dependencies turn
//! on `std` and `alloc` features this crate keeps out; the two registers used here are simple.

use core::fmt;
use embedded_hal::i2c::I2c;

/// The sensor's fixed I2C address.
pub const ADDRESS: u8 = 0x10;

/// Lux per count at gain 1 and 100 ms integration (Vishay's VEML7700 application note).
pub const LUX_PER_COUNT: f32 = 0.0576;

/// The configuration register.
const ALS_CONF: u8 = 0x00;
/// The ambient-light result register.
const ALS: u8 = 0x04;
/// The configuration's shutdown bit.
const SHUTDOWN: u16 = 0x0001;

/// An ambient-light sensor's failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error<CommE> {
    /// The I2C bus failed.
    I2c(CommE),
}

impl<CommE: fmt::Debug> fmt::Display for Error<CommE> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::I2c(e) => write!(f, "light sensor on I2C address {ADDRESS:#04x}: {e:?}"),
        }
    }
}

/// A VEML7700 ambient-light sensor.
#[derive(Debug)]
pub struct LightSensor<I2C> {
    i2c: I2C,
}

impl<I2C: I2c> LightSensor<I2C> {
    /// A sensor on `i2c`; call [`enable`](Self::enable) before reading (it starts shut down).
    pub fn new(i2c: I2C) -> Self {
        Self { i2c }
    }

    /// Powers the sensor on at gain 1 and 100 ms integration; the first result is ready
    /// after one integration time.
    pub fn enable(&mut self) -> Result<(), Error<I2C::Error>> {
        self.write_register(ALS_CONF, 0)
    }

    /// Shuts the sensor down (about 0.5 µA).
    pub fn disable(&mut self) -> Result<(), Error<I2C::Error>> {
        self.write_register(ALS_CONF, SHUTDOWN)
    }

    /// The raw count of the last integration.
    pub fn read_raw(&mut self) -> Result<u16, Error<I2C::Error>> {
        let mut data = [0u8; 2];
        self.i2c.write_read(ADDRESS, &[ALS], &mut data).map_err(Error::I2c)?;
        Ok(u16::from_le_bytes(data))
    }

    /// The ambient light in lux (linear; above about 1000 lx the sensor reads a little low).
    pub fn read_lux(&mut self) -> Result<f32, Error<I2C::Error>> {
        Ok(f32::from(self.read_raw()?) * LUX_PER_COUNT)
    }

    /// Gives back the bus.
    pub fn destroy(self) -> I2C {
        self.i2c
    }

    fn write_register(&mut self, register: u8, value: u16) -> Result<(), Error<I2C::Error>> {
        let [lsb, msb] = value.to_le_bytes();
        self.i2c.write(ADDRESS, &[register, lsb, msb]).map_err(Error::I2c)
    }
}

/// The points of [`level_from_lux`]'s mapping, `(lux, level)`, in increasing order.
pub const LEVEL_POINTS: [(f32, f32); 6] =
    [(0.0, 0.0), (10.0, 0.2), (50.0, 0.4), (200.0, 0.6), (1000.0, 0.8), (10_000.0, 1.0)];

/// The 0–1 light level for `lux`: straight lines between [`LEVEL_POINTS`], so each step up
/// in kind of light is about 0.2 — dark room (under 10 lx), dim room (50), lit living room
/// (200), bright office or overcast daylight (1000), daylight (10,000 and above, 1.0). Eyes
/// see light on a log scale; this follows it without a logarithm. NaN and negatives are 0.
pub fn level_from_lux(lux: f32) -> f32 {
    if lux.is_nan() || lux <= 0.0 {
        return 0.0;
    }
    let mut below = (0.0, 0.0);
    for (x, y) in LEVEL_POINTS {
        if lux <= x {
            let (x0, y0) = below;
            return y0 + (y - y0) * (lux - x0) / (x - x0);
        }
        below = (x, y);
    }
    1.0
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use embedded_hal_mock::eh1::i2c::{Mock as I2cMock, Transaction as I2c};
    use std::vec;

    #[test]
    fn enables_reads_lux_and_shuts_down() {
        let expected = [
            I2c::write(ADDRESS, vec![ALS_CONF, 0x00, 0x00]),
            I2c::write_read(ADDRESS, vec![ALS], vec![0xe8, 0x03]),
            I2c::write(ADDRESS, vec![ALS_CONF, 0x01, 0x00]),
        ];
        let mut sensor = LightSensor::new(I2cMock::new(&expected));
        sensor.enable().unwrap();
        let lux = sensor.read_lux().unwrap();
        assert!((lux - 57.6).abs() < 1e-3, "{lux}");
        sensor.disable().unwrap();
        sensor.destroy().done();
    }

    #[test]
    fn a_bus_error_names_the_sensor() {
        use embedded_hal::i2c::ErrorKind;
        let expected = [I2c::write_read(ADDRESS, vec![ALS], vec![0, 0]).with_error(ErrorKind::Other)];
        let mut sensor = LightSensor::new(I2cMock::new(&expected));
        let error = sensor.read_lux().unwrap_err();
        assert_eq!(error, Error::I2c(ErrorKind::Other));
        assert!(std::format!("{error}").contains("0x10"));
        sensor.destroy().done();
    }

    #[test]
    fn levels_follow_the_documented_points() {
        assert_eq!(level_from_lux(f32::NAN), 0.0);
        assert_eq!(level_from_lux(-3.0), 0.0);
        assert_eq!(level_from_lux(5.0), 0.1);
        assert_eq!(level_from_lux(200.0), 0.6);
        assert!((level_from_lux(600.0) - 0.7).abs() < 1e-6);
        assert_eq!(level_from_lux(50_000.0), 1.0);
        let mut last = 0.0;
        for lux in 0..20_000 {
            let level = level_from_lux(lux as f32);
            assert!(level >= last && level <= 1.0);
            last = level;
        }
    }
}
