//! The sensor board's link (DESIGN §10): frames from the board's microcontroller, read from a
//! serial port (a pty works the same) or, for simulation, a TCP socket, on a thread of its own.
//! Each frame is checked and decoded here ([`ledtrad_protocol::link::FrameDecoder`]); the
//! runtime counts good, corrupt, cut-off and lost frames, turns summaries into signals and
//! hands door edges on the moment they arrive. A broken frame is a counted, logged event,
//! never a crash, and a lost connection is retried.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use ledtrad_mqtt::Backoff;
use ledtrad_protocol::feature::FeatureName;
use ledtrad_protocol::link::{Event, Frame, FrameDecoder, LinkError, Scale, Summary};
use ledtrad_protocol::signal::Signal;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// The longest the link waits before it tries to open its source again.
pub const RETRY_CAP: Duration = Duration::from_secs(5);

/// How long the link may stay quiet inside a frame before the bytes so far count as cut off.
pub const QUIET: Duration = Duration::from_secs(1);

/// Where the board's frames come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkSource {
    /// A serial device (or a pty) at a baud rate.
    Serial {
        /// The device, e.g. `/dev/ttyACM0`.
        path: PathBuf,
        /// Its baud rate.
        baud: u32,
    },
    /// A TCP socket the board (or the simulator's virtual board) listens on.
    Tcp(SocketAddr),
}

impl std::fmt::Display for LinkSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Serial { path, baud } => write!(f, "{} at {baud} baud", path.display()),
            Self::Tcp(addr) => write!(f, "tcp://{addr}"),
        }
    }
}

impl LinkSource {
    /// Parses a `sensor_link` setting: `tcp://HOST:PORT`, or a serial device's path.
    pub fn parse(text: &str, baud: u32) -> Result<Self, String> {
        match text.strip_prefix("tcp://") {
            Some(addr) => addr
                .parse()
                .map(Self::Tcp)
                .map_err(|_| format!("{text:?} is not tcp://IP:PORT (e.g. tcp://127.0.0.1:7070)")),
            None if text.starts_with('/') => Ok(Self::Serial { path: text.into(), baud }),
            None => Err(format!("{text:?} is neither tcp://IP:PORT nor a serial device's path such as /dev/ttyACM0")),
        }
    }
}

/// What the link reader tells the runtime.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent {
    /// The source is open.
    Connected,
    /// The source could not be opened or was lost; the reader retries.
    Disconnected(String),
    /// A good summary frame.
    Summary(Summary),
    /// A good event frame: a door edge, just now.
    Edge(Event),
    /// A frame that failed its checks.
    Corrupt(LinkError),
    /// Bytes of a frame cut off (by the link going quiet or closing).
    Incomplete,
}

/// Frame counts, as the agent's status shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct LinkStatus {
    /// Where frames come from.
    pub source: String,
    /// Whether it is open.
    pub connected: bool,
    /// Good frames, summaries and events alike.
    pub frames: u64,
    /// Good event frames (door edges), counted in `frames` too.
    pub events: u64,
    /// Frames that failed their checks (COBS, CRC, version, content).
    pub corrupt: u64,
    /// Frames cut off.
    pub incomplete: u64,
    /// Frames the board numbered but that never arrived whole (gaps in the sequence).
    pub dropped: u64,
    /// Frames that arrived twice (the same number again).
    pub repeated: u64,
    /// Signals handed to the engine from good frames.
    pub signals: u64,
    /// Readings whose byte is outside its scale, or of a quantity no feature takes, skipped.
    pub readings_skipped: u64,
}

impl LinkStatus {
    /// Counts a good frame numbered `seq` after the one numbered `last`; `false` for a repeat,
    /// which is to be skipped.
    pub fn count_frame(&mut self, last: Option<u8>, seq: u8) -> bool {
        self.frames += 1;
        match last {
            Some(last) if last == seq => {
                self.repeated += 1;
                false
            }
            Some(last) => {
                self.dropped += u64::from(seq.wrapping_sub(last).wrapping_sub(1));
                true
            }
            None => true,
        }
    }
}

/// The signals a summary carries: levels as they are, counts above zero as increments;
/// readings out of their scale's range or of quantities no feature takes are skipped (counted
/// in the second value).
pub fn signals(summary: &Summary) -> (Vec<Signal>, u64) {
    let mut skipped = 0;
    let mut out = Vec::new();
    for reading in summary.readings.iter() {
        let feature = reading.quantity.feature().and_then(|name| FeatureName::try_new(name).ok());
        match (feature, reading.decoded()) {
            (Some(feature), Some(value)) => {
                if reading.quantity.scale() != Scale::Count || value > 0.0 {
                    out.push(Signal { feature, value });
                }
            }
            _ => skipped += 1,
        }
    }
    (out, skipped)
}

