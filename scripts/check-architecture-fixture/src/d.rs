//! d -> b inline; an inline test module that imports a must not count.

/// Thing.
pub struct Thing;

pub fn run() {
    let _ = crate::b::make();
    let _ = '"';
}

#[cfg(test)]
mod tests {
    use crate::a::A;
}
