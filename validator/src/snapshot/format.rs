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
pub const FORMAT_VERSION: u64 = 4;

const SECTION_HEADER: u8 = 1;
const SECTION_SCRIPTS: u8 = 2;
const SECTION_PERMANENTS: u8 = 3;
const SECTION_OBJECTS: u8 = 4;
const SECTION_ROOTS: u8 = 5;

mod tag {
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
    /// The object after the last object reference of this section.
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
const TABLE_HAS_METATABLE: u8 = 4;
const TABLE_HAS_NODE_MAP: u8 = 8;

// ---------------------------------------------------------------------------------------------
// Encoding

struct Writer {
    out: Vec<u8>,
    /// The last object reference written in this section (NEXT_OBJECT follows it).
    last_object: Option<u32>,
    /// The last upvalue index of a Luau closure written in this section (the next is a delta).
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
        for o in &s.objects {
            let from = w.out.len();
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
            w.u8(match t.status {
                ThreadStatus::NotStarted => 0,
                ThreadStatus::Yielded => 1,
                ThreadStatus::Preempted => 2,
                ThreadStatus::Dead => 3,
                ThreadStatus::Errored => 4,
            });
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

struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
    limits: &'a Limits,
    /// Where we are, for messages; turned into an [`ObjectPath`] only when something fails.
    context: Option<Segment>,
    /// The last object reference read in this section (NEXT_OBJECT follows it).
    last_object: Option<u32>,
    /// The last upvalue index of a Luau closure read in this section.
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
        if let Some(segment) = &self.context {
            path = path.with(segment.clone());
        }
        let path = path.with(Segment::Offset(self.pos));
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

    fn varint_long(&mut self, what: &str) -> Result<u64, DecodeError> {
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

    fn u32v(&mut self, what: &str) -> Result<u32, DecodeError> {
        let start = self.pos;
        let v = self.varint(what)?;
        u32::try_from(v).map_err(|_| {
            self.pos = start;
            self.fail(Code::BadVarint, format!("{what}: {v} does not fit in 32 bits"))
        })
    }

    fn bool(&mut self, what: &str) -> Result<bool, DecodeError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            b => {
                self.pos -= 1;
                Err(self.fail(Code::NonCanonical, format!("{what}: boolean byte {b} (must be 0 or 1)")))
            }
        }
    }

