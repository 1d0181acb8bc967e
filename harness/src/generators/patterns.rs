//! Pattern-matching cases: a subject, a pattern and one of the four matching functions with its
//! extra arguments, built from an [`Unstructured`] byte source. Patterns are assembled from the
//! grammar's elements (classes, sets, suffixes, captures, anchors, `%b`, `%f`, back-references)
//! with malformed pieces mixed in, over a small alphabet so that matches, partial matches and
//! backtracking are all common.

use arbitrary::{Arbitrary, Result, Unstructured};

/// Bytes subjects are made of (with a NUL and a high byte: both are ordinary characters).
const ALPHABET: &[u8] = b"aaabb()[]%-. x1A\t\0\xe9";

/// Which function is called, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternOp {
    /// `string.find(s, p, init, plain)`.
    Find { init: Option<i32>, plain: bool },
    /// `string.match(s, p, init)`.
    Match { init: Option<i32> },
    /// Every `string.gmatch(s, p)` match (at most 64).
    Gmatch,
    /// `string.gsub(s, p, repl, n)` with a template string.
    GsubString { template: Vec<u8>, limit: Option<i32> },
    /// `string.gsub` with a table replacement (its `__index` computes some keys).
    GsubTable { limit: Option<i32> },
    /// `string.gsub` with a function replacement (returning strings, numbers, nil, false or,
    /// for one capture, an invalid table).
    GsubFunction { limit: Option<i32> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternCase {
    pub subject: Vec<u8>,
    pub pattern: Vec<u8>,
    pub op: PatternOp,
}

fn pick(u: &mut Unstructured<'_>, from: &[u8]) -> Result<u8> {
    Ok(from[u.choose_index(from.len())?])
}

fn set(u: &mut Unstructured<'_>, out: &mut Vec<u8>) -> Result<()> {
    out.push(b'[');
    if u.ratio(1, 4)? {
        out.push(b'^');
    }
    for _ in 0..u.int_in_range(0..=3)? {
        match u.int_in_range(0..=3)? {
            0 => out.push(pick(u, b"ab()%.x]-")?),
            1 => out.extend_from_slice(&[pick(u, b"a(0")?, b'-', pick(u, b"bz9)")?]),
            2 => out.extend_from_slice(&[b'%', pick(u, b"adswpxAS]%")?]),
            _ => out.push(pick(u, ALPHABET)?),
        }
    }
    // Sometimes unclosed: "malformed pattern (missing ']')".
    if !u.ratio(1, 30)? {
        out.push(b']');
    }
    Ok(())
}

fn single(u: &mut Unstructured<'_>, out: &mut Vec<u8>) -> Result<()> {
    match u.int_in_range(0..=5)? {
        0 | 1 => out.push(pick(u, b"aab()x. 1")?),
        2 => out.push(b'.'),
        3 => out.extend_from_slice(&[b'%', pick(u, b"acdglpsuwxzADSW.%(]")?]),
        _ => set(u, out)?,
    }
    if u.ratio(1, 2)? {
        out.push(pick(u, b"*+-?")?);
    }
    Ok(())
}

/// A run of elements; `depth` bounds nested capture groups.
fn elements(u: &mut Unstructured<'_>, out: &mut Vec<u8>, depth: u32) -> Result<()> {
    for _ in 0..u.int_in_range(0..=5)? {
        match u.int_in_range(0..=39)? {
            0..=23 => single(u, out)?,
            24..=28 if depth > 0 => {
                out.push(b'(');
                elements(u, out, depth - 1)?;
                out.push(b')');
            }
            24..=29 => out.extend_from_slice(b"()"),
            30 => out.push(pick(u, b"()")?),
            31 | 32 => out.extend_from_slice(&[b'%', b'b', pick(u, b"(a[")?, pick(u, b")b]")?]),
            33 | 34 => {
                out.extend_from_slice(b"%f");
                if u.ratio(7, 8)? {
                    set(u, out)?;
                }
            }
            35 | 36 => out.extend_from_slice(&[b'%', pick(u, b"0112")?]),
            37 => out.push(b'$'),
            38 => out.push(pick(u, b"%[]^")?),
            _ => out.push(u.arbitrary()?),
        }
    }
    Ok(())
}

fn pattern(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    if u.ratio(1, 5)? {
        out.push(b'^');
    }
    elements(u, &mut out, 2)?;
    if u.ratio(1, 5)? {
        out.push(b'$');
    }
    Ok(out)
}

fn subject(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let n = u.int_in_range(0..=24)?;
    (0..n).map(|_| pick(u, ALPHABET)).collect()
}

fn position(u: &mut Unstructured<'_>) -> Result<Option<i32>> {
    Ok(if u.ratio(1, 2)? { None } else { Some(u.int_in_range(-6..=28)?) })
}

impl<'a> Arbitrary<'a> for PatternCase {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let subject = subject(u)?;
        let pattern = pattern(u)?;
        let limit = |u: &mut Unstructured<'a>| -> Result<Option<i32>> {
            Ok(if u.ratio(3, 4)? { None } else { Some(u.int_in_range(-1..=3)?) })
        };
        let op = match u.int_in_range(0..=5)? {
            0 => PatternOp::Find { init: position(u)?, plain: u.ratio(1, 6)? },
            1 => PatternOp::Match { init: position(u)? },
            2 => PatternOp::Gmatch,
            3 => {
                let mut template = Vec::new();
                for _ in 0..u.int_in_range(0..=4)? {
                    match u.int_in_range(0..=3)? {
                        0 => template.extend_from_slice(&[b'%', pick(u, b"0123%x")?]),
                        1 => template.push(b'%'),
                        _ => template.push(pick(u, b"<>-_")?),
                    }
                }
                PatternOp::GsubString { template, limit: limit(u)? }
            }
            4 => PatternOp::GsubTable { limit: limit(u)? },
            _ => PatternOp::GsubFunction { limit: limit(u)? },
        };
        Ok(PatternCase { subject, pattern, op })
    }
}

impl PatternCase {
    /// A case from raw bytes (never fails: exhausted input gives short, empty pieces).
    pub fn from_bytes(bytes: &[u8]) -> PatternCase {
        PatternCase::arbitrary(&mut Unstructured::new(bytes)).unwrap_or(PatternCase {
            subject: vec![],
            pattern: vec![],
            op: PatternOp::Gmatch,
        })
    }

    /// The case as the oracle's driver takes it: operation name, subject, pattern and two
    /// extra arguments as strings (empty: absent).
    pub fn arguments(&self) -> [Vec<u8>; 5] {
        let num = |n: Option<i32>| n.map(|n| n.to_string().into_bytes()).unwrap_or_default();
        let (op, a, b): (&str, Vec<u8>, Vec<u8>) = match &self.op {
            PatternOp::Find { init, plain } => ("find", num(*init), if *plain { b"1".to_vec() } else { vec![] }),
            PatternOp::Match { init } => ("match", num(*init), vec![]),
            PatternOp::Gmatch => ("gmatch", vec![], vec![]),
            PatternOp::GsubString { template, limit } => ("gsub_s", template.clone(), num(*limit)),
            PatternOp::GsubTable { limit } => ("gsub_t", vec![], num(*limit)),
            PatternOp::GsubFunction { limit } => ("gsub_f", vec![], num(*limit)),
        };
        [op.as_bytes().to_vec(), self.subject.clone(), self.pattern.clone(), a, b]
    }
}
