//! A byte reader that never trusts a length: every read is checked against what remains, and every
//! count is checked against the remaining input before anything is allocated for it.

/// Why a read failed; the caller attaches its own context (offset, what was being read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// `needed` more bytes were required than remain.
    Truncated { needed: usize },
    /// A variable-length integer is longer than its type allows or has bits past its width.
    VarIntOverflow,
    /// A count claims more elements than the remaining input could hold (each at least
    /// `min_element_size` bytes).
    CountTooLarge { count: u64, remaining: usize },
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Truncated { needed } => write!(f, "input ends early ({needed} more bytes needed)"),
            ReadError::VarIntOverflow => write!(f, "variable-length integer overflows its type"),
            ReadError::CountTooLarge { count, remaining } => {
                write!(f, "count {count} cannot fit in the {remaining} bytes that remain")
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    pub fn offset(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        if n > self.remaining() {
            return Err(ReadError::Truncated { needed: n - self.remaining() });
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ReadError> {
        let bytes = self.bytes(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, ReadError> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u32_le(&mut self) -> Result<u32, ReadError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn i32_le(&mut self) -> Result<i32, ReadError> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    pub fn f32_le(&mut self) -> Result<f32, ReadError> {
        Ok(f32::from_le_bytes(self.array()?))
    }

    pub fn f64_le(&mut self) -> Result<f64, ReadError> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// LEB128-style unsigned integer of at most 32 bits (Luau's `readVarInt`), at most 5 bytes.
    pub fn varint_u32(&mut self) -> Result<u32, ReadError> {
        let value = self.varint(32)?;
        Ok(value as u32)
    }

    /// LEB128-style unsigned integer of at most 64 bits, at most 10 bytes.
    pub fn varint_u64(&mut self) -> Result<u64, ReadError> {
        self.varint(64)
    }

    fn varint(&mut self, bits: u32) -> Result<u64, ReadError> {
        let mut result: u64 = 0;
        let mut shift = 0u32;
        loop {
            let byte = self.u8()?;
            let payload = u64::from(byte & 0x7f);
            if shift >= bits || (shift > 0 && bits - shift < 7 && payload >> (bits - shift) != 0) {
                return Err(ReadError::VarIntOverflow);
            }
            result |= payload << shift;
            if byte & 0x80 == 0 {
                return Ok(result);
            }
            shift += 7;
        }
    }

    /// A count of elements that each take at least `min_element_size` bytes: refused before any
    /// allocation when the remaining input could not hold that many.
    pub fn count(&mut self, min_element_size: usize) -> Result<usize, ReadError> {
        let count = u64::from(self.varint_u32()?);
        self.check_count(count, min_element_size)
    }

    pub fn check_count(&self, count: u64, min_element_size: usize) -> Result<usize, ReadError> {
        let remaining = self.remaining();
        let need = count.saturating_mul(min_element_size.max(1) as u64);
        if min_element_size > 0 && need > remaining as u64 {
            return Err(ReadError::CountTooLarge { count, remaining });
        }
        usize::try_from(count).map_err(|_| ReadError::CountTooLarge { count, remaining })
    }

    /// Moves to an absolute offset that must lie within the input.
    pub fn seek(&mut self, offset: usize) -> Result<(), ReadError> {
        if offset > self.data.len() {
            return Err(ReadError::Truncated { needed: offset - self.data.len() });
        }
        self.pos = offset;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_decode_and_reject_overlong_forms() {
        assert_eq!(Reader::new(&[0x00]).varint_u32(), Ok(0));
        assert_eq!(Reader::new(&[0x7f]).varint_u32(), Ok(127));
        assert_eq!(Reader::new(&[0x80, 0x01]).varint_u32(), Ok(128));
        assert_eq!(Reader::new(&[0xff, 0xff, 0xff, 0xff, 0x0f]).varint_u32(), Ok(u32::MAX));
        // bits past the 32nd
        assert_eq!(Reader::new(&[0xff, 0xff, 0xff, 0xff, 0x1f]).varint_u32(), Err(ReadError::VarIntOverflow));
        // a sixth byte
        assert_eq!(Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]).varint_u32(), Err(ReadError::VarIntOverflow));
        assert_eq!(Reader::new(&[0x80]).varint_u32(), Err(ReadError::Truncated { needed: 1 }));
        assert_eq!(
            Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).varint_u64(),
            Ok(u64::MAX)
        );
        assert_eq!(
            Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]).varint_u64(),
            Err(ReadError::VarIntOverflow)
        );
    }

    #[test]
    fn counts_are_checked_against_remaining_input() {
        let mut r = Reader::new(&[0x05, 1, 2, 3, 4]);
        assert_eq!(r.count(1), Err(ReadError::CountTooLarge { count: 5, remaining: 4 }));
        let mut r = Reader::new(&[0x04, 1, 2, 3, 4]);
        assert_eq!(r.count(1), Ok(4));
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(matches!(r.count(4), Err(ReadError::CountTooLarge { .. })));
    }
}
