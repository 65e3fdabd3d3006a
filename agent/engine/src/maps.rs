//! The hash maps and sets the engine looks things up in while deciding.

/// Hash maps looked up while deciding: a fast hasher with a fixed seed (the engine draws no
/// randomness; the keys come from signed catalogues, so there is nobody to collide them).
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

/// The set counterpart of [`FastMap`].
pub type FastSet<K> = std::collections::HashSet<K, foldhash::fast::FixedState>;
