//! The decoded snapshot the checks and restore read: the snapshot's own bytes, decoded once in
//! full to refuse anything malformed, and then one offset and one kind per object. An object is
//! decoded again where it is read, a table's entries one at a time, so validating a snapshot
//! holds a few bytes per object beside its bytes, not a tree of values (docs/FORMAT.md: every
//! object decodes on its own from its offset).
//!
//! Re-reading cannot fail: the same decoder accepted the same bytes when the view was made (a
//! failure here would be a bug, and ends an iteration early or reads as a missing object rather
//! than panicking).

use super::format::{
    DecodeError, Decoder, Head, Progression, decode_head, decode_object, decode_parts, scan_object, table_entries,
};
use super::index::ObjectIndex;
use super::skim::Skim;
use super::*;
use crate::diagnostics::Code;
use crate::limits::Limits;
use std::borrow::Cow;

/// A snapshot's bytes with every object located: what [`crate::validate()`] checks (borrowing
/// the caller's bytes) and a [`crate::Verified`] snapshot holds (owning a copy of its objects'
/// bytes, made once the checks have passed).
#[derive(Clone)]
pub struct SnapshotView<'a> {
    pub header: Header,
    pub scripts: Vec<ScriptEntry>,
    pub permanents: Vec<String>,
    pub roots: Roots,
    /// The objects' bytes (the objects section after its count); offsets below are into this.
    bytes: Cow<'a, [u8]>,
    /// Where those bytes begin in the snapshot (for the offsets of findings).
    origin: usize,
    /// Where each object's tag byte is.
    index: ObjectIndex,
    /// Where the hash part starts, for each table whose array part has at least [`LONG_ARRAY`]
    /// slots (by object index, ascending): found by the decoding pass, so that no later reader
    /// goes through a long array part only to find the hash part. Shorter arrays are read
    /// through instead, which bounds this list to a fraction of the snapshot's size.
    hash_starts: Vec<HashStart>,
}

/// What a pass over the objects found: where each one begins, where long array parts end, and
/// the objects' extent in the input.
struct Located {
    index: ObjectIndex,
    hash_starts: Vec<HashStart>,
    objects: std::ops::Range<usize>,
}

impl Located {
    fn new(n: usize, start: usize, span: usize) -> Located {
        Located { index: ObjectIndex::with_capacity(n, span), hash_starts: Vec::new(), objects: start..start }
    }

    /// Table `i`'s array part of `array_len` slots ends at `at` (in the input), where the
    /// reference state is `state`. Offsets fit in u32: decode_parts refuses inputs of 4 GiB.
    fn array_ends(&mut self, i: u32, array_len: u64, at: usize, state: Option<u32>) {
        if array_len >= LONG_ARRAY as u64 {
            self.hash_starts.push(HashStart { table: i, at: (at - self.objects.start) as u32, state });
        }
    }
}

/// Array parts from this many slots on have their hash part's start recorded (16 bytes, at least
/// as many as the slots take).
const LONG_ARRAY: usize = 16;

#[derive(Clone, Copy)]
struct HashStart {
    table: u32,
    at: u32,
    state: Option<u32>,
}

impl std::fmt::Debug for SnapshotView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotView")
            .field("header", &self.header)
            .field("scripts", &self.scripts.len())
            .field("permanents", &self.permanents.len())
            .field("objects", &self.index.len())
            .finish()
    }
}

