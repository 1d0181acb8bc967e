//! The binary form of a [`Snapshot`], specified in `docs/FORMAT.md`.
//!
//! Canonical: one model has one encoding (shortest varints, booleans 0/1, no unknown flag bits,
//! sections in a fixed order), so equal models encode to equal bytes and `encode(decode(b)) == b`
//! for every `b` that decodes. Decoding is bounded and iterative: every count and length is
//! checked against the remaining input and the [`Limits`] before anything is allocated, values
//! are flat (objects refer to each other by index), and no recursion depth depends on the input.

use super::*;
use crate::diagnostics::{Code, Diagnostic, ObjectPath, Segment, Severity};
use crate::limits::Limits;

pub const MAGIC: &[u8; 8] = b"AMBRSNAP";
pub const FORMAT_VERSION: u64 = 5;

const SECTION_HEADER: u8 = 1;
const SECTION_SCRIPTS: u8 = 2;
const SECTION_PERMANENTS: u8 = 3;
const SECTION_OBJECTS: u8 = 4;
const SECTION_ROOTS: u8 = 5;

pub(crate) mod tag {
    pub const NIL: u8 = 0;
    pub const FALSE: u8 = 1;
    pub const TRUE: u8 = 2;
    pub const NUMBER: u8 = 3;
    pub const VECTOR: u8 = 4;
    pub const ITER_POSITION: u8 = 5;
    pub const OBJECT: u8 = 6;
    pub const PERMANENT: u8 = 7;
    pub const LIGHT_USERDATA: u8 = 8;
    /// An integral number of magnitude below 2^53 (not -0): zigzag varint.
    pub const INTEGER: u8 = 9;
    /// The object after the last object reference of this object (after the object itself
    /// for its first reference).
    pub const NEXT_OBJECT: u8 = 10;
    /// In an array part: the previous value plus the difference of the two before (numbers).
    pub const STEP: u8 = 11;

    pub const O_STRING: u8 = 1;
    pub const O_TABLE: u8 = 2;
    pub const O_LUA_CLOSURE: u8 = 3;
    pub const O_C_CLOSURE: u8 = 4;
    pub const O_UPVALUE: u8 = 5;
    pub const O_THREAD: u8 = 6;
    pub const O_USERDATA: u8 = 7;
    pub const O_BUFFER: u8 = 8;
}

const TABLE_READONLY: u8 = 1;
const TABLE_SAFEENV: u8 = 2;
pub(crate) const TABLE_HAS_METATABLE: u8 = 4;
pub(crate) const TABLE_HAS_NODE_MAP: u8 = 8;

// ---------------------------------------------------------------------------------------------
// Encoding

struct Writer {
    out: Vec<u8>,
    /// The last object reference written in this object (NEXT_OBJECT follows it); outside the
    /// objects section, the last one of the section.
    last_object: Option<u32>,
    /// The last upvalue index of this Luau closure (the next is a delta).
    last_upvalue: u32,
}

/// The integer an integral number encodes as, if it does: magnitude below 2^53, not -0.
fn as_integer(n: f64) -> Option<i64> {
    const LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53
    (n.fract() == 0.0 && n.abs() < LIMIT && !(n == 0.0 && n.is_sign_negative())).then_some(n as i64)
}

fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag64(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// The value a STEP at this point of an array stands for: the previous two are numbers and the
/// next in their arithmetic progression is exact.
fn step_of(before: &[Value]) -> Option<f64> {
    match before {
        [.., Value::Number(a), Value::Number(b)] => Some(b + (b - a)),
        _ => None,
    }
}

impl Writer {
    fn u8(&mut self, v: u8) {
        self.out.push(v);
    }
    fn varint(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.out.push(byte);
                return;
            }
            self.out.push(byte | 0x80);
        }
    }
    fn len(&mut self, n: usize) {
        self.varint(n as u64);
    }
    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.out.extend_from_slice(b);
    }
    fn value(&mut self, v: &Value) {
        match *v {
            Value::Nil => self.u8(tag::NIL),
            Value::Boolean(false) => self.u8(tag::FALSE),
            Value::Boolean(true) => self.u8(tag::TRUE),
            Value::Number(n) => match as_integer(n) {
                Some(i) => {
                    self.u8(tag::INTEGER);
                    self.varint(zigzag64(i));
                }
                None => {
                    self.u8(tag::NUMBER);
                    self.out.extend_from_slice(&n.to_le_bytes());
                }
            },
            Value::Vector(v) => {
                self.u8(tag::VECTOR);
                for c in v {
                    self.out.extend_from_slice(&c.to_le_bytes());
                }
            }
            Value::IterPosition(p) => {
                self.u8(tag::ITER_POSITION);
                self.varint(u64::from(p));
            }
            Value::Object(i) => {
                if self.last_object.map_or(i == 0, |last| last.checked_add(1) == Some(i)) {
                    self.u8(tag::NEXT_OBJECT);
                } else {
                    self.u8(tag::OBJECT);
                    self.varint(u64::from(i));
                }
                self.last_object = Some(i);
            }
            Value::Permanent(i) => {
                self.u8(tag::PERMANENT);
                self.varint(u64::from(i));
            }
            Value::LightUserdata { tag: t, bits } => {
                self.u8(tag::LIGHT_USERDATA);
                self.u8(t);
                self.out.extend_from_slice(&bits.to_le_bytes());
            }
        }
    }
    fn opt_value(&mut self, v: &Option<Value>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.value(v);
            }
        }
    }
    /// An array part: STEP wherever the previous two numbers continue exactly.
    fn array(&mut self, values: &[Value]) {
        self.len(values.len());
        for (k, v) in values.iter().enumerate() {
            match (v, step_of(&values[..k])) {
                (Value::Number(n), Some(s)) if s.to_bits() == n.to_bits() => self.u8(tag::STEP),
                _ => self.value(v),
            }
        }
    }
    /// Writes a section; returns where its body starts.
    fn section(&mut self, id: u8, body: impl FnOnce(&mut Writer)) -> usize {
        let mut inner = Writer { out: Vec::new(), last_object: None, last_upvalue: 0 };
        body(&mut inner);
        self.u8(id);
        self.len(inner.out.len());
        let start = self.out.len();
        self.out.extend_from_slice(&inner.out);
        start
    }
}

