//! A sensor board for the firmware path (`ledtrad-sim run --sensors firmware`): the firmware's
//! own drivers, sampler and node run unchanged against virtual chips (the `chips` module)
//! whose state (a shelf's weight, the door, the temperature, the light, motion) the simulation
//! sets. The board hands back the frames its node sends: a summary per window, and a door edge
//! at once ([`Board::door_opened`]).

mod chips;

pub use chips::{Hx711Clock, Hx711Data, Never, NoAcknowledge, NoDelay, VirtualHx711, VirtualI2c, VirtualInput};

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

/// How long the door switch's level must hold before it counts, ms.
const DOOR_DEBOUNCE_MS: u32 = 50;

/// A sensor board running the firmware against virtual sensors: a fridge's (load cells under
/// the shelf slots, a door switch, a thermometer) or a lock screen's (a light sensor, a
/// motion sensor).
pub struct Board {
    node: Node,
    /// The latest time the node was stepped at: its clock never goes back.
    node_ms: u64,
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
        let mut door = DoorSwitch::new(door_pin.clone(), OpenLevel::High, DOOR_DEBOUNCE_MS);
        // The door starts closed, settled, so its first opening is an edge.
        for t in [0, u64::from(DOOR_DEBOUNCE_MS)] {
            door.poll(t).map_err(driver("door switch"))?;
        }
        let config = NodeConfig::try_new(window_ms, window_ms, 5_000, 300_000).map_err(driver("node timing"))?;
        Ok(Self {
            node: Node::new(config, sampler),
            node_ms: 0,
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
            node_ms: 0,
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
        self.run_node(now_ms + 5_000, inputs)
    }

    /// Opens the fridge's door at `now_ms`: the switch is held open past its debounce, polled
    /// through its driver, and the node sends the edge at once, without waiting for its window.
    /// Returns the frames to write to the link, in order (the event, and anything else the
    /// node had due by then); each is reported sent.
    pub fn door_opened(&mut self, now_ms: u64) -> Result<Vec<Vec<u8>>, BoardError> {
        self.door_edge(now_ms, true)
    }

    /// Closes the fridge's door at `now_ms`, as [`Board::door_opened`] opens it.
    pub fn door_closed(&mut self, now_ms: u64) -> Result<Vec<Vec<u8>>, BoardError> {
        self.door_edge(now_ms, false)
    }

    fn door_edge(&mut self, now_ms: u64, open: bool) -> Result<Vec<Vec<u8>>, BoardError> {
        let Sensors::Fridge { door_pin, door, .. } = &mut self.sensors else {
            return Err(BoardError::Driver(
                "a door edge on a lock screen's board: only a fridge's board has a door switch".into(),
            ));
        };
        door_pin.set(open);
        let held = now_ms + u64::from(DOOR_DEBOUNCE_MS);
        let mut inputs = Vec::new();
        for t in [now_ms, held] {
            if let Some(event) = door.poll(t).map_err(driver("door switch"))? {
                inputs.push(Input::Sample(Sample::Door(event)));
            }
        }
        self.run_node(held, inputs)
    }

    /// Steps the node at `at_ms` (or its latest time, if later) with `inputs`, then until it
    /// has nothing more to do; returns the frames it sent.
    fn run_node(&mut self, at_ms: u64, inputs: Vec<Input>) -> Result<Vec<Vec<u8>>, BoardError> {
        self.node_ms = self.node_ms.max(at_ms);
        let at = self.node_ms;
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
    use ledtrad_protocol::link::{decode, Edge, Frame, Quantity, Summary};

    fn read(frame: &[u8]) -> Frame {
        decode(&frame[..frame.len() - 1]).unwrap()
    }

    fn summary(frame: &[u8]) -> Summary {
        *read(frame).summary().expect("a summary")
    }

    #[test]
    fn a_fridge_board_reports_its_shelves_door_and_temperature_through_the_firmware() {
        let mut board = Board::fridge(600_000).unwrap();
        let levels = [0.1, 0.5, 1.0, 0.0, 0.75];
        // The first step samples and sends the door's edges at once; the window closes ten
        // minutes on.
        let frames = board.step(0, Scene::Fridge { levels, door_opened: true, celsius: 4.5 }).unwrap();
        let edges: Vec<_> = frames.iter().map(|f| read(f).event().map(|e| (e.seq, e.edge))).collect();
        assert_eq!(edges, [Some((0, Edge::DoorOpened)), Some((1, Edge::DoorClosed))], "each edge at once");
        let frames = board.step(600_000, Scene::Fridge { levels, door_opened: false, celsius: 4.5 }).unwrap();
        assert_eq!(frames.len(), 1);
        let summary = summary(&frames[0]);
        assert_eq!(summary.seq, 2, "one sequence for events and summaries");
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
        let summary = summary(&frames[0]);
        let value = |q| summary.readings.iter().find(|r| r.quantity == q).and_then(|r| r.decoded());
        assert!((value(Quantity::AmbientLight).unwrap() - 0.6).abs() < 0.01);
        assert_eq!(value(Quantity::Motion), Some(1.0));
    }

    /// The door's edges go out the moment they happen, mid-window, and the window's summary
    /// still counts the opening.
    #[test]
    fn a_door_edge_is_sent_at_once_and_counted_in_the_window() {
        let mut board = Board::fridge(600_000).unwrap();
        let levels = [0.5; 5];
        assert!(board.step(0, Scene::Fridge { levels, door_opened: false, celsius: 4.0 }).unwrap().is_empty());
        // Before the step's time: the node's clock does not go back, and the edge still goes.
        let opened = board.door_opened(1_000).unwrap();
        assert_eq!(opened.len(), 1);
        assert_eq!(read(&opened[0]).event().map(|e| (e.seq, e.edge)), Some((0, Edge::DoorOpened)));
        assert!(opened[0].len() <= 24);
        assert!(board.door_opened(2_000).unwrap().is_empty(), "already open: no edge");
        let closed = board.door_closed(300_000).unwrap();
        assert_eq!(read(&closed[0]).event().map(|e| (e.seq, e.edge)), Some((1, Edge::DoorClosed)));
        let frames = board.step(600_000, Scene::Fridge { levels, door_opened: false, celsius: 4.0 }).unwrap();
        let summary = summary(&frames[0]);
        let opens = summary.readings.iter().find(|r| r.quantity == Quantity::DoorOpenings).and_then(|r| r.decoded());
        assert_eq!((summary.seq, opens), (2, Some(1.0)));
        assert_eq!(board.frames_sent, 3);
    }

    #[test]
    fn a_lock_screen_has_no_door_to_open() {
        let mut board = Board::lock_screen(600_000).unwrap();
        let err = board.door_opened(0).unwrap_err().to_string();
        assert!(err.contains("only a fridge's board has a door switch"), "{err}");
    }

    #[test]
    fn the_light_curve_inverts() {
        for level in [0.0, 0.1, 0.5, 0.79, 1.0] {
            let back = light::level_from_lux(lux_for_level(level));
            assert!((back - level).abs() < 1e-3, "{level} -> {back}");
        }
    }
}
