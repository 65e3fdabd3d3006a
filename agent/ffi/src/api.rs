//! The C entry points. Each checks its arguments, runs through [`call`] (no panic crosses,
//! failures leave their message) and asks the agent through its handle, reading the same JSON
//! bodies as the local HTTP API (`ledtrad_agent::api::bodies`).
#![allow(unsafe_code)]

use std::ffi::{c_char, c_void};
use std::path::Path;

use ledtrad_agent::api::bodies;
use ledtrad_agent::events::OfferBody;

use crate::agent::LedtradAgent;
use crate::args::{self, text, write_answer};
use crate::events::LedtradEventCallback;
use crate::result::{call, Failure, LedtradResult, Pending};

const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The library's version, e.g. "0.1.0" (a static string; do not free it).
#[no_mangle]
pub extern "C" fn ledtrad_version() -> *const c_char {
    VERSION.as_ptr().cast()
}

/// The message of the last failed call on the calling thread: what was wrong, naming the bad
/// value, and what fixes it. "" when no call on this thread has failed. Owned by the library:
/// valid until the next failed call on this thread; copy it to keep it.
#[no_mangle]
pub extern "C" fn ledtrad_last_error() -> *const c_char {
    crate::result::last_error()
}

/// Reads and checks the agent's TOML config at `config_path` (as `ledtrad-agent run` does) and
/// starts the agent with its own threads: it connects to the broker, follows its fleet's
/// catalogue and, if the config says so, serves its local HTTP API. On success `*out` is the
/// handle, to be given to `ledtrad_agent_stop` once; on failure `*out` is NULL.
///
/// # Safety
/// `config_path` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ledtrad_agent_start(config_path: *const c_char, out: *mut *mut LedtradAgent) -> LedtradResult {
    call("ledtrad_agent_start", |_| {
        if out.is_null() {
            return Err(Failure::invalid("out is NULL: pass the address of a `ledtrad_agent *` to receive the handle"));
        }
        // SAFETY: not NULL, and the caller promises it is writable.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: the caller promises NULL or a NUL-terminated string.
        let path = unsafe { text(config_path, "config_path", "pass the path of the agent's TOML config") }?;
        let agent = LedtradAgent::start(Path::new(path))?;
        // SAFETY: as above.
        unsafe { out.write(Box::into_raw(agent)) };
        Ok(())
    })
}

/// Stops the agent: no event callback runs once this returns; the agent publishes its offline
/// status, closes its database and its threads end; the handle is freed. NULL is a no-op.
/// Must not be called from inside the event callback (that is refused with
/// `LEDTRAD_RESULT_INVALID_ARGUMENT`), nor while another thread still uses the handle.
///
/// # Safety
/// `agent` is NULL or a handle from `ledtrad_agent_start` not yet stopped; no other thread
/// uses it during or after this call.
#[no_mangle]
pub unsafe extern "C" fn ledtrad_agent_stop(agent: *mut LedtradAgent) -> LedtradResult {
    call("ledtrad_agent_stop", |_| {
        if agent.is_null() {
            return Ok(());
        }
        // SAFETY: not NULL, and the caller promises a live handle.
        if unsafe { &*agent }.events().on_event_thread() {
            return Err(Failure::invalid(
                "ledtrad_agent_stop was called from inside the event callback, which it would wait for; stop the agent from another thread once the callback has returned",
            ));
        }
        // SAFETY: the handle came from Box::into_raw in ledtrad_agent_start and is stopped
        // once; no other thread uses it any more (the caller's promise).
        unsafe { Box::from_raw(agent) }.stop();
        Ok(())
    })
}

