//! Equal strings: Luau interns strings, so a snapshot holds each string's bytes once, and a
//! repeat (which would restore as two objects where the VM keeps one) is found here.
//!
//! Found by sorting, not by a hash table: the bytes are the attacker's, and a sort's cost cannot
//! be inflated by crafted collisions. Each string becomes one eight-byte record (a 32-bit hash of
//! its bytes over its index), the records are sorted, and only strings with equal hashes are
//! compared byte by byte. Crafted collisions only send more pairs to that comparison, whose cost
//! a sort bounds.
//!
//! Eight bytes is at most twice a string of three bytes or more (four encoded). Shorter strings
//! have only 65,793 possible values: when a snapshot holds more of them than a table of those
//! values costs, they are found in that table instead (the memory bound of issue 12).

use crate::snapshot::{ObjectKind, ObjectRef, SnapshotView};

/// Strings of at most this many bytes are "tiny": few enough values to tabulate.
const TINY: usize = 2;
/// Slots of the table of tiny strings: one per possible value (1 + 256 + 65,536).
const TINY_VALUES: usize = 1 + 256 + 65_536;
/// From this many tiny strings on, the table (4 bytes a slot) is smaller than their records.
const TINY_TABLE_FROM: usize = TINY_VALUES / 2;

/// Calls `repeat(string, first)` for every string with the same bytes as an earlier one
/// (`first`, the earliest).
pub(crate) fn repeats(s: &SnapshotView<'_>, mut repeat: impl FnMut(u32, u32)) {
    let strings = || s.objects_of(ObjectKind::String).filter_map(|(i, o)| Some((i, string_of(o)?)));
    // Counted from the objects' extents: a tag, a one-byte length and at most TINY bytes.
    let (mut count, mut tiny) = (0usize, 0usize);
    for (_, at, end) in s.extents_of(ObjectKind::String) {
        count += 1;
        tiny += usize::from(end.saturating_sub(at) <= 2 + TINY);
    }
    let tabulate = tiny >= TINY_TABLE_FROM;
    if tabulate {
        // Index plus one of the first string with each tiny value (0: none yet).
        let mut first = vec![0u32; TINY_VALUES];
        for (i, value) in strings().filter_map(|(i, b)| Some((i, tiny_value(b)?))) {
            let Some(slot) = first.get_mut(value) else { continue };
            match *slot {
                0 => *slot = i + 1,
                f => repeat(i, f - 1),
            }
        }
        count -= tiny;
    }
    // Sized exactly (growing by doubling would hold the old and the new list at once).
    let mut records: Vec<u64> = Vec::with_capacity(count);
    records.extend(
        strings().filter(|(_, b)| !tabulate || b.len() > TINY).map(|(i, b)| u64::from(hash(b)) << 32 | u64::from(i)),
    );
    records.sort_unstable();
    let bytes_of = |r: u64| s.string(r as u32).unwrap_or_default();
    let mut rest = &mut records[..];
    while let Some(&head) = rest.first() {
        let run = rest.iter().take_while(|&&r| r >> 32 == head >> 32).count();
        let (same_hash, after) = rest.split_at_mut(run);
        if run > 1 {
            // Equal bytes adjacent, the earliest first.
            same_hash.sort_unstable_by(|&a, &b| bytes_of(a).cmp(bytes_of(b)).then(a.cmp(&b)));
            let mut first = same_hash[0];
            for pair in same_hash.windows(2) {
                if bytes_of(pair[0]) == bytes_of(pair[1]) {
                    repeat(pair[1] as u32, first as u32);
                } else {
                    first = pair[1];
                }
            }
        }
        rest = after;
    }
}

fn string_of(o: ObjectRef<'_>) -> Option<&[u8]> {
    match o {
        ObjectRef::String(b) => Some(b),
        _ => None,
    }
}

/// A tiny string's slot (lengths 0, 1 and 2 in turn); `None` for longer strings.
fn tiny_value(b: &[u8]) -> Option<usize> {
    match *b {
        [] => Some(0),
        [x] => Some(1 + usize::from(x)),
        [x, y] => Some(257 + (usize::from(x) << 8 | usize::from(y))),
        _ => None,
    }
}

/// A 32-bit hash of `b` (not keyed: collisions only cost comparisons).
fn hash(b: &[u8]) -> u32 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = (b.len() as u64).wrapping_mul(K);
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(26) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    let mut w = [0u8; 8];
    w[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = (h.rotate_left(26) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    (h >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_values_are_distinct_and_in_range() {
        let mut seen = vec![false; TINY_VALUES];
        let mut all: Vec<Vec<u8>> = vec![vec![]];
        all.extend((0..=255u8).map(|x| vec![x]));
        all.extend((0..=255u8).flat_map(|x| (0..=255u8).map(move |y| vec![x, y])));
        for b in &all {
            let v = tiny_value(b).expect("tiny");
            assert!(!seen[v], "{b:?}");
            seen[v] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(tiny_value(b"abc"), None);
    }

    #[test]
    fn hashes_differ_with_length_and_bytes() {
        assert_ne!(hash(b""), hash(b"\0"));
        assert_ne!(hash(b"abcdefgh"), hash(b"abcdefgh\0"));
        assert_ne!(hash(b"k1"), hash(b"k2"));
    }
}