/// Starts reading `source` on a thread of its own, sending what it reads to `events` until
/// the receiver is dropped.
pub fn spawn(source: LinkSource, events: mpsc::Sender<LinkEvent>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("ledtrad-link".into()).spawn(move || read_forever(&source, &events))
}

fn read_forever(source: &LinkSource, events: &mpsc::Sender<LinkEvent>) {
    // The transport's backoff (jittered, capped), as for the broker connection.
    let mut backoff = Backoff::new(Duration::from_millis(100), RETRY_CAP);
    let mut said_down = false;
    loop {
        match open(source) {
            Ok(mut stream) => {
                backoff.reset();
                said_down = false;
                if events.blocking_send(LinkEvent::Connected).is_err() {
                    return;
                }
                let why = match read_frames(&mut *stream, events) {
                    Some(why) => why,
                    None => return,
                };
                if events.blocking_send(LinkEvent::Disconnected(why)).is_err() {
                    return;
                }
            }
            Err(why) => {
                // Said once until the link comes back.
                if !said_down && events.blocking_send(LinkEvent::Disconnected(why)).is_err() {
                    return;
                }
                said_down = true;
            }
        }
        if events.is_closed() {
            return;
        }
        std::thread::sleep(backoff.next_delay());
    }
}

/// Opens the source with a read timeout of [`QUIET`].
fn open(source: &LinkSource) -> Result<Box<dyn Read + Send>, String> {
    match source {
        LinkSource::Tcp(addr) => {
            let stream = TcpStream::connect_timeout(addr, Duration::from_secs(2))
                .map_err(|e| format!("cannot connect to the sensor board at tcp://{addr}: {e}"))?;
            stream.set_read_timeout(Some(QUIET)).map_err(|e| e.to_string())?;
            Ok(Box::new(stream))
        }
        LinkSource::Serial { path, baud } => {
            let port = serialport::new(path.to_string_lossy(), *baud)
                .timeout(QUIET)
                .open_native()
                .map_err(|e| format!("cannot open the sensor board's serial port {}: {e}", path.display()))?;
            Ok(Box::new(port))
        }
    }
}

