//! Hash-part layout (R014): a table's keys sit where Luau's lookups will look for them.
//!
//! Restore writes every key hashed by contents (strings, numbers, booleans, vectors) back to its
//! captured node and rebuilds each collision chain from its main position; keys hashed by
//! address (tables, functions, userdata, threads) are placed afresh. A lookup only finds a key
//! whose chain starts at its main position and whose main position holds a key of that chain,
//! and it never looks in the hash part for an integer key inside the array part. So this family
//! computes the main positions exactly as Luau 0.745 does (`ltable.cpp`: `mainposition`,
//! `hashnum`, `hashvec`, `hashstr`, `hashboolean`; `lstring.cpp`: `luaS_hash`) and requires:
//!
//! - no number key that is an integer from 1 to the array size in the hash part (the VM reads
//!   those from the array);
//! - no vector key with a NaN component (the VM refuses them as keys: `index is NaN`);
//! - after restore's own first step (a key whose main position is free moves there), the main
//!   position of every key hashed by contents holds a key with that same main position.
//!
//! Keys hashed by address do not take part: restore places them where this VM hashes them.

use crate::bits::Marks;
use crate::snapshot::{SnapshotView, TableRef, Value};

/// Luau's string hash (`luaS_hash`): an ARX mix over 12-byte blocks while 32 or more bytes
/// remain, then Lua 5.1's shift-add-xor over the rest, last byte first.
pub(crate) fn string_hash(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (0u32, 0u32);
    let mut h = bytes.len() as u32;
    let mut rest = bytes;
    while rest.len() >= 32 {
        let word = |k: usize| u32::from_le_bytes([rest[k], rest[k + 1], rest[k + 2], rest[k + 3]]);
        a = a.wrapping_add(word(0));
        b = b.wrapping_add(word(4));
        h = h.wrapping_add(word(8));
        a ^= h;
        a = a.wrapping_sub(h.rotate_right(14));
        b ^= a;
        b = b.wrapping_sub(a.rotate_right(11));
        h ^= b;
        h = h.wrapping_sub(b.rotate_right(25));
        rest = &rest[12..];
    }
    for &byte in rest.iter().rev() {
        h ^= (h << 5).wrapping_add(h >> 2).wrapping_add(u32::from(byte));
    }
    h
}

/// `hashnum`: the double's two 32-bit halves (sign bit cleared, so -0 and 0 agree) through
/// MurmurHash64B's finalizer; the low half is the hash.
fn number_hash(n: f64) -> u32 {
    let bits = n.to_bits();
    let mut h1 = bits as u32;
    let mut h2 = ((bits >> 32) as u32) & 0x7fff_ffff;
    const M: u32 = 0x5bd1_e995;
    h1 ^= h2 >> 18;
    h1 = h1.wrapping_mul(M);
    h2 ^= h1 >> 22;
    h2 = h2.wrapping_mul(M);
    h1 ^= h2 >> 17;
    h1 = h1.wrapping_mul(M);
    h2 ^= h1 >> 19;
    h2.wrapping_mul(M)
}

/// `hashvec` for three float components (`LUA_VECTOR_SIZE` 3): -0 counts as 0, each component
/// is scrambled, then combined with the spatial-hashing primes.
fn vector_hash(v: [f32; 3]) -> u32 {
    let i = v.map(|c| {
        let bits = c.to_bits();
        let bits = if bits == 0x8000_0000 { 0 } else { bits };
        bits ^ (bits >> 17)
    });
    i[0].wrapping_mul(73_856_093) ^ i[1].wrapping_mul(19_349_663) ^ i[2].wrapping_mul(83_492_791)
}

/// The hash of a key hashed by its contents; `None` for keys hashed by address.
fn content_hash<'s>(string: impl FnOnce(u32) -> Option<&'s [u8]>, key: &Value) -> Option<u32> {
    match *key {
        Value::Boolean(b) => Some(u32::from(b)),
        Value::Number(n) => Some(number_hash(n)),
        Value::Vector(v) => Some(vector_hash(v)),
        Value::Object(i) => string(i).map(string_hash),
        _ => None,
    }
}

