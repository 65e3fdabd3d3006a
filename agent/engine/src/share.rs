//! Compiled catalogues shared by the engines of one process.
//!
//! A process that holds many devices' engines (the simulator: thousands of agents and an audit
//! engine beside each) receives one signed catalogue for all of them. Each engine still opens
//! the envelope itself, against its own trusted keys, fleet, version floor and rollout; only
//! what compiling yields, which follows from the envelope's bytes alone, is kept once and
//! shared. A device's agent, alone in its process, needs none of this.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::compiled::AppliedCatalogue;

/// Compiled catalogues, by the envelope they came from, while an engine holds them. Cloning
/// shares the same set.
#[derive(Debug, Clone, Default)]
pub struct SharedCatalogues {
    entries: Arc<Mutex<Vec<Entry>>>,
}

#[derive(Debug)]
struct Entry {
    envelope: Box<[u8]>,
    compiled: Weak<AppliedCatalogue>,
}

impl SharedCatalogues {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The compiled catalogue of `envelope` that an engine holds already, or else `compile`'s,
    /// kept for the next engine. Only an envelope opened and checked by the caller may come
    /// here: it is matched byte for byte, not opened again.
    pub(crate) fn get_or_compile(
        &self,
        envelope: &[u8],
        compile: impl FnOnce() -> AppliedCatalogue,
    ) -> Arc<AppliedCatalogue> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        // Catalogues no engine holds any more are forgotten.
        entries.retain(|e| e.compiled.strong_count() > 0);
        if let Some(held) = entries.iter().filter(|e| *e.envelope == *envelope).find_map(|e| e.compiled.upgrade()) {
            return held;
        }
        let compiled = Arc::new(compile());
        entries.push(Entry { envelope: envelope.into(), compiled: Arc::downgrade(&compiled) });
        compiled
    }

    /// How many compiled catalogues engines hold now.
    pub fn held(&self) -> usize {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.iter().filter(|e| e.compiled.strong_count() > 0).count()
    }
}
