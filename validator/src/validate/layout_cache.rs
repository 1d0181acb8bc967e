//! The threads' derived layouts, kept from validation for restore in a few bytes a frame (and
//! only up to a budget): restore then writes the layout the checks read, without deriving it
//! again. Past the budget a layout is not kept and restore derives it anew, so a snapshot of
//! many frames cannot make validation hold more than the budget.

use super::frames::{CallFrame, CallFrameKind, ThreadLayout};
use crate::contract::{CRole, MatcherOp};

#[derive(Debug, Clone, Default)]
pub(crate) struct LayoutCache {
    /// (thread object, where its layout starts in `bytes`), ascending by thread; room for every
    /// thread is reserved once.
    threads: Vec<(u32, u32)>,
    /// Reserved once to the budget and never grown (a growing Vec would hold up to twice it).
    bytes: Vec<u8>,
    /// One layout as it is written, before it is known to fit.
    scratch: Vec<u8>,
    budget: usize,
    threads_total: usize,
    full: bool,
}

fn put(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn role_code(role: CRole) -> u8 {
    match role {
        CRole::Pcall => 0,
        CRole::Xpcall => 1,
        CRole::Resume => 2,
        CRole::WrappedResume => 3,
        CRole::Yield => 4,
        CRole::Matcher(MatcherOp::Find) => 5,
        CRole::Matcher(MatcherOp::Match) => 6,
        CRole::Matcher(MatcherOp::Gsub) => 7,
        CRole::Matcher(MatcherOp::GmatchIterator) => 8,
    }
}

fn role_of(code: u64) -> Option<CRole> {
    Some(match code {
        0 => CRole::Pcall,
        1 => CRole::Xpcall,
        2 => CRole::Resume,
        3 => CRole::WrappedResume,
        4 => CRole::Yield,
        5 => CRole::Matcher(MatcherOp::Find),
        6 => CRole::Matcher(MatcherOp::Match),
        7 => CRole::Matcher(MatcherOp::Gsub),
        8 => CRole::Matcher(MatcherOp::GmatchIterator),
        _ => return None,
    })
}

impl LayoutCache {
    /// A cache that holds at most `budget` bytes of layouts, of at most `threads` threads.
    pub(crate) fn with_budget(budget: usize, threads: usize) -> LayoutCache {
        LayoutCache { budget, threads_total: threads, ..LayoutCache::default() }
    }

    /// Keeps thread `thread`'s layout (threads come in ascending order), unless the budget is
    /// spent; once one layout does not fit, no later one is kept either.
    pub(crate) fn keep(&mut self, thread: u32, l: &ThreadLayout) {
        if self.full {
            return;
        }
        if self.bytes.capacity() == 0 {
            self.bytes.reserve_exact(self.budget);
            self.threads.reserve_exact(self.threads_total);
        }
        let out = &mut self.scratch;
        out.clear();
        put(out, u64::from(l.base));
        put(out, u64::from(l.top));
        put(out, l.frames.len() as u64);
        let mut func = 0i64;
        for f in &l.frames {
            put(out, zigzag(i64::from(f.func) - func));
            func = i64::from(f.func);
            put(out, zigzag(i64::from(f.base) - i64::from(f.func)));
            put(out, zigzag(i64::from(f.top) - i64::from(f.base)));
            put(out, zigzag(i64::from(f.nresults)));
            put(out, u64::from(f.flags));
            match f.kind {
                CallFrameKind::Lua { script, proto, yield_point, saved_pc } => {
                    put(out, 0);
                    for v in [script, proto, yield_point, saved_pc] {
                        put(out, u64::from(v));
                    }
                }
                CallFrameKind::C { role, errfunc } => {
                    put(out, u64::from(role_code(role)) + 1);
                    put(out, u64::from(errfunc));
                }
            }
        }
        if self.bytes.len() + self.scratch.len() > self.budget || self.threads.len() == self.threads.capacity() {
            // Once one layout does not fit, later ones are not kept either.
            self.full = true;
            self.scratch = Vec::new();
            return;
        }
        self.threads.push((thread, self.bytes.len() as u32));
        self.bytes.extend_from_slice(&self.scratch);
    }

    /// Thread `thread`'s kept layout, if it was kept.
    pub(crate) fn get(&self, thread: u32) -> Option<ThreadLayout> {
        let at = self.threads.binary_search_by_key(&thread, |(t, _)| *t).ok()?;
        let mut r = Reader { bytes: &self.bytes, pos: self.threads[at].1 as usize };
        let base = r.u32()?;
        let top = r.u32()?;
        let n = usize::try_from(r.next()?).ok()?;
        let mut frames = Vec::with_capacity(n.min(self.bytes.len()));
        let mut func = 0i64;
        let narrow = |v: i64| u32::try_from(v).ok();
        for _ in 0..n {
            func += r.signed()?;
            let f_base = func + r.signed()?;
            let f_top = f_base + r.signed()?;
            let nresults = i32::try_from(r.signed()?).ok()?;
            let flags = u8::try_from(r.next()?).ok()?;
            let kind = match r.next()? {
                0 => {
                    CallFrameKind::Lua { script: r.u32()?, proto: r.u32()?, yield_point: r.u32()?, saved_pc: r.u32()? }
                }
                tag => CallFrameKind::C { role: role_of(tag - 1)?, errfunc: r.u32()? },
            };
            frames.push(CallFrame {
                func: narrow(func)?,
                base: narrow(f_base)?,
                top: narrow(f_top)?,
                nresults,
                flags,
                kind,
            });
        }
        Some(ThreadLayout { frames, base, top })
    }
}

/// Reads what [`LayoutCache::keep`] wrote.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    #[inline(always)]
    fn next(&mut self) -> Option<u64> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        if b < 0x80 {
            return Some(u64::from(b));
        }
        let mut v = u64::from(b & 0x7f);
        for shift in (7..70).step_by(7) {
            let b = *self.bytes.get(self.pos)?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }

    #[inline(always)]
    fn u32(&mut self) -> Option<u32> {
        u32::try_from(self.next()?).ok()
    }

    #[inline(always)]
    fn signed(&mut self) -> Option<i64> {
        let v = self.next()?;
        Some(((v >> 1) as i64) ^ -((v & 1) as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(func: u32, base: u32, top: u32, nresults: i32, flags: u8, kind: CallFrameKind) -> CallFrame {
        CallFrame { func, base, top, nresults, flags, kind }
    }

    #[test]
    fn layouts_come_back_as_they_were_kept() {
        let roles = [
            CRole::Pcall,
            CRole::Xpcall,
            CRole::Resume,
            CRole::WrappedResume,
            CRole::Yield,
            CRole::Matcher(MatcherOp::Find),
            CRole::Matcher(MatcherOp::Match),
            CRole::Matcher(MatcherOp::Gsub),
            CRole::Matcher(MatcherOp::GmatchIterator),
        ];
        let mut frames = vec![frame(
            1,
            2,
            300,
            -1,
            1,
            CallFrameKind::Lua { script: 3, proto: 70_000, yield_point: 129, saved_pc: u32::MAX },
        )];
        for (k, role) in roles.into_iter().enumerate() {
            let func = 10 + 30 * k as u32;
            frames.push(frame(
                func,
                func + 1,
                func + 21,
                k as i32 - 1,
                0x80 | k as u8,
                CallFrameKind::C { role, errfunc: 1 },
            ));
        }
        let a = ThreadLayout { frames, base: 272, top: 400 };
        let b = ThreadLayout { frames: vec![], base: 1, top: 2 };
        let mut cache = LayoutCache::with_budget(1 << 20, 2);
        cache.keep(4, &a);
        cache.keep(9, &b);
        assert_eq!(cache.get(4), Some(a));
        assert_eq!(cache.get(9), Some(b));
        assert_eq!(cache.get(5), None);
    }

    #[test]
    fn nothing_is_kept_past_the_budget() {
        let l = ThreadLayout {
            frames: vec![frame(
                1,
                2,
                30,
                -1,
                1,
                CallFrameKind::Lua { script: 0, proto: 0, yield_point: 0, saved_pc: 0 },
            )],
            base: 2,
            top: 30,
        };
        let mut cache = LayoutCache::with_budget(40, 10);
        for t in 0..10 {
            cache.keep(t, &l);
        }
        let kept = (0..10).filter(|&t| cache.get(t).is_some()).count();
        assert!(kept > 0 && kept < 10, "{kept} of 10 kept");
        assert!(cache.bytes.len() <= 40 && cache.bytes.capacity() == 40);
        // Once one did not fit, later ones are not kept either.
        assert!(cache.get(9).is_none());
    }
}
