//! A child of b: its paths count for b.
use super::super::c::C;
use super::B; // stays inside b

pub fn pair() -> (C, B) {
    (C, B)
}
