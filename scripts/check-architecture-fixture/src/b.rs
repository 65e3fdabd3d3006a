//! b -> a through `super::`, b -> c from its child module.

mod inner;

/// B.
pub struct B;

pub fn make() -> Option<super::a::A> {
    None
}
