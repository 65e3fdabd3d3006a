use crate::c::C;
