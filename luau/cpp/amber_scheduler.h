// The scheduler's entry points (amber_scheduler.cpp): spawning a task, running one slice of it
// under a budget, reading its values and where it stopped. `luau/src/ffi/scheduler.rs` mirrors
// this file.
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

// Installs or removes the scheduler's interrupt callback (removed: tasks are never pre-empted).
void amber_vm_set_preemption(AmberVm* vm, int enabled);

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

#ifdef __cplusplus
}
#endif
