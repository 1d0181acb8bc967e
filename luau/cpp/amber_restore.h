// Restore (amber_restore.cpp): builders over a verified model, in two phases (make every
// object, then fill them); objects are indices into the snapshot's object table.
// `luau/src/ffi/restore.rs` mirrors this file.
//
// Every function here catches C++ exceptions (Luau errors are exceptions) and reports failure as
// a status code, so no exception ever crosses into Rust through these entry points.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "amber_types.h"

#ifdef __cplusplus
extern "C" {
#endif

// A value to write into a restored object, in 16 bytes: `kind` says which fields hold it.
enum AmberRestoreValueKind
{
    AMBER_RV_NIL = 0,
    AMBER_RV_BOOLEAN = 1,   // a: 0 or 1
    AMBER_RV_NUMBER = 2,    // b: the double's bits
    AMBER_RV_VECTOR = 3,    // a: x's bits; b: y's bits, then z's in the high half
    AMBER_RV_OBJECT = 4,    // a: an object index of this restore
    AMBER_RV_PERMANENT = 5, // a: a registry index
    AMBER_RV_ITERATOR = 6,  // b: a generic-for position (light userdata, LU_TAG_ITERATOR)
    AMBER_RV_REFUSED = 7,   // a value restore cannot write (refused, naming no object)
};

typedef struct AmberRestoreValue
{
    uint32_t kind;
    uint32_t a;
    uint64_t b;
} AmberRestoreValue;

// Starts a restore of `objects` objects charged to `memcat`, which may not grow past
// `memory_limit` bytes (0: no limit). With `globals_view_ref` (else 0), permanent
// `globals_index` (the base globals) stands for that view.
int amber_restore_begin(
    AmberVm* vm, int objects, int memcat, size_t memory_limit, int globals_index, int globals_view_ref, char* err, size_t cap
);

// The sizes the VM gives its objects (for estimating what a snapshot needs before restoring it).
typedef struct AmberMemoryModel
{
    size_t string;       // a string: this + its length + 1
    size_t table;        // a table: this + array slots * value + nodes * node
    size_t value;
    size_t node;
    size_t lua_closure;  // a Luau closure: this + upvalues * value
    size_t c_closure;    // a C closure: this + upvalues * value
    size_t upvalue;
    size_t thread;       // a thread: this + stack slots * value + frames * frame
    size_t frame;
    size_t userdata;     // userdata: this + payload
    size_t buffer;       // a buffer: this + its length
    size_t extra_stack;  // slots a thread's stack has beyond its frames' tops
} AmberMemoryModel;
void amber_memory_model(AmberMemoryModel* out);
void amber_restore_abort(AmberVm* vm);
// How many tables the last restore gave an explicit iteration order.
size_t amber_restore_orders(AmberVm* vm);
int amber_restore_end(AmberVm* vm, int main_thread, int* out_ref, char* err, size_t cap);
int amber_restore_string(AmberVm* vm, int index, const char* data, size_t length, char* err, size_t cap);
int amber_restore_table(AmberVm* vm, int index, int array_size, int node_count, char* err, size_t cap);
int amber_restore_lua_closure(AmberVm* vm, int index, uintptr_t proto, char* err, size_t cap);
int amber_restore_c_closure(AmberVm* vm, int index, int registry_index, int upvalues, char* err, size_t cap);
int amber_restore_thread(AmberVm* vm, int index, int stack_slots, int frames, char* err, size_t cap);
int amber_restore_userdata(AmberVm* vm, int index, int tag, const char* data, size_t length, char* err, size_t cap);
int amber_restore_buffer(AmberVm* vm, int index, const char* data, size_t length, char* err, size_t cap);
// The first `count` array slots (all of them, from a snapshot).
int amber_restore_table_array(AmberVm* vm, int index, const AmberRestoreValue* values, int count, char* err, size_t cap);
// The entry at iteration `position`, which lived at `node` of the node layout.
int amber_restore_table_node(
    AmberVm* vm, int index, int position, int node, const AmberRestoreValue* key, const AmberRestoreValue* value, char* err, size_t cap
);
int amber_restore_table_finish(
    AmberVm* vm, int index, int insert_hint, const AmberRestoreValue* metatable, int readonly, int safeenv, char* err, size_t cap
);
int amber_restore_table_freeze(AmberVm* vm, int index, char* err, size_t cap);
int amber_restore_upvalue_closed(AmberVm* vm, int index, const AmberRestoreValue* value, char* err, size_t cap);
int amber_restore_upvalue_open(AmberVm* vm, int index, int thread, int slot, char* err, size_t cap);
int amber_restore_lua_closure_fill(AmberVm* vm, int index, const AmberRestoreValue* env, const int* upvalues, int count, char* err, size_t cap);
int amber_restore_c_closure_fill(AmberVm* vm, int index, const AmberRestoreValue* env, const AmberRestoreValue* upvalues, int count, char* err, size_t cap);
int amber_restore_userdata_metatable(AmberVm* vm, int index, const AmberRestoreValue* metatable, char* err, size_t cap);
// The first `count` stack slots, from the bottom.
int amber_restore_thread_stack(AmberVm* vm, int index, const AmberRestoreValue* values, int count, char* err, size_t cap);
int amber_restore_thread_frames(AmberVm* vm, int index, const AmberFrameInfo* frames, int count, char* err, size_t cap);
int amber_restore_thread_finish(AmberVm* vm, int index, const AmberThreadInfo* info, const AmberRestoreValue* globals, int namecall, char* err, size_t cap);

#ifdef __cplusplus
}
#endif