/// Where each part of an encoded snapshot lies, as byte ranges of the encoding. The format is
/// canonical, so for bytes that decode these are the ranges in those bytes too: reports use
/// them to point a finding about an object at its exact bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spans {
    /// Each section's body (after its id and length), by section name.
    pub sections: Vec<(&'static str, std::ops::Range<usize>)>,
    pub scripts: Vec<std::ops::Range<usize>>,
    pub permanents: Vec<std::ops::Range<usize>>,
    pub objects: Vec<std::ops::Range<usize>>,
}

impl Spans {
    pub fn section(&self, name: &str) -> Option<std::ops::Range<usize>> {
        self.sections.iter().find(|(n, _)| *n == name).map(|(_, r)| r.clone())
    }
}

/// Encodes a snapshot. Infallible: every model has exactly one encoding.
pub fn encode(s: &Snapshot) -> Vec<u8> {
    encode_recording(s, None)
}

/// [`encode`], and where each section, script, permanent and object lies in the result.
pub fn encode_with_spans(s: &Snapshot) -> (Vec<u8>, Spans) {
    let mut spans = Spans::default();
    let bytes = encode_recording(s, Some(&mut spans));
    (bytes, spans)
}

/// The part a span records: a section body's inner range is shifted to absolute offsets once
/// its length prefix is written.
fn encode_recording(s: &Snapshot, mut spans: Option<&mut Spans>) -> Vec<u8> {
    let mut w = Writer { out: Vec::new(), last_object: None, last_upvalue: 0 };
    w.out.extend_from_slice(MAGIC);
    w.varint(FORMAT_VERSION);
    // Inner ranges (relative to a section's body), made absolute after each section.
    let mut inner: Vec<std::ops::Range<usize>> = Vec::new();
    let recording = spans.is_some();
    let record = |w: &Writer, from: usize, inner: &mut Vec<std::ops::Range<usize>>| {
        if recording {
            inner.push(from..w.out.len());
        }
    };
    let mut placed = |name: &'static str, start: usize, end: usize, inner: &mut Vec<std::ops::Range<usize>>| {
        let shifted: Vec<_> = inner.drain(..).map(|r| r.start + start..r.end + start).collect();
        if let Some(sp) = spans.as_deref_mut() {
            sp.sections.push((name, start..end));
            match name {
                "scripts" => sp.scripts = shifted,
                "permanents" => sp.permanents = shifted,
                "objects" => sp.objects = shifted,
                _ => {}
            }
        }
    };
    let start = w.section(SECTION_HEADER, |w| {
        let h = &s.header;
        w.bytes(h.luau_version.as_bytes());
        w.u8(h.compiler.optimization_level);
        w.u8(h.compiler.debug_level);
        w.len(h.enabled_flags.len());
        for f in &h.enabled_flags {
            w.bytes(f.as_bytes());
        }
        w.out.extend_from_slice(&h.permanents_digest);
    });
    placed("header", start, w.out.len(), &mut inner);
    let start = w.section(SECTION_SCRIPTS, |w| {
        w.len(s.scripts.len());
        for script in &s.scripts {
            let from = w.out.len();
            w.out.extend_from_slice(&script.hash.0);
            w.bytes(script.chunk_name.as_bytes());
            match &script.source {
                None => w.u8(0),
                Some(src) => {
                    w.u8(1);
                    w.bytes(src);
                }
            }
            w.len(script.signatures.len());
            for p in &script.signatures {
                w.varint(u64::from(p.proto));
                w.out.extend_from_slice(&p.signature.to_le_bytes());
            }
            record(w, from, &mut inner);
        }
    });
    placed("scripts", start, w.out.len(), &mut inner);
    let start = w.section(SECTION_PERMANENTS, |w| {
        w.len(s.permanents.len());
        for p in &s.permanents {
            let from = w.out.len();
            w.bytes(p.as_bytes());
            record(w, from, &mut inner);
        }
    });
    placed("permanents", start, w.out.len(), &mut inner);
    let start = w.section(SECTION_OBJECTS, |w| {
        w.len(s.objects.len());
        for (i, o) in s.objects.iter().enumerate() {
            let from = w.out.len();
            // Each object's stateful forms start from the object itself, so that any one object
            // decodes on its own from its offset (the validator keeps nothing else per object).
            w.last_object = Some(i as u32);
            w.last_upvalue = i as u32;
            encode_object(w, o);
            record(w, from, &mut inner);
        }
    });
    placed("objects", start, w.out.len(), &mut inner);
    let start = w.section(SECTION_ROOTS, |w| {
        w.varint(u64::from(s.roots.main_thread));
        w.out.extend_from_slice(&s.roots.random_state.to_le_bytes());
        w.len(s.roots.globals_layout.len());
        for n in &s.roots.globals_layout {
            match n {
                None => w.u8(0),
                Some(name) => {
                    w.u8(1);
                    w.bytes(name);
                }
            }
        }
    });
    placed("roots", start, w.out.len(), &mut inner);
    w.out
}

fn zigzag(v: i32) -> u64 {
    u64::from(((v << 1) ^ (v >> 31)) as u32)
}

fn unzigzag(v: u32) -> i32 {
    ((v >> 1) as i32) ^ -((v & 1) as i32)
}

