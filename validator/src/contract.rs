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
    /// `string.find`, `string.match`, `string.gsub` and the `string.gmatch` iterator: on top of
    /// a thread pre-empted mid-match, their state in their frame ([`matcher`]); gsub also below
    /// the top, waiting for the replacement value its callee returns.
    Matcher(MatcherOp),
}

/// The pattern-matching operation of a [`CRole::Matcher`] frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatcherOp {
    Find,
    Match,
    Gsub,
    GmatchIterator,
}

impl MatcherOp {
    pub fn name(self) -> &'static str {
        match self {
            MatcherOp::Find => STRING_FIND,
            MatcherOp::Match => STRING_MATCH,
            MatcherOp::Gsub => STRING_GSUB,
            MatcherOp::GmatchIterator => GMATCH_ITERATOR,
        }
    }
}

impl CRole {
    pub fn name(self) -> &'static str {
        match self {
            CRole::Pcall => PCALL,
            CRole::Xpcall => XPCALL,
            CRole::Resume => COROUTINE_RESUME,
            CRole::WrappedResume => WRAPPED_RESUME,
            CRole::Yield => COROUTINE_YIELD,
            CRole::Matcher(op) => op.name(),
        }
    }

    /// The C function continues a frame below the top after its callee returns.
    pub fn calls_in_thread(self) -> bool {
        matches!(self, CRole::Pcall | CRole::Xpcall | CRole::Matcher(MatcherOp::Gsub))
    }
}

pub const PCALL: &str = "pcall";
pub const XPCALL: &str = "xpcall";
pub const COROUTINE_RESUME: &str = "coroutine.resume";
pub const COROUTINE_YIELD: &str = "coroutine.yield";
pub const WRAPPED_RESUME: &str = "coroutine.wrap#resume";
pub const GMATCH_ITERATOR: &str = "string.gmatch#iterator";
pub const UTF8_CODES_ITERATOR: &str = "utf8.codes#iterator";
pub const STRING_FIND: &str = "string.find";
pub const STRING_MATCH: &str = "string.match";
pub const STRING_GSUB: &str = "string.gsub";

/// The role of the C function a permanent name stands for.
pub fn c_role(name: &str) -> Option<CRole> {
    Some(match name {
        PCALL => CRole::Pcall,
        XPCALL => CRole::Xpcall,
        COROUTINE_RESUME => CRole::Resume,
        COROUTINE_YIELD => CRole::Yield,
        WRAPPED_RESUME => CRole::WrappedResume,
        STRING_FIND => CRole::Matcher(MatcherOp::Find),
        STRING_MATCH => CRole::Matcher(MatcherOp::Match),
        STRING_GSUB => CRole::Matcher(MatcherOp::Gsub),
        GMATCH_ITERATOR => CRole::Matcher(MatcherOp::GmatchIterator),
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

/// The state a suspended pattern-matching frame keeps in a `buffer` (docs/MATCHER.md): little-
/// endian u32 words, a header then the backtrack frames. The runtime compares these constants
/// with its matcher's at start-up.
pub mod matcher {
    pub const VERSION: u32 = 1;
    pub const HEADER_WORDS: usize = 13;
    pub const FRAME_WORDS: usize = 4;
    /// Luau's match depth (`LUAI_MAXCCALLS`), less the outermost call.
    pub const MAX_FRAMES: usize = 199;
    /// `LUA_MAXCAPTURES`.
    pub const MAX_CAPTURES: usize = 32;
    /// gsub's output stays below this many bytes ("resulting string too large").
    pub const MAX_OUTPUT: u32 = (1 << 30) - 64;
    /// Characters one counting or balance step examines at most.
    pub const CHUNK: u32 = 256;

    /// Header words, by index.
    pub mod word {
        pub const VERSION: usize = 0;
        pub const PHASE: usize = 1;
        pub const MODE: usize = 2;
        pub const SP: usize = 3;
        pub const PP: usize = 4;
        pub const A: usize = 5;
        pub const B: usize = 6;
        pub const START: usize = 7;
        pub const END: usize = 8;
        pub const COUNT: usize = 9;
        pub const LIMIT: usize = 10;
        pub const OUT_LEN: usize = 11;
        pub const FRAMES: usize = 12;
    }

    pub const PHASE_MATCHING: u32 = 0;
    pub const PHASE_CALLBACK: u32 = 1;

    pub const MODE_MATCH: u32 = 0;
    pub const MODE_FAIL: u32 = 1;
    pub const MODE_COUNT: u32 = 2;
    pub const MODE_BALANCE: u32 = 3;
    pub const MODE_PLAIN: u32 = 4;

    pub const FRAME_OPEN: u32 = 1;
    pub const FRAME_CLOSE: u32 = 2;
    pub const FRAME_OPTIONAL: u32 = 3;
    pub const FRAME_MAX_EXPAND: u32 = 4;
    pub const FRAME_MIN_EXPAND: u32 = 5;

    /// Stack slots of a suspended frame, from its base: the values it keeps there.
    pub fn slots(op: super::MatcherOp) -> u32 {
        match op {
            super::MatcherOp::Find | super::MatcherOp::Match => 3,
            super::MatcherOp::Gsub => 5,
            super::MatcherOp::GmatchIterator => 1,
        }
    }
}
