//! The library target: cycles a -> b -> a (a `crate::` path in braces, and a `super::` path)
//! and b -> c -> d -> b (a nested `super::super::` path, a re-export, an inline path).

pub mod a;
mod b;
mod c;
pub(crate) mod d;
mod leaf;

pub use d::Thing as Renamed;

#[cfg(test)]
mod tests;
