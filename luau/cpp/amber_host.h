// Amber's narrow C interface to the patched Luau VM. `luau/src/ffi.rs` mirrors this file.
//
// Every function here catches C++ exceptions (Luau errors are exceptions) and reports failure as
// a status code, so no exception ever crosses into Rust through these entry points.
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct AmberVm AmberVm;

// Results of amber_task_resume.
enum AmberResumeStatus
{
    AMBER_FINISHED = 0,  // main function returned; its values are on the task's stack
    AMBER_YIELDED = 1,   // main function called coroutine.yield; the values are on the stack
    AMBER_PREEMPTED = 2, // the budget ran out; the resume chain is suspended with LUA_BREAK
    AMBER_ERRORED = 3,   // a runtime error; message + traceback in the result
    AMBER_KILLED = 4,    // the scheduler killed the task; reason in the result
    AMBER_NOT_RESUMABLE = 5, // the task already finished, errored or was killed
};

typedef struct AmberSlice
{
    int64_t budget;     // counted interrupt ticks; the task is pre-empted at the budget-th one
    uint64_t defer_cap; // ticks a due pre-emption may wait for a yieldable site before the kill
    uint64_t rng_state; // the task's math.random state, swapped in for the slice
    int preempt_after_yield; // also pre-empt at the first interrupt after any coroutine yields
    int memory_category;     // the task's category
    size_t memory_limit;     // its limit in bytes (0: none): growth past it fails, the task dies
} AmberSlice;

// Why a task was killed (AmberSliceResult::kill_kind).
enum AmberKillKind
{
    AMBER_KILL_NONE = 0,
    AMBER_KILL_DEFERRED = 1, // a due pre-emption waited past the defer cap; kill_value: the cap
    AMBER_KILL_MEMORY = 2,   // its memory limit; kill_value: the category's bytes when it was hit
};

typedef struct AmberSliceResult
{
    int status;             // AmberResumeStatus
    uint64_t rng_state;     // the task's math.random state after the slice
    uint64_t ticks;         // counted interrupt ticks this slice
    uint64_t deferrals;     // times a due pre-emption had to wait for a yieldable site
    uint64_t max_deferred;  // longest wait, in ticks
    int nvalues;            // values left on the task's stack (finished/yielded)
    int kill_kind;          // AmberKillKind, with AMBER_KILLED
    uint64_t kill_value;
} AmberSliceResult;

// A value read from a task's stack. Strings point into the VM; copy before the next VM call.
typedef struct AmberValue
{
    int type; // lua_Type
    int boolean;
    double number;
    float vector[3];
    const char* string;
    size_t length;
    const char* type_name;
} AmberValue;

// The Lua frame a pre-empted task stopped at (innermost thread of its resume chain).
typedef struct AmberSite
{
    int bytecode_id; // proto index within its bytecode module
    int pc;          // instruction index (the instruction that re-executes on resume)
    const char* chunk;
    size_t chunk_length;
    uintptr_t proto;
} AmberSite;

// Process-wide feature flags (Luau FFlags). Index 0..amber_flag_count()-1.
int amber_flag_count(void);
int amber_flag_get(int index, const char** name, int* value);

// Compiles source to bytecode (or an encoded compile error: first byte 0). Free with amber_free.
char* amber_compile(const char* source, size_t length, int optimization_level, int debug_level, size_t* out_length);
void amber_free(void* p);

// A value passed to or returned by a host function: nil, boolean, number, vector or string.
typedef struct AmberHostValue
{
    int type; // lua_Type: LUA_TNIL, LUA_TBOOLEAN, LUA_TNUMBER, LUA_TVECTOR or LUA_TSTRING
    int boolean;
    double number;
    float vector[3];
    const char* string; // arguments: VM-owned; results: host-owned until the next call
    size_t length;
} AmberHostValue;

