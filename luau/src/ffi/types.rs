//! Types shared by the C interfaces, mirroring `cpp/amber_types.h`, and Luau's constants the
//! interfaces use.

use std::ffi::c_int;

/// Must match `LUA_VECTOR_SIZE` in `build.rs` (the C++ is compiled with it).
pub const LUA_VECTOR_SIZE: usize = 3;

pub const LUA_TNIL: c_int = 0;
pub const LUA_TBOOLEAN: c_int = 1;
pub const LUA_TLIGHTUSERDATA: c_int = 2;
pub const LUA_TNUMBER: c_int = 3;
pub const LUA_TINTEGER: c_int = 4;
pub const LUA_TVECTOR: c_int = 5;
pub const LUA_TSTRING: c_int = 6;

#[repr(C)]
pub struct AmberVm {
    _opaque: [u8; 0],
}

pub const LUA_TTABLE: c_int = 7;
pub const LUA_TFUNCTION: c_int = 8;
pub const LUA_TUSERDATA: c_int = 9;
pub const LUA_TTHREAD: c_int = 10;
pub const LUA_TBUFFER: c_int = 11;
pub const LUA_TCLASS: c_int = 12;
pub const LUA_TOBJECT: c_int = 13;
pub const LUA_TUPVAL: c_int = 16;

pub const LUA_OK: c_int = 0;
pub const LUA_YIELD: c_int = 1;
pub const LUA_ERRRUN: c_int = 2;
pub const LUA_BREAK: c_int = 6;

pub const LUA_CALLINFO_OPYIELD: u32 = 1 << 3;
pub const LUA_MINSTACK: i32 = 20;
/// `LU_TAG_ITERATOR`: the light userdata tag of a generic-for position.
pub const LU_TAG_ITERATOR: c_int = 128;
/// `UTAG_PROXY`: the userdata tag of `newproxy()` values.
pub const UTAG_PROXY: c_int = 129;

#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct AmberTV {
    pub type_: c_int,
    pub tag: c_int,
    pub boolean: c_int,
    pub number: f64,
    pub vector: [f32; 3],
    pub ref_: usize,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
pub struct AmberThreadInfo {
    pub status: c_int,
    pub top: c_int,
    pub base: c_int,
    pub frames: c_int,
    pub globals: usize,
    pub namecall: usize,
    pub stack_size: c_int,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
pub struct AmberFrameInfo {
    pub func: c_int,
    pub base: c_int,
    pub top: c_int,
    pub nresults: c_int,
    pub flags: u32,
    pub is_lua: c_int,
    pub pc: c_int,
    pub errfunc: c_int,
    pub closure: usize,
}

/// A GC object of the VM as capture's accessors hand it out (`uintptr_t` in `cpp/amber_capture.h`):
/// an address, typed so that it cannot be mixed up with an index, a count or a size. Only the
/// accessors make one; it is meaningful only while the VM is not running.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct GcRef(pub usize);

impl GcRef {
    pub fn is_null(self) -> bool {
        self.0 == 0
    }
}
