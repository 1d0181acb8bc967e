//! Where each object of a snapshot begins, kept in a fraction of the snapshot's own size however
//! small its objects are (issue 12: validation holds at most 3x the snapshot).
//!
//! An offset per object costs four bytes, which is little beside real objects (a state's
//! objects average 20 bytes and more) but twice a hostile snapshot's two-byte empty strings. So
//! when objects average fewer than [`DENSE_MIN_AVERAGE`] bytes, only *anchors* are kept: every
//! [`BLOCK`]th object, and every object at least [`SPAN`] bytes past the anchor before it. Any
//! other object is found by skimming from its anchor, over fewer than [`BLOCK`] objects and
//! fewer than [`SPAN`] bytes, so a lookup stays cheap whatever the objects are (a skim through
//! one long table could otherwise cost its whole length per lookup). A bit per object says which
//! are anchors, and a count per 64 objects ranks them.
//!
//! Each object's kind is kept too, a byte each: references are checked against their target's
//! kind, and a lookup in a list of bytes stays in cache where reading the tag at the object's
//! offset would not (a quarter of the validation time of a million objects, measured).

use super::ObjectKind;
use super::skim::Skim;
use crate::bits::Marks;

/// Objects averaging at least this many bytes get an offset each (four bytes: at most half the
/// snapshot, with their kinds five eighths).
const DENSE_MIN_AVERAGE: usize = 8;
/// At most this many objects from one anchor to the next (a power of two dividing 64, so each
/// word of anchor bits has an anchor at its first bit).
const BLOCK: u32 = 16;
/// An object this many bytes past the previous anchor, or more, is an anchor.
const SPAN: u32 = 64;

/// The offsets of a snapshot's objects, within its objects section.
#[derive(Clone, Default)]
pub(crate) struct ObjectIndex {
    count: u32,
    /// Offsets of the anchors, ascending (every object's when `dense`).
    anchors: Vec<u32>,
    dense: bool,
    /// The anchors (none marked when `dense`).
    anchored: Marks,
    /// How many anchors precede each 64 objects ([`Marks::ranks`], counted as they are pushed).
    ranks: Vec<u32>,
    last_anchor: u32,
    kinds: Vec<ObjectKind>,
}

impl ObjectIndex {
    /// An index for `count` objects in `span` bytes.
    pub(crate) fn with_capacity(count: usize, span: usize) -> ObjectIndex {
        let dense = count.saturating_mul(DENSE_MIN_AVERAGE) <= span;
        let sparse = if dense { 0 } else { count };
        ObjectIndex {
            count: 0,
            anchors: Vec::with_capacity(if dense { count } else { count / BLOCK as usize + 1 }),
            dense,
            anchored: Marks::new(sparse),
            ranks: Vec::with_capacity(sparse.div_ceil(64)),
            last_anchor: 0,
            kinds: Vec::with_capacity(count),
        }
    }

    /// The next object begins at `at` (ascending) and is of kind `kind`.
    pub(crate) fn push(&mut self, at: u32, kind: ObjectKind) {
        let i = self.count;
        self.count += 1;
        self.kinds.push(kind);
        if self.dense {
            self.anchors.push(at);
            return;
        }
        if i.is_multiple_of(64) {
            self.ranks.push(self.anchors.len() as u32);
        }
        if i.is_multiple_of(BLOCK) || at - self.last_anchor >= SPAN {
            self.anchored.mark(i);
            self.anchors.push(at);
            self.last_anchor = at;
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.count as usize
    }

    #[inline]
    pub(crate) fn kind(&self, i: u32) -> Option<ObjectKind> {
        self.kinds.get(i as usize).copied()
    }

    /// Every object's kind, by index.
    pub(crate) fn kinds(&self) -> &[ObjectKind] {
        &self.kinds
    }

    /// Where object `i` begins in `bytes` (the objects section this index was made from).
    #[inline]
    pub(crate) fn offset(&self, bytes: &[u8], i: u32) -> Option<usize> {
        if i >= self.count {
            return None;
        }
        if self.dense {
            return self.anchors.get(i as usize).map(|&a| a as usize);
        }
        let anchor = self.anchored.last_up_to(i)?;
        let rank = self.anchored.rank(&self.ranks, anchor)?;
        let mut skim = Skim::new(bytes, *self.anchors.get(rank)? as usize);
        for k in anchor..i {
            skim.object(k, &mut |_, _, _| {})?;
        }
        Some(skim.pos())
    }

    /// Every object's index, start and end, in order, each found in constant time.
    pub(crate) fn extents<'a>(&'a self, bytes: &'a [u8]) -> Extents<'a> {
        Extents { index: self, bytes, next: 0, start: 0, rank: 1 }
    }
}

/// [`ObjectIndex::extents`]. An object that cannot be skimmed again (which would be a bug: the
/// same reader located it) ends at `usize::MAX`, which no decoder reaches.
pub(crate) struct Extents<'a> {
    index: &'a ObjectIndex,
    bytes: &'a [u8],
    next: u32,
    start: usize,
    /// Anchors used so far (object 0 is the first).
    rank: usize,
}