fn encode_object(w: &mut Writer, o: &Object) {
    match o {
        Object::String(b) => {
            w.u8(tag::O_STRING);
            w.bytes(b);
        }
        Object::Table(t) => {
            w.u8(tag::O_TABLE);
            let flags = if t.readonly { TABLE_READONLY } else { 0 }
                | if t.safeenv { TABLE_SAFEENV } else { 0 }
                | if t.metatable.is_some() { TABLE_HAS_METATABLE } else { 0 }
                | if t.node_of.is_some() { TABLE_HAS_NODE_MAP } else { 0 };
            w.u8(flags);
            if let Some(m) = &t.metatable {
                w.value(m);
            }
            // Zigzag, so the common small negatives stay one byte.
            w.varint(zigzag(t.insert_hint));
            w.array(&t.array);
            w.len(t.hash.len());
            for node in &t.hash {
                match node {
                    None => w.u8(0),
                    Some((k, v)) => {
                        w.u8(1);
                        w.value(k);
                        w.value(v);
                    }
                }
            }
            if let Some(map) = &t.node_of {
                // One per hash entry (the count is the hash size): node + 1, 0 for an empty position.
                for &n in map {
                    w.varint(if n == u32::MAX { 0 } else { u64::from(n) + 1 });
                }
            }
        }
        Object::LuaClosure(c) => {
            w.u8(tag::O_LUA_CLOSURE);
            w.varint(u64::from(c.script));
            w.varint(u64::from(c.proto));
            w.value(&c.env.value());
            w.len(c.upvalues.len());
            for &u in &c.upvalues {
                // Closures made together share or neighbour their upvalues: a delta is short.
                w.varint(zigzag64(i64::from(u) - i64::from(w.last_upvalue)));
                w.last_upvalue = u;
            }
        }
        Object::CClosure(c) => {
            w.u8(tag::O_C_CLOSURE);
            w.varint(u64::from(c.function));
            w.value(&c.env.value());
            w.len(c.upvalues.len());
            for u in &c.upvalues {
                w.value(u);
            }
        }
        Object::Upvalue(u) => {
            w.u8(tag::O_UPVALUE);
            match u {
                Upvalue::Closed(v) => {
                    w.u8(0);
                    w.value(v);
                }
                Upvalue::Open { thread, slot } => {
                    w.u8(1);
                    w.varint(u64::from(*thread));
                    w.varint(u64::from(*slot));
                }
            }
        }
        Object::Thread(t) => {
            w.u8(tag::O_THREAD);
            w.u8(t.status.code());
            w.value(&t.globals);
            match t.namecall {
                None => w.u8(0),
                Some(n) => {
                    w.u8(1);
                    w.varint(u64::from(n));
                }
            }
            w.opt_value(&t.error);
            w.len(t.stack.len());
            for v in &t.stack {
                w.value(v);
            }
            w.len(t.frames.len());
            for f in &t.frames {
                match *f {
                    Frame::Lua { yield_point, varargs } => {
                        w.u8(0);
                        w.varint(u64::from(yield_point));
                        w.varint(u64::from(varargs));
                    }
                    Frame::C => w.u8(1),
                }
            }
            w.len(t.open_upvalues.len());
            for u in &t.open_upvalues {
                w.varint(u64::from(*u));
            }
        }
        Object::Userdata(u) => {
            w.u8(tag::O_USERDATA);
            match &u.kind {
                UserdataKind::Proxy => w.u8(0),
                UserdataKind::Codec { tag: t, codec, payload } => {
                    w.u8(1);
                    w.u8(*t);
                    w.bytes(codec.as_bytes());
                    w.bytes(payload);
                }
            }
            w.opt_value(&u.metatable);
        }
        Object::Buffer(b) => {
            w.u8(tag::O_BUFFER);
            w.bytes(b);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// A decoding failure: always fatal (the rest of the input cannot be trusted to line up).
pub type DecodeError = Box<Diagnostic>;

#[derive(Clone)]
pub(crate) struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
    /// Where `data` begins in the snapshot (a decoder over the objects' bytes alone reports
    /// offsets into the whole input).
    origin: usize,
    limits: &'a Limits,
    /// Where we are, for messages; turned into an [`ObjectPath`] only when something fails.
    context: Option<Segment>,
    /// The object being read (its tag byte and index): the context of a failure inside it, named
    /// only when there is one.
    object: Option<(u8, u32)>,
    /// The last object reference read in this object (NEXT_OBJECT follows it), or in this
    /// section outside the objects.
    last_object: Option<u32>,
    /// The last upvalue index of this Luau closure.
    last_upvalue: u32,
}

/// Minimum encoded sizes, used to refuse counts the remaining input cannot hold.
const MIN_VALUE: usize = 1;
const MIN_OBJECT: usize = 2;
const MIN_SCRIPT: usize = 32 + 1 + 1 + 1;
const MIN_NAME: usize = 1;
const MIN_FRAME: usize = 1;
const MIN_SIGNATURE: usize = 1 + 8;
const MIN_NODE: usize = 1;

impl<'a> Decoder<'a> {
    fn fail(&self, code: Code, message: impl Into<String>) -> DecodeError {
        let mut path = ObjectPath::new();
        if let Some((t, index)) = self.object {
            path = path.with(Segment::Object { kind: object_name(t), index });
        } else if let Some(segment) = &self.context {
            path = path.with(segment.clone());
        }
        let path = path.with(Segment::Offset(self.origin + self.pos));
        Box::new(Diagnostic { code, severity: Severity::Error, path, message: message.into() })
    }

    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    #[inline]
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(self.truncated(n, what));
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Kept out of line: the reads above run for every byte and must stay small.
    #[cold]
    #[inline(never)]
    fn truncated(&self, n: usize, what: &str) -> DecodeError {
        self.fail(
            Code::Truncated,
            format!("input ends inside {what} ({} bytes needed, {} remain)", n, self.remaining()),
        )
    }

    /// The next byte, without reading it.
    fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    #[inline]
    fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        match self.data.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.truncated(1, what)),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    #[inline]
    fn varint(&mut self, what: &str) -> Result<u64, DecodeError> {
        // Most varints are one byte (small counts, indices, deltas).
        if let Some(&b) = self.data.get(self.pos)
            && b < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        self.varint_long(what)
    }

    #[inline]
    fn varint_long(&mut self, what: &str) -> Result<u64, DecodeError> {
        // Two and three bytes (indices and deltas into a large state) without the loop.
        if let Some(&[b0, b1, ref rest @ ..]) = self.data.get(self.pos..)
            && b0 >= 0x80
        {
            if b1 < 0x80 && b1 != 0 {
                self.pos += 2;
                return Ok(u64::from(b0 & 0x7f) | u64::from(b1) << 7);
            }
            if let Some(&b2) = rest.first()
                && b1 >= 0x80
                && b2 < 0x80
                && b2 != 0
            {
                self.pos += 3;
                return Ok(u64::from(b0 & 0x7f) | u64::from(b1 & 0x7f) << 7 | u64::from(b2) << 14);
            }
        }
        self.varint_loop(what)
    }

    #[inline(never)]
    fn varint_loop(&mut self, what: &str) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut result: u64 = 0;
        let mut shift = 0u32;
        loop {
            let byte = self.u8(what)?;
            let payload = u64::from(byte & 0x7f);
            if shift == 63 && payload > 1 || shift > 63 {
                self.pos = start;
                return Err(self.fail(Code::BadVarint, format!("{what}: integer does not fit in 64 bits")));
            }
            result |= payload << shift;
            if byte & 0x80 == 0 {
                if byte == 0 && shift > 0 {
                    self.pos = start;
                    return Err(self.fail(Code::BadVarint, format!("{what}: integer is not in its shortest form")));
                }
                return Ok(result);
            }
            shift += 7;
        }
    }

    #[inline(always)]
    pub(crate) fn u32v(&mut self, what: &str) -> Result<u32, DecodeError> {
        let start = self.pos;
        let v = self.varint(what)?;
        match u32::try_from(v) {
            Ok(v) => Ok(v),
            Err(_) => Err(self.refuse_at(start, Code::BadVarint, format_args!("{what}: {v} does not fit in 32 bits"))),
        }
    }

    /// A refusal at `at`, formatted only here: the reads above stay small on their hot paths.
    #[cold]
    #[inline(never)]
    pub(crate) fn refuse_at(&mut self, at: usize, code: Code, message: std::fmt::Arguments<'_>) -> DecodeError {
        self.pos = at;
        self.fail(code, message.to_string())
    }

    #[inline]
    fn bool(&mut self, what: &str) -> Result<bool, DecodeError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(self.refuse_at(
                self.pos - 1,
                Code::NonCanonical,
                format_args!("{what}: boolean byte {b} (must be 0 or 1)"),
            )),
        }
    }

    /// A count whose elements take at least `min_size` bytes each, bounded by `limit`.
    #[inline]
    fn count(&mut self, what: &str, min_size: usize, limit: usize, limit_code: Code) -> Result<usize, DecodeError> {
        // Most counts are one byte and well within their limits: decided here, inline.
        if let Some(&b) = self.data.get(self.pos)
            && b < 0x80
            && usize::from(b) <= limit
            && usize::from(b).saturating_mul(min_size) < self.remaining()
        {
            self.pos += 1;
            return Ok(usize::from(b));
        }
        self.count_long(what, min_size, limit, limit_code)
    }

    #[inline(never)]
    fn count_long(
        &mut self,
        what: &str,
        min_size: usize,
        limit: usize,
        limit_code: Code,
    ) -> Result<usize, DecodeError> {
        let start = self.pos;
        let n = self.varint(what)?;
        if n > limit as u64 {
            self.pos = start;
            return Err(self.fail(limit_code, format!("{what}: {n} exceeds the limit of {limit}")));
        }
        if n.saturating_mul(min_size as u64) > self.remaining() as u64 {
            self.pos = start;
            return Err(self.fail(
                Code::CountExceedsInput,
                format!("{what}: {n} entries cannot fit in the {} bytes that remain", self.remaining()),
            ));
        }
        Ok(n as usize)
    }

    /// A byte length, bounded by `limit`; a length past the end of the input is a truncation.
    fn length(&mut self, what: &str, limit: usize, limit_code: Code) -> Result<usize, DecodeError> {
        let start = self.pos;
        let n = self.varint(what)?;
        if n > limit as u64 {
            self.pos = start;
            return Err(self.fail(limit_code, format!("{what}: {n} bytes exceed the limit of {limit}")));
        }
        let remaining = self.remaining();
        if n > remaining as u64 {
            self.pos = start;
            return Err(self.fail(Code::Truncated, format!("{what}: declares {n} bytes but only {remaining} remain")));
        }
        Ok(n as usize)
    }

    /// Refuses before allocating when `n` one-byte-or-more entries cannot fit.
    fn check_remaining(&self, n: usize, what: &str) -> Result<(), DecodeError> {
        if n > self.remaining() {
            return Err(self.fail(
                Code::CountExceedsInput,
                format!("{what}: {n} entries cannot fit in the {} bytes that remain", self.remaining()),
            ));
        }
        Ok(())
    }

    /// A length-prefixed byte string, copied into the form the model keeps (a `Vec`, or a
    /// string's inline `Bytes`).
    fn bytes<T: for<'b> From<&'b [u8]>>(
        &mut self,
        what: &str,
        limit: usize,
        limit_code: Code,
    ) -> Result<T, DecodeError> {
        let n = self.length(what, limit, limit_code)?;
        Ok(T::from(self.take(n, what)?))
    }

    fn text(&mut self, what: &str) -> Result<String, DecodeError> {
        let start = self.pos;
        let bytes: Vec<u8> = self.bytes(what, self.limits.max_string_bytes, Code::StringTooLong)?;
        if bytes.contains(&0) {
            self.pos = start;
            // The runtime hands names to C (chunk names, registry lookups): no NUL inside.
            return Err(self.fail(Code::BadText, format!("{what} contains a NUL byte")));
        }
        String::from_utf8(bytes).map_err(|_| {
            self.pos = start;
            self.fail(Code::BadText, format!("{what} is not UTF-8"))
        })
    }

    /// A value. The common tags are read here, inline; the rare ones and every refusal are out of
    /// line, so that a stack or an array part reads as a tight loop.
    #[inline(always)]
    fn value(&mut self, what: &str) -> Result<Value, DecodeError> {
        self.value_then(what, |v| v)
    }

    /// A value handed to `then`, whose result is returned. Each tag's branch calls `then` with
    /// its own variant: a loop that stores values this way writes each one directly, where a
    /// value returned through `Result` is stored and copied back piecewise (the copy stalls on
    /// the narrower stores before it, which made half of a stack's decoding time).
    #[inline(always)]
    fn value_then<R>(&mut self, what: &str, then: impl FnOnce(Value) -> R) -> Result<R, DecodeError> {
        let t = self.u8(what)?;
        Ok(match t {
            tag::NIL => then(Value::Nil),
            tag::FALSE => then(Value::Boolean(false)),
            tag::TRUE => then(Value::Boolean(true)),
            tag::INTEGER => {
                let start = self.pos;
                let i = unzigzag64(self.varint(what)?);
                // Exactly the integers `as_integer` gives back: magnitude below 2^53.
                if i.unsigned_abs() >= 1 << 53 {
                    return Err(self.refuse_at(
                        start,
                        Code::NonCanonical,
                        format_args!("{what}: integer {i} is out of the exact range"),
                    ));
                }
                then(Value::Number(i as f64))
            }
            tag::OBJECT => {
                let start = self.pos;
                let i = self.u32v(what)?;
                if self.last_object.map_or(i == 0, |last| last.checked_add(1) == Some(i)) {
                    return Err(self.refuse_at(
                        start,
                        Code::NonCanonical,
                        format_args!("{what}: object {i} follows the last reference (NEXT)"),
                    ));
                }
                self.last_object = Some(i);
                then(Value::Object(i))
            }
            tag::NEXT_OBJECT => {
                let i = match self.last_object {
                    None => 0,
                    Some(last) => match last.checked_add(1) {
                        Some(i) => i,
                        None => {
                            return Err(self.refuse_at(
                                self.pos - 1,
                                Code::BadVarint,
                                format_args!("{what}: the next object is past the index range"),
                            ));
                        }
                    },
                };
                self.last_object = Some(i);
                then(Value::Object(i))
            }
            other => then(self.rare_value(other, what)?),
        })
    }

    /// The value tags [`Decoder::value`] leaves out of line (tag `t` was just read).
    #[inline(never)]
    fn rare_value(&mut self, t: u8, what: &str) -> Result<Value, DecodeError> {
        Ok(match t {
            tag::NUMBER => {
                let n = f64::from_le_bytes(self.array(what)?);
                if as_integer(n).is_some() {
                    self.pos -= 9;
                    return Err(self.fail(Code::NonCanonical, format!("{what}: the integer {n} is written as a float")));
                }
                Value::Number(n)
            }
            tag::VECTOR => {
                let mut v = [0f32; 3];
                for c in &mut v {
                    *c = f32::from_le_bytes(self.array(what)?);
                }
                Value::Vector(v)
            }
            tag::ITER_POSITION => Value::IterPosition(self.u32v(what)?),
            tag::PERMANENT => Value::Permanent(self.u32v(what)?),
            tag::LIGHT_USERDATA => {
                let t = self.u8(what)?;
                Value::LightUserdata { tag: t, bits: u64::from_le_bytes(self.array(what)?) }
            }
            other => {
                self.pos -= 1;
                return Err(self.fail(Code::UnknownTag, format!("{what}: unknown value tag {other}")));
            }
        })
    }

    /// A function's environment: a value naming an object or a permanent (which one is a table
    /// is the references family's to check, with every other reference).
    #[inline(always)]
    pub(crate) fn env(&mut self) -> Result<EnvRef, DecodeError> {
        // Most environments are the base globals, a permanent: read here, not as a rare value.
        if self.peek() == Some(tag::PERMANENT) {
            self.pos += 1;
            return Ok(EnvRef::Permanent(self.u32v("environment")?));
        }
        let start = self.pos;
        let v = self.value("environment")?;
        match EnvRef::of(v) {
            Some(e) => Ok(e),
            None => Err(self.refuse_at(
                start,
                Code::WrongType,
                format_args!("environment: must be a table, found {}", crate::validate::value_text(&v)),
            )),
        }
    }

    fn opt_value(&mut self, what: &str) -> Result<Option<Value>, DecodeError> {
        Ok(if self.bool(what)? { Some(self.value(what)?) } else { None })
    }

    /// Reads a section's id and length, runs `body` on exactly that many bytes.
    fn section<T>(
        &mut self,
        id: u8,
        name: &'static str,
        body: impl FnOnce(&mut Decoder<'a>) -> Result<T, DecodeError>,
    ) -> Result<T, DecodeError> {
        self.context = Some(Segment::Section(name));
        let got = self.u8("section id")?;
        if got != id {
            self.pos -= 1;
            return Err(
                self.fail(Code::SectionMismatch, format!("expected the {name} section (id {id}), found id {got}"))
            );
        }
        let len = self.length("section length", usize::MAX, Code::InputTooLarge)?;
        let end = self.pos + len;
        let mut inner = Decoder {
            data: &self.data[..end],
            pos: self.pos,
            origin: self.origin,
            limits: self.limits,
            context: self.context.clone(),
            object: None,
            last_object: None,
            last_upvalue: 0,
        };
        let out = body(&mut inner)?;
        if inner.pos != end {
            return Err(inner.fail(
                Code::SectionMismatch,
                format!("{name} section declares {len} bytes but its contents end {} bytes early", end - inner.pos),
            ));
        }
        self.pos = end;
        Ok(out)
    }
}

