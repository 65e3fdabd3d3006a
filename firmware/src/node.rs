//! The sensor node's state machine: when to sample, when to close a window and send its
//! summary, when to send a door edge at once, and what to do when a send fails (retry with a
//! doubling backoff, keep the unsent frames, drop the oldest when the queue is full, and drop
//! an edge that is no longer news). Sans-IO: time and results come in through [`Node::step`],
//! which reads no clock and touches no hardware.
//!
//! Summaries and events share one sequence and leave in that order, so the agent counts a
//! frame of either kind that never arrived as a gap.
//!
//! The board's loop calls `step` with [`Input::Tick`] until it returns `None`, then sleeps
//! until [`Node::next_deadline`]; it answers [`Action::Sample`] by reading its sensors and
//! passing each reading in as [`Input::Sample`], and [`Action::Send`] by writing the frame
//! and reporting [`Input::Sent`] or [`Input::SendFailed`].

use core::fmt;

use heapless::Deque;
use ledtrad_protocol::link::{encode, Event, Frame as LinkFrame, MAX_FRAME};
use ledtrad_protocol::link::{Edge, LINK_VERSION};

use crate::sampler::{Sample, Sampler};

/// How many unsent frames a node keeps: with 15-minute windows, four hours of link outage.
pub const QUEUE_LEN: usize = 16;

/// How long an edge stays news: an event frame still unsent this long after its edge is
/// dropped (the window's summary still counts the opening), so the agent never takes an old
/// opening for one happening now.
pub const EVENT_MAX_AGE_MS: u64 = 10_000;

/// A node's timing, checked when built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeConfig {
    sample_period_ms: u32,
    window_ms: u32,
    retry_min_ms: u32,
    retry_max_ms: u32,
}

/// A node timing that cannot work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidConfig {
    /// The sample period is 0.
    ZeroSamplePeriod,
    /// The window is shorter than one sample period.
    WindowShorterThanSample {
        /// The window, ms.
        window_ms: u32,
        /// The sample period, ms.
        sample_period_ms: u32,
    },
    /// The first retry delay is 0, or the longest is shorter than the first.
    Backoff {
        /// The first retry delay, ms.
        retry_min_ms: u32,
        /// The longest retry delay, ms.
        retry_max_ms: u32,
    },
}

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroSamplePeriod => write!(f, "sample period 0 ms: give a period above 0"),
            Self::WindowShorterThanSample { window_ms, sample_period_ms } => write!(
                f,
                "window {window_ms} ms is shorter than the sample period {sample_period_ms} ms: make it at least one period"
            ),
            Self::Backoff { retry_min_ms, retry_max_ms } => write!(
                f,
                "retry backoff {retry_min_ms}..{retry_max_ms} ms: the first delay must be above 0 and at most the longest"
            ),
        }
    }
}

impl NodeConfig {
    /// A fridge's timing: a sample a minute, a summary every 15 minutes, retries from 5 s
    /// doubling up to 5 minutes.
    pub const FRIDGE: Self =
        Self { sample_period_ms: 60_000, window_ms: 15 * 60_000, retry_min_ms: 5_000, retry_max_ms: 300_000 };

    /// A timing: sample every `sample_period_ms`, send a summary every `window_ms`, retry a
    /// failed send after `retry_min_ms`, doubling up to `retry_max_ms`.
    pub fn try_new(
        sample_period_ms: u32,
        window_ms: u32,
        retry_min_ms: u32,
        retry_max_ms: u32,
    ) -> Result<Self, InvalidConfig> {
        if sample_period_ms == 0 {
            return Err(InvalidConfig::ZeroSamplePeriod);
        }
        if window_ms < sample_period_ms {
            return Err(InvalidConfig::WindowShorterThanSample { window_ms, sample_period_ms });
        }
        if retry_min_ms == 0 || retry_max_ms < retry_min_ms {
            return Err(InvalidConfig::Backoff { retry_min_ms, retry_max_ms });
        }
        Ok(Self { sample_period_ms, window_ms, retry_min_ms, retry_max_ms })
    }

    /// The sample period, ms.
    pub fn sample_period_ms(&self) -> u32 {
        self.sample_period_ms
    }

    /// The window, ms.
    pub fn window_ms(&self) -> u32 {
        self.window_ms
    }
}

