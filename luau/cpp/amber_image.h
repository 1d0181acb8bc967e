// The base image (amber_image.cpp): creating the VM with its libraries and the host's, the
// permanent registry that names its objects, loading scripts, globals views, and the VM-wide
// entry points. `luau/src/ffi/image.rs` mirrors this file.
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

// Host API: sets global `name` of the task to a new userdata with `tag` holding `data`. With
// `with_destructor`, the userdata gets a (no-op) destructor, as host objects with native
// resources do. 0 on success.
int amber_task_set_userdata(AmberVm* vm, int thread_ref, const char* name, int tag, const char* data, size_t length, int with_destructor);

// Takes what print wrote since the last call: copies up to `cap` bytes and returns the total
// length pending; call with cap 0 to learn the length.
size_t amber_vm_output_length(AmberVm* vm);
// Runs a full garbage collection cycle.
void amber_vm_collect(AmberVm* vm);

// Bytes currently charged to a memory category.
size_t amber_vm_memory(AmberVm* vm, int category);
void amber_vm_take_output(AmberVm* vm, char* into, size_t length);

// The permanent-name registry of the base image, built once at creation by a fixed-order scan
// (amber_image.cpp, build_registry): one entry per name, in scan order.
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

int amber_registry_count(AmberVm* vm);
int amber_registry_entry(AmberVm* vm, int index, AmberRegistryView* out);

// Proto handles of a loaded script, by bytecode id (for restore and for capture's lookup).
int amber_vm_script_protos(AmberVm* vm, int fn_ref, uintptr_t* out, int cap);

#ifdef __cplusplus
}
#endif
