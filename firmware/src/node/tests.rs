extern crate std;

use super::*;
use crate::channel::Channel;
use crate::drivers::door::DoorEvent;
use ledtrad_protocol::link::{decode, Edge, Quantity, Summary};
use std::collections::VecDeque;
use std::vec::Vec;

const SECOND: u64 = 1000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;

fn build_node() -> Node {
    let mut sampler = Sampler::new();
    sampler.add_slot(2, Quantity::ButterLevel, 250.0).unwrap();
    sampler.add(Channel::DoorOpenings).unwrap();
    sampler.add(Channel::Temperature).unwrap();
    Node::new(NodeConfig::FRIDGE, sampler)
}

/// Reads a frame the node asked to send.
fn read(frame: &Frame) -> LinkFrame {
    let bytes = frame.as_bytes();
    assert_eq!(bytes.last(), Some(&0), "a frame ends with its delimiter");
    decode(&bytes[..bytes.len() - 1]).unwrap()
}

/// The summary a frame the node asked to send holds.
fn summary_of(frame: &Frame) -> Summary {
    *read(frame).summary().expect("a summary")
}

/// The board's loop for one instant: steps until the node has nothing to do, answering
/// samples with `readings` and sends as `link_up` says; returns the summaries that went out.
fn run_at(node: &mut Node, now: u64, readings: &[Sample], link_up: bool) -> Vec<Summary> {
    run_frames_at(node, now, &[], readings, link_up).iter().filter_map(|f| f.summary().copied()).collect()
}

/// [`run_at`] with `events` (door events, say) taken first; returns every frame that went out.
fn run_frames_at(node: &mut Node, now: u64, events: &[Sample], readings: &[Sample], link_up: bool) -> Vec<LinkFrame> {
    let mut sent = Vec::new();
    let mut pending: VecDeque<Input> = events.iter().map(|e| Input::Sample(*e)).collect();
    loop {
        let input = pending.pop_front().unwrap_or(Input::Tick);
        match node.step(now, input) {
            None if pending.is_empty() => break,
            None => {}
            Some(Action::Sample) => pending.extend(readings.iter().map(|r| Input::Sample(*r))),
            Some(Action::Send(frame)) => {
                if link_up {
                    sent.push(read(&frame));
                    pending.push_back(Input::Sent);
                } else {
                    pending.push_back(Input::SendFailed);
                }
            }
        }
    }
    sent
}

#[test]
fn a_node_is_small() {
    let size = core::mem::size_of::<Node>();
    std::println!("size_of::<Node>() = {size} bytes");
    assert!(size <= 4096, "{size} bytes");
}

#[test]
fn samples_each_period_and_sends_each_window() {
    let mut node = build_node();
    assert_eq!(node.next_deadline(), None);
    assert_eq!(node.step(0, Input::Tick), Some(Action::Sample));
    assert_eq!(node.step(0, Input::Tick), None);
    assert_eq!(node.next_deadline(), Some(MINUTE));
    assert_eq!(node.step(MINUTE - 1, Input::Tick), None);
    assert_eq!(node.step(MINUTE, Input::Tick), Some(Action::Sample));
    node.step(MINUTE, Input::Sample(Sample::Temperature(4.0)));
    // At the window's end it samples first, then sends the window it closed.
    assert_eq!(node.step(15 * MINUTE, Input::Tick), Some(Action::Sample));
    let Some(Action::Send(frame)) = node.step(15 * MINUTE, Input::Tick) else { panic!("no send") };
    let summary = summary_of(&frame);
    assert_eq!(summary.seq, 0);
    let readings: Vec<_> = summary.readings.iter().map(|r| (r.quantity, r.decoded().unwrap())).collect();
    assert_eq!(readings, [(Quantity::DoorOpenings, 0.0), (Quantity::Temperature, 4.0)]);
    assert_eq!(node.step(15 * MINUTE, Input::Tick), None, "nothing else while a send is out");
    assert_eq!(node.step(15 * MINUTE + 10, Input::Sent), None);
    assert_eq!(node.queued(), 0);
}

#[test]
fn a_failed_send_is_kept_and_retried_with_backoff() {
    let mut node = build_node();
    run_at(&mut node, 0, &[], true);
    let mut attempts = Vec::new();
    let mut now = 15 * MINUTE;
    while now < 16 * MINUTE {
        let mut input = Input::Tick;
        while let Some(action) = node.step(now, input) {
            input = Input::Tick;
            if let Action::Send(_) = action {
                attempts.push(now - 15 * MINUTE);
                input = Input::SendFailed;
            }
        }
        now += SECOND;
    }
    // Retries 5 s, 10 s, 20 s and 40 s after each failure.
    assert_eq!(attempts, [0, 5 * SECOND, 15 * SECOND, 35 * SECOND]);
    assert_eq!(node.queued(), 1);
    assert_eq!(node.counters().send_failures, 4);
    let sent = run_at(&mut node, 75 * SECOND + 15 * MINUTE, &[], true);
    assert_eq!(sent.iter().map(|s| s.seq).collect::<Vec<_>>(), [0]);
    assert_eq!(node.queued(), 0);
}

