//! What the runtime promises about the base image's C functions, by the permanent names its
//! registry gives them. The frame checks need it (which C frames a thread can be suspended in,
//! and what they keep where), and so do the reference checks (which C closures a script can make
//! at run time, and what their upvalues are). The runtime checks at start-up that every name
//! below names the function this table says it does (`amber_luau::PermanentRegistry`), so a
//! host that rebinds one cannot make the validator reason about another function.

/// A C function whose frame a suspended thread may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CRole {
    /// `pcall`: below the top, its callee in its first slot; flagged HANDLE.
    Pcall,
    /// `xpcall`: below the top, its error handler in its first slot, its callee in the second;
    /// flagged HANDLE with the handler as error function.
    Xpcall,
    /// `coroutine.resume`: on top of a pre-empted thread, the resumed thread in its first slot.
    Resume,
    /// A `coroutine.wrap` function: on top of a pre-empted thread, the resumed thread in its
    /// closure's first upvalue.
    WrappedResume,
    /// `coroutine.yield`: on top of a yielded thread (it has no continuation).
    Yield,
}

impl CRole {
    pub fn name(self) -> &'static str {
        match self {
            CRole::Pcall => PCALL,
            CRole::Xpcall => XPCALL,
            CRole::Resume => COROUTINE_RESUME,
            CRole::WrappedResume => WRAPPED_RESUME,
            CRole::Yield => COROUTINE_YIELD,
        }
    }

    /// The C function continues a frame below the top after its callee returns.
    pub fn calls_in_thread(self) -> bool {
        matches!(self, CRole::Pcall | CRole::Xpcall)
    }
}

pub const PCALL: &str = "pcall";
pub const XPCALL: &str = "xpcall";
pub const COROUTINE_RESUME: &str = "coroutine.resume";
pub const COROUTINE_YIELD: &str = "coroutine.yield";
pub const WRAPPED_RESUME: &str = "coroutine.wrap#resume";
pub const GMATCH_ITERATOR: &str = "string.gmatch#iterator";
pub const UTF8_CODES_ITERATOR: &str = "utf8.codes#iterator";

/// The role of the C function a permanent name stands for.
pub fn c_role(name: &str) -> Option<CRole> {
    Some(match name {
        PCALL => CRole::Pcall,
        XPCALL => CRole::Xpcall,
        COROUTINE_RESUME => CRole::Resume,
        COROUTINE_YIELD => CRole::Yield,
        WRAPPED_RESUME => CRole::WrappedResume,
        _ => return None,
    })
}

/// What one upvalue of a run-time C closure must hold (its function reads it unchecked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpvalueRule {
    /// A thread (`lua_tothread`, dereferenced without a NULL check).
    Thread,
    /// A string (`lua_tolstring`, its pointer used without a NULL check).
    String,
    /// A position into the string in upvalue 1: an integer from 0 to its length plus one
    /// (gmatch starts matching at `s + position`).
    PositionInFirst,
}

/// The C closures the base image's libraries make at run time, by the name of their function,
/// with the upvalues each function reads. Any other C closure cannot arise at run time (library
/// functions are permanents) and is refused.
pub fn run_time_closure(name: &str) -> Option<&'static [UpvalueRule]> {
    use UpvalueRule::*;
    Some(match name {
        WRAPPED_RESUME => &[Thread],
        GMATCH_ITERATOR => &[String, String, PositionInFirst],
        UTF8_CODES_ITERATOR => &[],
        _ => return None,
    })
}

/// Names of C functions known only by identity (they name the function of run-time closures
/// and are not values themselves).
pub fn is_identity(name: &str) -> bool {
    matches!(name, WRAPPED_RESUME | GMATCH_ITERATOR | UTF8_CODES_ITERATOR)
}

/// The VM's limits the frame checks bound against (`luaconf.h`, `lstate.h`).
pub mod vm {
    /// `LUAI_MAXCALLS`: a thread has fewer call frames than this.
    pub const MAX_CALLS: usize = 20_000;
    /// `LUAI_MAXCCALLS`: coroutine resumes nest at most this deep.
    pub const MAX_RESUME_DEPTH: usize = 200;
    /// `LUA_MINSTACK`: the slots a C function may use without asking.
    pub const MIN_STACK: u32 = 20;
    /// `MAX_STACK_SIZE` in `ldo.cpp` (1 GiB of 16-byte slots).
    pub const MAX_STACK_SLOTS: u64 = 1 << 26;
    /// `LUA_CALLINFO_*` flags in `lstate.h`.
    pub const CALLINFO_RETURN: u8 = 1 << 0;
    pub const CALLINFO_HANDLE: u8 = 1 << 1;
    pub const CALLINFO_OPYIELD: u8 = 1 << 3;
}