impl<'a> SnapshotView<'a> {
    /// Reads `data` around its objects and locates each object, borrowing them in place. What
    /// cannot be located is refused as [`decode`] refuses it (the same first finding); what can
    /// is decoded strictly object by object by [`crate::validate_view`], the only way to a
    /// verified snapshot.
    pub fn decode(data: &'a [u8], limits: &Limits) -> Result<SnapshotView<'a>, DecodeError> {
        match Self::locate(data, limits) {
            Ok(view) => Ok(view),
            // The strict decoder names the first malformed byte (and a view, should the quick
            // reader ever refuse what it accepts).
            Err(_) => Self::decode_strictly(data, limits),
        }
    }

    /// Every object located by the skimming reader.
    fn locate(data: &'a [u8], limits: &Limits) -> Result<SnapshotView<'a>, DecodeError> {
        let parts = decode_parts(data, limits, |d, n| {
            let (input, start) = d.input();
            let mut skim = Skim::new(input, start);
            let mut found = Located::new(n, start, input.len() - start);
            for i in 0..n as u32 {
                let at = (skim.pos() - start) as u32;
                match skim.object(i, &mut |array_len, at, state| found.array_ends(i, array_len, at, Some(state))) {
                    Some(kind) => found.index.push(at, kind),
                    // A placeholder: the strict decoder gives the finding.
                    None => return Err(d.refuse_at(skim.pos(), Code::Truncated, format_args!("object {i}"))),
                }
            }
            d.seek(skim.pos());
            found.objects.end = skim.pos();
            Ok(found)
        })?;
        Ok(Self::assemble(data, parts))
    }

    /// Every object decoded strictly in turn (the first malformed byte is the error).
    fn decode_strictly(data: &'a [u8], limits: &Limits) -> Result<SnapshotView<'a>, DecodeError> {
        let parts = decode_parts(data, limits, |d, n| {
            let (input, start) = d.input();
            let mut found = Located::new(n, start, input.len() - start);
            for i in 0..n as u32 {
                let at = (d.pos() - start) as u32;
                let kind = scan_object(d, i, |array_len, at, state| found.array_ends(i, array_len as u64, at, state))?;
                found.index.push(at, kind);
            }
            found.objects.end = d.pos();
            Ok(found)
        })?;
        Ok(Self::assemble(data, parts))
    }

    fn assemble(data: &'a [u8], parts: super::format::Parts<Located>) -> SnapshotView<'a> {
        let found = parts.objects;
        SnapshotView {
            header: parts.header,
            scripts: parts.scripts,
            permanents: parts.permanents,
            roots: parts.roots,
            origin: found.objects.start,
            bytes: Cow::Borrowed(&data[found.objects]),
            index: found.index,
            hash_starts: found.hash_starts,
        }
    }

    /// The view with its objects' bytes copied, to outlive the input: what a verified snapshot
    /// keeps.
    pub fn into_owned(self) -> SnapshotView<'static> {
        SnapshotView {
            header: self.header,
            scripts: self.scripts,
            permanents: self.permanents,
            roots: self.roots,
            bytes: Cow::Owned(self.bytes.into_owned()),
            origin: self.origin,
            index: self.index,
            hash_starts: self.hash_starts,
        }
    }

    /// Every object's index and the extent of its bytes, in order: what the validator's pass
    /// reads each object through with [`Self::checked_object`].
    pub(crate) fn extents(&self) -> impl Iterator<Item = (u32, usize, usize)> + '_ {
        self.index.extents(&self.bytes)
    }

    /// Object `i`, located at `at..end` ([`Self::extents`]), decoded strictly under `limits`,
    /// entries and all, refused as [`decode`] refuses it, and checked to end at `end`: the
    /// validator's pass reads each object through this once.
    pub(crate) fn checked_object<'s>(
        &'s self,
        i: u32,
        at: usize,
        end: usize,
        limits: &'s Limits,
    ) -> Result<ObjectRef<'s>, DecodeError> {
        let mut d = Decoder::objects(&self.bytes, self.origin, at, limits);
        let o = match ObjectRef::of_head(decode_head(&mut d, i)?) {
            Ok(o) => o,
            Err(head) => {
                let array = d.clone();
                let (hash_at, state) = table_entries(&mut d, &head)?;
                let known = self.known_hash_start(i, head.array_len);
                if known.is_some_and(|k| (k.at as usize, k.state) != (hash_at, state)) {
                    return Err(d.refuse_at(
                        hash_at,
                        Code::NonCanonical,
                        format_args!("table {i}: its hash part was located elsewhere"),
                    ));
                }
                ObjectRef::Table(TableRef::new(&self.bytes, head, array, known))
            }
        };
        if d.pos() != end {
            return Err(misplaced(d, i, self.origin.saturating_add(end)));
        }
        Ok(o)
    }

