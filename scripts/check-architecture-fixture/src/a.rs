//! a -> b and a -> leaf; its tests import c, which must not count (it would close
//! a -> c -> d -> b -> a).

use crate::{b::B, leaf};

/// A.
pub struct A(pub B, pub leaf::Leaf);

#[cfg(test)]
mod tests;