#[test]
fn a_full_queue_drops_its_oldest_summary() {
    let mut node = build_node();
    let windows = QUEUE_LEN as u64 + 2;
    for minute in 0..windows * 15 {
        run_at(&mut node, minute * MINUTE, &[], false);
    }
    // The 18th window closes at the last minute's end.
    run_at(&mut node, windows * 15 * MINUTE, &[], false);
    assert_eq!(node.queued(), QUEUE_LEN);
    assert_eq!(node.counters().dropped, 2);
    let later = windows * 15 * MINUTE + 10 * MINUTE;
    let sent = run_at(&mut node, later, &[], true);
    let seqs: Vec<u8> = sent.iter().map(|s| s.seq).collect();
    assert_eq!(seqs, (2..windows as u8).collect::<Vec<_>>(), "the two oldest went, the rest in order");
}

#[test]
fn a_sample_of_an_unknown_channel_is_counted_not_kept() {
    let mut node = build_node();
    node.step(0, Input::Sample(Sample::Motion { detections: 2 }));
    assert_eq!(node.counters().rejected_samples, 1);
}

#[test]
fn timings_are_checked() {
    assert_eq!(NodeConfig::try_new(0, 10, 1, 1), Err(InvalidConfig::ZeroSamplePeriod));
    assert_eq!(
        NodeConfig::try_new(10, 5, 1, 1),
        Err(InvalidConfig::WindowShorterThanSample { window_ms: 5, sample_period_ms: 10 })
    );
    assert_eq!(NodeConfig::try_new(10, 10, 0, 1), Err(InvalidConfig::Backoff { retry_min_ms: 0, retry_max_ms: 1 }));
    assert_eq!(NodeConfig::try_new(10, 10, 5, 4), Err(InvalidConfig::Backoff { retry_min_ms: 5, retry_max_ms: 4 }));
    let fridge = NodeConfig::try_new(60_000, 900_000, 5_000, 300_000).unwrap();
    assert_eq!(fridge, NodeConfig::FRIDGE);
    assert_eq!((fridge.sample_period_ms(), fridge.window_ms()), (60_000, 900_000));
}

/// A day in a fridge, one poll a second: butter used at 08:00 and 19:00 (250 g, then 200 g,
/// then 150 g of a 250 g pack), the door opened at 08:00:30, 12:30:30 and 19:00:30 (and
/// closed 20 s later), 4 °C throughout, and the link down from 10:00 to 11:30. Every one of
/// the 96 windows arrives, in order, with what happened in it, and each edge at once.
#[test]
fn a_day_of_samples_gives_the_expected_frames() {
    let mut node = build_node();
    let butter_grams = |t: u64| match t {
        t if t < 8 * HOUR => 250.0,
        t if t < 19 * HOUR => 200.0,
        _ => 150.0,
    };
    let door_opens = [8 * HOUR + 30 * SECOND, 12 * HOUR + 30 * MINUTE + 30 * SECOND, 19 * HOUR + 30 * SECOND];
    let mut frames = Vec::new();
    let mut edges = Vec::new();
    let mut now = 0;
    while now <= 24 * HOUR {
        let door = match now {
            t if door_opens.contains(&t) => std::vec![Sample::Door(DoorEvent::Opened)],
            t if t.checked_sub(20 * SECOND).is_some_and(|t| door_opens.contains(&t)) => {
                std::vec![Sample::Door(DoorEvent::Closed)]
            }
            _ => std::vec![],
        };
        let readings = [Sample::Weight { slot: 2, grams: butter_grams(now) }, Sample::Temperature(4.0)];
        let link_up = !(10 * HOUR..11 * HOUR + 30 * MINUTE).contains(&now);
        for frame in run_frames_at(&mut node, now, &door, &readings, link_up) {
            if let Some(event) = frame.event() {
                edges.push((now, event.edge));
            }
            frames.push(frame);
        }
        now += SECOND;
    }

    let expected_edges: Vec<_> =
        door_opens.iter().flat_map(|t| [(*t, Edge::DoorOpened), (*t + 20 * SECOND, Edge::DoorClosed)]).collect();
    assert_eq!(edges, expected_edges, "each edge the second it happened");
    for (i, frame) in frames.iter().enumerate() {
        assert_eq!(usize::from(frame.seq()), i, "one sequence for both kinds, in order, none lost");
    }
    let received: Vec<Summary> = frames.iter().filter_map(|f| f.summary().copied()).collect();
    assert_eq!(received.len(), 96);
    assert_eq!(
        node.counters(),
        NodeCounters { dropped: 0, stale_events: 0, rejected_samples: 0, send_failures: node.counters().send_failures }
    );
    assert!(node.counters().send_failures >= 6, "the outage's sends failed and were retried");
    assert_eq!(node.queued(), 0);
    for (window, summary) in received.iter().enumerate() {
        let value = |q: Quantity| summary.readings.iter().find(|r| r.quantity == q).and_then(|r| r.decoded());
        let expected_butter = match window {
            0..=31 => 1.0,
            32..=75 => 0.8,
            _ => 0.6,
        };
        assert_eq!(value(Quantity::ButterLevel), Some(expected_butter), "window {window}");
        assert_eq!(value(Quantity::Temperature), Some(4.0), "window {window}");
        let opened = u8::from(matches!(window, 32 | 50 | 76));
        assert_eq!(value(Quantity::DoorOpenings), Some(f64::from(opened)), "window {window}");
    }
}