/// The parts of a snapshot around its objects.
pub(crate) struct Parts<O> {
    pub header: Header,
    pub scripts: Vec<ScriptEntry>,
    pub permanents: Vec<String>,
    pub objects: O,
    pub roots: Roots,
}

/// Decodes a snapshot, refusing anything non-canonical or beyond `limits`.
pub fn decode(data: &[u8], limits: &Limits) -> Result<Snapshot, DecodeError> {
    let p = decode_parts(data, limits, |d, n| {
        let mut objects = Vec::with_capacity(n);
        for i in 0..n {
            objects.push(decode_object(d, i as u32)?);
        }
        Ok(objects)
    })?;
    Ok(Snapshot { header: p.header, scripts: p.scripts, permanents: p.permanents, objects: p.objects, roots: p.roots })
}

/// Decodes everything but the objects, which `objects` reads (given their count) in place.
pub(crate) fn decode_parts<'a, O>(
    data: &'a [u8],
    limits: &'a Limits,
    objects: impl FnOnce(&mut Decoder<'a>, usize) -> Result<O, DecodeError>,
) -> Result<Parts<O>, DecodeError> {
    let mut d =
        Decoder { data, pos: 0, origin: 0, limits, context: None, object: None, last_object: None, last_upvalue: 0 };
    if data.len() > limits.max_input_bytes || u32::try_from(data.len()).is_err() {
        return Err(d.fail(
            Code::InputTooLarge,
            format!("{} bytes exceed the limit of {} bytes", data.len(), limits.max_input_bytes.min(u32::MAX as usize)),
        ));
    }
    let magic = d.take(MAGIC.len().min(data.len()), "magic")?;
    if magic != MAGIC {
        d.pos = 0;
        return Err(d.fail(Code::BadMagic, "not an Amber snapshot (the magic bytes AMBRSNAP are missing)"));
    }
    let version = d.varint("format version")?;
    if version != FORMAT_VERSION {
        return Err(d.fail(
            Code::UnsupportedVersion,
            format!("format version {version}; this validator reads version {FORMAT_VERSION}"),
        ));
    }

    let header = d.section(SECTION_HEADER, "header", |d| {
        let luau_version = d.text("Luau version")?;
        let compiler =
            CompilerSettings { optimization_level: d.u8("optimization level")?, debug_level: d.u8("debug level")? };
        let n = d.count("enabled flag count", MIN_NAME, d.limits.max_permanents, Code::TooManyEntries)?;
        let mut enabled_flags: Vec<String> = Vec::with_capacity(n);
        for _ in 0..n {
            let name = d.text("flag name")?;
            if enabled_flags.last().is_some_and(|prev| *prev >= name) {
                return Err(d.fail(Code::NonCanonical, "enabled flags are not in strictly ascending order"));
            }
            enabled_flags.push(name);
        }
        let permanents_digest = d.array("permanents digest")?;
        Ok(Header { luau_version, compiler, enabled_flags, permanents_digest })
    })?;

    let scripts = d.section(SECTION_SCRIPTS, "scripts", |d| {
        let n = d.count("script count", MIN_SCRIPT, d.limits.max_scripts, Code::TooManyEntries)?;
        let mut scripts = Vec::with_capacity(n);
        for i in 0..n {
            d.context = Some(Segment::Script(i as u32));
            let hash = ScriptHash(d.array("script hash")?);
            let chunk_name = d.text("chunk name")?;
            let source = if d.bool("source flag")? {
                Some(d.bytes("source", d.limits.max_string_bytes, Code::StringTooLong)?)
            } else {
                None
            };
            let n = d.count("signature count", MIN_SIGNATURE, d.limits.max_objects, Code::TooManyEntries)?;
            let mut signatures: Vec<ProtoSignature> = Vec::with_capacity(n);
            for _ in 0..n {
                let proto = d.u32v("signature proto")?;
                if signatures.last().is_some_and(|p| p.proto >= proto) {
                    return Err(d.fail(Code::NonCanonical, "proto signatures are not in ascending proto order"));
                }
                let signature = u64::from_le_bytes(d.array("proto signature")?);
                signatures.push(ProtoSignature { proto, signature });
            }
            scripts.push(ScriptEntry { hash, chunk_name, source, signatures });
        }
        Ok(scripts)
    })?;

    let permanents = d.section(SECTION_PERMANENTS, "permanents", |d| {
        let n = d.count("permanent count", MIN_NAME, d.limits.max_permanents, Code::TooManyEntries)?;
        let mut names = Vec::with_capacity(n);
        for i in 0..n {
            d.context = Some(Segment::Permanent(i as u32));
            names.push(d.text("permanent name")?);
        }
        Ok(names)
    })?;

    let objects = d.section(SECTION_OBJECTS, "objects", |d| {
        let n = d.count("object count", MIN_OBJECT, d.limits.max_objects, Code::TooManyObjects)?;
        objects(d, n)
    })?;

    let roots = d.section(SECTION_ROOTS, "roots", |d| {
        let main_thread = d.u32v("main thread")?;
        let random_state = u64::from_le_bytes(d.array("random state")?);
        let n = d.count("globals layout positions", 1, d.limits.max_global_names, Code::TooManyEntries)?;
        let mut globals_layout = Vec::with_capacity(n);
        for _ in 0..n {
            globals_layout.push(if d.bool("globals layout position")? {
                Some(d.bytes("global name", d.limits.max_string_bytes, Code::StringTooLong)?)
            } else {
                None
            });
        }
        Ok(Roots { main_thread, random_state, globals_layout })
    })?;

    d.context = None;
    if d.remaining() > 0 {
        return Err(d.fail(Code::TrailingBytes, format!("{} bytes follow the roots section", d.remaining())));
    }
    Ok(Parts { header, scripts, permanents, objects, roots })
}

