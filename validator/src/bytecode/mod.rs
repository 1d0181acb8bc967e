//! Reader for the bytecode `luau_compile` produces (the layout `luau_load` in `lvmload.cpp` reads).
//!
//! Amber never accepts bytecode from a snapshot: the runtime compiles trusted source itself and
//! hands the result here to learn each prototype's shape and yield-point map. The reader is still
//! written for hostile input (fuzzed and property-tested): every length and index is checked, and
//! any malformed input ends in a [`BytecodeError`], never a panic.

mod opcode;
pub mod registers;
mod yield_points;

pub use opcode::{JumpForm, Opcode};
pub use yield_points::{YieldKind, YieldPoint, YieldPointMap, YieldSignature};

use crate::reader::{ReadError, Reader};
use thiserror::Error;

/// Oldest and newest bytecode versions read (`LBC_VERSION_MIN`/`MAX`). Version 100 (classes) is
/// refused: class values are out of scope while their flags are off.
pub const VERSION_MIN: u8 = 3;
pub const VERSION_MAX: u8 = 14;
pub const TYPES_VERSION_MIN: u8 = 1;
pub const TYPES_VERSION_MAX: u8 = 3;

/// `LPF_INLINABLE`: the proto carries a cost model (version 12 and later).
const PROTO_FLAG_INLINABLE: u8 = 1 << 3;

