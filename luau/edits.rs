//! Anchored edits to Luau's own files, applied by `build.rs` to the copy in `OUT_DIR`.
//!
//! Each edit names what it is for. Its anchor must match exactly once in its file; when Luau
//! changes under an edit the build fails with that name instead of patching the wrong place.
//! New C++ that needs VM internals does not go here: it lives in `cpp/`.

pub enum Action {
    Replace(&'static str),
    InsertAfter(&'static str),
    #[allow(dead_code)]
    InsertBefore(&'static str),
}

pub struct Edit {
    pub name: &'static str,
    /// Path relative to the copied `luau/` folder.
    pub file: &'static str,
    pub anchor: &'static str,
    pub action: Action,
}

pub const EDITS: &[Edit] = &[
    // getfenv/setfenv clear `safeenv` on any table, the read-only base globals included
    // (lapi.cpp ignores the read-only bit there), so a script could change the base image every
    // task shares. Amber's base image is immutable from scripts: the two functions do not exist.
    Edit {
        name: "base-without-getfenv",
        file: "VM/src/lbaselib.cpp",
        anchor: "    {\"getfenv\", luaB_getfenv},\n",
        action: Action::Replace(""),
    },
    Edit {
        name: "base-without-setfenv",
        file: "VM/src/lbaselib.cpp",
        anchor: "    {\"setfenv\", luaB_setfenv},\n",
        action: Action::Replace(""),
    },
    // gcinfo reports the heap size, which differs between a fresh and a restored heap (and between
    // hosts): a script that printed it would make persisted runs diverge for no fault of theirs.
    Edit {
        name: "base-gcinfo-is-constant",
        file: "VM/src/lbaselib.cpp",
        anchor: "lua_pushinteger(L, lua_gc(L, LUA_GCCOUNT, 0));",
        action: Action::Replace("lua_pushinteger(L, 0); // amber: the heap size is not observable"),
    },
    // The scheduler's tick budget lives in the global state so the interpreter can count interrupt
    // ticks inline: the common tick is a decrement and a branch, and the interrupt callback only
    // runs when the countdown reaches zero (a pre-emption is due) or stays below it (deferred).
    Edit {
        name: "global-state-tick-countdown",
        file: "VM/src/lstate.h",
        anchor: "    uint64_t rngstate; // PCG random number generator state\n",
        action: Action::InsertAfter(
            "    int64_t amber_countdown; // amber: interrupt ticks left before the callback runs (see VM_INTERRUPT)\n",
        ),
    },
    Edit {
        name: "vm-interrupt-counts-inline",
        file: "VM/src/lvmexecute.cpp",
        anchor: "        if (LUAU_UNLIKELY(!!interrupt)) \\\n",
        action: Action::Replace(
            "        if (LUAU_UNLIKELY(!!interrupt) && LUAU_UNLIKELY(--L->global->amber_countdown <= 0)) \\\n",
        ),
    },
    // Restore rebuilds each table's hash part at its captured node positions and recomputes the
    // collision chains itself (chains from a snapshot could loop or leave the node array), which
    // needs Luau's own main-position function.
    Edit {
        name: "ltable-export-mainposition",
        file: "VM/src/ltable.cpp",
        anchor: "static LuaNode* mainposition(const LuaTable* t, const TValue* key)\n",
        action: Action::Replace(
            "LuaNode* mainposition(const LuaTable* t, const TValue* key) // amber: used by luau/cpp restore\n",
        ),
    },
    // The per-task random generator: math.random reads `g->rngstate`; the scheduler swaps each
    // task's state in and out around a time slice. This marker documents the dependency in the
    // copied source so that a Luau update that moves the state fails here, not silently.
    Edit {
        name: "math-random-state-is-global",
        file: "VM/src/lmathlib.cpp",
        anchor: "static int math_random(lua_State* L)\n{\n",
        action: Action::InsertAfter(
            "    // amber: the scheduler swaps L->global->rngstate per task (luau/cpp/amber_host.cpp)\n",
        ),
    },
];
