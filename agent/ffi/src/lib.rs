//! The ledtrad agent's C API: a C program (or C++, or anything that calls C) starts an agent
//! from its TOML config, feeds it signals, asks for offers, sends feedback, reads and sets
//! consent, and follows the live events through a callback. The header is
//! `include/ledtrad.h`, made from this crate by cbindgen (`tests/header.rs` keeps it current);
//! `docs/c-api.md` says how to use and link it.
//!
//! Every function returns a [`LedtradResult`]; a failure's message (naming the bad value and
//! the fix) is kept for `ledtrad_last_error()` on the calling thread. No panic crosses into C.
//! Handles are opaque and may be used from several threads at once.
//!
//! # Layout
//!
//! - [`api`]: the C entry points (`ledtrad_*`).
//! - [`agent`]: the agent behind a handle, with its runtime; starting and stopping it.
//! - [`events`]: the thread that hands the agent's live events to the C callback.
//! - [`args`]: C arguments checked (NULL, UTF-8) and answers written into C buffers.
//! - [`result`]: the result codes, the last error per thread, and the panic guard.

pub mod agent;
pub mod api;
mod args;
pub mod events;
pub mod result;

pub use agent::LedtradAgent;
pub use api::*;
pub use events::LedtradEventCallback;
pub use result::LedtradResult;
