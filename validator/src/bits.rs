//! Sets of small integers (object indices, hash nodes, stack slots, pattern positions) at one
//! bit each: what the checks keep per element of a snapshot, which may be a byte or two long
//! (issue 12's memory bound), and a million of which fit in 128 KB, in cache.

/// A set of the integers below its length.
#[derive(Clone, Default)]
pub(crate) struct Marks {
    words: Vec<u64>,
    len: usize,
}

impl Marks {
    pub(crate) fn new(len: usize) -> Marks {
        Marks { words: vec![0; len.div_ceil(64)], len }
    }

    pub(crate) fn get(&self, i: u32) -> bool {
        (i as usize) < self.len && self.words[i as usize / 64] & (1 << (i % 64)) != 0
    }

    /// Marks `i`: whether it was not marked before (false out of range).
    pub(crate) fn mark(&mut self, i: u32) -> bool {
        if i as usize >= self.len {
            return false;
        }
        let word = &mut self.words[i as usize / 64];
        let bit = 1u64 << (i % 64);
        let new = *word & bit == 0;
        *word |= bit;
        new
    }

    /// How many integers are marked.
    pub(crate) fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// How many marks precede each word: what [`Marks::rank`] reads, for lists kept only for
    /// the marked integers, in order.
    pub(crate) fn ranks(&self) -> Vec<u32> {
        let mut before = 0u32;
        self.words
            .iter()
            .map(|w| {
                let rank = before;
                before += w.count_ones();
                rank
            })
            .collect()
    }

    /// How many marks precede `i` (`ranks` from [`Marks::ranks`]): the place of marked `i` in a
    /// list kept for the marked integers.
    pub(crate) fn rank(&self, ranks: &[u32], i: u32) -> Option<usize> {
        let w = i as usize / 64;
        let before = self.words.get(w)? & ((1u64 << (i % 64)) - 1);
        Some(*ranks.get(w)? as usize + before.count_ones() as usize)
    }

    /// The greatest marked integer not above `i`.
    pub(crate) fn last_up_to(&self, i: u32) -> Option<u32> {
        let mut w = i as usize / 64;
        let mut word = self.words.get(w)? & (u64::MAX >> (63 - i % 64));
        while word == 0 {
            w = w.checked_sub(1)?;
            word = self.words[w];
        }
        Some((w * 64) as u32 + 63 - word.leading_zeros())
    }
}

#[cfg(test)]
mod tests {
    use super::Marks;

    #[test]
    fn ranks_and_predecessors_count_the_marks() {
        let mut m = Marks::new(300);
        let marked = [0u32, 5, 63, 64, 130, 299];
        for &i in &marked {
            assert!(m.mark(i));
        }
        assert!(!m.mark(5), "marked twice");
        assert!(!m.mark(300), "out of range");
        assert_eq!(m.count(), marked.len());
        let ranks = m.ranks();
        for i in 0..300u32 {
            assert_eq!(m.get(i), marked.contains(&i));
            assert_eq!(m.rank(&ranks, i), Some(marked.iter().filter(|&&k| k < i).count()), "rank of {i}");
            assert_eq!(m.last_up_to(i), marked.iter().rev().find(|&&k| k <= i).copied(), "last up to {i}");
        }
        assert_eq!(Marks::new(10).last_up_to(9), None);
    }
}