// What a host function returned: up to AMBER_HOST_RESULTS values, or an error message. The
// pointers stay valid until the next call of the host function table.
#define AMBER_HOST_RESULTS 8
typedef struct AmberHostReturn
{
    int count; // values; -1 for an error
    AmberHostValue values[AMBER_HOST_RESULTS];
    const char* error;
    size_t error_length;
} AmberHostReturn;

// Calls host function `function` (its index among all libraries' functions, in order).
typedef void (*AmberHostCall)(void* ctx, int function, const AmberHostValue* args, int nargs, AmberHostReturn* out);

// One library a host adds to the base image: a global table `name` with `functions` C functions
// named `function_names[i]`, which call the host through `call` with their index counted from
// `first`.
typedef struct AmberHostLibrary
{
    const char* name;
    const char* const* function_names;
    int functions;
    int first;
} AmberHostLibrary;

// Creates the base image: libraries, host print, the host's libraries, sandboxed and frozen,
// plus the loader thread. Returns NULL when the VM cannot be created.
// With `deterministic`, os.clock, os.time and os.date read a fixed clock instead of the host's
// (os.clock() is 0, os.time() 1700000000, os.date formats in UTC): fresh and resumed runs, on any
// machine, see the same times.
AmberVm* amber_vm_new(int deterministic, const AmberHostLibrary* libraries, int library_count, AmberHostCall call, void* ctx);
void amber_vm_free(AmberVm* vm);
// Installs or removes the scheduler's interrupt callback (removed: tasks are never pre-empted).
void amber_vm_set_preemption(AmberVm* vm, int enabled);

// Loads bytecode into the loader thread and anchors its main function; 0 on success. With
// `env_ref` (an anchor of a globals view, else 0) its imports and constant closures bind to
// that table instead of the base globals.
int amber_vm_load(
    AmberVm* vm, const char* chunk, const char* bytecode, size_t length, int env_ref, int* out_ref, char* err, size_t err_cap
);

// Makes a globals view: a frozen table holding exactly the base globals named (`_G` in it names
// the view itself), for tasks restored from a base image that lacked the others. Anchors it
// (`out_ref`) and gives its identity (`out_object`); 0 on success.
int amber_vm_globals_view(
    AmberVm* vm, const char* const* names, const size_t* lengths, int count, int* out_ref, uintptr_t* out_object, char* err,
    size_t err_cap
);
// Drops an anchor made by amber_vm_load or amber_task_spawn.
void amber_vm_unref(AmberVm* vm, int ref);

// Creates a task thread running a clone of the loaded function `fn_ref`; 0 on success.
int amber_task_spawn(AmberVm* vm, int fn_ref, int memcat, int* out_thread_ref, uintptr_t* out_proto, char* err, size_t err_cap);

// Runs one time slice of the task. On AMBER_ERRORED and AMBER_KILLED `message` holds the error
// message and `trace` the traceback (both truncated to their capacity, NUL-terminated).
int amber_task_resume(
    AmberVm* vm, int thread_ref, const AmberSlice* slice, AmberSliceResult* out, char* message, size_t message_cap, char* trace,
    size_t trace_cap
);

// Reads value `index` (1-based) of the task's stack; clears the stack with amber_task_clear.
int amber_task_value(AmberVm* vm, int thread_ref, int index, AmberValue* out);
void amber_task_clear(AmberVm* vm, int thread_ref);

// Host API: sets global `name` of the task to a new userdata with `tag` holding `data`. With
// `with_destructor`, the userdata gets a (no-op) destructor, as host objects with native
// resources do. 0 on success.
int amber_task_set_userdata(AmberVm* vm, int thread_ref, const char* name, int tag, const char* data, size_t length, int with_destructor);

// Where a pre-empted task stopped; 0 on success.
int amber_task_site(AmberVm* vm, int thread_ref, AmberSite* out);

// Takes what print wrote since the last call: copies up to `cap` bytes and returns the total
// length pending; call with cap 0 to learn the length.
size_t amber_vm_output_length(AmberVm* vm);
// Runs a full garbage collection cycle.
void amber_vm_collect(AmberVm* vm);