/// The main position of a key hashed by its contents in a hash part of `size` nodes (a power
/// of two); `None` for keys hashed by address. `string(i)`: string object `i`'s bytes.
pub(crate) fn main_position<'s>(
    string: impl FnOnce(u32) -> Option<&'s [u8]>,
    key: &Value,
    size: usize,
) -> Option<usize> {
    content_hash(string, key).map(|h| h as usize & size.wrapping_sub(1))
}

/// Whether the VM would look for `n` in an array part of `array` slots.
pub(crate) fn in_array_range(n: f64, array: usize) -> bool {
    n.fract() == 0.0 && n >= 1.0 && n <= array as f64
}

/// Where a node holds no key hashed by contents.
const FREE: u32 = u32::MAX;

/// Why a table's hash part, of `entries` non-empty nodes, is not laid out as Luau lays it out:
/// (hash position, reason).
pub(crate) fn problem(s: &SnapshotView<'_>, t: &TableRef<'_>, entries: usize) -> Option<(usize, String)> {
    let size = t.hash_len();
    if size == 0 || !size.is_power_of_two() {
        return None; // an empty hash part, or a size R006 refuses
    }
    // (node, key) of every key hashed by contents, in iteration order, after the checks of a
    // single key.
    let keys = || {
        let mut node_map = t.node_of();
        t.hash().enumerate().filter_map(move |(p, entry)| {
            // The node each iteration position is written to.
            let node = match &mut node_map {
                Some(m) => m.next().map(|n| n as usize),
                None => Some(p),
            };
            let (key, _) = entry?;
            match key {
                Value::Number(n) if in_array_range(n, t.array_len()) => {
                    return Some(Err((p, format!("the key {n} belongs to the array part ({} slots)", t.array_len()))));
                }
                Value::Vector(v) if v.iter().any(|c| c.is_nan()) => {
                    return Some(Err((p, "a vector key with a NaN component".into())));
                }
                Value::Boolean(_) | Value::Number(_) | Value::Vector(_) => {}
                Value::Object(i) if s.kind(i) == Some(crate::snapshot::ObjectKind::String) => {}
                _ => return None,
            }
            Some(Ok((node.filter(|&n| n < size)?, key)))
        })
    };
    let main_position = |key: &Value| main_position(|i| s.string(i), key, size).map_or(FREE, |mp| mp as u32);
    let node = if size <= 16 {
        // Small hash parts (most tables): a main position per node, on the stack.
        let mut small = [FREE; 16];
        for k in keys() {
            let (node, key) = match k {
                Ok(k) => k,
                Err(problem) => return Some(problem),
            };
            small[node] = main_position(&key);
        }
        chain_problem(&mut small[..size])?
    } else {
        let mut large = MainPositions::new(size, entries);
        if t.has_node_map() {
            // Nodes in iteration order: the keyed ones are marked first, to rank them.
            for k in keys() {
                match k {
                    Ok((node, _)) => large.key_at(node),
                    Err(problem) => return Some(problem),
                }
            }
            large.ranked();
            for (node, key) in keys().flatten() {
                large.set(node, main_position(&key));
            }
        } else {
            // Nodes in node order: each main position goes after the last.
            for k in keys() {
                match k {
                    Ok((node, key)) => large.push(node, main_position(&key)),
                    Err(problem) => return Some(problem),
                }
            }
            large.ranked();
        }
        chain_problem(&mut large)?
    };
    let (node, mp) = node;
    let position = match t.node_of() {
        Some(mut map) => map.position(|n| n as usize == node).unwrap_or(node),
        None => node,
    };
    Some((
        position,
        format!("the key's chain cannot start at its main position (node {mp}): another chain's key holds it"),
    ))
}

/// The main position of the key at each node (`FREE`: none, or hashed by address), as restore
/// moves keys.
trait Nodes {
    fn len(&self) -> usize;
    fn get(&self, node: usize) -> u32;
    /// The key at `from` moves to its main position `to`, which was free.
    fn move_key(&mut self, from: usize, to: usize);
}

impl Nodes for [u32] {
    fn len(&self) -> usize {
        <[u32]>::len(self)
    }
    fn get(&self, node: usize) -> u32 {
        <[u32]>::get(self, node).copied().unwrap_or(FREE)
    }
    fn move_key(&mut self, from: usize, to: usize) {
        self[to] = to as u32;
        self[from] = FREE;
    }
}