#[derive(Debug, Clone, PartialEq, Error)]
#[error("bytecode offset {offset}: {kind}")]
pub struct BytecodeError {
    /// Byte offset in the bytecode where the problem was found.
    pub offset: usize,
    pub kind: BytecodeErrorKind,
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum BytecodeErrorKind {
    #[error("compile error: {0}")]
    CompileError(String),
    #[error("{what}: {error}")]
    Read { what: &'static str, error: ReadError },
    #[error("unsupported bytecode version {0} (this reader supports {VERSION_MIN}..={VERSION_MAX})")]
    UnsupportedVersion(u8),
    #[error("unsupported type-information version {0}")]
    UnsupportedTypesVersion(u8),
    #[error("{what} index {index} out of range (there are {len})")]
    IndexOutOfRange { what: &'static str, index: u64, len: usize },
    #[error("proto {proto}: child or closure constant refers to proto {child}, which is not defined before it")]
    ProtoOrder { proto: u32, child: u32 },
    #[error("proto {proto}: unknown constant tag {tag}")]
    BadConstantTag { proto: u32, tag: u8 },
    #[error("proto {proto} pc {pc}: unknown opcode {op}")]
    BadOpcode { proto: u32, pc: u32, op: u8 },
    #[error("proto {proto} pc {pc}: opcode {op} is not accepted")]
    RefusedOpcode { proto: u32, pc: u32, op: &'static str },
    #[error("proto {proto} pc {pc}: {op} needs an AUX word but the code ends")]
    MissingAux { proto: u32, pc: u32, op: &'static str },
    #[error("proto {proto} pc {pc}: {op} jumps to {target}, which is not the start of an instruction")]
    BadJump { proto: u32, pc: u32, op: &'static str, target: i64 },
    #[error("proto {proto} pc {pc}: {op} uses register {register} but the frame has {max_stack} slots")]
    RegisterOutOfRange { proto: u32, pc: u32, op: &'static str, register: u32, max_stack: u8 },
    #[error("proto {proto} pc {pc}: {op} refers to {what} {index}, out of range (there are {len})")]
    OperandOutOfRange { proto: u32, pc: u32, op: &'static str, what: &'static str, index: u64, len: usize },
    #[error("proto {proto}: {what}")]
    Malformed { proto: u32, what: String },
    #[error("{0} trailing bytes after the main proto index")]
    TrailingBytes(usize),
}

/// A parsed bytecode module.
#[derive(Debug, Clone, PartialEq)]
pub struct Module {
    pub version: u8,
    pub types_version: u8,
    pub strings: Vec<Vec<u8>>,
    /// Userdata type names declared for type information (index, string id).
    pub userdata_types: Vec<(u8, u32)>,
    pub protos: Vec<Proto>,
    pub main: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Proto {
    /// Index within the module (`Proto::bytecodeid` in the VM).
    pub id: u32,
    pub max_stack_size: u8,
    pub num_params: u8,
    pub num_upvalues: u8,
    pub is_vararg: bool,
    pub flags: u8,
    pub type_info: Vec<u8>,
    /// The raw instruction words, as compiled.
    pub code: Vec<u32>,
    /// Decoded instructions, one per instruction start (AUX words are folded in).
    pub instructions: Vec<Instruction>,
    pub constants: Vec<Constant>,
    /// Module-level ids of the child protos (operand D of NEWCLOSURE indexes this list).
    pub children: Vec<u32>,
    pub line_defined: u32,
    pub debug_name: Option<u32>,
    pub line_info: Option<LineInfo>,
    pub locals: Vec<LocalVar>,
    pub upvalue_names: Vec<Option<u32>>,
    pub feedback: Vec<FeedbackSlot>,
    pub cost: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Instruction {
    /// Index of the instruction's first word in `Proto::code`.
    pub pc: u32,
    pub op: Opcode,
    pub a: u8,
    pub b: u8,
    pub c: u8,
    pub aux: Option<u32>,
    /// The raw first word (D and E are derived from it).
    pub word: u32,
}

impl Instruction {
    pub fn d(&self) -> i32 {
        (self.word as i32) >> 16
    }
    pub fn e(&self) -> i32 {
        (self.word as i32) >> 8
    }
    pub fn length(&self) -> u32 {
        self.op.length() as u32
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Constant {
    Nil,
    Boolean(bool),
    Number(f64),
    Vector([f32; 4]),
    VectorDouble([f64; 4]),
    /// Index into `Module::strings`.
    String(u32),
    /// An import path: up to three constant indices.
    Import(u32),
    /// Constant indices of the keys of a table template.
    Table(Vec<u32>),
    /// Keys with pre-filled constant values (-1: no value).
    TableWithConstants(Vec<(u32, i32)>),
    /// A module-level proto id.
    Closure(u32),
    Integer(i64),
    ClassShape,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LineInfo {
    pub gap_log2: u8,
    /// Per instruction word: offset from the interval's absolute line.
    pub offsets: Vec<u8>,
    pub absolute: Vec<i32>,
}

impl LineInfo {
    pub fn line_at(&self, pc: usize) -> Option<i32> {
        let offset = *self.offsets.get(pc)?;
        let interval = pc >> self.gap_log2;
        let base = *self.absolute.get(interval)?;
        Some(base.wrapping_add(i32::from(offset)))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LocalVar {
    pub name: Option<u32>,
    pub start_pc: u32,
    pub end_pc: u32,
    pub register: u8,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FeedbackSlot {
    CallTarget { pc: u32 },
    Construct { shape: u32 },
}

impl Module {
    pub fn string(&self, id: u32) -> Option<&[u8]> {
        self.strings.get(id as usize).map(Vec::as_slice)
    }

    pub fn proto(&self, id: u32) -> Option<&Proto> {
        self.protos.get(id as usize)
    }

    /// The debug name of a proto, or "main chunk"/"anonymous function".
    pub fn proto_name(&self, id: u32) -> String {
        match self.proto(id) {
            Some(p) => match p.debug_name.and_then(|s| self.string(s)) {
                Some(name) => String::from_utf8_lossy(name).into_owned(),
                None if id == self.main => "main chunk".into(),
                None => "anonymous function".into(),
            },
            None => format!("proto {id}"),
        }
    }
}

impl Proto {
    /// The instruction starting at `pc`, if one does.
    pub fn instruction_at(&self, pc: u32) -> Option<&Instruction> {
        self.instructions.binary_search_by_key(&pc, |i| i.pc).ok().map(|i| &self.instructions[i])
    }

    pub fn line_at(&self, pc: u32) -> Option<i32> {
        self.line_info.as_ref()?.line_at(pc as usize)
    }

    /// The yield-point map of this proto (see ARCHITECTURE.md, "Pre-emption and yield points").
    pub fn yield_points(&self) -> Result<YieldPointMap, BytecodeErrorKind> {
        YieldPointMap::of(self)
    }
}

struct Parser<'a> {
    r: Reader<'a>,
}

impl<'a> Parser<'a> {
    fn err(&self, kind: BytecodeErrorKind) -> BytecodeError {
        BytecodeError { offset: self.r.offset(), kind }
    }

    fn read<T>(
        &mut self,
        what: &'static str,
        f: impl FnOnce(&mut Reader<'a>) -> Result<T, ReadError>,
    ) -> Result<T, BytecodeError> {
        let offset = self.r.offset();
        f(&mut self.r).map_err(|error| BytecodeError { offset, kind: BytecodeErrorKind::Read { what, error } })
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, BytecodeError> {
        self.read(what, |r| r.u8())
    }

    fn varint(&mut self, what: &'static str) -> Result<u32, BytecodeError> {
        self.read(what, |r| r.varint_u32())
    }

    fn count(&mut self, what: &'static str, min_element_size: usize) -> Result<usize, BytecodeError> {
        self.read(what, |r| r.count(min_element_size))
    }

    fn string_ref(&mut self, what: &'static str, strings: usize) -> Result<Option<u32>, BytecodeError> {
        let id = self.varint(what)?;
        if id == 0 {
            return Ok(None);
        }
        if id as usize > strings {
            return Err(self.err(BytecodeErrorKind::IndexOutOfRange {
                what: "string",
                index: u64::from(id),
                len: strings,
            }));
        }
        Ok(Some(id - 1))
    }
}

/// Parses a module. Compile errors (the compiler's encoding: first byte 0) come back as
/// [`BytecodeErrorKind::CompileError`].
pub fn parse(bytes: &[u8]) -> Result<Module, BytecodeError> {
    let mut p = Parser { r: Reader::new(bytes) };
    let version = p.u8("version")?;
    if version == 0 {
        let message = String::from_utf8_lossy(&bytes[1..]).into_owned();
        return Err(BytecodeError { offset: 0, kind: BytecodeErrorKind::CompileError(message) });
    }
    if !(VERSION_MIN..=VERSION_MAX).contains(&version) {
        return Err(BytecodeError { offset: 0, kind: BytecodeErrorKind::UnsupportedVersion(version) });
    }
    let mut types_version = 0;
    if version >= 4 {
        types_version = p.u8("type-information version")?;
        if !(TYPES_VERSION_MIN..=TYPES_VERSION_MAX).contains(&types_version) {
            return Err(p.err(BytecodeErrorKind::UnsupportedTypesVersion(types_version)));
        }
    }

    let string_count = p.count("string count", 1)?;
    let mut strings = Vec::with_capacity(string_count);
    for _ in 0..string_count {
        let len = p.count("string length", 1)?;
        strings.push(p.read("string bytes", |r| r.bytes(len))?.to_vec());
    }

    let mut userdata_types = Vec::new();
    if types_version == 3 {
        loop {
            let index = p.u8("userdata type index")?;
            if index == 0 {
                break;
            }
            let name = p.string_ref("userdata type name", strings.len())?;
            let Some(name) = name else {
                return Err(
                    p.err(BytecodeErrorKind::Malformed { proto: 0, what: "userdata type without a name".into() })
                );
            };
            userdata_types.push((index, name));
        }
    }

    // Each proto takes at least 7 bytes (stack, params, upvalues, vararg, code count, constant
    // count, child count); the count is checked against that before allocating.
    let proto_count = p.count("proto count", 7)?;
    let mut protos = Vec::with_capacity(proto_count);
    for id in 0..proto_count as u32 {
        protos.push(parse_proto(&mut p, id, version, types_version, strings.len())?);
    }

    let main = p.varint("main proto index")?;
    if main as usize >= protos.len() {
        return Err(p.err(BytecodeErrorKind::IndexOutOfRange {
            what: "main proto",
            index: u64::from(main),
            len: protos.len(),
        }));
    }
    if !p.r.is_empty() {
        return Err(p.err(BytecodeErrorKind::TrailingBytes(p.r.remaining())));
    }
    Ok(Module { version, types_version, strings, userdata_types, protos, main })
}

/// Parses a module and computes every proto's yield-point map with its register dataflow.
pub fn parse_with_maps(bytes: &[u8]) -> Result<(Module, Vec<YieldPointMap>), BytecodeError> {
    let module = parse(bytes)?;
    let mut maps = Vec::with_capacity(module.protos.len());
    for p in &module.protos {
        maps.push(YieldPointMap::of(p).map_err(|kind| BytecodeError { offset: 0, kind })?);
    }
    Ok((module, maps))
}

fn parse_proto(
    p: &mut Parser<'_>,
    id: u32,
    version: u8,
    types_version: u8,
    strings: usize,
) -> Result<Proto, BytecodeError> {
    let malformed = |p: &Parser<'_>, what: String| p.err(BytecodeErrorKind::Malformed { proto: id, what });

    let mut end = None;
    if version >= 12 {
        let size = p.count("proto size", 1)?;
        end = Some(p.r.offset() + size);
    }

    let max_stack_size = p.u8("max stack size")?;
    let num_params = p.u8("parameter count")?;
    let num_upvalues = p.u8("upvalue count")?;
    let is_vararg = p.u8("vararg flag")? != 0;
    let mut flags = 0;
    let mut type_info = Vec::new();
    if version >= 4 {
        flags = p.u8("proto flags")?;
        if types_version >= 1 {
            let size = p.count("type information size", 1)?;
            type_info = p.read("type information", |r| r.bytes(size))?.to_vec();
        }
    }

    let code_len = p.count("instruction count", 4)?;
    let mut code = Vec::with_capacity(code_len);
    for _ in 0..code_len {
        code.push(p.read("instruction", |r| r.u32_le())?);
    }

    let constant_count = p.count("constant count", 1)?;
    let mut constants = Vec::with_capacity(constant_count);
    for _ in 0..constant_count {
        let tag = p.u8("constant tag")?;
        let constant = match tag {
            0 => Constant::Nil,
            1 => Constant::Boolean(p.u8("boolean constant")? != 0),
            2 => Constant::Number(p.read("number constant", |r| r.f64_le())?),
            3 => match p.string_ref("string constant", strings)? {
                Some(s) => Constant::String(s),
                None => return Err(malformed(p, "string constant without a string".into())),
            },
            4 => {
                let iid = p.read("import constant", |r| r.u32_le())?;
                let count = iid >> 30;
                if count == 0 {
                    return Err(malformed(p, "import constant with an empty path".into()));
                }
                // The path names earlier constants (resolveImportSafe reads k[id0..id2]).
                for i in 0..count {
                    let index = (iid >> (20 - 10 * i)) & 1023;
                    if index as usize >= constants.len() {
                        return Err(p.err(BytecodeErrorKind::IndexOutOfRange {
                            what: "import path constant",
                            index: u64::from(index),
                            len: constants.len(),
                        }));
                    }
                }
                Constant::Import(iid)
            }
            5 => {
                let keys = p.count("table template key count", 1)?;
                let mut out = Vec::with_capacity(keys);
                for _ in 0..keys {
                    let key = p.varint("table template key")?;
                    check_index(p, "table template key constant", key, constant_count)?;
                    out.push(key);
                }
                Constant::Table(out)
            }
            6 => {
                let fid = p.varint("closure constant")?;
                if fid >= id {
                    return Err(p.err(BytecodeErrorKind::ProtoOrder { proto: id, child: fid }));
                }
                Constant::Closure(fid)
            }
            7 => {
                let mut v = [0f32; 4];
                for c in &mut v {
                    *c = p.read("vector constant", |r| r.f32_le())?;
                }
                Constant::Vector(v)
            }
            8 => {
                let keys = p.count("table template key count", 5)?;
                let mut out = Vec::with_capacity(keys);
                for _ in 0..keys {
                    let key = p.varint("table template key")?;
                    check_index(p, "table template key constant", key, constant_count)?;
                    let value = p.read("table template value", |r| r.i32_le())?;
                    if value >= 0 {
                        check_index(p, "table template value constant", value as u32, constant_count)?;
                    }
                    out.push((key, value));
                }
                Constant::TableWithConstants(out)
            }
            9 => {
                let negative = p.u8("integer sign")? != 0;
                let magnitude = p.read("integer magnitude", |r| r.varint_u64())?;
                Constant::Integer(if negative { (!magnitude).wrapping_add(1) as i64 } else { magnitude as i64 })
            }
            10 => {
                // Parsed for completeness; class values are refused elsewhere.
                let name = p.varint("class name")?;
                check_index(p, "class name constant", name, constant_count)?;
                let private_fields = u32::from(p.u8("class private field count")?);
                let private_methods = u32::from(p.u8("class private method count")?);
                let properties = p.varint("class property count")?;
                let methods = p.varint("class method count")?;
                let (Some(public_props), Some(public_methods)) =
                    (properties.checked_sub(private_fields), methods.checked_sub(private_methods))
                else {
                    return Err(malformed(p, "class shape with more private than total members".into()));
                };
                let members = u64::from(public_props) + u64::from(public_methods);
                p.read("class members", |r| r.check_count(members, 1))?;
                for _ in 0..members {
                    let m = p.varint("class member name")?;
                    check_index(p, "class member constant", m, constant_count)?;
                }
                Constant::ClassShape
            }
            11 => {
                let mut v = [0f64; 4];
                for c in &mut v {
                    *c = p.read("vector constant", |r| r.f64_le())?;
                }
                Constant::VectorDouble(v)
            }
            tag => return Err(p.err(BytecodeErrorKind::BadConstantTag { proto: id, tag })),
        };
        constants.push(constant);
    }

    let child_count = p.count("child proto count", 1)?;
    let mut children = Vec::with_capacity(child_count);
    for _ in 0..child_count {
        let fid = p.varint("child proto")?;
        if fid >= id {
            return Err(p.err(BytecodeErrorKind::ProtoOrder { proto: id, child: fid }));
        }
        children.push(fid);
    }

    let line_defined = p.varint("line defined")?;
    let debug_name = p.string_ref("debug name", strings)?;

    let mut line_info = None;
    if p.u8("line information flag")? != 0 {
        let gap_log2 = p.u8("line gap")?;
        if gap_log2 > 24 {
            return Err(malformed(p, format!("line gap 2^{gap_log2} is too large")));
        }
        let intervals = if code_len == 0 { 0 } else { ((code_len - 1) >> gap_log2) + 1 };
        let offsets_bytes = p.read("line offsets", |r| r.bytes(code_len))?;
        let mut offsets = Vec::with_capacity(code_len);
        let mut last = 0u8;
        for &delta in offsets_bytes {
            last = last.wrapping_add(delta);
            offsets.push(last);
        }
        p.read("absolute lines", |r| r.check_count(intervals as u64, 4))?;
        let mut absolute = Vec::with_capacity(intervals);
        let mut line = 0i32;
        for _ in 0..intervals {
            line = line.wrapping_add(p.read("absolute line", |r| r.i32_le())?);
            absolute.push(line);
        }
        line_info = Some(LineInfo { gap_log2, offsets, absolute });
    }

    let mut locals = Vec::new();
    let mut upvalue_names = Vec::new();
    if p.u8("debug information flag")? != 0 {
        let count = p.count("local variable count", 4)?;
        locals.reserve(count);
        for _ in 0..count {
            let name = p.string_ref("local name", strings)?;
            let start_pc = p.varint("local start pc")?;
            let end_pc = p.varint("local end pc")?;
            let register = p.u8("local register")?;
            locals.push(LocalVar { name, start_pc, end_pc, register });
        }
        let count = p.count("upvalue name count", 1)?;
        if count != usize::from(num_upvalues) {
            return Err(malformed(p, format!("{count} upvalue names for {num_upvalues} upvalues")));
        }
        for _ in 0..count {
            upvalue_names.push(p.string_ref("upvalue name", strings)?);
        }
    }

    let mut feedback = Vec::new();
    if version >= 11 {
        let count = p.count("feedback slot count", 2)?;
        feedback.reserve(count);
        for _ in 0..count {
            match p.u8("feedback slot kind")? {
                0 => feedback.push(FeedbackSlot::CallTarget { pc: p.varint("feedback call target")? }),
                1 => feedback.push(FeedbackSlot::Construct { shape: p.varint("feedback shape")? }),
                kind => return Err(malformed(p, format!("unknown feedback slot kind {kind}"))),
            }
        }
    }

    let mut cost = None;
    if version >= 12 && flags & PROTO_FLAG_INLINABLE != 0 {
        cost = Some(p.read("cost", |r| r.varint_u64())?);
    }

    if let Some(end) = end {
        // Version 12 lets a proto carry data this reader does not know; skip to its declared end,
        // which must not lie before what was read.
        if end < p.r.offset() {
            return Err(malformed(p, format!("proto size ends at byte {end}, before its contents end")));
        }
        p.read("proto end", |r| r.seek(end))?;
    }

    let mut proto = Proto {
        id,
        max_stack_size,
        num_params,
        num_upvalues,
        is_vararg,
        flags,
        type_info,
        code,
        instructions: Vec::new(),
        constants,
        children,
        line_defined,
        debug_name,
        line_info,
        locals,
        upvalue_names,
        feedback,
        cost,
    };
    proto.instructions = decode_instructions(&proto).map_err(|kind| BytecodeError { offset: p.r.offset(), kind })?;
    Ok(proto)
}

fn check_index(p: &Parser<'_>, what: &'static str, index: u32, len: usize) -> Result<(), BytecodeError> {
    if index as usize >= len {
        return Err(p.err(BytecodeErrorKind::IndexOutOfRange { what, index: u64::from(index), len }));
    }
    Ok(())
}

/// Decodes the instruction stream and checks what the yield-point map and the VM rely on:
/// known opcodes, AUX words present, jumps landing on instruction starts, registers inside the
/// frame, constant and child indices in range.
fn decode_instructions(proto: &Proto) -> Result<Vec<Instruction>, BytecodeErrorKind> {
    let code = &proto.code;
    let id = proto.id;
    let mut instructions = Vec::with_capacity(code.len());
    let mut is_start = vec![false; code.len() + 1];
    let mut pc = 0usize;
    while pc < code.len() {
        let word = code[pc];
        let byte = (word & 0xff) as u8;
        let op = Opcode::from_byte(byte).ok_or(BytecodeErrorKind::BadOpcode { proto: id, pc: pc as u32, op: byte })?;
        if op.is_refused() {
            return Err(BytecodeErrorKind::RefusedOpcode { proto: id, pc: pc as u32, op: op.name() });
        }
        let aux = if op.length() == 2 {
            Some(*code.get(pc + 1).ok_or(BytecodeErrorKind::MissingAux { proto: id, pc: pc as u32, op: op.name() })?)
        } else {
            None
        };
        is_start[pc] = true;
        instructions.push(Instruction {
            pc: pc as u32,
            op,
            a: ((word >> 8) & 0xff) as u8,
            b: ((word >> 16) & 0xff) as u8,
            c: ((word >> 24) & 0xff) as u8,
            aux,
            word,
        });
        pc += op.length();
    }
    is_start[code.len()] = false;

    for insn in &instructions {
        check_operands(proto, insn, &is_start)?;
    }
    // The frame layout of a vararg function (fixed parameters moved above the variable ones)
    // is made by PREPVARARGS, which must run before anything can suspend the frame.
    if proto.is_vararg && instructions.first().map(|i| i.op) != Some(Opcode::PREPVARARGS) {
        return Err(BytecodeErrorKind::Malformed {
            proto: id,
            what: "a vararg function that does not start with PREPVARARGS".into(),
        });
    }
    // A fast call's skip lands on the CALL it guards (the VM asserts it; its successor past the
    // CALL depends on it).
    for insn in &instructions {
        if insn.op.jump_form() == JumpForm::FastcallC {
            let target = insn.pc + 1 + u32::from(insn.c);
            let lands_on_call =
                instructions.binary_search_by_key(&target, |i| i.pc).is_ok_and(|k| instructions[k].op == Opcode::CALL);
            if !lands_on_call {
                return Err(BytecodeErrorKind::BadJump {
                    proto: id,
                    pc: insn.pc,
                    op: insn.op.name(),
                    target: i64::from(target),
                });
            }
        }
    }
    Ok(instructions)
}

fn check_operands(proto: &Proto, insn: &Instruction, is_start: &[bool]) -> Result<(), BytecodeErrorKind> {
    use Opcode::*;
    let id = proto.id;
    let pc = insn.pc;
    let op = insn.op;
    let next = i64::from(pc) + i64::from(insn.length());
    let jump_err = |target: i64| BytecodeErrorKind::BadJump { proto: id, pc, op: op.name(), target };
    let lands = |target: i64| target >= 0 && (target as usize) < is_start.len() && is_start[target as usize];

    match op.jump_form() {
        JumpForm::None => {}
        JumpForm::D => {
            let target = i64::from(pc) + 1 + i64::from(insn.d());
            if !lands(target) {
                return Err(jump_err(target));
            }
        }
        JumpForm::E => {
            let target = i64::from(pc) + 1 + i64::from(insn.e());
            if !lands(target) {
                return Err(jump_err(target));
            }
        }
        JumpForm::LoadbC => {
            let target = next + i64::from(insn.c);
            if !lands(target) {
                return Err(jump_err(target));
            }
        }
        JumpForm::FastcallC => {
            // The skip lands on the CALL the fast call guards: the VM skips C words after the
            // instruction's first word for one-word fast calls, C - 1 after the AUX word for
            // two-word ones, so the CALL is at pc + 1 + C either way.
            let target = i64::from(pc) + 1 + i64::from(insn.c);
            if !lands(target) {
                return Err(jump_err(target));
            }
        }
    }

    let max_stack = proto.max_stack_size;
    let register = |r: u32| {
        if r >= u32::from(max_stack) {
            Err(BytecodeErrorKind::RegisterOutOfRange { proto: id, pc, op: op.name(), register: r, max_stack })
        } else {
            Ok(())
        }
    };
    if op == RETURN {
        // RETURN A B reads R(A)..R(A+B-2); B = 1 returns nothing (A is then unused and may equal
        // the frame size, as in an empty function), B = 0 returns from A up to the stack top.
        match insn.b {
            0 => register(u32::from(insn.a).saturating_sub(1))?,
            1 => {}
            b => register(u32::from(insn.a) + u32::from(b) - 2)?,
        }
    } else if op.a_is_register() {
        register(u32::from(insn.a))?;
    }
    // Loops keep control registers after A: [limit, step, index] / [generator, state, index].
    match op {
        FORNPREP | FORNLOOP | FORGPREP | FORGPREP_INEXT | FORGPREP_NEXT => register(u32::from(insn.a) + 2)?,
        FORGLOOP => {
            let vars = insn.aux.unwrap_or(0) & 0xff;
            register(u32::from(insn.a) + 2 + vars.max(1))?;
        }
        _ => {}
    }

    let constants = proto.constants.len();
    let constant = |what: &'static str, index: u64| {
        if index as usize >= constants {
            Err(BytecodeErrorKind::OperandOutOfRange { proto: id, pc, op: op.name(), what, index, len: constants })
        } else {
            Ok(())
        }
    };
    match op {
        LOADK | DUPTABLE | DUPCLOSURE | GETIMPORT => constant("constant", insn.d() as u16 as u64)?,
        GETGLOBAL | SETGLOBAL | GETTABLEKS | SETTABLEKS | NAMECALL | LOADKX | FASTCALL2K => {
            constant("constant", u64::from(insn.aux.unwrap_or(0)))?
        }
        GETUDATAKS | SETUDATAKS | NAMECALLUDATA => constant("constant", u64::from(insn.aux.unwrap_or(0) & 0xffff))?,
        JUMPXEQKN | JUMPXEQKS => constant("constant", u64::from(insn.aux.unwrap_or(0) & 0xff_ffff))?,
        ADDK | SUBK | MULK | DIVK | MODK | POWK | ANDK | ORK | IDIVK => constant("constant", u64::from(insn.c))?,
        SUBRK | DIVRK => constant("constant", u64::from(insn.b))?,
        NEWCLOSURE => {
            let index = insn.d() as u16 as u64;
            if index as usize >= proto.children.len() {
                return Err(BytecodeErrorKind::OperandOutOfRange {
                    proto: id,
                    pc,
                    op: op.name(),
                    what: "child proto",
                    index,
                    len: proto.children.len(),
                });
            }
        }
        _ => {}
    }
    Ok(())
}
