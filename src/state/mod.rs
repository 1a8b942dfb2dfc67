//! State: the interned names every per-principal table is keyed by.
//!
//! Owns the mapping principal name ⇄ [`PrincipalId`]. Interning keeps the
//! hot path free of string allocation (a name is stored once, the first
//! time it is seen) and keeps per-principal state compact (a `u32` key).
//! Never forgets a name within a run; checkpointing lands with live mode.

use rustc_hash::FxHashMap;

/// Makes room for `len` entries with at most an eighth to spare: a Vec
/// that doubles keeps up to half of a million-principal table empty.
/// Per-principal tables grow through this.
pub fn grow<T>(v: &mut Vec<T>, len: usize) {
    if v.capacity() < len {
        let want = len.max(v.capacity() + v.capacity() / 8);
        v.reserve_exact(want - v.len());
    }
}

/// A principal's interned id, dense from 0 in first-seen order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct PrincipalId(pub u32);

/// Interns principal names.
#[derive(Debug, Default)]
pub struct Interner {
    ids: FxHashMap<Box<str>, PrincipalId>,
    names: Vec<Box<str>>,
}

/// Serialized as its names in id order; the lookup table is rebuilt.
impl serde::Serialize for Interner {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Interner {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names: Vec<Box<str>> = Vec::deserialize(d)?;
        let mut ids = FxHashMap::default();
        ids.reserve(names.len());
        for (i, n) in names.iter().enumerate() {
            if ids.insert(n.clone(), PrincipalId(i as u32)).is_some() {
                return Err(serde::de::Error::custom(format!("principal {n:?} interned twice")));
            }
        }
        Ok(Interner { ids, names })
    }
}

impl Interner {
    /// The id of `name`, assigning the next one on first sight.
    pub fn intern(&mut self, name: &str) -> PrincipalId {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = PrincipalId(self.names.len() as u32);
        let len = self.names.len() + 1;
        grow(&mut self.names, len);
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    pub fn get(&self, name: &str) -> Option<PrincipalId> {
        self.ids.get(name).copied()
    }

    pub fn name(&self, id: PrincipalId) -> &str {
        &self.names[id.0 as usize]
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Heap bytes held, for the state-size report.
    pub fn heap_bytes(&self) -> usize {
        self.names.iter().map(|n| 2 * n.len()).sum::<usize>()
            + self.names.capacity() * std::mem::size_of::<Box<str>>()
            + self.ids.capacity() * (std::mem::size_of::<Box<str>>() + std::mem::size_of::<PrincipalId>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_stable() {
        let mut i = Interner::default();
        let a = i.intern("a@x");
        let b = i.intern("b@x");
        assert_eq!(i.intern("a@x"), a);
        assert_ne!(a, b);
        assert_eq!(i.name(b), "b@x");
        assert_eq!(i.get("c@x"), None);
    }
}