/// The two values before a position of an array part, as far as STEP needs them: kept while
/// reading, so a reader of the array holds nothing of what it read.
#[derive(Clone, Copy, Default)]
pub(crate) struct Progression {
    before: Option<f64>,
    last: Option<f64>,
}

impl Progression {
    fn step(&self) -> Option<f64> {
        Some(self.last? + (self.last? - self.before?))
    }

    fn push(&mut self, v: &Value) {
        self.before = self.last;
        self.last = match v {
            Value::Number(n) => Some(*n),
            _ => None,
        };
    }
}

/// A table's fields before its array part; the decoder stands at the array's first slot.
pub(crate) struct TableHead {
    pub metatable: Option<Value>,
    pub readonly: bool,
    pub safeenv: bool,
    pub has_node_map: bool,
    pub insert_hint: i32,
    pub array_len: usize,
}

/// An object as far as it is read at once: everything but a table's entries, which are read in
/// place (a million-entry table is never held decoded), and with strings and buffers borrowed.
pub(crate) enum Head<'a> {
    String(&'a [u8]),
    Buffer(&'a [u8]),
    Table(TableHead),
    LuaClosure(LuaClosure),
    CClosure(CClosure),
    Upvalue(Upvalue),
    Thread(Box<Thread>),
    Userdata(Box<Userdata>),
}

impl<'a> Decoder<'a> {
    /// A decoder over `data` (an objects section's bytes) at `pos`, with no limits: for bytes
    /// that already decoded under the intake's limits.
    pub(crate) fn trusted(data: &'a [u8], pos: usize, last_object: Option<u32>) -> Decoder<'a> {
        Decoder { data, pos, origin: 0, limits: &UNBOUNDED, context: None, object: None, last_object, last_upvalue: 0 }
    }

    /// A decoder over `data`, an objects section's bytes (after its count) that begin at byte
    /// `origin` of the snapshot, at `pos`, under `limits`: it refuses and reports what the
    /// decoder of the whole snapshot would.
    pub(crate) fn objects(data: &'a [u8], origin: usize, pos: usize, limits: &'a Limits) -> Decoder<'a> {
        Decoder {
            data,
            pos,
            origin,
            limits,
            // Every finding is inside an object (whose tag was located), named by `object`.
            context: None,
            object: None,
            last_object: None,
            last_upvalue: 0,
        }
    }

    /// The input this decoder reads and its position in it (for a faster reader to go over).
    pub(crate) fn input(&self) -> (&'a [u8], usize) {
        (self.data, self.pos)
    }

    /// Moves to `pos`, where a faster reader left off.
    pub(crate) fn seek(&mut self, pos: usize) {
        self.pos = pos;
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn last_object(&self) -> Option<u32> {
        self.last_object
    }

    /// One array slot: a STEP, or a value that is not the one a STEP stands for.
    #[inline(always)]
    pub(crate) fn array_slot(&mut self, p: &mut Progression) -> Result<Value, DecodeError> {
        self.array_slot_then(p, |v| v)
    }

    /// One array slot handed to `then` (as [`Decoder::value_then`]).
    #[inline(always)]
    pub(crate) fn array_slot_then<R>(
        &mut self,
        p: &mut Progression,
        then: impl FnOnce(Value) -> R,
    ) -> Result<R, DecodeError> {
        let step = p.step();
        if self.peek() == Some(tag::STEP) {
            let Some(s) = step else {
                return Err(self.refuse_at(
                    self.pos,
                    Code::NonCanonical,
                    format_args!("array slot: a step where the two before are not numbers"),
                ));
            };
            self.pos += 1;
            let v = Value::Number(s);
            p.push(&v);
            return Ok(then(v));
        }
        let start = self.pos;
        let slot = self.value_then("array slot", |v| {
            if let (Value::Number(n), Some(s)) = (&v, step)
                && s.to_bits() == n.to_bits()
            {
                return None;
            }
            p.push(&v);
            Some(then(v))
        })?;
        match slot {
            Some(r) => Ok(r),
            None => Err(self.refuse_at(
                start,
                Code::NonCanonical,
                format_args!("array slot: continues the progression before it (STEP)"),
            )),
        }
    }

    /// The hash part's size, after an array part of `array_len` slots.
    pub(crate) fn hash_size(&mut self, array_len: usize) -> Result<usize, DecodeError> {
        let budget = self.limits.max_table_entries.saturating_sub(array_len);
        self.count("hash size", MIN_NODE, budget, Code::TableTooLarge)
    }

    #[inline]
    pub(crate) fn hash_node(&mut self) -> Result<Option<(Value, Value)>, DecodeError> {
        if !self.bool("hash node flag")? {
            return Ok(None);
        }
        let key = self.value_then("hash key", |k| k)?;
        self.value_then("hash value", |v| Some((key, v)))
    }

    /// A node map of `n` entries follows (refused before reading when the input cannot hold it).
    pub(crate) fn node_map(&mut self, n: usize) -> Result<(), DecodeError> {
        self.check_remaining(n, "node map")
    }

    pub(crate) fn node_map_entry(&mut self) -> Result<u32, DecodeError> {
        let n = self.u32v("node map entry")?;
        Ok(if n == 0 { u32::MAX } else { n - 1 })
    }

    /// A length-prefixed byte string, borrowed from the input.
    fn slice(&mut self, what: &str, limit: usize, limit_code: Code) -> Result<&'a [u8], DecodeError> {
        let n = self.length(what, limit, limit_code)?;
        self.take(n, what)
    }
}

/// Limits that refuse nothing: for re-reading bytes that were decoded under the real ones.
#[cfg(feature = "tamper")]
pub(crate) fn unbounded() -> &'static Limits {
    &UNBOUNDED
}

