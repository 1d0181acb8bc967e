//! Locating objects: the first pass over a snapshot's objects finds where each one begins, what
//! kind it is and, for a long array part, where the hash part after it starts. It reads no more
//! than that needs: no values are built and no canonical-form rule is applied, because the
//! validator's pass decodes every object strictly anyway (checking that it ends where the next
//! one begins). What this pass cannot locate, it leaves to the strict decoder, which names the
//! first malformed byte exactly as a full decode would.
//!
//! It accepts at least what the strict decoder accepts, with the same extent for every object:
//! both follow docs/FORMAT.md, and every element read here takes at least one byte, so no count
//! can make it loop past the end of the input (each loop below ends there at the latest).

use super::ObjectKind;
use super::format::{TABLE_HAS_METATABLE, TABLE_HAS_NODE_MAP, tag};

/// A reader over the objects' bytes that only bounds-checks.
pub(crate) struct Skim<'a> {
    data: &'a [u8],
    pos: usize,
    /// The last object reference (NEXT follows it), from the object's own index on.
    last: u32,
}

impl<'a> Skim<'a> {
    pub(crate) fn new(data: &'a [u8], pos: usize) -> Skim<'a> {
        Skim { data, pos, last: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    #[inline(always)]
    fn u8(&mut self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    #[inline]
    fn skip(&mut self, n: usize) -> Option<()> {
        let end = self.pos.checked_add(n)?;
        if end > self.data.len() {
            return None;
        }
        self.pos = end;
        Some(())
    }

    #[inline(always)]
    fn varint(&mut self) -> Option<u64> {
        let b = *self.data.get(self.pos)?;
        self.pos += 1;
        if b < 0x80 {
            return Some(u64::from(b));
        }
        self.varint_rest(u64::from(b & 0x7f))
    }

    /// The bytes of a varint after its first (`v` so far); at most ten in all.
    fn varint_rest(&mut self, mut v: u64) -> Option<u64> {
        let mut shift = 7;
        while shift < 70 {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
            if b & 0x80 == 0 {
                return Some(v);
            }
            shift += 7;
        }
        None
    }

    /// A byte string's length and bytes.
    fn slice(&mut self) -> Option<()> {
        let n = usize::try_from(self.varint()?).ok()?;
        self.skip(n)
    }

    #[inline(always)]
    fn value(&mut self) -> Option<()> {
        self.value_with(&mut |_| {})
    }

    /// A value, handing `found` the object it refers to, if any.
    #[inline(always)]
    fn value_with(&mut self, found: &mut impl FnMut(u32)) -> Option<()> {
        match self.u8()? {
            tag::NIL | tag::FALSE | tag::TRUE => {}
            tag::INTEGER | tag::ITER_POSITION | tag::PERMANENT => {
                self.varint()?;
            }
            tag::OBJECT => {
                self.last = u32::try_from(self.varint()?).ok()?;
                found(self.last);
            }
            tag::NEXT_OBJECT => {
                self.last = self.last.checked_add(1)?;
                found(self.last);
            }
            tag::NUMBER => self.skip(8)?,
            tag::VECTOR => self.skip(12)?,
            tag::LIGHT_USERDATA => self.skip(9)?,
            _ => return None,
        }
        Some(())
    }

    /// A flag byte: 0 or 1.
    #[inline(always)]
    fn optional(&mut self) -> Option<bool> {
        match self.u8()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    /// Object `index`, which starts here: its kind. For a table, `hash_start` hears its array
    /// length, where its hash part starts and the reference state there.
    pub(crate) fn object(&mut self, index: u32, hash_start: &mut impl FnMut(u64, usize, u32)) -> Option<ObjectKind> {
        self.last = index;
        Some(match self.u8()? {
            tag::O_STRING => {
                self.slice()?;
                ObjectKind::String
            }
            tag::O_BUFFER => {
                self.slice()?;
                ObjectKind::Buffer
            }
            tag::O_TABLE => {
                self.table(hash_start)?;
                ObjectKind::Table
            }
            tag::O_LUA_CLOSURE => {
                self.varint()?;
                self.varint()?;
                self.value()?;
                for _ in 0..self.varint()? {
                    self.varint()?;
                }
                ObjectKind::LuaClosure
            }
            tag::O_C_CLOSURE => {
                self.varint()?;
                self.value()?;
                for _ in 0..self.varint()? {
                    self.value()?;
                }
                ObjectKind::CClosure
            }
            tag::O_UPVALUE => {
                match self.u8()? {
                    0 => self.value()?,
                    1 => {
                        self.varint()?;
                        self.varint()?;
                    }
                    _ => return None,
                }
                ObjectKind::Upvalue
            }
            tag::O_THREAD => {
                self.thread()?;
                ObjectKind::Thread
            }
            tag::O_USERDATA => {
                match self.u8()? {
                    0 => {}
                    1 => {
                        self.u8()?;
                        self.slice()?;
                        self.slice()?;
                    }
                    _ => return None,
                }
                if self.optional()? {
                    self.value()?;
                }
                ObjectKind::Userdata
            }
            _ => return None,
        })
    }

    fn table(&mut self, hash_start: &mut impl FnMut(u64, usize, u32)) -> Option<()> {
        let flags = self.u8()?;
        if flags & TABLE_HAS_METATABLE != 0 {
            self.value()?;
        }
        self.varint()?;
        let array = self.varint()?;
        let nodes = self.entries(array, &mut |at, last| hash_start(array, at, last), &mut |_| {})?;
        if flags & TABLE_HAS_NODE_MAP != 0 {
            for _ in 0..nodes {
                self.varint()?;
            }
        }
        Some(())
    }

    /// A table's array part of `array` slots and its hash part (not the node map after it):
    /// `hash_start` hears where the hash part starts and the reference state there, `found`
    /// every object the entries refer to. Gives the hash part's node count.
    #[inline(always)]
    fn entries(
        &mut self,
        array: u64,
        hash_start: &mut impl FnMut(usize, u32),
        found: &mut impl FnMut(u32),
    ) -> Option<u64> {
        for _ in 0..array {
            if self.data.get(self.pos) == Some(&tag::STEP) {
                self.pos += 1;
            } else {
                self.value_with(found)?;
            }
        }
        hash_start(self.pos, self.last);
        let nodes = self.varint()?;
        for _ in 0..nodes {
            if self.optional()? {
                self.value_with(found)?;
                self.value_with(found)?;
            }
        }
        Some(nodes)
    }

    /// A thread's status, globals, namecall and error value: its status and stack length.
    fn thread_head(&mut self) -> Option<(u8, u64)> {
        let status = self.u8()?;
        self.value()?;
        if self.optional()? {
            self.varint()?;
        }
        if self.optional()? {
            self.value()?;
        }
        Some((status, self.varint()?))
    }

    fn thread(&mut self) -> Option<()> {
        for _ in 0..self.thread_head()?.1 {
            self.value()?;
        }
        for _ in 0..self.varint()? {
            // A Luau frame (0) has its yield point and vararg count; a C frame (1), nothing.
            if !self.optional()? {
                self.varint()?;
                self.varint()?;
            }
        }
        for _ in 0..self.varint()? {
            self.varint()?;
        }
        Some(())
    }
}

/// The status code and stack length of thread object `index`, which starts at `pos` of `data`
/// (read from its head: the stack itself is not read); `None` if it is no thread.
pub(crate) fn thread_head(data: &[u8], pos: usize, index: u32) -> Option<(u8, u64)> {
    let mut s = Skim { data, pos, last: index };
    if s.u8()? != tag::O_THREAD {
        return None;
    }
    s.thread_head()
}

/// The objects a table's entries refer to, in order (array part, then each hash node's key and
/// value): its array part of `array_len` slots is at `pos` of `data`, where the reference state
/// is `last`. `None` where the bytes do not read as entries.
pub(crate) fn table_references(
    data: &[u8],
    pos: usize,
    last: u32,
    array_len: usize,
    found: &mut impl FnMut(u32),
) -> Option<()> {
    Skim { data, pos, last }.entries(array_len as u64, &mut |_, _| {}, found).map(drop)
}
