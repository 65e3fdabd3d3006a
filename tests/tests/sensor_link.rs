//! The sensor board's link end to end: a real agent reads frames from a board on a TCP socket
//! (as the simulator's virtual boards serve them), counts good, corrupt and lost frames in its
//! status, turns readings into features, only under the consent they need, and takes door
//! edges sent the moment they happen.

use std::io::Write as _;

use ledtrad_protocol::link::{encode, Edge, Event, Quantity, Reading, Readings, Summary, LINK_VERSION, MAX_FRAME};
use ledtrad_protocol::{DeviceKind, FleetId, Purpose};
use ledtrad_tests::{broker, grant, init_logs, operator_key, unique, TestAgent};

fn frame(seq: u8, readings: &[(Quantity, f32)]) -> Vec<u8> {
    let mut r = Readings::new();
    for (q, v) in readings {
        r.push(Reading::new(*q, *v));
    }
    let mut out = [0u8; MAX_FRAME];
    encode(Summary { version: LINK_VERSION, seq, readings: r }, &mut out).expect("encodes").to_vec()
}

fn event(seq: u8, edge: Edge) -> Vec<u8> {
    let mut out = [0u8; MAX_FRAME];
    encode(Event { version: LINK_VERSION, seq, edge }, &mut out).expect("encodes").to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_boards_frames_become_features_and_broken_ones_are_counted() {
    init_logs();
    let board = std::net::TcpListener::bind("127.0.0.1:0").expect("listens");
    let addr = board.local_addr().expect("address");
    let fleet = FleetId::try_new(unique("link")).expect("fleet");
    let agent = TestAgent::start_with(DeviceKind::Fridge, &fleet, &operator_key(1), &broker(), |raw| {
        raw.sensor_link = Some(format!("tcp://{addr}"));
    })
    .await;
    let (mut socket, _) = tokio::task::spawn_blocking(move || board.accept()).await.expect("joined").expect("accepts");
    let link = agent.wait_for("the link", |s| s.link.as_ref().is_some_and(|l| l.connected)).await.link;
    assert_eq!(link.map(|l| l.source), Some(format!("tcp://{addr}")));

    // Without personalise, the shelf's level is not taken (it is personal).
    socket.write_all(&frame(1, &[(Quantity::ButterLevel, 0.5)])).expect("sent");
    agent.wait_for("frame 1", |s| s.link.as_ref().is_some_and(|l| l.frames == 1)).await;
    let data = agent.handle().my_data(None).await.expect("my data");
    assert!(data.features.iter().all(|f| f.feature.as_str() != "fridge.butter.level"));

    grant(&agent, Purpose::Personalise).await;
    let mut flipped = frame(2, &[(Quantity::ButterLevel, 0.3)]);
    flipped[2] ^= 0x01;
    socket.write_all(&flipped).expect("sent");
    // Frames 3 and 4 never arrive; 5 does.
    socket.write_all(&frame(5, &[(Quantity::ButterLevel, 0.1), (Quantity::DoorOpenings, 2.0)])).expect("sent");
    let status = agent.wait_for("frame 5", |s| s.link.as_ref().is_some_and(|l| l.frames == 2)).await;
    let link = status.link.expect("link");
    assert_eq!((link.corrupt, link.dropped, link.signals), (1, 3, 2), "{link:?}");
    let data = agent.handle().my_data(None).await.expect("my data");
    let butter = data.features.iter().find(|f| f.feature.as_str() == "fridge.butter.level").expect("butter");
    assert!((butter.value - 0.1).abs() < 1e-9);

    // The board goes away: the status says so (and the reader keeps retrying).
    drop(socket);
    agent.wait_for("the link lost", |s| s.link.as_ref().is_some_and(|l| !l.connected)).await;
    agent.shutdown().await;
}

/// Door edges arrive as event frames between summaries: counted as frames and as events, in
/// the same sequence (a lost one is a gap), never as door openings (the summary counts those);
/// a damaged event frame and an old board's version-1 frame are corrupt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_boards_door_edges_reach_the_agent_and_broken_ones_are_counted() {
    init_logs();
    let board = std::net::TcpListener::bind("127.0.0.1:0").expect("listens");
    let addr = board.local_addr().expect("address");
    let fleet = FleetId::try_new(unique("edge")).expect("fleet");
    let agent = TestAgent::start_with(DeviceKind::Fridge, &fleet, &operator_key(1), &broker(), |raw| {
        raw.sensor_link = Some(format!("tcp://{addr}"));
    })
    .await;
    let (mut socket, _) = tokio::task::spawn_blocking(move || board.accept()).await.expect("joined").expect("accepts");
    agent.wait_for("the link", |s| s.link.as_ref().is_some_and(|l| l.connected)).await;
    grant(&agent, Purpose::Personalise).await;

    socket.write_all(&frame(1, &[(Quantity::ButterLevel, 0.5)])).expect("sent");
    socket.write_all(&event(2, Edge::DoorOpened)).expect("sent");
    socket.write_all(&event(3, Edge::DoorClosed)).expect("sent");
    let status = agent.wait_for("two edges", |s| s.link.as_ref().is_some_and(|l| l.events == 2)).await;
    let link = status.link.expect("link");
    assert_eq!((link.frames, link.events, link.corrupt, link.dropped, link.signals), (3, 2, 0, 0, 1), "{link:?}");
    let data = agent.handle().my_data(None).await.expect("my data");
    assert!(
        data.features.iter().all(|f| f.feature.as_str() != "fridge.door.opens"),
        "an edge is no door opening: the summary counts those"
    );

    // Edge 4 is damaged on the way, an old board's version-1 summary cannot be read, and
    // edge 5 arrives: 4's number is a gap.
    let mut flipped = event(4, Edge::DoorOpened);
    flipped[3] ^= 0x01;
    socket.write_all(&flipped).expect("sent");
    socket.write_all(&[0x04, 0x01, 0x07, 0x02, 0x06, 0x32, 0x05, 0x02, 0x40, 0x77, 0x00]).expect("sent");
    socket.write_all(&event(5, Edge::DoorOpened)).expect("sent");
    let status = agent.wait_for("edge 5", |s| s.link.as_ref().is_some_and(|l| l.events == 3)).await;
    let link = status.link.expect("link");
    assert_eq!((link.frames, link.events, link.corrupt, link.dropped), (4, 3, 2, 1), "{link:?}");
    agent.shutdown().await;
}
