//! Pattern matching suspended mid-match (docs/MATCHER.md): a `string.find`, `string.match`,
//! `string.gsub` or `string.gmatch` iterator frame keeps its subject, pattern and a state buffer
//! in its slots. The state is the matcher's cursor and backtrack frames; everything in it is
//! checked against the subject and the pattern it will be read with, so that resuming reads
//! only inside both and continues a match the function could have reached:
//!
//! - slots hold what the function keeps there (strings, the state buffer, for gsub the
//!   replacement and the output buffer);
//! - the header decodes: version, phase (gsub waits for a replacement value only below the top),
//!   mode (plain search only in find), counts and lengths the function writes, unused fields 0;
//! - every pattern position is the start of a pattern element of the kind its step needs,
//!   lexed from the pattern as the matcher walks it; subject positions lie inside the subject and
//!   never go back from one frame to the next; captures open and close as the frames say;
//! - each state and output buffer belongs to this frame alone (nothing else references it), so a
//!   script cannot change a suspended match by writing a buffer it shares.

use super::frames::{CallFrameKind, ThreadLayout};
use super::{Context, obj, value_text};
use crate::bits::Marks;
use crate::contract::matcher::{self as m, word};
use crate::contract::{self, CRole, MatcherOp};
use crate::diagnostics::{Code, ObjectPath, Segment, Sink};
use crate::snapshot::*;
use std::collections::HashMap;

/// The matcher checks as the threads go by, and what they keep until every thread is seen.
pub(crate) struct Matches {
    /// (buffer object, where the frame keeps it)
    owned: Vec<(u32, ObjectPath)>,
    /// Patterns lexed once each (many suspended frames may share one long pattern).
    lexed: Lexed,
    /// Objects referenced at least once, and more than once, from every object, as the pass goes
    /// (a buffer's frame may come after its other holders), for the buffers'; empty without
    /// buffers. Two bits an object: buffers may be a snapshot's smallest objects (two bytes),
    /// and every object's bits, not only the buffers', save looking up each reference's kind.
    referenced: Option<(Marks, Marks)>,
}

impl Matches {
    pub(crate) fn new(ctx: &Context<'_>) -> Matches {
        let any = ctx.s.indices_of(ObjectKind::Buffer).next().is_some();
        Matches {
            owned: Vec::new(),
            lexed: HashMap::new(),
            referenced: any.then(|| (Marks::new(ctx.s.object_count()), Marks::new(ctx.s.object_count()))),
        }
    }

    /// Every object's references, for the buffers'.
    pub(crate) fn references(&mut self, o: &ObjectRef<'_>) {
        let Some((once, twice)) = &mut self.referenced else { return };
        o.for_each_reference(|to| {
            if !once.mark(to) {
                twice.mark(to);
            }
        });
    }

    /// The matcher frames of thread object `thread` (`t`), whose frames derived to `layout`.
    pub(crate) fn thread(
        &mut self,
        ctx: &Context<'_>,
        thread: u32,
        t: &Thread,
        layout: &ThreadLayout,
        sink: &mut Sink,
    ) {
        for (k, f) in layout.frames.iter().enumerate() {
            if let CallFrameKind::C { role: CRole::Matcher(op), .. } = f.kind {
                let path = obj(ObjectKind::Thread, thread).with(Segment::Index("frame", k as u64));
                let mut frame = MatchFrame {
                    ctx,
                    sink: &mut *sink,
                    thread,
                    t,
                    layout,
                    k,
                    op,
                    path,
                    owned: &mut self.owned,
                    lexed: &mut self.lexed,
                };
                frame.run();
            }
        }
    }

    /// Every state and output buffer is referenced once, by its frame.
    pub(crate) fn finish(self, sink: &mut Sink) {
        // Every reference to an owned buffer counts, whatever holds it (a wrongly typed holder
        // is refused by the references family as well).
        for (b, path) in self.owned {
            let (once, twice) = self.referenced.as_ref().map_or((false, false), |(o, t)| (o.get(b), t.get(b)));
            if !once || twice {
                let times = if !once { "never referenced".to_string() } else { "referenced more than once".into() };
                sink.error(
                    Code::MatcherBuffer,
                    path,
                    format!("buffer #{b} is {times}; a matching state or output buffer belongs to its frame alone"),
                );
            }
        }
    }
}