impl Iterator for Extents<'_> {
    type Item = (u32, usize, usize);

    #[inline]
    fn next(&mut self) -> Option<(u32, usize, usize)> {
        let ix = self.index;
        let i = self.next;
        if i >= ix.count {
            return None;
        }
        self.next += 1;
        let start = self.start;
        let end = if i + 1 == ix.count {
            self.bytes.len()
        } else if ix.dense {
            ix.anchors.get(i as usize + 1).map_or(usize::MAX, |&a| a as usize)
        } else if ix.anchored.get(i + 1) {
            self.rank += 1;
            ix.anchors.get(self.rank - 1).map_or(usize::MAX, |&a| a as usize)
        } else {
            // Not followed by an anchor, so shorter than SPAN: skimmed.
            let mut skim = Skim::new(self.bytes, start);
            skim.object(i, &mut |_, _, _| {}).map_or(usize::MAX, |_| skim.pos())
        };
        self.start = end;
        Some((i, start, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The anchor object `i` is found from: (its index, its offset).
    fn anchor_of(ix: &ObjectIndex, offsets: &[u32], i: u32) -> (u32, u32) {
        if ix.dense {
            return (i, ix.anchors[i as usize]);
        }
        let a = ix.anchored.last_up_to(i).expect("an anchor at or before every object");
        let rank = ix.anchored.rank(&ix.ranks, a).expect("a rank");
        assert_eq!(ix.anchors[rank], offsets[a as usize], "anchor {a} of object {i}");
        (a, ix.anchors[rank])
    }

    #[test]
    fn every_object_is_near_its_anchor() {
        // Tiny objects with a large one now and then (sizes by xorshift).
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut offsets = vec![0u32];
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let size = if x.is_multiple_of(40) { 40 + x % 60 } else { 2 + x % 6 };
            offsets.push(offsets.last().unwrap() + size as u32);
        }
        let span = *offsets.last().unwrap() as usize;
        let mut ix = ObjectIndex::with_capacity(offsets.len(), span);
        assert!(!ix.dense, "objects averaging under 8 bytes keep anchors only");
        offsets.iter().for_each(|&o| ix.push(o, ObjectKind::String));
        assert_eq!(ix.anchored.ranks(), ix.ranks, "ranks counted as pushed");
        for i in 0..offsets.len() as u32 {
            let (a, at) = anchor_of(&ix, &offsets, i);
            assert!(i - a < BLOCK, "object {i}: {} objects past its anchor", i - a);
            assert!(offsets[i as usize] - at < SPAN, "object {i}: {} bytes past its anchor", offsets[i as usize] - at);
        }
        // Four bytes an anchor, for a fraction of the objects: a fraction of the input.
        assert!(ix.anchors.len() * 4 < span / 4, "{} anchors for {span} bytes", ix.anchors.len());
        let dense = ObjectIndex::with_capacity(100, 800);
        assert!(dense.dense, "objects of 8 bytes and more get an offset each");
    }
}
