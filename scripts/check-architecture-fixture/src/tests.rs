use crate::a::A;
use crate::d::Thing;