/// Lexed patterns by (the pattern string's bytes, anchor offset).
type Lexed = HashMap<(usize, usize), Marks>;

/// A pattern element, where the matcher's cursor or a backtrack frame may stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Element {
    Open,
    Close,
    EndAnchor,
    Balance,
    Frontier,
    BackReference,
    /// A single-character class with its suffix (`*`, `+`, `-`, `?` or none).
    Single(Option<u8>),
}

/// Where the class at `i` ends, as the matcher computes it; `None` where it raises an error.
fn class_end(p: &[u8], mut i: usize) -> Option<usize> {
    let c = *p.get(i)?;
    i += 1;
    match c {
        b'%' => (i < p.len()).then_some(i + 1),
        b'[' => {
            if p.get(i) == Some(&b'^') {
                i += 1;
            }
            loop {
                let d = *p.get(i)?;
                i += 1;
                if d == b'%' && i < p.len() {
                    i += 1;
                }
                if p.get(i) == Some(&b']') {
                    return Some(i + 1);
                }
            }
        }
        _ => Some(i),
    }
}

/// The element at position `i` of pattern `p` and the position after it, as the matcher steps
/// from `i`; `None` where it raises an error.
fn element_at(p: &[u8], i: usize) -> Option<(Element, usize)> {
    Some(match (*p.get(i)?, p.get(i + 1).copied()) {
        (b'(', Some(b')')) => (Element::Open, i + 2),
        (b'(', _) => (Element::Open, i + 1),
        (b')', _) => (Element::Close, i + 1),
        (b'$', None) => (Element::EndAnchor, i + 1),
        (b'%', Some(b'b')) if i + 3 < p.len() => (Element::Balance, i + 4),
        (b'%', Some(b'b')) => return None,
        (b'%', Some(b'f')) if p.get(i + 2) == Some(&b'[') => (Element::Frontier, class_end(p, i + 2)?),
        (b'%', Some(b'f')) => return None,
        (b'%', Some(d)) if d.is_ascii_digit() => (Element::BackReference, i + 2),
        _ => {
            let e = class_end(p, i)?;
            match p.get(e).copied() {
                Some(s @ (b'*' | b'+' | b'-' | b'?')) => (Element::Single(Some(s)), e + 1),
                _ => (Element::Single(None), e),
            }
        }
    })
}

/// Where the pattern's elements start from `from` (after an anchoring `^`), up to the first
/// malformed one (the matcher raises an error there, so no cursor can stand past it): a bit per
/// pattern byte, as a long pattern is the attacker's (a list of elements would take sixteen
/// bytes per byte of it). What stands at a start is [`element_at`] it.
fn element_starts(p: &[u8], from: usize) -> Marks {
    let mut starts = Marks::new(p.len());
    let mut i = from;
    while let Some((_, next)) = element_at(p, i) {
        starts.mark(i as u32);
        i = next;
    }
    starts
}

fn string<'a>(s: &'a SnapshotView, v: Option<&Value>) -> Option<&'a [u8]> {
    match v? {
        Value::Object(o) => s.string(*o),
        _ => None,
    }
}

fn buffer<'a>(s: &'a SnapshotView, v: Option<&Value>) -> Option<(u32, &'a [u8])> {
    match v? {
        Value::Object(o) if s.kind(*o) == Some(ObjectKind::Buffer) => match s.object(*o)? {
            ObjectRef::Buffer(b) => Some((*o, b)),
            _ => None,
        },
        _ => None,
    }
}

struct MatchFrame<'c, 'a> {
    ctx: &'c Context<'a>,
    sink: &'c mut Sink,
    thread: u32,
    t: &'c Thread,
    layout: &'c ThreadLayout,
    k: usize,
    op: MatcherOp,
    path: ObjectPath,
    owned: &'c mut Vec<(u32, ObjectPath)>,
    lexed: &'c mut Lexed,
}

/// A decoded state.
struct State {
    h: [u32; m::HEADER_WORDS],
    frames: Vec<[u32; m::FRAME_WORDS]>,
}

