//! Reading C arguments and writing C answers: pointers checked for NULL, text checked for UTF-8,
//! answers copied into the caller's buffer with the size it needs when it is too small. The one
//! module besides the entry points that touches raw pointers.
#![allow(unsafe_code)]

use std::ffi::{c_char, CStr};

use crate::agent::LedtradAgent;
use crate::result::{Failure, LedtradResult};

/// The text `ptr` points to, NUL-terminated and UTF-8; `name` and `hint` make the error.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays valid for `'a`.
pub(crate) unsafe fn text<'a>(ptr: *const c_char, name: &str, hint: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("{name} is NULL: {hint}")));
    }
    // SAFETY: not NULL, and the caller promises a NUL-terminated string valid for 'a.
    let bytes = unsafe { CStr::from_ptr(ptr) };
    bytes.to_str().map_err(|e| {
        Failure::invalid(format!(
            "{name} is not UTF-8 (byte {} of {} is not): {hint}, encoded as UTF-8",
            e.valid_up_to(),
            bytes.to_bytes().len()
        ))
    })
}

/// The agent `ptr` points to.
///
/// # Safety
/// `ptr` is NULL or a handle from `ledtrad_agent_start` not yet stopped.
pub(crate) unsafe fn agent<'a>(ptr: *const LedtradAgent) -> Result<&'a LedtradAgent, Failure> {
    // SAFETY: the caller promises NULL or a live handle.
    unsafe { ptr.as_ref() }.ok_or_else(|| {
        Failure::invalid("agent is NULL: pass the handle ledtrad_agent_start gave (and check its result)")
    })
}

/// Copies `answer` and its NUL into `buf` of `len` bytes, and its size (with the NUL) into
/// `*needed` when `needed` is not NULL. When it does not fit, `buf` is left alone and the
/// result is [`LedtradResult::BufferTooSmall`].
///
/// # Safety
/// `buf` is NULL or writable for `len` bytes; `needed` is NULL or writable.
pub(crate) unsafe fn write_answer(
    answer: &str,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> Result<(), Failure> {
    let size = answer.len() + 1;
    if !needed.is_null() {
        // SAFETY: not NULL, and the caller promises it is writable.
        unsafe { needed.write(size) };
    }
    if buf.is_null() && len > 0 {
        return Err(Failure::invalid(format!(
            "buf is NULL but len is {len}: pass a buffer of len bytes (or NULL with len 0 to learn the size needed)"
        )));
    }
    if size > len {
        return Err(Failure::new(
            LedtradResult::BufferTooSmall,
            format!(
                "the answer needs {size} bytes with its NUL but the buffer holds {len}: call again with a buffer of *needed bytes"
            ),
        ));
    }
    // SAFETY: `buf` is writable for `len` >= `size` bytes, and `answer` cannot overlap it (a
    // Rust string of our own).
    unsafe {
        std::ptr::copy_nonoverlapping(answer.as_ptr(), buf.cast::<u8>(), answer.len());
        buf.add(answer.len()).write(0);
    }
    Ok(())
}

#[cfg(test)]
// The tests pass live buffers and strings, or NULL on purpose.
#[allow(clippy::undocumented_unsafe_blocks)]
mod tests {
    use super::*;

    #[test]
    fn text_names_the_argument_and_the_fix() {
        let err = unsafe { text(std::ptr::null(), "json", "pass the body") }.unwrap_err();
        assert_eq!(err, Failure::invalid("json is NULL: pass the body"));
        let bad = c"a\xffb";
        let err = unsafe { text(bad.as_ptr(), "moment", "pass a moment") }.unwrap_err();
        assert_eq!(err.message, "moment is not UTF-8 (byte 1 of 3 is not): pass a moment, encoded as UTF-8");
        assert_eq!(unsafe { text(c"door_opened".as_ptr(), "moment", "") }, Ok("door_opened"));
    }

    #[test]
    fn an_answer_too_big_says_the_size_and_leaves_the_buffer_alone() {
        let mut buf = [7 as c_char; 4];
        let mut needed = 0usize;
        let err = unsafe { write_answer("{\"a\":1}", buf.as_mut_ptr(), buf.len(), &mut needed) }.unwrap_err();
        assert_eq!((err.code, needed, buf[0]), (LedtradResult::BufferTooSmall, 8, 7));
        let err = unsafe { write_answer("{}", std::ptr::null_mut(), 0, &mut needed) }.unwrap_err();
        assert_eq!((err.code, needed), (LedtradResult::BufferTooSmall, 3));
        let err = unsafe { write_answer("{}", std::ptr::null_mut(), 9, &mut needed) }.unwrap_err();
        assert_eq!(err.code, LedtradResult::InvalidArgument);
        unsafe { write_answer("{}", buf.as_mut_ptr(), 3, std::ptr::null_mut()) }.unwrap();
        assert_eq!(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str(), Ok("{}"));
    }
}
