//! Virtual sensors for the firmware path (`ledtrad-sim run --sensors firmware`): each
//! implements the embedded-hal 1.0 traits the real chips are driven through, so the firmware's
//! own drivers, sampler and node run unchanged against a simulated home. Their state (a shelf's
//! weight, the door, the temperature, the light, motion) is set by the simulation; the drivers
//! read it through the same pin wiggling and register reads as on a board.

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

/// The shelf slots of a simulated fridge's board: what each holds and its full weight.
pub const SHELF_SLOTS: [(Quantity, f32); 5] = [
    (Quantity::ButterLevel, 250.0),
    (Quantity::MilkLevel, 1_000.0),
    (Quantity::CheeseLevel, 400.0),
    (Quantity::VegetablesLevel, 800.0),
    (Quantity::DrinksLevel, 1_500.0),
];

/// The thermometer's and the light sensor's I2C addresses.
const THERMOMETER: u8 = 0x48;

/// Samples per load-cell reading (the HX711 driver averages them).
const CELL_SAMPLES: u8 = 2;

/// A sensor board running the firmware against virtual sensors: a fridge's (load cells under
/// the shelf slots, a door switch, a thermometer) or a lock screen's (a light sensor, a
/// motion sensor).
pub struct Board {
    node: Node,
    sensors: Sensors,
    /// Frames the node asked to send, and of those, how many the link damaged.
    pub frames_sent: u64,
    /// Frames sent with a bit flipped on the way.
    pub frames_flipped: u64,
}

enum Sensors {
    Fridge {
        cells: Vec<(VirtualHx711, LoadCell<Hx711Clock, Hx711Data, NoDelay>)>,
        door_pin: VirtualInput,
        door: DoorSwitch<VirtualInput>,
        bus: VirtualI2c,
        thermometer: Thermometer<VirtualI2c>,
    },
    LockScreen {
        bus: VirtualI2c,
        light: LightSensor<VirtualI2c>,
        motion_pin: VirtualInput,
        motion: MotionSensor<VirtualInput>,
    },
}

/// The state of the home a board's sensors see.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scene {
    /// A fridge: each shelf slot's fill level (0–1), whether the door opened, the temperature.
    Fridge {
        /// Levels in [`SHELF_SLOTS`] order.
        levels: [f32; 5],
        /// The door opened (and closed) since the last step.
        door_opened: bool,
        /// °C.
        celsius: f32,
    },
    /// A lock screen: the ambient light level (0–1) and whether someone moved in front of it.
    LockScreen {
        /// The light, as the agent's 0–1 level.
        light: f32,
        /// Motion since the last step.
        moved: bool,
    },
}

/// A board that could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    /// A driver failed.
    #[error("sensor board: {0}")]
    Driver(String),
}

fn driver<E: core::fmt::Debug>(what: &str) -> impl Fn(E) -> BoardError + '_ {
    move |e| BoardError::Driver(format!("{what}: {e:?}"))
}

impl Board {
    /// A fridge's board, its load cells tared and calibrated as at the factory, sending a
    /// summary every `window_ms` with a sample every `window_ms` too.
    pub fn fridge(window_ms: u32) -> Result<Self, BoardError> {
        let mut sampler = Sampler::new();
        let mut cells = Vec::new();
        for (slot, (item, full_grams)) in SHELF_SLOTS.iter().enumerate() {
            let slot = u8::try_from(slot).unwrap_or(u8::MAX);
            sampler.add_slot(slot, *item, *full_grams).map_err(driver("shelf slot"))?;
            // Each cell its own offset and sensitivity, as real ones differ.
            let chip = VirtualHx711::new(8_000 + 1_000 * i32::from(slot), 420.0 + 10.0 * f32::from(slot));
            let mut cell = LoadCell::new(chip.clock(), chip.data(), NoDelay);
            chip.set_grams(0.0);
            cell.tare(4).map_err(driver("load cell tare"))?;
            chip.set_grams(500.0);
            cell.calibrate(500.0, 4).map_err(driver("load cell calibration"))?;
            cells.push((chip, cell));
        }
        sampler.add(Channel::DoorOpenings).map_err(driver("door channel"))?;
        sampler.add(Channel::Temperature).map_err(driver("temperature channel"))?;
        let bus = VirtualI2c::default();
        bus.add_thermometer(THERMOMETER);
        let thermometer = Thermometer::new(bus.clone(), SlaveAddr::default());
        let door_pin = VirtualInput::default();
        let door = DoorSwitch::new(door_pin.clone(), OpenLevel::High, 50);
        let config = NodeConfig::try_new(window_ms, window_ms, 5_000, 300_000).map_err(driver("node timing"))?;
        Ok(Self {
            node: Node::new(config, sampler),
            sensors: Sensors::Fridge { cells, door_pin, door, bus, thermometer },
            frames_sent: 0,
            frames_flipped: 0,
        })
    }

