//! Host libraries: global tables of functions a host adds to a VM's base image
//! ([`VmOptions::libraries`]). Their functions are permanents like the standard library's: a
//! snapshot names them, and a snapshot that names one restores only into a base image that has
//! it.
//!
//! A host function takes and returns plain values (nil, booleans, numbers, vectors, strings);
//! its `Err` becomes a Luau error raised after it has returned, so no Luau error (a C++
//! exception) ever unwinds through host code, and a panic in it is caught and reported as an
//! error too.

use crate::ffi;
use crate::vm::Value;
use std::cell::RefCell;
use std::ffi::{CString, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// A host function: its arguments, and its results (at most 8) or an error message.
pub type HostFunction = fn(&[Value]) -> Result<Vec<Value>, String>;

/// A global table of host functions.
#[derive(Debug, Clone)]
pub struct HostLibrary {
    /// The global's name: an identifier no standard global has.
    pub name: String,
    /// Function names (identifiers) and the functions.
    pub functions: Vec<(String, HostFunction)>,
}

/// How a [`crate::Vm`] is made.
#[derive(Debug, Clone, Default)]
pub struct VmOptions {
    /// `os.clock`, `os.time` and `os.date` read a fixed clock (see [`crate::Vm::deterministic`]).
    pub deterministic: bool,
    /// Libraries added to the base image, as globals, before it is frozen.
    pub libraries: Vec<HostLibrary>,
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The host's side of a VM's libraries: the functions, and the results of the last call (the
/// VM copies them before the next one).
pub(crate) struct HostTable {
    functions: Vec<HostFunction>,
    results: Vec<Value>,
    error: String,
}

/// The C views of the libraries, kept alive while the VM is created.
pub(crate) struct LibraryViews {
    _names: Vec<CString>,
    _function_names: Vec<Vec<*const std::ffi::c_char>>,
    pub libraries: Vec<ffi::AmberHostLibrary>,
}

impl HostTable {
    /// Checks the libraries' names and lays them out for the VM; `standard` is the base image's
    /// global names, which a library must not replace.
    pub(crate) fn new(
        libraries: &[HostLibrary],
        standard: &dyn Fn(&str) -> bool,
    ) -> Result<(Box<RefCell<HostTable>>, LibraryViews), String> {
        let mut table = HostTable { functions: Vec::new(), results: Vec::new(), error: String::new() };
        let mut names = Vec::new();
        let mut function_names = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for lib in libraries {
            if !is_identifier(&lib.name) || standard(&lib.name) || !seen.insert(lib.name.as_str()) {
                return Err(format!(
                    "`{}` cannot be a host library's name (an identifier no other global has)",
                    lib.name
                ));
            }
            let mut fnames = Vec::new();
            let mut local = std::collections::BTreeSet::new();
            for (f, function) in &lib.functions {
                if !is_identifier(f) || !local.insert(f.as_str()) {
                    return Err(format!("`{}.{f}` cannot be a host function's name", lib.name));
                }
                fnames.push(CString::new(f.as_str()).map_err(|e| e.to_string())?);
                table.functions.push(*function);
            }
            names.push(CString::new(lib.name.as_str()).map_err(|e| e.to_string())?);
            function_names.push(fnames);
        }
        let mut pointers: Vec<Vec<*const std::ffi::c_char>> = Vec::new();
        let mut views = Vec::new();
        let mut first = 0;
        for (name, fnames) in names.iter().zip(&function_names) {
            let ptrs: Vec<_> = fnames.iter().map(|f| f.as_ptr()).collect();
            views.push(ffi::AmberHostLibrary {
                name: name.as_ptr(),
                function_names: ptrs.as_ptr(),
                functions: ptrs.len() as c_int,
                first,
            });
            first += ptrs.len() as c_int;
            pointers.push(ptrs);
        }
        // The function-name CStrings must outlive the VM's creation; keep them with the views.
        let keep: Vec<CString> = names.into_iter().chain(function_names.into_iter().flatten()).collect();
        Ok((Box::new(RefCell::new(table)), LibraryViews { _names: keep, _function_names: pointers, libraries: views }))
    }
}

fn argument(v: &ffi::AmberHostValue) -> Value {
    match v.type_ {
        ffi::LUA_TBOOLEAN => Value::Boolean(v.boolean != 0),
        ffi::LUA_TNUMBER => Value::Number(v.number),
        ffi::LUA_TVECTOR => Value::Vector(v.vector),
        ffi::LUA_TSTRING if !v.string.is_null() => {
            // SAFETY: the VM passes a string's bytes and length, valid for this call.
            Value::String(unsafe { std::slice::from_raw_parts(v.string.cast::<u8>(), v.length) }.to_vec())
        }
        _ => Value::Nil,
    }
}

fn result(v: &Value) -> ffi::AmberHostValue {
    let mut out = ffi::AmberHostValue {
        type_: ffi::LUA_TNIL,
        boolean: 0,
        number: 0.0,
        vector: [0.0; ffi::LUA_VECTOR_SIZE],
        string: std::ptr::null(),
        length: 0,
    };
    match v {
        Value::Boolean(b) => (out.type_, out.boolean) = (ffi::LUA_TBOOLEAN, c_int::from(*b)),
        Value::Number(n) => (out.type_, out.number) = (ffi::LUA_TNUMBER, *n),
        Value::Vector(v) => (out.type_, out.vector) = (ffi::LUA_TVECTOR, *v),
        Value::String(s) => (out.type_, out.string, out.length) = (ffi::LUA_TSTRING, s.as_ptr().cast(), s.len()),
        Value::Nil | Value::Other(_) => {}
    }
    out
}

/// The VM's entry into the host (`AmberHostCall`).
pub(crate) extern "C" fn dispatch(
    ctx: *mut c_void,
    function: c_int,
    args: *const ffi::AmberHostValue,
    nargs: c_int,
    out: *mut ffi::AmberHostReturn,
) {
    // SAFETY: `ctx` is the VM's boxed HostTable, alive as long as the VM; `out` is the VM's
    // return slot for this call.
    let (table, out) = unsafe { (&*(ctx as *const RefCell<HostTable>), &mut *out) };
    let args: Vec<Value> = if args.is_null() || nargs <= 0 {
        Vec::new()
    } else {
        // SAFETY: the VM passes `nargs` arguments at `args`, valid for this call.
        unsafe { std::slice::from_raw_parts(args, nargs as usize) }.iter().map(argument).collect()
    };
    let Ok(mut t) = table.try_borrow_mut() else {
        out.count = -1;
        return;
    };
    let called = t
        .functions
        .get(usize::try_from(function).unwrap_or(usize::MAX))
        .copied()
        .ok_or_else(|| "no such host function".to_string())
        .and_then(|f| {
            catch_unwind(AssertUnwindSafe(|| f(&args))).unwrap_or_else(|_| Err("the host function panicked".into()))
        });
    match called {
        Ok(values) if values.len() <= ffi::AMBER_HOST_RESULTS => {
            t.results = values;
            out.count = t.results.len() as c_int;
            for (slot, v) in out.values.iter_mut().zip(&t.results) {
                *slot = result(v);
            }
        }
        Ok(values) => {
            t.error = format!("a host function returned {} values (at most 8)", values.len());
            (out.count, out.error, out.error_length) = (-1, t.error.as_ptr().cast(), t.error.len());
        }
        Err(message) => {
            t.error = message;
            (out.count, out.error, out.error_length) = (-1, t.error.as_ptr().cast(), t.error.len());
        }
    }
}