/// What happened since the last step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Input {
    /// Only time passed.
    Tick,
    /// A reading, in answer to [`Action::Sample`] or from an event pin (door, motion). A door
    /// event is also sent at once as an event frame.
    Sample(Sample),
    /// The last [`Action::Send`] went out.
    Sent,
    /// The last [`Action::Send`] failed.
    SendFailed,
}

/// A frame to write: an encoded summary or event, delimiter included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    bytes: heapless::Vec<u8, MAX_FRAME>,
}

impl Frame {
    /// The bytes to write.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// What the board should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Read every sensor and pass the readings in.
    Sample,
    /// Write this frame to the link and report how it went.
    Send(Frame),
}

/// Counts a node keeps for diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeCounters {
    /// Frames dropped unsent because the queue was full.
    pub dropped: u32,
    /// Event frames dropped unsent because they were older than [`EVENT_MAX_AGE_MS`].
    pub stale_events: u32,
    /// Samples the sampler refused (a channel it does not keep).
    pub rejected_samples: u32,
    /// Failed sends.
    pub send_failures: u32,
}

/// Deadlines, set at the first step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Clock {
    next_sample_ms: u64,
    window_end_ms: u64,
    retry_at_ms: u64,
}

/// A frame waiting to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unsent {
    frame: LinkFrame,
    /// For an event, when it stops being news.
    expires_ms: Option<u64>,
}

impl Unsent {
    fn is_stale(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|at| now_ms >= at)
    }
}

/// A sensor node: a sampler, its timing and the frames waiting to be sent.
#[derive(Debug, Clone)]
pub struct Node {
    config: NodeConfig,
    sampler: Sampler,
    queue: Deque<Unsent, QUEUE_LEN>,
    clock: Option<Clock>,
    /// The sequence number of the frame being sent, until its result is in.
    in_flight: Option<u8>,
    backoff_ms: u32,
    next_seq: u8,
    counters: NodeCounters,
}

impl Node {
    /// A node sampling into `sampler` on `config`'s timing; its first window starts at its
    /// first step.
    pub fn new(config: NodeConfig, sampler: Sampler) -> Self {
        Self {
            config,
            sampler,
            queue: Deque::new(),
            clock: None,
            in_flight: None,
            backoff_ms: 0,
            next_seq: 0,
            counters: NodeCounters::default(),
        }
    }

    /// Takes `input` at `now_ms` and returns what to do next, if anything. Call it again
    /// with [`Input::Tick`] until it returns `None`.
    pub fn step(&mut self, now_ms: u64, input: Input) -> Option<Action> {
        let config = self.config;
        let clock = *self.clock.get_or_insert(Clock {
            next_sample_ms: now_ms,
            window_end_ms: now_ms.saturating_add(u64::from(config.window_ms)),
            retry_at_ms: now_ms,
        });
        self.take(now_ms, input);
        if now_ms >= clock.window_end_ms {
            self.set_clock(|c| c.window_end_ms = advance(c.window_end_ms, config.window_ms, now_ms));
            let summary = self.sampler.close_window(self.next_seq);
            self.enqueue(LinkFrame::Summary(summary), None);
        }
        self.forget_stale_events(now_ms);
        // An edge goes before sampling, which can take a while on a board (load cells).
        if self.queue.front().is_some_and(|u| u.frame.event().is_some()) {
            if let Some(send) = self.poll_send(now_ms) {
                return Some(send);
            }
        }
        if now_ms >= clock.next_sample_ms {
            self.set_clock(|c| c.next_sample_ms = advance(c.next_sample_ms, config.sample_period_ms, now_ms));
            return Some(Action::Sample);
        }
        self.poll_send(now_ms)
    }

    /// Takes one input: a reading into the sampler (a door event queued as an event frame
    /// too), or the last send's result.
    fn take(&mut self, now_ms: u64, input: Input) {
        let config = self.config;
        match input {
            Input::Tick => {}
            Input::Sample(sample) => {
                if self.sampler.record(sample).is_err() {
                    self.counters.rejected_samples = self.counters.rejected_samples.saturating_add(1);
                } else if let Sample::Door(event) = sample {
                    self.queue_edge(event.edge(), now_ms);
                }
            }
            Input::Sent => {
                if let Some(seq) = self.in_flight.take() {
                    if self.queue.front().is_some_and(|u| u.frame.seq() == seq) {
                        self.queue.pop_front();
                    }
                    self.backoff_ms = 0;
                    self.set_clock(|c| c.retry_at_ms = now_ms);
                }
            }
            Input::SendFailed => {
                if self.in_flight.take().is_some() {
                    self.counters.send_failures = self.counters.send_failures.saturating_add(1);
                    self.backoff_ms = self.backoff_ms.saturating_mul(2).clamp(config.retry_min_ms, config.retry_max_ms);
                    let retry_at_ms = now_ms.saturating_add(u64::from(self.backoff_ms));
                    self.set_clock(|c| c.retry_at_ms = retry_at_ms);
                }
            }
        }
    }