impl<'c> MatchFrame<'c, '_> {
    fn slot(&self, j: u32) -> Option<&'c Value> {
        self.t.stack.get((self.layout.frames[self.k].base + j) as usize)
    }

    fn slot_path(&self, j: u32) -> ObjectPath {
        let at = u64::from(self.layout.frames[self.k].base + j);
        obj(ObjectKind::Thread, self.thread).with(Segment::Index("stack slot", at))
    }

    fn refuse<T>(&mut self, code: Code, path: ObjectPath, message: String) -> Option<T> {
        self.sink.error(code, path, format!("{} suspended mid-match: {message}", self.op.name()));
        None
    }

    fn run(&mut self) -> Option<()> {
        let s = self.ctx.s;
        let is_top = self.k + 1 == self.layout.frames.len();
        // Subject and pattern: slots 0 and 1, or the iterator's first two upvalues.
        let (subject, pattern, gmatch_position) = if self.op == MatcherOp::GmatchIterator {
            let func = self.t.stack.get(self.layout.frames[self.k].func as usize);
            let ups = match func {
                Some(Value::Object(o)) if s.kind(*o) == Some(ObjectKind::CClosure) => match s.object(*o) {
                    Some(ObjectRef::CClosure(c)) if c.upvalues.len() == 3 => Some(c.upvalues),
                    _ => None,
                },
                _ => None,
            };
            let Some(ups) = ups else {
                return self.refuse(
                    Code::MatcherSlots,
                    self.path.clone().with(Segment::Field("function slot")),
                    format!(
                        "the iterator must be a {} closure with its subject, pattern and position",
                        contract::GMATCH_ITERATOR
                    ),
                );
            };
            let position = match ups[2] {
                Value::Number(n) if n.fract() == 0.0 && n >= 0.0 => n as u64,
                _ => u64::MAX,
            };
            (string(s, ups.first()), string(s, ups.get(1)), Some(position))
        } else {
            (string(s, self.slot(0)), string(s, self.slot(1)), None)
        };
        let (Some(subject), Some(pattern)) = (subject, pattern) else {
            return self.refuse(
                Code::MatcherSlots,
                self.path.clone(),
                "its subject and pattern must be strings (slots 1 and 2, or the iterator's first two upvalues)".into(),
            );
        };
        let state_slot = match self.op {
            MatcherOp::Find | MatcherOp::Match => 2,
            MatcherOp::Gsub => 3,
            MatcherOp::GmatchIterator => 0,
        };
        let Some((state_obj, bytes)) = buffer(s, self.slot(state_slot)) else {
            let held = self.slot(state_slot).map_or("nothing".into(), value_text);
            return self.refuse(
                Code::MatcherSlots,
                self.slot_path(state_slot),
                format!("the matching state is a buffer in this slot; it holds {held}"),
            );
        };
        self.owned.push((state_obj, self.slot_path(state_slot)));
        let mut out_len_cap = 0u64;
        if self.op == MatcherOp::Gsub {
            let repl = self.slot(2);
            let ok = match repl {
                Some(Value::Number(_)) => true,
                Some(Value::Permanent(p)) => {
                    matches!(self.ctx.permanent_kind(*p), Some(Some(crate::PermanentKind::Function)) | Some(None))
                }
                Some(Value::Object(o)) => matches!(
                    s.kind(*o),
                    Some(ObjectKind::String | ObjectKind::Table | ObjectKind::LuaClosure | ObjectKind::CClosure)
                ),
                _ => false,
            };
            if !ok {
                let held = repl.map_or("nothing".into(), value_text);
                return self.refuse(
                    Code::MatcherSlots,
                    self.slot_path(2),
                    format!("the replacement is a string, number, table or function; this one is {held}"),
                );
            }
            let Some((out_obj, out)) = buffer(s, self.slot(4)) else {
                let held = self.slot(4).map_or("nothing".into(), value_text);
                return self.refuse(
                    Code::MatcherSlots,
                    self.slot_path(4),
                    format!("gsub's output so far is a buffer in this slot; it holds {held}"),
                );
            };
            self.owned.push((out_obj, self.slot_path(4)));
            if out.len() as u64 > u64::from(m::MAX_OUTPUT) {
                return self.refuse(
                    Code::MatcherSlots,
                    self.slot_path(4),
                    format!(
                        "an output buffer of {} bytes; gsub's output stays below {} bytes",
                        out.len(),
                        m::MAX_OUTPUT
                    ),
                );
            }
            out_len_cap = out.len() as u64;
            // Waiting for a replacement function: the callee is the replacement itself.
            if !is_top && let (Some(Value::Object(o)), Some(callee)) = (repl, self.slot(m::slots(self.op))) {
                let is_fn = matches!(s.kind(*o), Some(ObjectKind::LuaClosure | ObjectKind::CClosure));
                if is_fn && callee != repl.unwrap_or(&Value::Nil) {
                    return self.refuse(
                        Code::MatcherState,
                        self.slot_path(m::slots(self.op)),
                        "gsub waits for the replacement function it called, which must be its replacement".into(),
                    );
                }
            }
        }
        let state = self.decode(bytes, state_slot)?;
        let at = self.slot_path(state_slot);
        let anchor = usize::from(self.op != MatcherOp::GmatchIterator && pattern.first() == Some(&b'^'));
        let elements =
            self.lexed.entry((pattern.as_ptr() as usize, anchor)).or_insert_with(|| element_starts(pattern, anchor));
        let message =
            Rules { subject, pattern, elements, op: self.op, is_top, out_len_cap, gmatch_position }.check(&state);
        if let Err(why) = message {
            return self.refuse(Code::MatcherState, at, why);
        }
        Some(())
    }

    fn decode(&mut self, bytes: &[u8], state_slot: u32) -> Option<State> {
        let word_at =
            |i: usize| u32::from_le_bytes([bytes[4 * i], bytes[4 * i + 1], bytes[4 * i + 2], bytes[4 * i + 3]]);
        let header_len = 4 * m::HEADER_WORDS;
        if bytes.len() < header_len || bytes.len() % (4 * m::FRAME_WORDS) != header_len % (4 * m::FRAME_WORDS) {
            return self.refuse(
                Code::MatcherState,
                self.slot_path(state_slot),
                format!("a state of {} bytes; it is a {header_len}-byte header and 16-byte frames", bytes.len()),
            );
        }
        let mut h = [0u32; m::HEADER_WORDS];
        for (i, w) in h.iter_mut().enumerate() {
            *w = word_at(i);
        }
        let n = (bytes.len() - header_len) / (4 * m::FRAME_WORDS);
        if h[word::VERSION] != m::VERSION || h[word::FRAMES] as usize != n || n > m::MAX_FRAMES {
            return self.refuse(
                Code::MatcherState,
                self.slot_path(state_slot),
                format!(
                    "state version {} with {} frames in {n} frames' bytes; this runtime writes version {} with at most {} frames",
                    h[word::VERSION],
                    h[word::FRAMES],
                    m::VERSION,
                    m::MAX_FRAMES
                ),
            );
        }
        let frames = (0..n)
            .map(|f| {
                let first = m::HEADER_WORDS + f * m::FRAME_WORDS;
                [word_at(first), word_at(first + 1), word_at(first + 2), word_at(first + 3)]
            })
            .collect();
        Some(State { h, frames })
    }
}

