use crate::y::Y;
pub struct X;