    /// Queues an event frame for `edge`, to go as soon as the link takes it.
    fn queue_edge(&mut self, edge: Edge, now_ms: u64) {
        let event = Event { version: LINK_VERSION, seq: self.next_seq, edge };
        self.enqueue(LinkFrame::Event(event), Some(now_ms.saturating_add(EVENT_MAX_AGE_MS)));
    }

    /// Queues a frame numbered `next_seq` and moves the sequence on; drops the oldest frame
    /// when the queue is full.
    fn enqueue(&mut self, frame: LinkFrame, expires_ms: Option<u64>) {
        self.next_seq = self.next_seq.wrapping_add(1);
        if self.queue.is_full() {
            self.queue.pop_front();
            self.counters.dropped = self.counters.dropped.saturating_add(1);
        }
        // There is room now: the oldest was dropped if there was none.
        let _ = self.queue.push_back(Unsent { frame, expires_ms });
    }

    /// Drops the event frames that are no longer news, except the one being sent.
    fn forget_stale_events(&mut self, now_ms: u64) {
        if !self.queue.iter().any(|u| u.is_stale(now_ms)) {
            return;
        }
        let mut kept = Deque::new();
        while let Some(unsent) = self.queue.pop_front() {
            if unsent.is_stale(now_ms) && self.in_flight != Some(unsent.frame.seq()) {
                self.counters.stale_events = self.counters.stale_events.saturating_add(1);
            } else {
                // No more than were taken out.
                let _ = kept.push_back(unsent);
            }
        }
        self.queue = kept;
    }

    /// The oldest unsent frame, encoded, if the link is free and not backing off.
    fn poll_send(&mut self, now_ms: u64) -> Option<Action> {
        let retry_at_ms = self.clock.map_or(now_ms, |c| c.retry_at_ms);
        if self.in_flight.is_some() || now_ms < retry_at_ms {
            return None;
        }
        while let Some(unsent) = self.queue.front() {
            let mut out = [0u8; MAX_FRAME];
            let seq = unsent.frame.seq();
            match encode(unsent.frame, &mut out).ok().and_then(|f| heapless::Vec::from_slice(f).ok()) {
                Some(bytes) => {
                    self.in_flight = Some(seq);
                    return Some(Action::Send(Frame { bytes }));
                }
                // Cannot happen (MAX_FRAME fits any frame); a frame that does not encode is
                // dropped rather than retried for ever.
                None => {
                    self.queue.pop_front();
                    self.counters.dropped = self.counters.dropped.saturating_add(1);
                }
            }
        }
        None
    }

    /// Moves a deadline (the clock is set at the first step, before any of these run).
    fn set_clock(&mut self, change: impl FnOnce(&mut Clock)) {
        if let Some(clock) = &mut self.clock {
            change(clock);
        }
    }

    /// When the node next has something to do, if it has started: the board may sleep until
    /// then (or until an event pin wakes it).
    pub fn next_deadline(&self) -> Option<u64> {
        let clock = self.clock?;
        let mut next = clock.next_sample_ms.min(clock.window_end_ms);
        if self.in_flight.is_none() && !self.queue.is_empty() {
            next = next.min(clock.retry_at_ms);
        }
        Some(next)
    }

    /// Frames waiting to be sent (the one being sent included).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The node's diagnostic counts.
    pub fn counters(&self) -> NodeCounters {
        self.counters
    }

    /// The sampler, for its current window's figures.
    pub fn sampler(&self) -> &Sampler {
        &self.sampler
    }
}

/// The deadline after `deadline`, one `period` on; if that has passed too (the board slept
/// through), one period from `now`.
fn advance(deadline: u64, period: u32, now: u64) -> u64 {
    let next = deadline.saturating_add(u64::from(period));
    if next > now {
        next
    } else {
        now.saturating_add(u64::from(period))
    }
}

#[cfg(test)]
mod tests;
