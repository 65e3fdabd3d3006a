//! The fridge compartment's thermometer: a TMP102/TMP112 on I2C, through the `tmp1x2` driver
//! (embedded-hal 1.0, no_std, no heap; its `Error<E>` and `destroy()` as for every driver
//! here). In continuous mode, `read_temperature()` reads the temperature register in °C.

pub use tmp1x2::{Error, SlaveAddr};

/// The thermometer in continuous conversion (the TMP102's power-on mode).
pub type Thermometer<I2C> = tmp1x2::Tmp1x2<I2C, tmp1x2::marker::mode::Continuous>;

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal_mock::eh1::i2c::{Mock as I2cMock, Transaction as I2c};

    const ADDRESS: u8 = 0x48;

    #[test]
    fn reads_degrees_from_the_temperature_register() {
        // 12-bit readings, 1/16 °C per count, left-aligned: 4 °C is 64 counts, −1.5 °C is −24.
        let expected = [
            I2c::write_read(ADDRESS, std::vec![0x00], std::vec![0x04, 0x00]),
            I2c::write_read(ADDRESS, std::vec![0x00], std::vec![0xfe, 0x80]),
        ];
        let mut thermometer = Thermometer::new(I2cMock::new(&expected), SlaveAddr::default());
        assert_eq!(thermometer.read_temperature().unwrap(), 4.0);
        assert_eq!(thermometer.read_temperature().unwrap(), -1.5);
        thermometer.destroy().done();
    }

    extern crate std;
}
