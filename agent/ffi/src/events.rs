//! The live events for C: one thread of its own per agent follows the agent's events (as a
//! `GET /v1/events` client does) and calls the registered callback with each. It is not a
//! thread of the agent's runtime, so the callback may call back into the C API (anything but
//! `ledtrad_agent_stop`). While no callback is registered, events wait for one (the last
//! [`ledtrad_agent::events::CLIENT_BUFFER`]; a `missed` event says how many were dropped).
#![allow(unsafe_code)]

use std::ffi::{c_char, c_void, CString};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{JoinHandle, ThreadId};

use ledtrad_agent::events::{StreamItem, Subscription};
use tokio::sync::watch;

/// The function the agent calls with each live event: its name (`offer`, `consent`,
/// `catalogue`, or `missed`), its data as JSON, and the `user_data` given with it.
pub type LedtradEventCallback =
    Option<unsafe extern "C" fn(event_name: *const c_char, json: *const c_char, user_data: *mut c_void)>;

/// A registered callback and its user data.
#[derive(Clone, Copy)]
struct Callback {
    f: unsafe extern "C" fn(*const c_char, *const c_char, *mut c_void),
    user_data: *mut c_void,
}

// SAFETY: the C API's contract (in the header) is that the callback and its user data may be
// used from the agent's event thread; the pointer is only handed back to the callback.
unsafe impl Send for Callback {}

#[derive(Default)]
struct Slots {
    /// The callback events go to.
    current: Mutex<Option<Callback>>,
    /// A change asked for from inside the callback, made when it returns.
    from_inside: Mutex<Option<Option<Callback>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Follows an agent's events on a thread of its own and hands them to the C callback.
pub(crate) struct Forwarder {
    slots: Arc<Slots>,
    registered: watch::Sender<bool>,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
    thread_id: ThreadId,
}

impl Forwarder {
    /// Starts following `subscription` on a new thread, driving its waits on `runtime`.
    pub(crate) fn start(runtime: tokio::runtime::Handle, subscription: Subscription) -> std::io::Result<Self> {
        let slots = Arc::new(Slots::default());
        let (registered, registered_rx) = watch::channel(false);
        let (stop, stop_rx) = watch::channel(false);
        let follower =
            Follower { runtime, subscription, slots: slots.clone(), registered: registered_rx, stop: stop_rx };
        let thread = std::thread::Builder::new().name("ledtrad-events".into()).spawn(move || follower.run())?;
        let thread_id = thread.thread().id();
        Ok(Self { slots, registered, stop, thread: Some(thread), thread_id })
    }

    /// Whether the calling thread is the one that runs the callback.
    pub(crate) fn on_event_thread(&self) -> bool {
        std::thread::current().id() == self.thread_id
    }

    /// Registers `callback` with `user_data` (NULL unregisters). Once this returns, the old
    /// callback is not running and is not called again (from inside the callback: once the
    /// callback returns).
    pub(crate) fn set(&self, callback: LedtradEventCallback, user_data: *mut c_void) {
        let callback = callback.map(|f| Callback { f, user_data });
        if self.on_event_thread() {
            *lock(&self.slots.from_inside) = Some(callback);
        } else {
            // Waits for a callback in progress: it holds the lock while it runs.
            *lock(&self.slots.current) = callback;
        }
        self.registered.send_replace(callback.is_some());
    }

    /// Stops following and waits for the thread (and a callback in progress) to end.
    pub(crate) fn stop(mut self) {
        self.stop.send_replace(true);
        if let Some(thread) = self.thread.take() {
            // A panic on that thread has ended it already; nothing is left to clean.
            let _ = thread.join();
        }
    }
}

struct Follower {
    runtime: tokio::runtime::Handle,
    subscription: Subscription,
    slots: Arc<Slots>,
    registered: watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
}

impl Follower {
    fn run(mut self) {
        let mut held: Option<StreamItem> = None;
        loop {
            let Self { runtime, subscription, registered, stop, .. } = &mut self;
            let next = runtime.block_on(async {
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|s| *s) => None,
                    item = async {
                        // Events wait while no callback is registered.
                        let _ = registered.wait_for(|r| *r).await;
                        match held.take() {
                            Some(item) => Some(item),
                            None => subscription.next().await,
                        }
                    } => item,
                }
            });
            // Stopped, or the agent ended its events.
            let Some(item) = next else { return };
            held = self.deliver(item);
        }
    }

    /// Calls the callback with `item`; gives it back when none is registered any more.
    fn deliver(&self, item: StreamItem) -> Option<StreamItem> {
        let (name, data) = match &item {
            StreamItem::Event(event) => (event.name, event.data.clone()),
            StreamItem::Missed(missed) => ("missed", serde_json::to_string(missed).unwrap_or_default()),
        };
        let name = CString::new(name).unwrap_or_default();
        // JSON escapes a NUL inside a string; none can be in the text.
        let data = CString::new(data).unwrap_or_default();
        let mut current = lock(&self.slots.current);
        let Some(callback) = *current else { return Some(item) };
        // SAFETY: the registrant promised a function of this signature, callable from this
        // thread with its user data; the strings live until after the call.
        unsafe { (callback.f)(name.as_ptr(), data.as_ptr(), callback.user_data) };
        if let Some(change) = lock(&self.slots.from_inside).take() {
            *current = change;
        }
        None
    }
}
