use crate::x::X as Other;
pub struct Y;