    /// A count whose elements take at least `min_size` bytes each, bounded by `limit`.
    fn count(&mut self, what: &str, min_size: usize, limit: usize, limit_code: Code) -> Result<usize, DecodeError> {
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

    fn value(&mut self, what: &str) -> Result<Value, DecodeError> {
        let t = self.u8(what)?;
        Ok(match t {
            tag::NIL => Value::Nil,
            tag::FALSE => Value::Boolean(false),
            tag::TRUE => Value::Boolean(true),
            tag::NUMBER => {
                let n = f64::from_le_bytes(self.array(what)?);
                if as_integer(n).is_some() {
                    self.pos -= 9;
                    return Err(self.fail(Code::NonCanonical, format!("{what}: the integer {n} is written as a float")));
                }
                Value::Number(n)
            }
            tag::INTEGER => {
                let start = self.pos;
                let i = unzigzag64(self.varint(what)?);
                let n = i as f64;
                if as_integer(n) != Some(i) {
                    self.pos = start;
                    return Err(self.fail(Code::NonCanonical, format!("{what}: integer {i} is out of the exact range")));
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
            tag::OBJECT => {
                let start = self.pos;
                let i = self.u32v(what)?;
                if self.last_object.map_or(i == 0, |last| last.checked_add(1) == Some(i)) {
                    self.pos = start;
                    return Err(
                        self.fail(Code::NonCanonical, format!("{what}: object {i} follows the last reference (NEXT)"))
                    );
                }
                self.last_object = Some(i);
                Value::Object(i)
            }
            tag::NEXT_OBJECT => {
                let i = match self.last_object {
                    None => 0,
                    Some(last) => last.checked_add(1).ok_or_else(|| {
                        self.pos -= 1;
                        self.fail(Code::BadVarint, format!("{what}: the next object is past the index range"))
                    })?,
                };
                self.last_object = Some(i);
                Value::Object(i)
            }
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
    fn env(&mut self) -> Result<EnvRef, DecodeError> {
        let start = self.pos;
        let v = self.value("environment")?;
        EnvRef::of(v).ok_or_else(|| {
            self.pos = start;
            self.fail(
                Code::WrongType,
                format!("environment: must be a table, found {}", crate::validate::value_text(&v)),
            )
        })
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
            limits: self.limits,
            context: self.context.clone(),
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

/// Decodes a snapshot, refusing anything non-canonical or beyond `limits`.
pub fn decode(data: &[u8], limits: &Limits) -> Result<Snapshot, DecodeError> {
    let mut d = Decoder { data, pos: 0, limits, context: None, last_object: None, last_upvalue: 0 };
    if data.len() > limits.max_input_bytes {
        return Err(d.fail(
            Code::InputTooLarge,
            format!("{} bytes exceed the limit of {} bytes", data.len(), limits.max_input_bytes),
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
        let mut objects = Vec::with_capacity(n);
        for i in 0..n {
            objects.push(decode_object(d, i as u32)?);
        }
        Ok(objects)
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
    Ok(Snapshot { header, scripts, permanents, objects, roots })
}

fn decode_object(d: &mut Decoder<'_>, index: u32) -> Result<Object, DecodeError> {
    let t = d.u8("object tag")?;
    let kind = match t {
        tag::O_STRING => "string",
        tag::O_TABLE => "table",
        tag::O_LUA_CLOSURE => "closure",
        tag::O_C_CLOSURE => "cclosure",
        tag::O_UPVALUE => "upvalue",
        tag::O_THREAD => "thread",
        tag::O_USERDATA => "userdata",
        tag::O_BUFFER => "buffer",
        other => {
            d.pos -= 1;
            d.context = Some(Segment::Object { kind: "object", index });
            return Err(d.fail(Code::UnknownTag, format!("unknown object tag {other}")));
        }
    };
    d.context = Some(Segment::Object { kind, index });
    let limits = d.limits;
    Ok(match t {
        tag::O_STRING => Object::String(d.bytes("string", limits.max_string_bytes, Code::StringTooLong)?),
        tag::O_TABLE => {
            let flags = d.u8("table flags")?;
            if flags & !(TABLE_READONLY | TABLE_SAFEENV | TABLE_HAS_METATABLE | TABLE_HAS_NODE_MAP) != 0 {
                d.pos -= 1;
                return Err(d.fail(Code::NonCanonical, format!("table flags {flags:#04x} use undefined bits")));
            }
            let metatable = if flags & TABLE_HAS_METATABLE != 0 { Some(d.value("metatable")?) } else { None };
            let insert_hint = unzigzag(d.u32v("insert hint")?);
            let n = d.count("array size", MIN_VALUE, limits.max_table_entries, Code::TableTooLarge)?;
            let mut array = Vec::with_capacity(n);
            for _ in 0..n {
                let step = step_of(&array);
                if d.peek() == Some(tag::STEP) {
                    let Some(s) = step else {
                        return Err(
                            d.fail(Code::NonCanonical, "array slot: a step where the two before are not numbers")
                        );
                    };
                    d.pos += 1;
                    array.push(Value::Number(s));
                    continue;
                }
                let start = d.pos;
                let v = d.value("array slot")?;
                if let (Value::Number(n), Some(s)) = (&v, step)
                    && s.to_bits() == n.to_bits()
                {
                    d.pos = start;
                    return Err(d.fail(Code::NonCanonical, "array slot: continues the progression before it (STEP)"));
                }
                array.push(v);
            }
            let budget = limits.max_table_entries - n;
            let m = d.count("hash size", MIN_NODE, budget, Code::TableTooLarge)?;
            let mut hash = Vec::with_capacity(m);
            for _ in 0..m {
                if d.bool("hash node flag")? {
                    let k = d.value("hash key")?;
                    let v = d.value("hash value")?;
                    hash.push(Some((k, v)));
                } else {
                    hash.push(None);
                }
            }
            let node_of = if flags & TABLE_HAS_NODE_MAP != 0 {
                d.check_remaining(hash.len(), "node map")?;
                let mut map = Vec::with_capacity(hash.len());
                for _ in 0..hash.len() {
                    let n = d.u32v("node map entry")?;
                    map.push(if n == 0 { u32::MAX } else { n - 1 });
                }
                Some(map)
            } else {
                None
            };
            Object::Table(Box::new(Table {
                array,
                hash,
                metatable,
                readonly: flags & TABLE_READONLY != 0,
                safeenv: flags & TABLE_SAFEENV != 0,
                insert_hint,
                node_of,
            }))
        }
        tag::O_LUA_CLOSURE => {
            let script = d.u32v("script index")?;
            let proto = d.u32v("proto id")?;
            let env = d.env()?;
            let n = d.count("upvalue count", 1, limits.max_upvalues, Code::TooManyEntries)?;
            let upvalues = UpvalueRefs::try_from_fn(n, |_| {
                let start = d.pos;
                let delta = unzigzag64(d.varint("upvalue reference")?);
                let u = u32::try_from(i64::from(d.last_upvalue) + delta).map_err(|_| {
                    d.pos = start;
                    d.fail(Code::BadVarint, "upvalue reference out of the index range")
                })?;
                d.last_upvalue = u;
                Ok::<_, DecodeError>(u)
            })?;
            Object::LuaClosure(LuaClosure { script, proto, env, upvalues })
        }
        tag::O_C_CLOSURE => {
            let function = d.u32v("C function")?;
            let env = d.env()?;
            let n = d.count("upvalue count", MIN_VALUE, limits.max_upvalues, Code::TooManyEntries)?;
            let mut upvalues = Vec::with_capacity(n);
            for _ in 0..n {
                upvalues.push(d.value("upvalue")?);
            }
            Object::CClosure(CClosure { function, env, upvalues })
        }
        tag::O_UPVALUE => match d.u8("upvalue kind")? {
            0 => Object::Upvalue(Upvalue::Closed(d.value("closed value")?)),
            1 => Object::Upvalue(Upvalue::Open { thread: d.u32v("owning thread")?, slot: d.u32v("stack slot")? }),
            other => {
                d.pos -= 1;
                return Err(d.fail(Code::UnknownTag, format!("unknown upvalue kind {other}")));
            }
        },
        tag::O_THREAD => {
            let status = match d.u8("thread status")? {
                0 => ThreadStatus::NotStarted,
                1 => ThreadStatus::Yielded,
                2 => ThreadStatus::Preempted,
                3 => ThreadStatus::Dead,
                4 => ThreadStatus::Errored,
                other => {
                    d.pos -= 1;
                    return Err(d.fail(Code::UnknownTag, format!("unknown thread status {other}")));
                }
            };
            let globals = d.value("globals")?;
            let namecall = if d.bool("namecall flag")? { Some(d.u32v("namecall method")?) } else { None };
            let error = d.opt_value("error value")?;
            let n = d.count("stack size", MIN_VALUE, limits.max_stack_slots, Code::StackTooLarge)?;
            let mut stack = Vec::with_capacity(n);
            for _ in 0..n {
                stack.push(d.value("stack slot")?);
            }
            let n = d.count("frame count", MIN_FRAME, limits.max_frames, Code::TooManyFrames)?;
            let mut frames = Vec::with_capacity(n);
            for _ in 0..n {
                frames.push(if d.bool("frame kind")? {
                    Frame::C
                } else {
                    Frame::Lua { yield_point: d.u32v("frame yield point")?, varargs: d.u32v("frame vararg count")? }
                });
            }
            let n = d.count("open upvalue count", 1, limits.max_stack_slots, Code::StackTooLarge)?;
            let mut open_upvalues = Vec::with_capacity(n);
            for _ in 0..n {
                open_upvalues.push(d.u32v("open upvalue")?);
            }
            Object::Thread(Box::new(Thread { status, stack, frames, open_upvalues, globals, namecall, error }))
        }
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
            Object::Userdata(Box::new(Userdata { kind, metatable }))
        }
        tag::O_BUFFER => Object::Buffer(d.bytes("buffer", limits.max_buffer_bytes, Code::BufferTooLarge)?),
        other => return Err(d.fail(Code::UnknownTag, format!("unknown object tag {other}"))),
    })
}