    fn known_hash_start(&self, i: u32, array_len: usize) -> Option<HashStart> {
        if array_len < LONG_ARRAY {
            return None;
        }
        let k = self.hash_starts.binary_search_by_key(&i, |h| h.table).ok()?;
        Some(self.hash_starts[k])
    }

    /// The whole model, decoded (tools and tests; the checks read objects in place).
    pub fn to_model(&self) -> Snapshot {
        let mut objects = Vec::with_capacity(self.index.len());
        for (i, at, _) in self.extents() {
            let mut d = Decoder::trusted(&self.bytes, at, None);
            match decode_object(&mut d, i) {
                Ok(o) => objects.push(o),
                Err(_) => break,
            }
        }
        Snapshot {
            header: self.header.clone(),
            scripts: self.scripts.clone(),
            permanents: self.permanents.clone(),
            objects,
            roots: self.roots.clone(),
        }
    }

    pub fn object_count(&self) -> usize {
        self.index.len()
    }

    /// Each object's index and kind, in order.
    pub fn kinds(&self) -> impl Iterator<Item = (u32, ObjectKind)> + '_ {
        self.index.kinds().iter().enumerate().map(|(i, &k)| (i as u32, k))
    }

    /// Where object `i` begins.
    #[inline(always)]
    fn offset(&self, i: u32) -> Option<usize> {
        self.index.offset(&self.bytes, i)
    }

    pub fn kind(&self, i: u32) -> Option<ObjectKind> {
        self.index.kind(i)
    }

    /// Object `i`, decoded but for a table's entries; `None` when out of range.
    pub fn object(&self, i: u32) -> Option<ObjectRef<'_>> {
        self.object_at(i, self.offset(i)?)
    }

    /// Object `i`, which begins at `at`.
    fn object_at(&self, i: u32, at: usize) -> Option<ObjectRef<'_>> {
        let mut d = Decoder::trusted(&self.bytes, at, None);
        Some(match ObjectRef::of_head(decode_head(&mut d, i).ok()?) {
            Ok(o) => o,
            Err(head) => {
                let known = self.known_hash_start(i, head.array_len);
                if head.array_len >= LONG_ARRAY && known.is_none() {
                    return None;
                }
                ObjectRef::Table(TableRef::new(&self.bytes, head, d, known))
            }
        })
    }

    /// Every object in index order.
    pub fn objects(&self) -> impl Iterator<Item = (u32, ObjectRef<'_>)> {
        self.extents().filter_map(|(i, at, _)| Some((i, self.object_at(i, at)?)))
    }

    /// The index of every object of kind `kind`, ascending (nothing decoded).
    pub fn indices_of(&self, kind: ObjectKind) -> impl Iterator<Item = u32> + '_ {
        self.kinds().filter(move |&(_, k)| k == kind).map(|(i, _)| i)
    }

    /// [`Self::extents`] of the objects of kind `kind` (nothing decoded).
    pub(crate) fn extents_of(&self, kind: ObjectKind) -> impl Iterator<Item = (u32, usize, usize)> + '_ {
        self.extents().filter(move |&(i, _, _)| self.index.kind(i) == Some(kind))
    }

    /// Every object of kind `kind`, in index order (the others are not decoded).
    pub fn objects_of(&self, kind: ObjectKind) -> impl Iterator<Item = (u32, ObjectRef<'_>)> {
        self.extents_of(kind).filter_map(|(i, at, _)| Some((i, self.object_at(i, at)?)))
    }

    /// String object `i`'s bytes, if it is a string.
    pub fn string(&self, i: u32) -> Option<&[u8]> {
        if self.kind(i)? != ObjectKind::String {
            return None;
        }
        match self.object(i)? {
            ObjectRef::String(b) => Some(b),
            _ => None,
        }
    }

    /// What function object `i` runs, read without decoding the rest of it (a frame's function
    /// slot is looked up once per frame): a Luau closure's (script, proto), or a C closure's
    /// function (a permanent index).
    pub fn function(&self, i: u32) -> Option<Function> {
        let kind = self.kind(i)?;
        let at = self.offset(i)? + 1;
        // Two varints after the tag: a frame's function slot is classified once per frame, so
        // this reads them directly rather than decoding the closure.
        let mut bytes = self.bytes.get(at..)?.iter();
        let mut varint = || -> Option<u32> {
            let mut v: u64 = 0;
            for shift in (0..35).step_by(7) {
                let b = *bytes.next()?;
                v |= u64::from(b & 0x7f) << shift;
                if b & 0x80 == 0 {
                    return u32::try_from(v).ok();
                }
            }
            None
        };
        match kind {
            ObjectKind::LuaClosure => Some(Function::Lua { script: varint()?, proto: varint()? }),
            ObjectKind::CClosure => Some(Function::C { function: varint()? }),
            _ => None,
        }
    }

    /// Object `i`'s head, if it is of kind `kind` (inlined into the typed readers below, so
    /// the object is not copied out of a wider value).
    #[inline(always)]
    fn head_of(&self, i: u32, kind: ObjectKind) -> Option<Head<'_>> {
        if self.kind(i)? != kind {
            return None;
        }
        let mut d = Decoder::trusted(&self.bytes, self.offset(i)?, None);
        decode_head(&mut d, i).ok()
    }

    /// Luau closure object `i`, if it is one (read alone: restore fills closures by the
    /// hundred thousand).
    pub fn lua_closure(&self, i: u32) -> Option<LuaClosure> {
        match self.head_of(i, ObjectKind::LuaClosure)? {
            Head::LuaClosure(c) => Some(c),
            _ => None,
        }
    }

    /// Upvalue object `i`, if it is one.
    pub fn upvalue(&self, i: u32) -> Option<Upvalue> {
        match self.head_of(i, ObjectKind::Upvalue)? {
            Head::Upvalue(u) => Some(u),
            _ => None,
        }
    }

    /// Thread object `i`'s status and stack length, if it is a thread (read from its head; the
    /// stack itself is not read).
    pub fn thread_head(&self, i: u32) -> Option<(ThreadStatus, usize)> {
        let (status, len) = super::skim::thread_head(&self.bytes, self.offset(i)?, i)?;
        Some((ThreadStatus::from_code(status)?, usize::try_from(len).ok()?))
    }

    /// Thread object `i`, if it is a thread.
    pub fn thread(&self, i: u32) -> Option<Box<Thread>> {
        if self.kind(i)? != ObjectKind::Thread {
            return None;
        }
        match self.object(i)? {
            ObjectRef::Thread(t) => Some(t),
            _ => None,
        }
    }
}

