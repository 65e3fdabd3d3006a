//! The agent behind a C handle: its config read and checked as `ledtrad-agent run` reads it, a
//! tokio runtime of its own, the running agent and the thread that forwards its events. C
//! threads call in through [`LedtradAgent::block_on`]; stopping joins every thread it started.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ledtrad_agent::{AgentHandle, Config, ConfigError, RunningAgent, SystemClock};

use crate::events::Forwarder;
use crate::result::{Failure, LedtradResult};

/// Worker threads of an agent's runtime: the agent is one loop, its API and its MQTT pump; two
/// keep a decision from waiting on a slow write.
const WORKERS: usize = 2;

/// How long stopping waits for the runtime's last tasks once the agent has shut down.
const RUNTIME_GRACE: Duration = Duration::from_secs(5);

/// A running agent, for C callers (an opaque `ledtrad_agent *`).
pub struct LedtradAgent {
    runtime: tokio::runtime::Runtime,
    running: RunningAgent,
    handle: AgentHandle,
    events: Forwarder,
}

impl LedtradAgent {
    /// Reads the config at `path` and starts an agent with it on a runtime of its own.
    pub(crate) fn start(path: &Path) -> Result<Box<Self>, Failure> {
        let config = Config::from_path(path).map_err(|e| {
            let fix = match e {
                ConfigError::Io { .. } => {
                    "; pass the path of an existing agent config (`ledtrad-agent check-config FILE` checks one)"
                }
                _ => "",
            };
            Failure::new(LedtradResult::Config, format!("{e}{fix}"))
        })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKERS)
            .thread_name("ledtrad-agent")
            .enable_all()
            .build()
            .map_err(|e| Failure::new(LedtradResult::Start, format!("the agent's runtime could not start: {e}")))?;
        let running = runtime
            .block_on(ledtrad_agent::spawn(config, Arc::new(SystemClock)))
            .map_err(|e| Failure::new(LedtradResult::Start, format!("the agent could not start: {e}")))?;
        let subscription =
            running.events().subscribe(None).map_err(|e| Failure::new(LedtradResult::Start, e.to_string()));
        let events = subscription.and_then(|s| {
            Forwarder::start(runtime.handle().clone(), s).map_err(|e| {
                Failure::new(LedtradResult::Start, format!("the agent's event thread could not start: {e}"))
            })
        });
        let events = match events {
            Ok(events) => events,
            Err(failure) => {
                runtime.block_on(running.shutdown());
                runtime.shutdown_timeout(RUNTIME_GRACE);
                return Err(failure);
            }
        };
        let handle = running.handle();
        Ok(Box::new(Self { runtime, running, handle, events }))
    }

    /// Runs `work` with the agent's handle on its runtime, waiting on the calling thread.
    pub(crate) fn block_on<F, T>(&self, work: impl FnOnce(AgentHandle) -> F) -> Result<T, Failure>
    where
        F: Future<Output = T>,
    {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Failure::invalid(
                "called from inside an async runtime's task, where it would block that runtime; call the C API from a plain thread",
            ));
        }
        Ok(self.runtime.block_on(work(self.handle.clone())))
    }

    /// The forwarder of the agent's events.
    pub(crate) fn events(&self) -> &Forwarder {
        &self.events
    }

    /// Stops forwarding events (waiting for a callback in progress), shuts the agent down
    /// (its offline status published, its database closed) and its runtime.
    pub(crate) fn stop(self: Box<Self>) {
        let Self { runtime, running, handle, events } = *self;
        events.stop();
        drop(handle);
        runtime.block_on(running.shutdown());
        runtime.shutdown_timeout(RUNTIME_GRACE);
    }
}