static UNBOUNDED: Limits = Limits {
    max_input_bytes: usize::MAX,
    max_objects: usize::MAX,
    max_string_bytes: usize::MAX,
    max_table_entries: usize::MAX,
    max_buffer_bytes: usize::MAX,
    max_stack_slots: usize::MAX,
    max_frames: usize::MAX,
    max_scripts: usize::MAX,
    max_permanents: usize::MAX,
    max_upvalues: usize::MAX,
    max_global_names: usize::MAX,
    max_diagnostics: usize::MAX,
    permanents: None,
    codecs: std::collections::BTreeSet::new(),
    runtime: None,
    max_memory: None,
    object_sizes: None,
};

/// Decodes object `index` in full (a table's entries into the model).
pub(crate) fn decode_object(d: &mut Decoder<'_>, index: u32) -> Result<Object, DecodeError> {
    Ok(match decode_head(d, index)? {
        Head::String(b) => Object::String(Bytes::from(b)),
        Head::Buffer(b) => Object::Buffer(b.to_vec()),
        Head::Table(head) => {
            let mut array = Vec::with_capacity(head.array_len);
            let mut p = Progression::default();
            for _ in 0..head.array_len {
                array.push(d.array_slot(&mut p)?);
            }
            let m = d.hash_size(head.array_len)?;
            let mut hash = Vec::with_capacity(m);
            for _ in 0..m {
                hash.push(d.hash_node()?);
            }
            let node_of = if head.has_node_map {
                d.node_map(m)?;
                Some((0..m).map(|_| d.node_map_entry()).collect::<Result<Vec<u32>, _>>()?)
            } else {
                None
            };
            Object::Table(Box::new(Table {
                array,
                hash,
                metatable: head.metatable,
                readonly: head.readonly,
                safeenv: head.safeenv,
                insert_hint: head.insert_hint,
                node_of,
            }))
        }
        Head::LuaClosure(c) => Object::LuaClosure(c),
        Head::CClosure(c) => Object::CClosure(c),
        Head::Upvalue(u) => Object::Upvalue(u),
        Head::Thread(t) => Object::Thread(t),
        Head::Userdata(u) => Object::Userdata(u),
    })
}