/// The state rules, given the strings the state will be read with.
struct Rules<'a> {
    subject: &'a [u8],
    pattern: &'a [u8],
    op: MatcherOp,
    is_top: bool,
    out_len_cap: u64,
    gmatch_position: Option<u64>,
    /// Where the pattern's elements start, from its anchor on.
    elements: &'a Marks,
}

impl Rules<'_> {
    fn check(&self, st: &State) -> Result<(), String> {
        let h = &st.h;
        let slen = self.subject.len() as u64;
        let (phase, mode) = (h[word::PHASE], h[word::MODE]);
        let (sp, pp, a, b) = (u64::from(h[word::SP]), h[word::PP] as usize, u64::from(h[word::A]), h[word::B]);
        let (start, end, count) = (u64::from(h[word::START]), u64::from(h[word::END]), h[word::COUNT]);
        let limit = h[word::LIMIT] as i32;
        let out_len = u64::from(h[word::OUT_LEN]);
        let gsub = self.op == MatcherOp::Gsub;

        // The operation's loop.
        let want_phase = if self.is_top { m::PHASE_MATCHING } else { m::PHASE_CALLBACK };
        if phase != want_phase {
            return Err(format!(
                "phase {phase}; {}",
                if self.is_top {
                    "a frame on top is matching (phase 0)"
                } else {
                    "gsub below the top waits for its replacement value (phase 1)"
                }
            ));
        }
        if start > slen {
            return Err(format!("the attempt starts at {start}, past the subject's {slen} bytes"));
        }
        if let Some(position) = self.gmatch_position
            && start < position
        {
            return Err(format!("the attempt starts at {start}, before the iterator's position {position}"));
        }
        if gsub {
            if out_len > self.out_len_cap {
                return Err(format!("{out_len} bytes of output in a buffer of {}", self.out_len_cap));
            }
            let counted_ok = if phase == m::PHASE_CALLBACK {
                count >= 1 && i64::from(count) <= i64::from(limit)
            } else {
                limit >= 1 && i64::from(count) < i64::from(limit)
            };
            if !counted_ok {
                return Err(format!("{count} replacements made of {limit} allowed, where gsub goes on matching"));
            }
            if phase == m::PHASE_CALLBACK {
                if !(start <= end && end <= slen) {
                    return Err(format!("the match being replaced is [{start}, {end}), not inside the subject"));
                }
                if mode != m::MODE_MATCH || sp != 0 || pp != 0 || a != 0 || b != 0 || !st.frames.is_empty() {
                    return Err("waiting for a replacement value, the cursor and frames are cleared".into());
                }
                return Ok(());
            }
            if end != 0 {
                return Err(format!("end {end}: only gsub waiting for a replacement value has a match end"));
            }
        } else if end != 0 || count != 0 || limit != 0 || out_len != 0 {
            return Err("end, count, limit and output length belong to gsub and are 0 here".into());
        }

        // The cursor.
        if mode == m::MODE_PLAIN {
            if self.op != MatcherOp::Find || !st.frames.is_empty() || pp != 0 || a != 0 || b != 0 {
                return Err("a plain search is string.find's, with no frames and only a subject position".into());
            }
            if sp > slen || sp < start {
                return Err(format!("plain search at {sp}, outside [{start}, {slen}]"));
            }
            return Ok(());
        }
        if mode == m::MODE_FAIL {
            if sp != 0 || pp != 0 || a != 0 || b != 0 {
                return Err("a failing cursor keeps no positions (they are 0)".into());
            }
        } else if mode > m::MODE_PLAIN {
            return Err(format!("mode {mode} is not one the matcher has"));
        }
        let element_at = |i: usize| {
            let start = u32::try_from(i).is_ok_and(|i| self.elements.get(i));
            start.then(|| element_at(self.pattern, i).map(|(e, _)| e)).flatten()
        };

        // Frames, bottom up, re-deriving the captures.
        let mut floor = start;
        let mut last_pp: Option<usize> = None;
        let mut captures: Vec<bool> = Vec::new(); // unfinished?
        for (n, f) in st.frames.iter().enumerate() {
            let [kind, fs, fpp, aux] = *f;
            let (fs, fpp, aux) = (u64::from(fs), fpp as usize, u64::from(aux));
            let bad = |why: &str| Err(format!("backtrack frame {n}: {why}"));
            if fs < floor || fs > slen {
                return bad(&format!("subject position {fs} outside [{floor}, {slen}] (frames never go back)"));
            }
            if last_pp.is_some_and(|l| fpp <= l) {
                return bad(&format!("pattern position {fpp} not after the frame below it"));
            }
            last_pp = Some(fpp);
            let element = element_at(fpp);
            let (fits, reach) = match kind {
                m::FRAME_OPEN => (element == Some(Element::Open), fs),
                m::FRAME_CLOSE => (element == Some(Element::Close), fs),
                m::FRAME_OPTIONAL => (element == Some(Element::Single(Some(b'?'))) && fs < slen, fs + 1),
                m::FRAME_MAX_EXPAND => {
                    (matches!(element, Some(Element::Single(Some(b'*' | b'+')))) && fs + aux <= slen, fs + aux)
                }
                m::FRAME_MIN_EXPAND => (element == Some(Element::Single(Some(b'-'))), fs),
                other => return bad(&format!("kind {other} is not a frame kind")),
            };
            if !fits {
                return bad(&format!(
                    "a frame of kind {kind} at pattern position {fpp} ({}) and subject position {fs}",
                    element.map_or("not the start of a pattern element".into(), |e| format!("{e:?}")),
                ));
            }
            if aux != 0 && kind != m::FRAME_MAX_EXPAND {
                return bad("only a greedy repetition counts (its last word); here it is 0");
            }
            match kind {
                m::FRAME_OPEN => {
                    if captures.len() >= m::MAX_CAPTURES {
                        return bad(&format!("more than {} captures", m::MAX_CAPTURES));
                    }
                    captures.push(self.pattern.get(fpp + 1) != Some(&b')'));
                }
                m::FRAME_CLOSE => match captures.iter().rposition(|unfinished| *unfinished) {
                    Some(c) => captures[c] = false,
                    None => return bad("closes a capture, but none is open"),
                },
                _ => {}
            }
            floor = reach;
        }
        if mode == m::MODE_FAIL {
            return Ok(());
        }
        if sp < floor || sp > slen {
            return Err(format!("the cursor's subject position {sp} is outside [{floor}, {slen}]"));
        }
        if last_pp.is_some_and(|l| pp <= l) {
            return Err(format!("the cursor's pattern position {pp} is not after the last frame's"));
        }
        let element = element_at(pp);
        match mode {
            m::MODE_MATCH => {
                if a != 0 || b != 0 {
                    return Err("matching an element keeps no count (a and b are 0)".into());
                }
                if element.is_none() && pp != self.pattern.len() {
                    return Err(format!("the cursor's pattern position {pp} is not the start of a pattern element"));
                }
            }
            m::MODE_COUNT
                if (!matches!(element, Some(Element::Single(Some(b'*' | b'+')))) || b != 0 || sp + a > slen) =>
            {
                return Err(format!(
                    "counting {a} repetitions from {sp} at pattern position {pp}: needs a `*` or `+` element there and the run inside the subject"
                ));
            }
            m::MODE_BALANCE => {
                let opens = self.pattern.get(pp + 2).copied();
                let balanced = element == Some(Element::Balance)
                    && sp < slen
                    && self.subject.get(sp as usize).copied() == opens
                    && (sp..slen).contains(&a)
                    && b >= 1
                    && u64::from(b) <= a - sp + 1;
                if !balanced {
                    return Err(format!(
                        "a balance scan from {sp} to {a} at depth {b}: needs `%b` at pattern position {pp}, its opening character at {sp}, and the scan inside the subject"
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Element, element_at, element_starts};

    /// The elements from `from`, by position.
    fn elements(p: &[u8], from: usize) -> Vec<(usize, Element)> {
        let starts = element_starts(p, from);
        (0..p.len()).filter(|&i| starts.get(i as u32)).filter_map(|i| Some((i, element_at(p, i)?.0))).collect()
    }

    #[test]
    fn elements_start_where_the_matcher_steps() {
        // Worked by hand from lstrlib's grammar: `%b()` takes four bytes, a class with a suffix
        // takes the suffix, `[a-]` ends at its `]`, `()` is one position capture.
        let p = b"%b()x*[a-]?(%d+)()$";
        let got = elements(p, 0);
        let want = vec![
            (0, Element::Balance),
            (4, Element::Single(Some(b'*'))),
            (6, Element::Single(Some(b'?'))),
            (11, Element::Open),
            (12, Element::Single(Some(b'+'))),
            (15, Element::Close),
            (16, Element::Open),
            (18, Element::EndAnchor),
        ];
        assert_eq!(got, want);
        // After an anchor; a frontier set; `$` not at the end is a plain character.
        assert_eq!(
            elements(b"^%f[%w]x$y", 1),
            vec![
                (1, Element::Frontier),
                (7, Element::Single(None)),
                (8, Element::Single(None)),
                (9, Element::Single(None))
            ]
        );
        // Lexing stops at the first malformed element: the matcher raises an error there.
        assert_eq!(elements(b"a[b", 0), vec![(0, Element::Single(None))]);
        assert_eq!(elements(b"x%", 0), vec![(0, Element::Single(None))]);
        assert_eq!(elements(b"%bx", 0), vec![]);
        assert_eq!(elements(b"%1%f", 0), vec![(0, Element::BackReference)]);
    }
}