    /// A lock screen's board.
    pub fn lock_screen(window_ms: u32) -> Result<Self, BoardError> {
        let mut sampler = Sampler::new();
        sampler.add(Channel::AmbientLight).map_err(driver("light channel"))?;
        sampler.add(Channel::Motion).map_err(driver("motion channel"))?;
        let bus = VirtualI2c::default();
        bus.add_light(light::ADDRESS, light::LUX_PER_COUNT);
        let mut light = LightSensor::new(bus.clone());
        light.enable().map_err(driver("light sensor"))?;
        let motion_pin = VirtualInput::default();
        let motion = MotionSensor::new(motion_pin.clone(), 2_000);
        let config = NodeConfig::try_new(window_ms, window_ms, 5_000, 300_000).map_err(driver("node timing"))?;
        Ok(Self {
            node: Node::new(config, sampler),
            sensors: Sensors::LockScreen { bus, light, motion_pin, motion },
            frames_sent: 0,
            frames_flipped: 0,
        })
    }

    /// Shows the sensors `scene` at `now_ms` (pin events are polled through their drivers as
    /// the board's interrupt handler would), then runs the node until it has nothing more to
    /// do, reading every sensor when it asks. Returns the frames to write to the link, in
    /// order; each is reported sent.
    pub fn step(&mut self, now_ms: u64, scene: Scene) -> Result<Vec<Vec<u8>>, BoardError> {
        let mut inputs = Vec::new();
        match (&mut self.sensors, scene) {
            (Sensors::Fridge { cells, door_pin, door, bus, .. }, Scene::Fridge { levels, door_opened, celsius }) => {
                for ((chip, _), (level, (_, full))) in cells.iter().zip(levels.iter().zip(SHELF_SLOTS)) {
                    chip.set_grams(level.clamp(0.0, 1.0) * full);
                }
                bus.set_celsius(THERMOMETER, celsius);
                // Closed, then (if it opened) open for a few seconds, polled as the pin's
                // interrupt would: a switch's first settled state is no event.
                let mut polls = vec![(0, false), (100, false)];
                if door_opened {
                    polls.extend([(200, true), (300, true), (3_000, false), (3_100, false)]);
                }
                for (t, high) in polls {
                    door_pin.set(high);
                    if let Some(event) = door.poll(now_ms + t).map_err(driver("door switch"))? {
                        inputs.push(Input::Sample(Sample::Door(event)));
                    }
                }
            }
            (Sensors::LockScreen { bus, motion_pin, motion, .. }, Scene::LockScreen { light: level, moved }) => {
                bus.set_lux(light::ADDRESS, lux_for_level(level));
                let mut polls = vec![(0, false)];
                if moved {
                    polls.extend([(100, true), (600, false)]);
                }
                for (t, high) in polls {
                    motion_pin.set(high);
                    motion.poll(now_ms + t).map_err(driver("motion sensor"))?;
                }
            }
            _ => return Err(BoardError::Driver("the scene is not of this board's device".into())),
        }
        let at = now_ms + 5_000;
        let mut frames = Vec::new();
        let mut pending: std::collections::VecDeque<Input> = inputs.into();
        pending.push_back(Input::Tick);
        while let Some(input) = pending.pop_front() {
            match self.node.step(at, input) {
                None => {}
                Some(Action::Sample) => {
                    pending.extend(self.read_all()?.into_iter().map(Input::Sample));
                    pending.push_back(Input::Tick);
                }
                Some(Action::Send(frame)) => {
                    frames.push(frame.as_bytes().to_vec());
                    self.frames_sent += 1;
                    pending.push_front(Input::Sent);
                }
            }
        }
        Ok(frames)
    }

