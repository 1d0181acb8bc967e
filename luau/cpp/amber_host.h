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
} AmberSlice;

typedef struct AmberSliceResult
{
    int status;             // AmberResumeStatus
    uint64_t rng_state;     // the task's math.random state after the slice
    uint64_t ticks;         // counted interrupt ticks this slice
    uint64_t deferrals;     // times a due pre-emption had to wait for a yieldable site
    uint64_t max_deferred;  // longest wait, in ticks
    int nvalues;            // values left on the task's stack (finished/yielded)
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
} AmberSite;

// Process-wide feature flags (Luau FFlags). Index 0..amber_flag_count()-1.
int amber_flag_count(void);
int amber_flag_get(int index, const char** name, int* value);
int amber_flag_set(const char* name, int value);

// Compiles source to bytecode (or an encoded compile error: first byte 0). Free with amber_free.
char* amber_compile(const char* source, size_t length, int optimization_level, int debug_level, size_t* out_length);
void amber_free(void* p);

// Creates the base image: libraries, host print, sandboxed and frozen, plus the loader thread.
// Returns NULL when the VM cannot be created.
AmberVm* amber_vm_new(void);
void amber_vm_free(AmberVm* vm);
// Installs or removes the scheduler's interrupt callback (removed: tasks are never pre-empted).
void amber_vm_set_preemption(AmberVm* vm, int enabled);

// The permanent-name registry of the base image, built once at creation by a fixed-order scan:
// one line per name, "K\tname\n" with K = T table, F function, C C-function identity (the function
// behind run-time C closures), U userdata, O other. Aliases (objects met again under another
// name) are listed as "A\talias\tcanonical\n". Valid while the VM lives.
void amber_vm_permanents(AmberVm* vm, const char** text, size_t* length);

// Loads bytecode into the loader thread and anchors its main function; 0 on success.
int amber_vm_load(AmberVm* vm, const char* chunk, const char* bytecode, size_t length, int* out_ref, char* err, size_t err_cap);
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

// Where a pre-empted task stopped; 0 on success.
int amber_task_site(AmberVm* vm, int thread_ref, AmberSite* out);

// Takes what print wrote since the last call: copies up to `cap` bytes and returns the total
// length pending; call with cap 0 to learn the length.
size_t amber_vm_output_length(AmberVm* vm);
// Bytes currently charged to a memory category.
size_t amber_vm_memory(AmberVm* vm, int category);
void amber_vm_take_output(AmberVm* vm, char* into, size_t length);

#ifdef __cplusplus
}
#endif