/// Feeds sensor signals, the same JSON as the local API's `POST /v1/signals`: one signal
/// (`{"feature": "fridge.butter.level", "value": 0.08}`) or a batch (`{"signals": [...]}`).
/// A signal may raise a moment; what it shows comes as an `offer` event.
///
/// # Safety
/// `agent` is NULL or a live handle; `json` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn ledtrad_signals(agent: *const LedtradAgent, json: *const c_char) -> LedtradResult {
    call("ledtrad_signals", |_| {
        // SAFETY: the caller's promises, checked for NULL inside.
        let (agent, json) = unsafe {
            (args::agent(agent)?, text(json, "json", "pass the signals as JSON, e.g. {\"signals\": [{\"feature\": \"fridge.butter.level\", \"value\": 0.08}]}")?)
        };
        let signals = bodies::signals(json.as_bytes()).map_err(Failure::invalid)?;
        agent.block_on(|h| async move { h.signals(signals).await })??;
        Ok(())
    })
}

/// Decides what to show at `moment` (`door_opened`, `inventory_low`, `book_finished`,
/// `reader_sleep`, `screen_woken`) and writes the answer as JSON into `buf`, the same body as
/// the local API's `GET /v1/offer`: `{"moment", "decision", "offer"?, "prompt"?}`; with nothing
/// to show, only the moment and the decision. `*needed` (when `needed` is not NULL) is set to
/// the answer's size with its NUL. When `len` is too small the result is
/// `LEDTRAD_RESULT_BUFFER_TOO_SMALL`: call again at once on the same thread with a buffer of `*needed`
/// bytes and you get the same decision, not a second one (any other call in between drops it).
///
/// # Safety
/// `agent` is NULL or a live handle; `moment` is NULL or a NUL-terminated string; `buf` is
/// NULL or writable for `len` bytes; `needed` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ledtrad_offer(
    agent: *const LedtradAgent,
    moment: *const c_char,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> LedtradResult {
    call("ledtrad_offer", |carry| {
        // SAFETY: the caller's promises, checked for NULL inside.
        let (live, name) =
            unsafe { (args::agent(agent)?, text(moment, "moment", "pass a moment, e.g. \"door_opened\"")?) };
        let moment = bodies::moment(name).map_err(Failure::invalid)?;
        let key = agent as usize;
        let json = match carry.pending.take() {
            Some(p) if p.agent == key && p.moment == moment => p.json,
            _ => {
                let outcome = live.block_on(|h| async move { h.offer(moment).await })??;
                to_json(&OfferBody::new(moment, &outcome))?
            }
        };
        // SAFETY: the caller's promises for `buf`, `len` and `needed`.
        let written = unsafe { write_answer(&json, buf, len, needed) };
        if matches!(&written, Err(f) if f.code == LedtradResult::BufferTooSmall) {
            carry.keep = Some(Pending { agent: key, moment, json });
        }
        written
    })
}

/// Records what the person did with a shown offer, the same JSON as the local API's
/// `POST /v1/feedback`: `{"decision": 12, "kind": "accepted"}` (or `"dismissed"`,
/// `"not_for_me"`). A decision that is unknown, showed nothing or already has its answer is
/// `LEDTRAD_RESULT_REFUSED`.
///
/// # Safety
/// `agent` is NULL or a live handle; `json` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn ledtrad_feedback(agent: *const LedtradAgent, json: *const c_char) -> LedtradResult {
    call("ledtrad_feedback", |_| {
        // SAFETY: the caller's promises, checked for NULL inside.
        let (agent, json) = unsafe {
            (
                args::agent(agent)?,
                text(json, "json", "pass the feedback as JSON, e.g. {\"decision\": 12, \"kind\": \"accepted\"}")?,
            )
        };
        let feedback = bodies::feedback(json.as_bytes()).map_err(Failure::invalid)?;
        agent.block_on(|h| async move { h.feedback(feedback).await })??;
        Ok(())
    })
}