    /// Reads every sensor through its driver.
    fn read_all(&mut self) -> Result<Vec<Sample>, BoardError> {
        let mut samples = Vec::new();
        match &mut self.sensors {
            Sensors::Fridge { cells, thermometer, .. } => {
                for (slot, (_, cell)) in cells.iter_mut().enumerate() {
                    let grams = cell.read_grams(CELL_SAMPLES).map_err(driver("load cell"))?;
                    samples.push(Sample::Weight { slot: u8::try_from(slot).unwrap_or(u8::MAX), grams });
                }
                let celsius = thermometer.read_temperature().map_err(driver("thermometer"))?;
                samples.push(Sample::Temperature(celsius));
            }
            Sensors::LockScreen { light, motion, .. } => {
                samples.push(Sample::Light { lux: light.read_lux().map_err(driver("light sensor"))? });
                samples.push(Sample::Motion { detections: motion.take_count() });
            }
        }
        Ok(samples)
    }

    /// The node's state, in bytes (what a board's RAM holds for it).
    pub fn node_bytes() -> usize {
        core::mem::size_of::<Node>()
    }
}

/// The lux that reads as `level` on the firmware's light curve (its inverse).
pub fn lux_for_level(level: f32) -> f32 {
    let level = level.clamp(0.0, 1.0);
    let points = light::LEVEL_POINTS;
    for pair in points.windows(2) {
        let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
        if level <= y1 {
            return x0 + (level - y0) / (y1 - y0) * (x1 - x0);
        }
    }
    points.last().map_or(0.0, |(x, _)| *x)
}

/// Flips one random bit of `frame` (never its delimiter), as a noisy line would.
pub fn flip_a_bit(frame: &mut [u8], rng: &mut impl rand::Rng) {
    if frame.len() > 1 {
        let i = rng.random_range(0..frame.len() - 1);
        frame[i] ^= 1 << rng.random_range(0..8);
    }
}

use ledtrad_firmware::channel::Channel;
use ledtrad_firmware::drivers::door::{DoorSwitch, OpenLevel};
use ledtrad_firmware::drivers::light::{self, LightSensor};
use ledtrad_firmware::drivers::load_cell::LoadCell;
use ledtrad_firmware::drivers::motion::MotionSensor;
use ledtrad_firmware::drivers::thermometer::{SlaveAddr, Thermometer};
use ledtrad_firmware::node::{Action, Input, Node, NodeConfig};
use ledtrad_firmware::sampler::{Sample, Sampler};
use ledtrad_protocol::link::Quantity;

#[cfg(test)]
mod tests {
    use super::*;
    use ledtrad_protocol::link::{decode, Quantity};

    #[test]
    fn a_fridge_board_reports_its_shelves_door_and_temperature_through_the_firmware() {
        let mut board = Board::fridge(600_000).unwrap();
        let levels = [0.1, 0.5, 1.0, 0.0, 0.75];
        // The first step samples; the window closes ten minutes on.
        assert!(board.step(0, Scene::Fridge { levels, door_opened: true, celsius: 4.5 }).unwrap().is_empty());
        let frames = board.step(600_000, Scene::Fridge { levels, door_opened: false, celsius: 4.5 }).unwrap();
        assert_eq!(frames.len(), 1);
        let summary = decode(&frames[0][..frames[0].len() - 1]).unwrap();
        let value = |q| summary.readings.iter().find(|r| r.quantity == q).and_then(|r| r.decoded());
        assert_eq!(value(Quantity::ButterLevel), Some(0.1));
        assert_eq!(value(Quantity::CheeseLevel), Some(1.0));
        assert_eq!(value(Quantity::DrinksLevel), Some(0.75));
        assert_eq!(value(Quantity::DoorOpenings), Some(1.0));
        assert_eq!(value(Quantity::Temperature), Some(4.5));
        assert!(frames[0].len() <= 24);
    }

    #[test]
    fn a_lock_screen_board_reports_light_and_motion() {
        let mut board = Board::lock_screen(600_000).unwrap();
        board.step(0, Scene::LockScreen { light: 0.6, moved: true }).unwrap();
        let frames = board.step(600_000, Scene::LockScreen { light: 0.6, moved: false }).unwrap();
        let summary = decode(&frames[0][..frames[0].len() - 1]).unwrap();
        let value = |q| summary.readings.iter().find(|r| r.quantity == q).and_then(|r| r.decoded());
        assert!((value(Quantity::AmbientLight).unwrap() - 0.6).abs() < 0.01);
        assert_eq!(value(Quantity::Motion), Some(1.0));
    }

    #[test]
    fn the_light_curve_inverts() {
        for level in [0.0, 0.1, 0.5, 0.79, 1.0] {
            let back = light::level_from_lux(lux_for_level(level));
            assert!((back - level).abs() < 1e-3, "{level} -> {back}");
        }
    }
}
