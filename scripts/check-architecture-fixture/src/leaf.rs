//! A leaf: mentions of crate::a::A in comments and strings are not imports.

/* nor in crate::b::B block comments */
pub struct Leaf;

pub const NOT_A_PATH: &str = "crate::a::A";
pub const RAW: &str = r#"super::b::B "crate::c""#;