/// Reads and decodes until the stream ends or fails (returning why), or the runtime is gone
/// (returning `None`).
fn read_frames(stream: &mut dyn Read, events: &mpsc::Sender<LinkEvent>) -> Option<String> {
    let mut decoder = FrameDecoder::new();
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => {
                if decoder.take_incomplete() {
                    events.blocking_send(LinkEvent::Incomplete).ok()?;
                }
                return Some("the sensor board closed the link".into());
            }
            Ok(n) => {
                for byte in &buf[..n] {
                    let event = match decoder.push(*byte) {
                        None => continue,
                        Some(Ok(Frame::Summary(summary))) => LinkEvent::Summary(summary),
                        Some(Ok(Frame::Event(event))) => LinkEvent::Edge(event),
                        Some(Err(e)) => LinkEvent::Corrupt(e),
                    };
                    events.blocking_send(event).ok()?;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) => {
                if decoder.take_incomplete() {
                    events.blocking_send(LinkEvent::Incomplete).ok()?;
                }
                if events.is_closed() {
                    return None;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                if decoder.take_incomplete() {
                    events.blocking_send(LinkEvent::Incomplete).ok()?;
                }
                return Some(format!("reading the sensor board's link: {e}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledtrad_protocol::link::{encode, Edge, Quantity, Reading, Readings, LINK_VERSION, MAX_FRAME};
    use serialport::SerialPort as _;

    fn summary(seq: u8, readings: &[(Quantity, f32)]) -> Summary {
        let mut r = Readings::new();
        for (q, v) in readings {
            r.push(Reading::new(*q, *v));
        }
        Summary { version: LINK_VERSION, seq, readings: r }
    }

    fn opened(seq: u8) -> Event {
        Event { version: LINK_VERSION, seq, edge: Edge::DoorOpened }
    }

    #[test]
    fn a_source_is_a_tcp_address_or_a_device_path() {
        assert_eq!(
            LinkSource::parse("tcp://127.0.0.1:7070", 9600),
            Ok(LinkSource::Tcp("127.0.0.1:7070".parse().unwrap()))
        );
        assert_eq!(
            LinkSource::parse("/dev/ttyACM0", 115_200),
            Ok(LinkSource::Serial { path: "/dev/ttyACM0".into(), baud: 115_200 })
        );
        assert!(LinkSource::parse("tcp://board:7070", 1).unwrap_err().contains("not tcp://IP:PORT"));
        assert!(LinkSource::parse("COM3", 1).unwrap_err().contains("neither tcp://IP:PORT nor a serial device"));
    }

    #[test]
    fn levels_pass_counts_above_zero_pass_and_the_rest_is_counted() {
        let s = summary(
            1,
            &[
                (Quantity::ButterLevel, 0.25),
                (Quantity::DoorOpenings, 0.0),
                (Quantity::DoorOpenings, 3.0),
                (Quantity::Temperature, 4.0),
            ],
        );
        let (out, skipped) = signals(&s);
        let named: Vec<_> = out.iter().map(|s| (s.feature.as_str(), s.value)).collect();
        assert_eq!(named, vec![("fridge.butter.level", 0.25), ("fridge.door.opens", 3.0)]);
        assert_eq!(skipped, 1, "temperature feeds no feature");
        let mut bad = Readings::new();
        bad.push(Reading { quantity: Quantity::MilkLevel, value: 201 });
        let (out, skipped) = signals(&Summary { version: LINK_VERSION, seq: 2, readings: bad });
        assert!(out.is_empty() && skipped == 1, "a level byte above 200 is out of range");
    }

    #[test]
    fn gaps_are_dropped_frames_and_repeats_are_skipped() {
        let mut status = LinkStatus::default();
        assert!(status.count_frame(None, 250));
        assert!(status.count_frame(Some(250), 251));
        assert!(status.count_frame(Some(251), 2), "wraps: 252..=255, 0 and 1 were lost");
        assert!(!status.count_frame(Some(2), 2));
        assert_eq!((status.frames, status.dropped, status.repeated), (4, 6, 1));
    }

    /// A board on a TCP socket: good frames of both kinds, a bit flip, a cut-off frame, and
    /// the reconnect after the board goes away.
    #[test]
    fn frames_from_a_socket_are_read_checked_and_counted() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel(64);
        let _reader = spawn(LinkSource::Tcp(addr), tx).unwrap();
        let (mut board, _) = listener.accept().unwrap();
        let mut out = [0u8; MAX_FRAME];
        let mut stream = Vec::new();
        stream.extend_from_slice(encode(summary(1, &[(Quantity::MilkLevel, 0.5)]), &mut out).unwrap());
        let mut flipped = encode(summary(2, &[(Quantity::MilkLevel, 0.4)]), &mut out).unwrap().to_vec();
        flipped[3] ^= 0x04;
        stream.extend_from_slice(&flipped);
        stream.extend_from_slice(encode(summary(3, &[(Quantity::MilkLevel, 0.3)]), &mut out).unwrap());
        stream.extend_from_slice(encode(opened(4), &mut out).unwrap());
        let cut = encode(summary(5, &[(Quantity::MilkLevel, 0.2)]), &mut out).unwrap().to_vec();
        stream.extend_from_slice(&cut[..cut.len() / 2]);
        std::io::Write::write_all(&mut board, &stream).unwrap();
        let mut seen = Vec::new();
        while seen.len() < 6 {
            seen.push(rx.blocking_recv().unwrap());
        }
        assert_eq!(seen[0], LinkEvent::Connected);
        assert!(matches!(&seen[1], LinkEvent::Summary(s) if s.seq == 1));
        assert!(matches!(seen[2], LinkEvent::Corrupt(_)));
        assert!(matches!(&seen[3], LinkEvent::Summary(s) if s.seq == 3));
        assert_eq!(seen[4], LinkEvent::Edge(opened(4)));
        assert_eq!(seen[5], LinkEvent::Incomplete, "the half frame, once the link went quiet");
        drop(board);
        assert!(matches!(rx.blocking_recv(), Some(LinkEvent::Disconnected(_))));
        let (_again, _) = listener.accept().unwrap();
        assert_eq!(rx.blocking_recv(), Some(LinkEvent::Connected));
    }

    /// The same through a pty, as through a real serial port.
    #[test]
    fn frames_from_a_pty_are_read_as_from_a_serial_port() {
        let (mut board, agent_side) = serialport::TTYPort::pair().unwrap();
        let path = agent_side.name().unwrap();
        let (tx, mut rx) = mpsc::channel(64);
        let _reader = spawn(LinkSource::Serial { path: path.into(), baud: 115_200 }, tx).unwrap();
        assert_eq!(rx.blocking_recv(), Some(LinkEvent::Connected));
        let mut out = [0u8; MAX_FRAME];
        let frame = encode(summary(9, &[(Quantity::DoorOpenings, 2.0)]), &mut out).unwrap();
        std::io::Write::write_all(&mut board, frame).unwrap();
        assert!(matches!(rx.blocking_recv(), Some(LinkEvent::Summary(s)) if s.seq == 9));
        drop(agent_side);
    }
}