/// A (node, main position) whose main position does not hold a key of its chain once restore
/// has moved every key whose main position is free there (in node order).
fn chain_problem(at: &mut (impl Nodes + ?Sized)) -> Option<(usize, u32)> {
    for node in 0..at.len() {
        let mp = at.get(node);
        if mp != FREE && mp as usize != node && at.get(mp as usize) == FREE {
            at.move_key(node, mp as usize);
        }
    }
    (0..at.len()).map(|node| (node, at.get(node))).find(|&(_, mp)| mp != FREE && at.get(mp as usize) != mp)
}

/// [`Nodes`] for a large hash part: a main position for each key hashed by contents (four
/// bytes, where such a node takes at least three in the snapshot) and a few bits per node (an
/// empty node takes one byte), so a hash part of empty nodes costs half its size here, not four
/// times.
struct MainPositions {
    /// Nodes holding a key hashed by contents, and how many precede each word of them.
    keyed: Marks,
    ranks: Vec<u32>,
    /// Their main positions, in node order.
    main: Vec<u32>,
    /// Nodes a key moved to, and nodes a key moved from.
    moved_in: Marks,
    moved_out: Marks,
    len: usize,
}

impl MainPositions {
    /// For `len` nodes, at most `keys` of them keyed.
    fn new(len: usize, keys: usize) -> MainPositions {
        MainPositions {
            keyed: Marks::new(len),
            ranks: Vec::new(),
            main: Vec::with_capacity(keys.min(len)),
            moved_in: Marks::new(len),
            moved_out: Marks::new(len),
            len,
        }
    }

    /// Node `node` holds a key hashed by contents.
    fn key_at(&mut self, node: usize) {
        self.keyed.mark(node as u32);
    }

    /// Node `node`, after every node pushed before, holds a key with main position `mp`.
    fn push(&mut self, node: usize, mp: u32) {
        self.key_at(node);
        self.main.push(mp);
    }

    /// Every keyed node marked: their ranks, and room for their main positions if they were
    /// not pushed in order.
    fn ranked(&mut self) {
        self.ranks = self.keyed.ranks();
        if self.main.is_empty() {
            self.main.resize(self.keyed.count(), FREE);
        }
    }

    /// Where keyed node `node`'s main position is in `main`.
    fn slot(&self, node: usize) -> Option<usize> {
        if !self.keyed.get(node as u32) {
            return None;
        }
        self.keyed.rank(&self.ranks, node as u32)
    }

    fn set(&mut self, node: usize, mp: u32) {
        if let Some(slot) = self.slot(node).and_then(|k| self.main.get_mut(k)) {
            *slot = mp;
        }
    }
}

impl Nodes for MainPositions {
    fn len(&self) -> usize {
        self.len
    }
    fn get(&self, node: usize) -> u32 {
        if self.moved_in.get(node as u32) {
            return node as u32;
        }
        if self.moved_out.get(node as u32) {
            return FREE;
        }
        self.slot(node).and_then(|k| self.main.get(k).copied()).unwrap_or(FREE)
    }
    fn move_key(&mut self, from: usize, to: usize) {
        self.moved_in.mark(to as u32);
        self.moved_out.mark(from as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_strings_hash_as_lua_5_1_did() {
        // h = len; for each byte from the last: h ^= (h << 5) + (h >> 2) + byte.
        assert_eq!(string_hash(b""), 0);
        let mut h = 1u32;
        h ^= (h << 5).wrapping_add(h >> 2).wrapping_add(u32::from(b'a'));
        assert_eq!(string_hash(b"a"), h);
    }

    #[test]
    fn zero_and_minus_zero_share_a_main_position() {
        assert_eq!(number_hash(0.0), number_hash(-0.0));
        assert_eq!(vector_hash([0.0, -0.0, 1.0]), vector_hash([-0.0, 0.0, 1.0]));
        assert_ne!(number_hash(1.0), number_hash(2.0));
    }

    #[test]
    fn integer_keys_of_the_array_range_are_array_keys() {
        assert!(in_array_range(1.0, 1));
        assert!(in_array_range(4.0, 4));
        assert!(!in_array_range(5.0, 4));
        assert!(!in_array_range(0.0, 4));
        assert!(!in_array_range(1.5, 4));
        assert!(!in_array_range(-1.0, 4));
    }
}
