//! The virtual chips behind a simulated board: pins, an HX711 load-cell amplifier and an I2C
//! bus with a thermometer and a light sensor, each implementing the embedded-hal 1.0 traits the
//! real chips are driven through. The simulation sets what they measure; the firmware's
//! drivers read it through the same pin wiggling and register reads as on a board.

use std::sync::{Arc, Mutex, PoisonError};

use embedded_hal::delay::DelayNs;
use embedded_hal::digital::{ErrorType as PinErrorType, InputPin, OutputPin};
use embedded_hal::i2c::{ErrorType as I2cErrorType, I2c, Operation, SevenBitAddress};

/// Pins and buses of virtual chips never fail.
pub type Never = core::convert::Infallible;

/// Locks shared chip state; a poisoned lock (a panic elsewhere) still holds usable state.
fn lock<T>(state: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A delay that takes no time: the simulation's clock is virtual.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDelay;

impl DelayNs for NoDelay {
    fn delay_ns(&mut self, _ns: u32) {}
}

/// A digital input whose level the simulation sets (a door switch, a motion sensor).
#[derive(Debug, Clone, Default)]
pub struct VirtualInput(Arc<Mutex<bool>>);

impl VirtualInput {
    /// Sets the level the pin reads.
    pub fn set(&self, high: bool) {
        *lock(&self.0) = high;
    }
}

impl PinErrorType for VirtualInput {
    type Error = Never;
}

impl InputPin for VirtualInput {
    fn is_high(&mut self) -> Result<bool, Never> {
        Ok(*lock(&self.0))
    }

    fn is_low(&mut self) -> Result<bool, Never> {
        Ok(!*lock(&self.0))
    }
}

/// An HX711 load-cell amplifier under a shelf slot: `grams` on the cell give
/// `offset + grams × counts_per_gram`, shifted out MSB first on the clock's rising edges, with
/// the data line low whenever a conversion is ready.
#[derive(Debug, Clone)]
pub struct VirtualHx711 {
    state: Arc<Mutex<Hx711State>>,
}

#[derive(Debug)]
struct Hx711State {
    grams: f32,
    offset: i32,
    counts_per_gram: f32,
    /// The conversion being shifted out and how many bits have gone.
    shifting: Option<(u32, u8)>,
    clock_high: bool,
}

impl VirtualHx711 {
    /// A cell reading `offset` counts when empty and `counts_per_gram` more per gram.
    pub fn new(offset: i32, counts_per_gram: f32) -> Self {
        let state = Hx711State { grams: 0.0, offset, counts_per_gram, shifting: None, clock_high: false };
        Self { state: Arc::new(Mutex::new(state)) }
    }

    /// Puts `grams` on the cell.
    pub fn set_grams(&self, grams: f32) {
        lock(&self.state).grams = grams;
    }

    /// The clock pin the firmware drives.
    pub fn clock(&self) -> Hx711Clock {
        Hx711Clock(self.state.clone())
    }

    /// The data pin the firmware reads.
    pub fn data(&self) -> Hx711Data {
        Hx711Data(self.state.clone())
    }
}

impl Hx711State {
    fn raw(&self) -> u32 {
        let counts = f64::from(self.offset) + f64::from(self.grams) * f64::from(self.counts_per_gram);
        let clamped = counts.round().clamp(-8_388_608.0, 8_388_607.0) as i32;
        (clamped as u32) & 0x00ff_ffff
    }

    fn data_high(&self) -> bool {
        match self.shifting {
            // Ready: low. Bit n of the conversion shows after the n-th rising edge.
            None => false,
            Some((_, 0)) => false,
            Some((raw, n)) if n <= 24 => (raw >> (24 - n)) & 1 == 1,
            // After the 24th bit the line goes high until the 25th pulse ends the read.
            Some(_) => true,
        }
    }
}

/// The HX711's clock input.
#[derive(Debug, Clone)]
pub struct Hx711Clock(Arc<Mutex<Hx711State>>);

/// The HX711's data output.
#[derive(Debug, Clone)]
pub struct Hx711Data(Arc<Mutex<Hx711State>>);

impl PinErrorType for Hx711Clock {
    type Error = Never;
}

impl OutputPin for Hx711Clock {
    fn set_high(&mut self) -> Result<(), Never> {
        let mut s = lock(&self.0);
        if !s.clock_high {
            s.clock_high = true;
            let raw = s.raw();
            s.shifting = match s.shifting {
                None => Some((raw, 1)),
                Some((raw, n)) => Some((raw, n.saturating_add(1))),
            };
        }
        Ok(())
    }

    fn set_low(&mut self) -> Result<(), Never> {
        let mut s = lock(&self.0);
        s.clock_high = false;
        // The 25th pulse selects channel A, gain 128, and starts the next conversion, which
        // the simulation has ready at once.
        if matches!(s.shifting, Some((_, n)) if n >= 25) {
            s.shifting = None;
        }
        Ok(())
    }
}

impl PinErrorType for Hx711Data {
    type Error = Never;
}

impl InputPin for Hx711Data {
    fn is_high(&mut self) -> Result<bool, Never> {
        Ok(lock(&self.0).data_high())
    }

    fn is_low(&mut self) -> Result<bool, Never> {
        Ok(!lock(&self.0).data_high())
    }
}

/// An I2C bus with virtual chips on it, each answering register writes and reads at its address.
#[derive(Debug, Clone, Default)]
pub struct VirtualI2c {
    chips: Arc<Mutex<Vec<(u8, Chip)>>>,
}

/// A chip on the bus: its register pointer and how it reads.
#[derive(Debug)]
enum Chip {
    /// A TMP102-style thermometer: register 0 holds the temperature, 12 bits of 1/16 °C,
    /// left-aligned, big-endian.
    Thermometer { celsius: f32, pointer: u8 },
    /// A VEML7700-style light sensor: register 4 holds the light count, little-endian, at
    /// `lux_per_count`.
    Light { lux: f32, lux_per_count: f32, pointer: u8 },
}

/// A bus error: nothing answers at the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoAcknowledge;

impl embedded_hal::i2c::Error for NoAcknowledge {
    fn kind(&self) -> embedded_hal::i2c::ErrorKind {
        embedded_hal::i2c::ErrorKind::NoAcknowledge(embedded_hal::i2c::NoAcknowledgeSource::Address)
    }
}

impl VirtualI2c {
    /// Puts a thermometer at `address`.
    pub fn add_thermometer(&self, address: u8) {
        lock(&self.chips).push((address, Chip::Thermometer { celsius: 4.0, pointer: 0 }));
    }

    /// Puts a light sensor at `address`.
    pub fn add_light(&self, address: u8, lux_per_count: f32) {
        lock(&self.chips).push((address, Chip::Light { lux: 0.0, lux_per_count, pointer: 0 }));
    }

    /// Sets what the thermometer at `address` measures.
    pub fn set_celsius(&self, address: u8, value: f32) {
        for (a, chip) in lock(&self.chips).iter_mut() {
            if let (true, Chip::Thermometer { celsius, .. }) = (*a == address, chip) {
                *celsius = value;
            }
        }
    }

    /// Sets what the light sensor at `address` measures.
    pub fn set_lux(&self, address: u8, value: f32) {
        for (a, chip) in lock(&self.chips).iter_mut() {
            if let (true, Chip::Light { lux, .. }) = (*a == address, chip) {
                *lux = value;
            }
        }
    }
}

impl Chip {
    fn write(&mut self, bytes: &[u8]) {
        // The first byte sets the register pointer; the rest (a configuration) is taken.
        if let Some(first) = bytes.first() {
            match self {
                Self::Thermometer { pointer, .. } | Self::Light { pointer, .. } => *pointer = *first,
            }
        }
    }

    fn read(&self, out: &mut [u8]) {
        let bytes: [u8; 2] = match *self {
            Self::Thermometer { celsius, pointer: 0 } => {
                let counts = (celsius * 16.0).round().clamp(-2048.0, 2047.0) as i16;
                (counts << 4).to_be_bytes()
            }
            Self::Light { lux, lux_per_count, pointer: 4 } => {
                let counts = (lux / lux_per_count).round().clamp(0.0, 65_535.0) as u16;
                counts.to_le_bytes()
            }
            _ => [0, 0],
        };
        for (o, b) in out.iter_mut().zip(bytes) {
            *o = b;
        }
    }
}

impl I2cErrorType for VirtualI2c {
    type Error = NoAcknowledge;
}

impl I2c<SevenBitAddress> for VirtualI2c {
    fn transaction(&mut self, address: u8, operations: &mut [Operation<'_>]) -> Result<(), NoAcknowledge> {
        let mut chips = lock(&self.chips);
        let (_, chip) = chips.iter_mut().find(|(a, _)| *a == address).ok_or(NoAcknowledge)?;
        for op in operations {
            match op {
                Operation::Write(bytes) => chip.write(bytes),
                Operation::Read(out) => chip.read(out),
            }
        }
        Ok(())
    }
}