/// Checks object `index` as [`decode_object`] does, keeping nothing of a table's entries. For
/// a table, `hash_start` hears its array length and where its hash part starts (the offset of
/// its size, and the reference state there).
pub(crate) fn scan_object(
    d: &mut Decoder<'_>,
    index: u32,
    mut hash_start: impl FnMut(usize, usize, Option<u32>),
) -> Result<ObjectKind, DecodeError> {
    Ok(match decode_head(d, index)? {
        Head::Table(head) => {
            let (at, state) = table_entries(d, &head)?;
            hash_start(head.array_len, at, state);
            ObjectKind::Table
        }
        Head::String(_) => ObjectKind::String,
        Head::Buffer(_) => ObjectKind::Buffer,
        Head::LuaClosure(_) => ObjectKind::LuaClosure,
        Head::CClosure(_) => ObjectKind::CClosure,
        Head::Upvalue(_) => ObjectKind::Upvalue,
        Head::Thread(_) => ObjectKind::Thread,
        Head::Userdata(_) => ObjectKind::Userdata,
    })
}

/// Checks a table's entries after its head (`d` stands at its array part) and returns where its
/// hash part starts, with the reference state there.
pub(crate) fn table_entries(d: &mut Decoder<'_>, head: &TableHead) -> Result<(usize, Option<u32>), DecodeError> {
    let mut p = Progression::default();
    for _ in 0..head.array_len {
        d.array_slot(&mut p)?;
    }
    let start = (d.pos, d.last_object);
    let m = d.hash_size(head.array_len)?;
    for _ in 0..m {
        d.hash_node()?;
    }
    if head.has_node_map {
        d.node_map(m)?;
        for _ in 0..m {
            d.node_map_entry()?;
        }
    }
    Ok(start)
}