// Bytes currently charged to a memory category.
size_t amber_vm_memory(AmberVm* vm, int category);
void amber_vm_take_output(AmberVm* vm, char* into, size_t length);

// ------------------------------------------------------------------------------------------
// Capture and restore (amber_state.cpp). Objects are opaque handles (uintptr_t) during capture
// and indices into the snapshot's object table during restore.

enum AmberRefKind
{
    AMBER_REF_NONE = 0,
    AMBER_REF_OBJECT = 1,    // restore: `ref` is an object index
    AMBER_REF_PERMANENT = 2, // restore: `ref` is a registry index
};

// The type tag used for a Lua closure's shared upvalue slot (LUA_TUPVAL).
typedef struct AmberTV
{
    int type;      // lua_Type (capture also LUA_TUPVAL for a shared upvalue)
    int tag;       // light userdata tag
    int boolean;
    double number;
    float vector[3];
    uintptr_t ref; // capture: GC object or light userdata bits; restore: see ref_kind
    int ref_kind;  // restore only: AmberRefKind
} AmberTV;

// The permanent-name registry of the base image, built once at creation by a fixed-order scan
// (amber_host.cpp, build_registry): one entry per name, in scan order.
typedef struct AmberRegistryView
{
    const char* name;
    size_t name_length;
    int kind; // 'T' table, 'F' function, 'U' userdata, 'O' other, 'C' C function known by identity,
              // 'A' alias: an object met again under a later name (`object` is its canonical entry's)
    uintptr_t object;
    uintptr_t function;
    uintptr_t continuation;
    int role; // which library C function this is, by function pointer (AMBER_ROLE_*)
} AmberRegistryView;

// The C functions the validator's contract (validator/src/contract.rs) names, identified here by
// function pointer so the runtime can check that every name means what the validator assumes.
enum
{
    AMBER_ROLE_NONE = 0,
    AMBER_ROLE_PCALL = 1,
    AMBER_ROLE_XPCALL = 2,
    AMBER_ROLE_RESUME = 3,
    AMBER_ROLE_WRAPPED_RESUME = 4,
    AMBER_ROLE_YIELD = 5,
    AMBER_ROLE_GMATCH_ITERATOR = 6,
    AMBER_ROLE_UTF8_ITERATOR = 7,
    AMBER_ROLE_FIND = 8,
    AMBER_ROLE_MATCH = 9,
    AMBER_ROLE_GSUB = 10,
};

typedef struct AmberTableInfo
{
    int array_size;
    int node_count;
    int insert_hint; // Luau's lastfree, or the negated array boundary when there are no nodes
    int readonly;
    int safeenv;
    uintptr_t metatable;
    int has_order; // iterates through an explicit order (see amber_tables.h)
} AmberTableInfo;

typedef struct AmberClosureInfo
{
    int is_c;
    int upvalues;
    uintptr_t env;
    uintptr_t proto;
    int bytecode_id;
    uintptr_t function;
    uintptr_t continuation;
} AmberClosureInfo;

typedef struct AmberThreadInfo
{
    int status; // raw lua_State::status
    int top;    // stack slots in use
    int base;   // L->base (below top by the undelivered values of a yielded thread)
    int frames; // call frames above the implicit base frame
    uintptr_t globals;
    uintptr_t namecall;
    int stack_size;
} AmberThreadInfo;

typedef struct AmberFrameInfo
{
    int func;
    int base;
    int top;
    int nresults;
    unsigned int flags;
    int is_lua;
    int pc;      // Luau frames: saved instruction index
    int errfunc; // C frames: error function slot + 1 relative to base (0: none)
    uintptr_t closure;
} AmberFrameInfo;

typedef struct AmberUserdataInfo
{
    int tag;
    int length;
    const char* data;
    uintptr_t metatable;
    int is_proxy;
    int has_destructor;
} AmberUserdataInfo;

int amber_registry_count(AmberVm* vm);
int amber_registry_entry(AmberVm* vm, int index, AmberRegistryView* out);

