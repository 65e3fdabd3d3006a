//! The collections the engine keeps: the hash maps and sets it looks things up in while
//! deciding, and the deques of its time windows.

/// Hash maps looked up while deciding: a fast hasher with a fixed seed (the engine draws no
/// randomness; the keys come from signed catalogues, so there is nobody to collide them).
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

/// The set counterpart of [`FastMap`].
pub type FastSet<K> = std::collections::HashSet<K, foldhash::fast::FixedState>;

/// Gives back most of a time window's spare room once it holds a quarter of it or less: a
/// window that emptied out after a busy spell would otherwise keep that spell's memory for the
/// device's lifetime, and a year's busiest month would set what every window holds. Halving
/// keeps pushes amortised.
pub fn shrink_spare<T>(window: &mut std::collections::VecDeque<T>) {
    if window.capacity() > 8 && window.len() <= window.capacity() / 4 {
        window.shrink_to(window.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_that_emptied_out_gives_back_its_room() {
        let mut window: std::collections::VecDeque<u32> = (0..1_000).collect();
        window.drain(..990);
        shrink_spare(&mut window);
        assert!(window.capacity() < 100, "{}", window.capacity());
        assert_eq!(window.len(), 10);
        let before = window.capacity();
        window.pop_front();
        shrink_spare(&mut window);
        assert_eq!(window.capacity(), before, "a window still in use keeps its room");
    }
}
