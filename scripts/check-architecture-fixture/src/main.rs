//! The binary target, a crate of its own: x -> y -> x (a plain `use`, and one renamed).

mod x;
mod y;

fn main() {}