int amber_task_thread(AmberVm* vm, int thread_ref, uintptr_t* out);
int amber_gc_type(uintptr_t o);
void amber_string_bytes(uintptr_t o, const char** data, size_t* length);
void amber_table_info(uintptr_t o, AmberTableInfo* out);
void amber_table_array(uintptr_t o, int i, AmberTV* out);
int amber_table_node(uintptr_t o, int i, AmberTV* key, AmberTV* value);
// The node at iteration position `p` of the hash part (-1: an empty position).
int amber_table_position_node(uintptr_t o, int p);
// The node iteration position `p` had in the layout the table was restored from (see
// amber_tables.h): what a capture records.
int amber_table_position_origin(uintptr_t o, int p);
void amber_closure_info(uintptr_t o, AmberClosureInfo* out);
void amber_closure_upvalue(uintptr_t o, int i, AmberTV* out);
int amber_upvalue(uintptr_t o, AmberTV* value);
void amber_thread_info(uintptr_t o, AmberThreadInfo* out);
void amber_thread_slot(uintptr_t o, int i, AmberTV* out);
void amber_thread_frame(uintptr_t o, int i, AmberFrameInfo* out);
int amber_thread_open_upvalues(uintptr_t o, uintptr_t* out, int cap, int* slots);
void amber_userdata_info(uintptr_t o, AmberUserdataInfo* out);
void amber_buffer_bytes(uintptr_t o, const char** data, size_t* length);

// Proto handles of a loaded script, by bytecode id (for restore and for capture's lookup).
int amber_vm_script_protos(AmberVm* vm, int fn_ref, uintptr_t* out, int cap);

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
int amber_restore_lua_closure(AmberVm* vm, int index, uintptr_t proto, int upvalues, char* err, size_t cap);
int amber_restore_c_closure(AmberVm* vm, int index, int registry_index, int upvalues, char* err, size_t cap);
int amber_restore_thread(AmberVm* vm, int index, int stack_slots, int frames, char* err, size_t cap);
int amber_restore_userdata(AmberVm* vm, int index, int tag, const char* data, size_t length, char* err, size_t cap);
int amber_restore_buffer(AmberVm* vm, int index, const char* data, size_t length, char* err, size_t cap);
int amber_restore_table_array(AmberVm* vm, int index, int slot, const AmberTV* value, char* err, size_t cap);
// The entry at iteration `position`, which lived at `node` of the node layout.
int amber_restore_table_node(
    AmberVm* vm, int index, int position, int node, const AmberTV* key, const AmberTV* value, char* err, size_t cap
);
int amber_restore_table_finish(
    AmberVm* vm, int index, int insert_hint, const AmberTV* metatable, int readonly, int safeenv, char* err, size_t cap
);
int amber_restore_table_freeze(AmberVm* vm, int index, char* err, size_t cap);
int amber_restore_upvalue_closed(AmberVm* vm, int index, const AmberTV* value, char* err, size_t cap);
int amber_restore_upvalue_open(AmberVm* vm, int index, int thread, int slot, char* err, size_t cap);
int amber_restore_lua_closure_fill(AmberVm* vm, int index, const AmberTV* env, const int* upvalues, int count, char* err, size_t cap);
int amber_restore_c_closure_fill(AmberVm* vm, int index, const AmberTV* env, const AmberTV* upvalues, int count, char* err, size_t cap);
int amber_restore_userdata_metatable(AmberVm* vm, int index, const AmberTV* metatable, char* err, size_t cap);
int amber_restore_thread_slot(AmberVm* vm, int index, int slot, const AmberTV* value, char* err, size_t cap);
int amber_restore_thread_frame(AmberVm* vm, int index, int frame, const AmberFrameInfo* f, char* err, size_t cap);
int amber_restore_thread_finish(AmberVm* vm, int index, const AmberThreadInfo* info, const AmberTV* globals, int namecall, char* err, size_t cap);

#ifdef __cplusplus
}
#endif