#[test]
fn a_door_edge_is_sent_at_once_and_still_counted_in_its_window() {
    let mut node = build_node();
    run_at(&mut node, 0, &[], true);
    let Some(Action::Send(frame)) = node.step(30 * SECOND, Input::Sample(Sample::Door(DoorEvent::Opened))) else {
        panic!("the edge waits for nothing")
    };
    let event = *read(&frame).event().expect("an event frame");
    assert_eq!((event.seq, event.edge, event.version), (0, Edge::DoorOpened, LINK_VERSION));
    assert!(frame.as_bytes().len() <= 24);
    assert_eq!(node.step(30 * SECOND, Input::Sent), None);
    let closed = run_frames_at(&mut node, 40 * SECOND, &[Sample::Door(DoorEvent::Closed)], &[], true);
    assert_eq!(
        closed.iter().map(|f| f.event().map(|e| (e.seq, e.edge))).collect::<Vec<_>>(),
        [Some((1, Edge::DoorClosed))]
    );
    let summaries = run_at(&mut node, 15 * MINUTE, &[], true);
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0].seq, 2, "the summary numbered after the events");
    let opens = summaries[0].readings.iter().find(|r| r.quantity == Quantity::DoorOpenings).and_then(|r| r.decoded());
    assert_eq!(opens, Some(1.0), "the window still counts the opening");
}

#[test]
fn an_edge_goes_before_a_due_sample_and_after_a_send_in_flight() {
    let mut node = build_node();
    run_at(&mut node, 0, &[], true);
    // A sample is due at one minute, and the door opens then: the edge goes first.
    let first = node.step(MINUTE, Input::Sample(Sample::Door(DoorEvent::Opened)));
    assert!(matches!(&first, Some(Action::Send(f)) if read(f).event().is_some()), "{first:?}");
    assert_eq!(node.step(MINUTE, Input::Sent), Some(Action::Sample));
    // At the window's end a summary is in flight when the door opens: the edge follows it.
    assert_eq!(node.step(15 * MINUTE, Input::Tick), Some(Action::Sample));
    let Some(Action::Send(summary)) = node.step(15 * MINUTE, Input::Tick) else { panic!("no summary") };
    assert_eq!(summary_of(&summary).seq, 1);
    assert_eq!(node.step(15 * MINUTE, Input::Sample(Sample::Door(DoorEvent::Closed))), None, "one send at a time");
    let Some(Action::Send(event)) = node.step(15 * MINUTE, Input::Sent) else { panic!("the edge waits") };
    assert_eq!(read(&event).event().map(|e| (e.seq, e.edge)), Some((2, Edge::DoorClosed)));
}

/// An edge that could not go out while it was news is dropped; the agent sees its number
/// missing and counts a lost frame.
#[test]
fn an_edge_the_link_could_not_take_in_time_is_dropped_not_sent_late() {
    let mut node = build_node();
    run_at(&mut node, 0, &[], true);
    assert!(run_frames_at(&mut node, 30 * SECOND, &[Sample::Door(DoorEvent::Opened)], &[], false).is_empty());
    // Retries 5 s after the failure, then 10 s after that: the second is past the edge's age.
    assert!(run_at(&mut node, 35 * SECOND, &[], false).is_empty());
    assert_eq!(node.queued(), 1, "news for 10 s");
    let sent = run_frames_at(&mut node, 30 * SECOND + EVENT_MAX_AGE_MS, &[], &[], true);
    assert!(sent.is_empty(), "{sent:?}");
    assert_eq!(node.queued(), 0);
    assert_eq!(node.counters().stale_events, 1);
    let summaries = run_at(&mut node, 15 * MINUTE, &[], true);
    assert_eq!(summaries.iter().map(|s| s.seq).collect::<Vec<_>>(), [1], "the edge's number 0 is a gap");
}

#[test]
fn a_door_edge_without_a_door_channel_is_counted_not_sent() {
    let mut sampler = Sampler::new();
    sampler.add(Channel::Temperature).unwrap();
    let mut node = Node::new(NodeConfig::FRIDGE, sampler);
    run_at(&mut node, 0, &[], true);
    assert_eq!(node.step(SECOND, Input::Sample(Sample::Door(DoorEvent::Opened))), None);
    assert_eq!((node.counters().rejected_samples, node.queued()), (1, 0));
}