/// Writes the consent in force as JSON into `buf` (the local API's `GET /v1/consent`: the
/// purposes `personalise`, `request`, `measure`, `improve` as booleans, the household's people
/// and who is present). Buffer rules as for `ledtrad_offer`; asking again is harmless.
///
/// # Safety
/// `agent` is NULL or a live handle; `buf` is NULL or writable for `len` bytes; `needed` is
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ledtrad_consent(
    agent: *const LedtradAgent,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> LedtradResult {
    call("ledtrad_consent", |_| {
        // SAFETY: the caller's promise, checked for NULL inside.
        let agent = unsafe { args::agent(agent) }?;
        let view = agent.block_on(|h| async move { h.consent().await })??;
        // SAFETY: the caller's promises for `buf`, `len` and `needed`.
        unsafe { write_answer(&to_json(&view)?, buf, len, needed) }
    })
}

/// Grants or revokes `purpose` (`personalise`, `request`, `measure`, `improve`) for the
/// device's owner, the same JSON as the local API's `PUT /v1/consent/{purpose}`:
/// `{"granted": true, "text_version": "2026-11", "source": "device_ui"}`. In force, and what a
/// revocation takes away purged, before this returns; a `consent` event follows.
///
/// # Safety
/// `agent` is NULL or a live handle; `purpose` and `json` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn ledtrad_set_consent(
    agent: *const LedtradAgent,
    purpose: *const c_char,
    json: *const c_char,
) -> LedtradResult {
    call("ledtrad_set_consent", |_| {
        // SAFETY: the caller's promises, checked for NULL inside.
        let (agent, purpose, json) = unsafe {
            (
                args::agent(agent)?,
                text(purpose, "purpose", "pass a purpose: personalise, request, measure or improve")?,
                text(json, "json", "pass the change as JSON, e.g. {\"granted\": true, \"text_version\": \"2026-11\"}")?,
            )
        };
        let purpose = bodies::purpose(purpose).map_err(Failure::invalid)?;
        let change = bodies::consent_change(json.as_bytes()).map_err(Failure::invalid)?;
        agent.block_on(|h| async move { h.set_consent(purpose, change).await })??;
        Ok(())
    })
}

/// Writes the agent's state as JSON into `buf` (the local API's `GET /v1/status`: connected,
/// the catalogue version applied, counts). Buffer rules as for `ledtrad_offer`.
///
/// # Safety
/// `agent` is NULL or a live handle; `buf` is NULL or writable for `len` bytes; `needed` is
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ledtrad_status(
    agent: *const LedtradAgent,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> LedtradResult {
    call("ledtrad_status", |_| {
        // SAFETY: the caller's promise, checked for NULL inside.
        let agent = unsafe { args::agent(agent) }?;
        let status = agent.block_on(|h| async move { h.status().await })??;
        // SAFETY: the caller's promises for `buf`, `len` and `needed`.
        unsafe { write_answer(&to_json(&status)?, buf, len, needed) }
    })
}

/// Registers `callback` for the agent's live events (NULL unregisters): `offer` (a moment the
/// agent raised shows something: show it now; JSON as `ledtrad_offer` writes), `consent` (the
/// consent view changed; JSON as `ledtrad_consent` writes), `catalogue` (a catalogue applied or
/// refused: `{"version", "applied", "reason"?}`) and `missed` (events dropped: `{"missed",
/// "why"}`). While no callback is registered, events wait for one (the last 64).
///
/// The callback runs on a thread of the agent's, one event at a time. Its strings are valid
/// only during the call: copy what you keep. It must not block for long (events queue behind
/// it) and must not call `ledtrad_agent_stop`; other calls are fine. `user_data` is handed
/// back as given and must be usable from that thread. Once this returns, the old callback is
/// not running and is not called again (called from inside the callback: once it returns).
///
/// # Safety
/// `agent` is NULL or a live handle; `callback` is NULL or a function of this signature that
/// may be called from another thread with `user_data` until it is replaced or the agent stops.
#[no_mangle]
pub unsafe extern "C" fn ledtrad_set_event_callback(
    agent: *const LedtradAgent,
    callback: LedtradEventCallback,
    user_data: *mut c_void,
) -> LedtradResult {
    call("ledtrad_set_event_callback", |_| {
        // SAFETY: the caller's promise, checked for NULL inside.
        let agent = unsafe { args::agent(agent) }?;
        agent.events().set(callback, user_data);
        Ok(())
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, Failure> {
    serde_json::to_string(value)
        .map_err(|e| Failure::new(LedtradResult::Internal, format!("the answer could not be written as JSON: {e}")))
}
