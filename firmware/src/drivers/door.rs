//! The fridge door's switch: debounced over the caller's clock (a level has to hold for the
//! debounce time before it counts), giving opened and closed events, each of which the node
//! sends the agent at once as a link [`Edge`]. It reads no clock: the time of each poll comes
//! in as `now_ms`.

use core::fmt;
use embedded_hal::digital::InputPin;
use ledtrad_protocol::link::Edge;

/// A door switch's failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error<PinE> {
    /// The pin could not be read.
    Pin(PinE),
}

impl<PinE: fmt::Debug> fmt::Display for Error<PinE> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pin(e) => write!(f, "door switch pin: {e:?}"),
        }
    }
}

/// A change of the door's settled state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoorEvent {
    /// The door opened.
    Opened,
    /// The door closed.
    Closed,
}

impl DoorEvent {
    /// The link's edge for it, which the node sends the agent at once.
    pub const fn edge(self) -> Edge {
        match self {
            Self::Opened => Edge::DoorOpened,
            Self::Closed => Edge::DoorClosed,
        }
    }
}

/// Which pin level means the door is open (depends on the switch and its pull resistor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenLevel {
    /// Open reads high (a normally closed switch to ground with a pull-up, say).
    High,
    /// Open reads low.
    Low,
}

/// A debounced door switch on an input pin.
#[derive(Debug)]
pub struct DoorSwitch<P> {
    pin: P,
    open_level: OpenLevel,
    debounce_ms: u32,
    /// The state that has held for the debounce time (`true` is open); `None` until one has.
    settled: Option<bool>,
    /// The latest level read and since when it has held.
    candidate: Option<(bool, u64)>,
}

impl<P: InputPin> DoorSwitch<P> {
    /// A switch on `pin` whose level must hold `debounce_ms` before it counts.
    pub fn new(pin: P, open_level: OpenLevel, debounce_ms: u32) -> Self {
        Self { pin, open_level, debounce_ms, settled: None, candidate: None }
    }

    /// Reads the pin at `now_ms` and returns the event when the settled state changes. The
    /// first state to settle after start is the starting point, not an event.
    pub fn poll(&mut self, now_ms: u64) -> Result<Option<DoorEvent>, Error<P::Error>> {
        let high = self.pin.is_high().map_err(Error::Pin)?;
        let open = high == (self.open_level == OpenLevel::High);
        let since = match self.candidate {
            Some((level, since)) if level == open => since,
            _ => {
                self.candidate = Some((open, now_ms));
                now_ms
            }
        };
        if now_ms.saturating_sub(since) < u64::from(self.debounce_ms) || self.settled == Some(open) {
            return Ok(None);
        }
        let before = self.settled.replace(open);
        Ok(before.map(|_| if open { DoorEvent::Opened } else { DoorEvent::Closed }))
    }

    /// Whether the door is open, once a state has settled.
    pub fn is_open(&self) -> Option<bool> {
        self.settled
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

    /// Polls a switch (open high, 50 ms debounce) at each `(now_ms, level)` and returns the events.
    fn run(levels: &[(u64, State)]) -> Vec<(u64, DoorEvent)> {
        let expected: Vec<_> = levels.iter().map(|(_, s)| Pin::get(*s)).collect();
        let mut door = DoorSwitch::new(PinMock::new(&expected), OpenLevel::High, 50);
        let events = levels.iter().filter_map(|(t, _)| door.poll(*t).unwrap().map(|e| (*t, e))).collect();
        door.destroy().done();
        events
    }

    #[test]
    fn an_opening_counts_once_it_has_held() {
        use State::{High, Low};
        let events =
            run(&[(0, Low), (40, Low), (60, Low), (100, High), (120, High), (149, High), (150, High), (300, High)]);
        assert_eq!(events, [(150, DoorEvent::Opened)]);
    }

    #[test]
    fn bounces_shorter_than_the_debounce_are_ignored() {
        use State::{High, Low};
        let events = run(&[
            (0, Low),
            (60, Low),
            (100, High),
            (110, Low),
            (120, High),
            (130, Low),
            (200, Low),
            (210, High),
            (260, High),
            (300, Low),
            (340, Low),
            (350, Low),
        ]);
        assert_eq!(events, [(260, DoorEvent::Opened), (350, DoorEvent::Closed)]);
    }

    #[test]
    fn the_starting_state_is_not_an_event_and_low_can_mean_open() {
        let expected = [Pin::get(State::Low), Pin::get(State::Low)];
        let mut door = DoorSwitch::new(PinMock::new(&expected), OpenLevel::Low, 10);
        assert_eq!(door.poll(0).unwrap(), None);
        assert_eq!(door.poll(10).unwrap(), None);
        assert_eq!(door.is_open(), Some(true));
        door.destroy().done();
    }

    #[test]
    fn each_event_is_its_edge_on_the_link() {
        assert_eq!(DoorEvent::Opened.edge(), Edge::DoorOpened);
        assert_eq!(DoorEvent::Closed.edge(), Edge::DoorClosed);
    }
}