/// An object tag's name in paths ("object" for a tag that names no kind).
fn object_name(t: u8) -> &'static str {
    match t {
        tag::O_STRING => "string",
        tag::O_TABLE => "table",
        tag::O_LUA_CLOSURE => "closure",
        tag::O_C_CLOSURE => "cclosure",
        tag::O_UPVALUE => "upvalue",
        tag::O_THREAD => "thread",
        tag::O_USERDATA => "userdata",
        tag::O_BUFFER => "buffer",
        _ => "object",
    }
}

/// Reads object `index` up to a table's array part. Each object's stateful forms (NEXT, upvalue
/// deltas) start from the object's own index.
#[inline(always)]
pub(crate) fn decode_head<'a>(d: &mut Decoder<'a>, index: u32) -> Result<Head<'a>, DecodeError> {
    d.last_object = Some(index);
    d.last_upvalue = index;
    let t = d.u8("object tag")?;
    d.object = Some((t, index));
    let limits = d.limits;
    Ok(match t {
        tag::O_STRING => Head::String(d.slice("string", limits.max_string_bytes, Code::StringTooLong)?),
        tag::O_TABLE => {
            let flags = d.u8("table flags")?;
            if flags & !(TABLE_READONLY | TABLE_SAFEENV | TABLE_HAS_METATABLE | TABLE_HAS_NODE_MAP) != 0 {
                d.pos -= 1;
                return Err(d.fail(Code::NonCanonical, format!("table flags {flags:#04x} use undefined bits")));
            }
            let metatable = if flags & TABLE_HAS_METATABLE != 0 { Some(d.value("metatable")?) } else { None };
            let insert_hint = unzigzag(d.u32v("insert hint")?);
            let array_len = d.count("array size", MIN_VALUE, limits.max_table_entries, Code::TableTooLarge)?;
            Head::Table(TableHead {
                metatable,
                readonly: flags & TABLE_READONLY != 0,
                safeenv: flags & TABLE_SAFEENV != 0,
                has_node_map: flags & TABLE_HAS_NODE_MAP != 0,
                insert_hint,
                array_len,
            })
        }
        tag::O_LUA_CLOSURE => {
            let script = d.u32v("script index")?;
            let proto = d.u32v("proto id")?;
            let env = d.env()?;
            let n = d.count("upvalue count", 1, limits.max_upvalues, Code::TooManyEntries)?;
            let upvalues = UpvalueRefs::try_from_fn(n, |_| {
                let start = d.pos;
                let delta = unzigzag64(d.varint("upvalue reference")?);
                match u32::try_from(i64::from(d.last_upvalue) + delta) {
                    Ok(u) => {
                        d.last_upvalue = u;
                        Ok(u)
                    }
                    Err(_) => Err(d.refuse_at(
                        start,
                        Code::BadVarint,
                        format_args!("upvalue reference out of the index range"),
                    )),
                }
            })?;
            Head::LuaClosure(LuaClosure { script, proto, env, upvalues })
        }
        tag::O_C_CLOSURE => {
            let function = d.u32v("C function")?;
            let env = d.env()?;
            let n = d.count("upvalue count", MIN_VALUE, limits.max_upvalues, Code::TooManyEntries)?;
            let mut upvalues = Vec::with_capacity(n);
            for _ in 0..n {
                upvalues.push(d.value("upvalue")?);
            }
            Head::CClosure(CClosure { function, env, upvalues })
        }
        tag::O_UPVALUE => match d.u8("upvalue kind")? {
            0 => Head::Upvalue(Upvalue::Closed(d.value("closed value")?)),
            1 => Head::Upvalue(Upvalue::Open { thread: d.u32v("owning thread")?, slot: d.u32v("stack slot")? }),
            other => {
                d.pos -= 1;
                return Err(d.fail(Code::UnknownTag, format!("unknown upvalue kind {other}")));
            }
        },
        tag::O_THREAD => Head::Thread(Box::new(decode_thread(d)?)),
        tag::O_USERDATA => {
            let kind = match d.u8("userdata kind")? {
                0 => UserdataKind::Proxy,
                1 => {
                    let t = d.u8("userdata tag")?;
                    let codec = d.text("codec name")?;
                    let payload = d.bytes("userdata payload", limits.max_string_bytes, Code::StringTooLong)?;
                    UserdataKind::Codec { tag: t, codec, payload }
                }
                other => {
                    d.pos -= 1;
                    return Err(d.fail(Code::UnknownTag, format!("unknown userdata kind {other}")));
                }
            };
            let metatable = d.opt_value("userdata metatable")?;
            Head::Userdata(Box::new(Userdata { kind, metatable }))
        }
        tag::O_BUFFER => Head::Buffer(d.slice("buffer", limits.max_buffer_bytes, Code::BufferTooLarge)?),
        other => {
            d.pos -= 1;
            return Err(d.fail(Code::UnknownTag, format!("unknown object tag {other}")));
        }
    })
}

fn decode_thread(d: &mut Decoder<'_>) -> Result<Thread, DecodeError> {
    let limits = d.limits;
    let code = d.u8("thread status")?;
    let Some(status) = ThreadStatus::from_code(code) else {
        d.pos -= 1;
        return Err(d.fail(Code::UnknownTag, format!("unknown thread status {code}")));
    };
    let globals = d.value("globals")?;
    let namecall = if d.bool("namecall flag")? { Some(d.u32v("namecall method")?) } else { None };
    let error = d.opt_value("error value")?;
    let n = d.count("stack size", MIN_VALUE, limits.max_stack_slots, Code::StackTooLarge)?;
    let mut stack = Vec::with_capacity(n);
    for _ in 0..n {
        d.value_then("stack slot", |v| stack.push(v))?;
    }
    let n = d.count("frame count", MIN_FRAME, limits.max_frames, Code::TooManyFrames)?;
    let mut frames = Vec::with_capacity(n);
    for _ in 0..n {
        let f = if d.bool("frame kind")? {
            Frame::C
        } else {
            Frame::Lua { yield_point: d.u32v("frame yield point")?, varargs: d.u32v("frame vararg count")? }
        };
        frames.push(f);
    }
    let n = d.count("open upvalue count", 1, limits.max_stack_slots, Code::StackTooLarge)?;
    let mut open_upvalues = Vec::with_capacity(n);
    for _ in 0..n {
        open_upvalues.push(d.u32v("open upvalue")?);
    }
    Ok(Thread { status, stack, frames, open_upvalues, globals, namecall, error })
}