/// The finding for object `i` ending elsewhere than where it was located to (`end`): the
/// locating reader and the decoder disagree, which would be a bug in one of them.
#[cold]
fn misplaced(mut d: Decoder<'_>, i: u32, end: usize) -> DecodeError {
    let at = d.pos();
    d.refuse_at(at, Code::NonCanonical, format_args!("object {i} ends here, but was located to end at byte {end}"))
}

/// What a closure runs ([`SnapshotView::function`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Lua { script: u32, proto: u32 },
    C { function: u32 },
}

/// An object of a [`SnapshotView`]: decoded, but for a table's entries (a [`TableRef`] reads
/// them in place) and with strings and buffers borrowed.
pub enum ObjectRef<'a> {
    String(&'a [u8]),
    Table(TableRef<'a>),
    LuaClosure(LuaClosure),
    CClosure(CClosure),
    Upvalue(Upvalue),
    Thread(Box<Thread>),
    Userdata(Box<Userdata>),
    Buffer(&'a [u8]),
}

impl<'a> ObjectRef<'a> {
    /// An object read whole by its head; a table's head back (its entries are read in place,
    /// through a [`TableRef`]).
    fn of_head(head: Head<'a>) -> Result<ObjectRef<'a>, super::format::TableHead> {
        Ok(match head {
            Head::String(b) => ObjectRef::String(b),
            Head::Buffer(b) => ObjectRef::Buffer(b),
            Head::LuaClosure(c) => ObjectRef::LuaClosure(c),
            Head::CClosure(c) => ObjectRef::CClosure(c),
            Head::Upvalue(u) => ObjectRef::Upvalue(u),
            Head::Thread(t) => ObjectRef::Thread(t),
            Head::Userdata(u) => ObjectRef::Userdata(u),
            Head::Table(head) => return Err(head),
        })
    }

    pub fn kind(&self) -> ObjectKind {
        match self {
            ObjectRef::String(_) => ObjectKind::String,
            ObjectRef::Table(_) => ObjectKind::Table,
            ObjectRef::LuaClosure(_) => ObjectKind::LuaClosure,
            ObjectRef::CClosure(_) => ObjectKind::CClosure,
            ObjectRef::Upvalue(_) => ObjectKind::Upvalue,
            ObjectRef::Thread(_) => ObjectKind::Thread,
            ObjectRef::Userdata(_) => ObjectKind::Userdata,
            ObjectRef::Buffer(_) => ObjectKind::Buffer,
        }
    }

    /// Calls `f` with every object this object refers to, as [`Object::for_each_reference`].
    pub fn for_each_reference(&self, mut f: impl FnMut(u32)) {
        let mut value = |v: &Value| {
            if let Value::Object(i) = v {
                f(*i)
            }
        };
        match self {
            ObjectRef::String(_) | ObjectRef::Buffer(_) => {}
            ObjectRef::Table(t) => {
                t.metatable.iter().for_each(&mut value);
                t.references(&mut f);
            }
            ObjectRef::LuaClosure(c) => {
                value(&c.env.value());
                c.upvalues.iter().for_each(|u| value(&Value::Object(*u)));
            }
            ObjectRef::CClosure(c) => {
                value(&c.env.value());
                c.upvalues.iter().for_each(value);
            }
            ObjectRef::Upvalue(Upvalue::Closed(v)) => value(v),
            ObjectRef::Upvalue(Upvalue::Open { thread, .. }) => value(&Value::Object(*thread)),
            ObjectRef::Thread(t) => {
                value(&t.globals);
                t.error.iter().for_each(&mut value);
                t.stack.iter().for_each(&mut value);
                t.open_upvalues.iter().for_each(|u| value(&Value::Object(*u)));
                t.namecall.iter().for_each(|n| value(&Value::Object(*n)));
            }
            ObjectRef::Userdata(u) => u.metatable.iter().for_each(value),
        }
    }
}

/// A table whose entries are read in place: its fields, its parts' sizes, and iterators over
/// its array part, hash part and node map.
#[derive(Clone)]
pub struct TableRef<'a> {
    pub metatable: Option<Value>,
    pub readonly: bool,
    pub safeenv: bool,
    pub insert_hint: i32,
    bytes: &'a [u8],
    array_at: usize,
    array_len: usize,
    /// The reference state where the array part starts.
    array_state: Option<u32>,
    /// Where the hash part starts, its size and the reference state there: found by reading
    /// through the array part, once, when first asked or when the array is first read through.
    hash: HashPart,
    has_node_map: bool,
}

impl<'a> TableRef<'a> {
    /// `d` stands at the array part; `known`, where the hash part starts if it was recorded.
    fn new(bytes: &'a [u8], head: super::format::TableHead, d: Decoder<'a>, known: Option<HashStart>) -> TableRef<'a> {
        let hash = HashPart::new();
        if let Some(h) = known {
            let _ = hash.set(hash_after(&mut Decoder::trusted(bytes, h.at as usize, h.state), head.array_len));
        }
        TableRef {
            metatable: head.metatable,
            readonly: head.readonly,
            safeenv: head.safeenv,
            insert_hint: head.insert_hint,
            bytes,
            array_at: d.pos(),
            array_len: head.array_len,
            array_state: d.last_object(),
            hash,
            has_node_map: head.has_node_map,
        }
    }

    fn hash_part(&self) -> (usize, usize, Option<u32>) {
        *self.hash.get_or_init(|| {
            let mut values = self.values(None);
            for _ in values.by_ref() {}
            hash_after(&mut values.d, self.array_len)
        })
    }

    fn values(&self, found: Option<&'a HashPart>) -> ArrayValues<'a> {
        ArrayValues {
            d: Decoder::trusted(self.bytes, self.array_at, self.array_state),
            left: self.array_len,
            p: Progression::default(),
            array_len: self.array_len,
            found,
        }
    }

    /// Calls `f` with each object the entries refer to (array part, then hash keys and values):
    /// skimmed, without decoding the values.
    fn references(&self, f: &mut impl FnMut(u32)) {
        let last = self.array_state.unwrap_or(0);
        let _ = super::skim::table_references(self.bytes, self.array_at, last, self.array_len, f);
    }

    /// The array part's size (holes included).
    pub fn array_len(&self) -> usize {
        self.array_len
    }

    /// The hash part's node count.
    pub fn hash_len(&self) -> usize {
        self.hash_part().1
    }

    pub fn has_node_map(&self) -> bool {
        self.has_node_map
    }

    /// The array part's values, in order.
    pub fn array<'t>(&'t self) -> ArrayValues<'t>
    where
        'a: 't,
    {
        // Read to its end, it finds where the hash part starts: no second read for `hash`.
        ArrayValues {
            d: Decoder::trusted(self.bytes, self.array_at, self.array_state),
            left: self.array_len,
            p: Progression::default(),
            array_len: self.array_len,
            found: Some(&self.hash),
        }
    }

    /// The hash part in iteration order; `None` is an unused node.
    pub fn hash(&self) -> HashNodes<'a> {
        let (at, len, state) = self.hash_part();
        HashNodes { d: Decoder::trusted(self.bytes, at, state), left: len }
    }

    /// The node of each iteration position (`u32::MAX` for an empty one), when the table has a
    /// node map.
    pub fn node_of(&self) -> Option<NodeMap<'a>> {
        if !self.has_node_map {
            return None;
        }
        let mut nodes = self.hash();
        let left = nodes.left;
        for _ in nodes.by_ref() {}
        Some(NodeMap { d: nodes.d, left })
    }
}

