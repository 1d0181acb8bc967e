//! Anchored edits to Luau's own files, applied by `build.rs` to the copy in `OUT_DIR`.
//!
//! Each edit names what it is for. Its anchor must match exactly once in its file; when Luau
//! changes under an edit the build fails with that name instead of patching the wrong place.
//! New C++ that needs VM internals does not go here: it lives in `cpp/`.

pub enum Action {
    Replace(&'static str),
    InsertAfter(&'static str),
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
    // Foundation 4: explicit iteration orders (luau/cpp/amber_tables.h). The field, its lifetime
    // (made by restore, dropped whenever the node array is replaced or a key is added, freed
    // with the table, copied by table.clone), and the three traversals that honour it.
    Edit {
        name: "table-iterorder-field",
        file: "VM/src/lobject.h",
        anchor: "    LuaNode* node;\n    GCObject* gclist;\n} LuaTable;",
        action: Action::Replace(
            "    LuaNode* node;\n    GCObject* gclist;\n    int* iterorder; // amber: explicit iteration order, see luau/cpp/amber_tables.h\n} LuaTable;",
        ),
    },
    // The field grows the table header by a pointer; Luau checks the header size.
    Edit {
        name: "lmem-table-header-size",
        file: "VM/src/lmem.cpp",
        anchor: "static_assert(sizeof(LuaTable) == ABISWITCH(48, 32, 32), \"size mismatch for table header\");",
        action: Action::Replace(
            "static_assert(sizeof(LuaTable) == ABISWITCH(56, 36, 36), \"size mismatch for table header\"); // amber: + iterorder",
        ),
    },
    Edit {
        name: "ltable-include-iterorder",
        file: "VM/src/ltable.cpp",
        anchor: "#include \"ltable.h\"\n",
        action: Action::InsertAfter("#include \"amber_tables.h\"\n"),
    },
    Edit {
        name: "ltable-new-without-order",
        file: "VM/src/ltable.cpp",
        anchor: "    t->node = cast_to(LuaNode*, dummynode);\n    if (narray > 0)",
        action: Action::Replace(
            "    t->node = cast_to(LuaNode*, dummynode);\n    t->iterorder = NULL;\n    if (narray > 0)",
        ),
    },
    Edit {
        name: "ltable-new-node-vector-drops-order",
        file: "VM/src/ltable.cpp",
        anchor: "static void setnodevector(lua_State* L, LuaTable* t, int size)\n{\n",
        action: Action::InsertAfter("    amber_table_droporder(L, t);\n"),
    },
    Edit {
        name: "ltable-new-key-drops-order",
        file: "VM/src/ltable.cpp",
        anchor: "TValue* luaH_newkey(lua_State* L, LuaTable* t, const TValue* key)\n{\n",
        action: Action::InsertAfter("    amber_table_droporder(L, t);\n"),
    },
    Edit {
        name: "ltable-free-frees-order",
        file: "VM/src/ltable.cpp",
        anchor: "void luaH_free(lua_State* L, LuaTable* t, lua_Page* page)\n{\n",
        action: Action::InsertAfter("    amber_table_droporder(L, t);\n"),
    },
    Edit {
        name: "ltable-clone-copies-order",
        file: "VM/src/ltable.cpp",
        anchor: "        memcpy(t->node, tt->node, size * sizeof(LuaNode));\n        t->lastfree = tt->lastfree;\n",
        action: Action::InsertAfter("        amber_table_cloneorder(L, t, tt);\n"),
    },
    Edit {
        name: "ltable-clone-starts-without-order",
        file: "VM/src/ltable.cpp",
        anchor: "    t->node = cast_to(LuaNode*, dummynode);\n    t->lastfree = 0;\n\n    if (tt->sizearray)",
        action: Action::Replace(
            "    t->node = cast_to(LuaNode*, dummynode);\n    t->iterorder = NULL;\n    t->lastfree = 0;\n\n    if (tt->sizearray)",
        ),
    },
    Edit {
        name: "ltable-clear-resets-order",
        file: "VM/src/ltable.cpp",
        anchor: "    // back to empty -> no tag methods present\n",
        action: Action::InsertBefore("    amber_table_naturalorder(tt);\n\n"),
    },
    Edit {
        name: "ltable-next-finds-position",
        file: "VM/src/ltable.cpp",
        anchor: "                i = cast_int(n - gnode(t, 0)); // key index in hash table\n",
        action: Action::InsertAfter(
            "                if (t->iterorder) // amber: node -> iteration position\n                    i = t->iterorder[sizenode(t) + i];\n",
        ),
    },
    Edit {
        name: "ltable-next-walks-order",
        file: "VM/src/ltable.cpp",
        anchor: "    for (i -= t->sizearray; i < sizenode(t); i++)\n    { // then hash part\n        if (!ttisnil(gval(gnode(t, i))))\n        { // a non-nil value?\n            getnodekey(L, key, gnode(t, i));\n            setobj2s(L, key + 1, gval(gnode(t, i)));\n",
        action: Action::Replace(
            "    for (i -= t->sizearray; i < sizenode(t); i++)\n    { // then hash part\n        // amber: through the explicit order, when there is one\n        int ni = t->iterorder ? t->iterorder[i] : i;\n        if (ni >= 0 && !ttisnil(gval(gnode(t, ni))))\n        { // a non-nil value?\n            getnodekey(L, key, gnode(t, ni));\n            setobj2s(L, key + 1, gval(gnode(t, ni)));\n",
        ),
    },
    Edit {
        name: "lapi-include-iterorder",
        file: "VM/src/lapi.cpp",
        anchor: "#include \"ltable.h\"\n",
        action: Action::InsertAfter("#include \"amber_tables.h\"\n"),
    },
    Edit {
        name: "lapi-rawiter-walks-order",
        file: "VM/src/lapi.cpp",
        anchor: "        LuaNode* n = &h->node[iter - sizearray];\n\n        if (!ttisnil(gval(n)))",
        action: Action::Replace(
            "        int ni = h->iterorder ? h->iterorder[iter - sizearray] : iter - sizearray; // amber\n        LuaNode* n = &h->node[ni < 0 ? 0 : ni];\n\n        if (ni >= 0 && !ttisnil(gval(n)))",
        ),
    },
    Edit {
        name: "forgloop-walks-order",
        file: "VM/src/lvmexecute.cpp",
        anchor: "                        LuaNode* n = &h->node[index - sizearray];\n\n                        if (!ttisnil(gval(n)))",
        action: Action::Replace(
            "                        int ni = LUAU_UNLIKELY(h->iterorder != NULL) ? h->iterorder[index - sizearray] : index - sizearray; // amber\n                        LuaNode* n = &h->node[ni < 0 ? 0 : ni];\n\n                        if (ni >= 0 && !ttisnil(gval(n)))",
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
            "    // amber: the scheduler swaps L->global->rngstate per task (luau/cpp/amber_scheduler.cpp)\n",
        ),
    },
];
