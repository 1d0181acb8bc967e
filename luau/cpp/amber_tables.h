// Explicit iteration orders for tables (foundation 4). Included into Luau's ltable.cpp, lapi.cpp
// and lvmexecute.cpp by anchored edits (see luau/edits.rs).
//
// A table restored from a snapshot iterates in its captured order. When its natural node order
// differs (keys hashed by address land elsewhere in a new VM), the table carries `iterorder`:
// 3 * sizenode ints: iteration position -> node (-1: an empty position), node -> iteration
// position (-1: a node no position names), and position -> the node the entry had in the layout
// it was restored from (what a later capture records, so persist -> restore -> persist gives the
// same bytes although keys hashed by address sit elsewhere here). Lookups never use it; only
// traversal does
// (next, lua_rawiter, the generic-for fast path). Adding a key drops it, as Luau already leaves
// traversal undefined when keys are added.
#pragma once

struct lua_State;
struct LuaTable;

// Frees the table's explicit order, if any: it iterates in node order again.
void amber_table_droporder(lua_State* L, LuaTable* t);
// Gives `to` (a fresh clone of `from`, same node layout) a copy of `from`'s order.
void amber_table_cloneorder(lua_State* L, LuaTable* to, const LuaTable* from);
// Entries of an order: 3 per node.
constexpr int kAmberOrderSegments = 3;

// Resets an order to the identity (for luaH_clear, which has no lua_State to free it with).
void amber_table_naturalorder(LuaTable* t);