/// The values of an array part, read in place.
pub struct ArrayValues<'a> {
    d: Decoder<'a>,
    left: usize,
    p: Progression,
    array_len: usize,
    /// Where to record the hash part's start once the array is read through.
    found: Option<&'a HashPart>,
}

type HashPart = std::cell::OnceCell<(usize, usize, Option<u32>)>;

/// The hash part's start, size and reference state, with `d` just past the array part.
fn hash_after(d: &mut Decoder<'_>, array_len: usize) -> (usize, usize, Option<u32>) {
    match d.hash_size(array_len) {
        Ok(n) => (d.pos(), n, d.last_object()),
        Err(_) => (d.pos(), 0, None),
    }
}

impl Iterator for ArrayValues<'_> {
    type Item = Value;
    #[inline]
    fn next(&mut self) -> Option<Value> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The value moves straight out (matching it in place and then taking it stalls the
        // stores that wrote it).
        match self.d.array_slot_then(&mut self.p, Some) {
            Ok(v) => {
                if self.left == 0 {
                    self.record_hash_start();
                }
                v
            }
            Err(_) => {
                self.left = 0;
                self.found = None;
                None
            }
        }
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

impl ArrayValues<'_> {
    /// Read through: where the hash part starts, for the table to keep.
    #[cold]
    fn record_hash_start(&mut self) {
        if let Some(cell) = self.found.take()
            && cell.get().is_none()
        {
            let _ = cell.set(hash_after(&mut self.d, self.array_len));
        }
    }
}

/// The nodes of a hash part, read in place.
pub struct HashNodes<'a> {
    d: Decoder<'a>,
    left: usize,
}

impl Iterator for HashNodes<'_> {
    type Item = Option<(Value, Value)>;
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let n = self.d.hash_node();
        if n.is_err() {
            self.left = 0;
        }
        n.ok()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

/// A node map, read in place.
pub struct NodeMap<'a> {
    d: Decoder<'a>,
    left: usize,
}

impl Iterator for NodeMap<'_> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let n = self.d.node_map_entry();
        if n.is_err() {
            self.left = 0;
        }
        n.ok()
    }
}
