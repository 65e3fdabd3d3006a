//! What a call returns: a [`LedtradResult`] code, and on failure a message kept for
//! `ledtrad_last_error` on the calling thread. [`call`] runs every C entry point's body, so no
//! panic crosses into C and every failure leaves its message.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::CString;
use std::panic::{catch_unwind, AssertUnwindSafe};

use ledtrad_agent::AgentError;
use ledtrad_protocol::Moment;

/// What a call of the C API came to. Every function but `ledtrad_version` and
/// `ledtrad_last_error` returns one; on anything but `LEDTRAD_RESULT_OK`, `ledtrad_last_error()` says
/// what was wrong and how to fix it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedtradResult {
    /// The call did what it says.
    Ok = 0,
    /// An argument is wrong: a NULL pointer, text that is not UTF-8, JSON that is not the body
    /// asked for, an unknown moment or purpose, a value the agent does not take.
    InvalidArgument = 1,
    /// The agent's config could not be read or has a bad value.
    Config = 2,
    /// The agent could not start (its database, its local API's address, its runtime).
    Start = 3,
    /// The agent has stopped.
    Stopped = 4,
    /// The answer does not fit the buffer: `*needed` holds the size it needs, with its NUL.
    BufferTooSmall = 5,
    /// The agent refused the request as it stands: feedback on a decision that is unknown,
    /// too old, showed nothing or already has its answer.
    Refused = 6,
    /// The agent's storage could not be written or read; nothing was changed.
    Storage = 7,
    /// A fault inside the library (a panic, caught); the message says where.
    Internal = 8,
}

/// A failed call: its code and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) code: LedtradResult,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(code: LedtradResult, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(LedtradResult::InvalidArgument, message)
    }
}

impl From<AgentError> for Failure {
    fn from(e: AgentError) -> Self {
        let code = match &e {
            AgentError::Stopped => {
                return Self::new(
                    LedtradResult::Stopped,
                    "the agent has stopped (its log says why); stop this handle and start a new one with ledtrad_agent_start",
                )
            }
            AgentError::Storage(_) => LedtradResult::Storage,
            AgentError::BadRequest(_) | AgentError::UnknownPerson(_) => LedtradResult::InvalidArgument,
            AgentError::Feedback(_) => LedtradResult::Refused,
        };
        Self::new(code, e.to_string())
    }
}

/// An offer's answer that did not fit the caller's buffer, kept for the next call on the same
/// thread: asking again with a larger buffer gets this decision, not a second one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pending {
    /// The handle it came from (its address).
    pub(crate) agent: usize,
    /// The moment asked for.
    pub(crate) moment: Moment,
    /// The answer.
    pub(crate) json: String,
}

/// What a call may carry over to the next call on its thread.
#[derive(Debug, Default)]
pub(crate) struct Carry {
    /// What the previous call on this thread left (taken: it is for this call only).
    pub(crate) pending: Option<Pending>,
    /// What this call leaves for the next.
    pub(crate) keep: Option<Pending>,
}

thread_local! {
    /// The message of the last failed call on this thread, for `ledtrad_last_error`.
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
    /// An answer that did not fit, for the next call on this thread.
    static PENDING: RefCell<Option<Pending>> = const { RefCell::new(None) };
}

/// Runs the body of a C entry point: catches a panic (it becomes [`LedtradResult::Internal`]),
/// keeps a failure's message for [`last_error`], and hands the body what the previous call on
/// this thread left.
pub(crate) fn call(name: &str, body: impl FnOnce(&mut Carry) -> Result<(), Failure>) -> LedtradResult {
    let mut carry = Carry { pending: PENDING.with(|p| p.borrow_mut().take()), keep: None };
    let outcome = catch_unwind(AssertUnwindSafe(|| body(&mut carry)));
    PENDING.with(|p| *p.borrow_mut() = carry.keep);
    let failure = match outcome {
        Ok(Ok(())) => return LedtradResult::Ok,
        Ok(Err(failure)) => failure,
        Err(payload) => Failure::new(
            LedtradResult::Internal,
            format!(
                "{name}: an internal fault (a panic: {}); please report it with the agent's log",
                panic_text(&*payload)
            ),
        ),
    };
    set_last_error(&failure.message);
    failure.code
}

fn panic_text(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

fn set_last_error(message: &str) {
    let text = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = text);
}

/// The message of the last failed call on this thread ("" when none failed yet). The pointer
/// stays valid until the next failed call on this thread.
pub(crate) fn last_error() -> *const std::ffi::c_char {
    // The CString's heap buffer stays where it is until the next failure replaces it.
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> String {
        LAST_ERROR.with(|e| e.borrow().to_string_lossy().into_owned())
    }

    #[test]
    fn a_failure_leaves_its_code_and_message_and_a_success_leaves_the_message_alone() {
        assert_eq!(call("t", |_| Err(Failure::invalid("x is NULL: pass an x"))), LedtradResult::InvalidArgument);
        assert_eq!(message(), "x is NULL: pass an x");
        assert_eq!(call("t", |_| Ok(())), LedtradResult::Ok);
        assert_eq!(message(), "x is NULL: pass an x");
    }

    #[test]
    fn a_panic_becomes_an_internal_error_naming_the_call() {
        let code = call("ledtrad_test", |_| -> Result<(), Failure> { panic!("boom") });
        assert_eq!(code, LedtradResult::Internal);
        assert!(message().starts_with("ledtrad_test: an internal fault (a panic: boom)"), "{}", message());
    }

    #[test]
    fn what_a_call_keeps_is_for_the_next_call_only() {
        let pending = Pending { agent: 1, moment: Moment::DoorOpened, json: "{}".into() };
        call("t", |c| {
            c.keep = Some(pending.clone());
            Ok(())
        });
        call("t", |c| {
            assert_eq!(c.pending.as_ref(), Some(&pending));
            Ok(())
        });
        call("t", |c| {
            assert_eq!(c.pending, None, "gone after one call");
            Ok(())
        });
    }
}
