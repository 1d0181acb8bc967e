//! Luau opcodes, in the order of `enum LuauOpcode` in `Bytecode.h` (the order is the encoding).

macro_rules! opcodes {
    ($($name:ident),* $(,)?) => {
        /// One Luau opcode. The discriminant is the byte in the instruction's low 8 bits.
        /// Names follow `Bytecode.h` (without `LOP_`) so they can be grepped side by side.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        pub enum Opcode { $($name),* }

        const ALL: &[Opcode] = &[$(Opcode::$name),*];

        impl Opcode {
            /// The name `Bytecode.h` gives the opcode, without the `LOP_` prefix.
            pub fn name(self) -> &'static str {
                match self { $(Opcode::$name => stringify!($name)),* }
            }
        }
    };
}

opcodes!(
    NOP,
    BREAK,
    LOADNIL,
    LOADB,
    LOADN,
    LOADK,
    MOVE,
    GETGLOBAL,
    SETGLOBAL,
    GETUPVAL,
    SETUPVAL,
    CLOSEUPVALS,
    GETIMPORT,
    GETTABLE,
    SETTABLE,
    GETTABLEKS,
    SETTABLEKS,
    GETTABLEN,
    SETTABLEN,
    NEWCLOSURE,
    NAMECALL,
    CALL,
    RETURN,
    JUMP,
    JUMPBACK,
    JUMPIF,
    JUMPIFNOT,
    JUMPIFEQ,
    JUMPIFLE,
    JUMPIFLT,
    JUMPIFNOTEQ,
    JUMPIFNOTLE,
    JUMPIFNOTLT,
    ADD,
    SUB,
    MUL,
    DIV,
    MOD,
    POW,
    ADDK,
    SUBK,
    MULK,
    DIVK,
    MODK,
    POWK,
    AND,
    OR,
    ANDK,
    ORK,
    CONCAT,
    NOT,
    MINUS,
    LENGTH,
    NEWTABLE,
    DUPTABLE,
    SETLIST,
    FORNPREP,
    FORNLOOP,
    FORGLOOP,
    FORGPREP_INEXT,
    FASTCALL3,
    FORGPREP_NEXT,
    NATIVECALL,
    GETVARARGS,
    DUPCLOSURE,
    PREPVARARGS,
    LOADKX,
    JUMPX,
    FASTCALL,
    COVERAGE,
    CAPTURE,
    SUBRK,
    DIVRK,
    FASTCALL1,
    FASTCALL2,
    FASTCALL2K,
    FORGPREP,
    JUMPXEQKNIL,
    JUMPXEQKB,
    JUMPXEQKN,
    JUMPXEQKS,
    IDIV,
    IDIVK,
    GETUDATAKS,
    SETUDATAKS,
    NAMECALLUDATA,
    NEWCLASSMEMBER,
    CALLFB,
    CMPPROTO,
    FASTPCALL,
    NEWCLASS,
    CONSTRUCT,
    FINCONSTRUCT,
    GETPRIVATEFIELD,
    SETPRIVATEFIELD,
);

/// Operand layout of an instruction word, as far as the reader checks operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JumpForm {
    /// No jump.
    None,
    /// Signed 16-bit D, relative to the next instruction word.
    D,
    /// Signed 24-bit E, relative to the next instruction word.
    E,
    /// C is an unsigned forward skip to the CALL a FASTCALL guards.
    FastcallC,
    /// LOADB: C is an unsigned forward skip.
    LoadbC,
}

impl Opcode {
    pub fn from_byte(byte: u8) -> Option<Opcode> {
        ALL.get(usize::from(byte)).copied()
    }

    /// Words the instruction occupies: 2 when an AUX word follows.
    pub fn length(self) -> usize {
        use Opcode::*;
        match self {
            GETGLOBAL | SETGLOBAL | GETIMPORT | GETTABLEKS | SETTABLEKS | NAMECALL | JUMPIFEQ | JUMPIFLE | JUMPIFLT
            | JUMPIFNOTEQ | JUMPIFNOTLE | JUMPIFNOTLT | NEWTABLE | SETLIST | FORGLOOP | LOADKX | FASTCALL2
            | FASTCALL2K | FASTCALL3 | JUMPXEQKNIL | JUMPXEQKB | JUMPXEQKN | JUMPXEQKS | GETUDATAKS | SETUDATAKS
            | NAMECALLUDATA | NEWCLASSMEMBER | CALLFB | CMPPROTO | NEWCLASS | CONSTRUCT | GETPRIVATEFIELD
            | SETPRIVATEFIELD => 2,
            _ => 1,
        }
    }

    /// Opcodes the reader refuses: runtime-only pseudo instructions and the class instructions of
    /// the experimental bytecode version 100 (classes are out of scope while their flags are off).
    pub fn is_refused(self) -> bool {
        use Opcode::*;
        matches!(
            self,
            NATIVECALL | NEWCLASSMEMBER | NEWCLASS | CONSTRUCT | FINCONSTRUCT | GETPRIVATEFIELD | SETPRIVATEFIELD
        )
    }

    pub fn jump_form(self) -> JumpForm {
        use Opcode::*;
        match self {
            JUMP | JUMPBACK | JUMPIF | JUMPIFNOT | JUMPIFEQ | JUMPIFLE | JUMPIFLT | JUMPIFNOTEQ | JUMPIFNOTLE
            | JUMPIFNOTLT | FORNPREP | FORNLOOP | FORGLOOP | FORGPREP_INEXT | FORGPREP_NEXT | FORGPREP
            | JUMPXEQKNIL | JUMPXEQKB | JUMPXEQKN | JUMPXEQKS | CMPPROTO => JumpForm::D,
            JUMPX => JumpForm::E,
            FASTCALL | FASTCALL1 | FASTCALL2 | FASTCALL2K | FASTCALL3 | FASTPCALL => JumpForm::FastcallC,
            LOADB => JumpForm::LoadbC,
            _ => JumpForm::None,
        }
    }

    /// Whether operand A names a register of the frame (so it must be below `maxstacksize`).
    pub fn a_is_register(self) -> bool {
        use Opcode::*;
        !matches!(
            self,
            NOP | BREAK
                | JUMP
                | JUMPBACK
                | JUMPX
                | PREPVARARGS
                | FASTCALL
                | FASTCALL1
                | FASTCALL2
                | FASTCALL2K
                | FASTCALL3
                | FASTPCALL
                | CAPTURE
                | COVERAGE
                | NATIVECALL
        )
    }

    /// Number of opcodes `Bytecode.h` defines (LOP__COUNT).
    pub const COUNT: usize = ALL.len();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spot checks of discriminants against `enum LuauOpcode` in Bytecode.h, counted by hand.
    #[test]
    fn discriminants_follow_bytecode_h() {
        assert_eq!(Opcode::NOP as u8, 0);
        assert_eq!(Opcode::CALL as u8, 21);
        assert_eq!(Opcode::RETURN as u8, 22);
        assert_eq!(Opcode::JUMPBACK as u8, 24);
        assert_eq!(Opcode::FORNLOOP as u8, 57);
        assert_eq!(Opcode::FORGLOOP as u8, 58);
        assert_eq!(Opcode::JUMPX as u8, 67);
        assert_eq!(Opcode::FORGPREP as u8, 76);
        assert_eq!(Opcode::IDIVK as u8, 82);
        assert_eq!(Opcode::CALLFB as u8, 87);
        assert_eq!(Opcode::FASTPCALL as u8, 89);
        assert_eq!(Opcode::COUNT, 95);
        assert_eq!(Opcode::from_byte(95), None);
        assert_eq!(Opcode::from_byte(21), Some(Opcode::CALL));
    }
}
