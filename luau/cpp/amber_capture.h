// Capture (amber_capture.cpp): read-only accessors over GC objects. Objects are opaque handles
// (uintptr_t) handed out by these functions. `luau/src/ffi/capture.rs` mirrors this file.
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

typedef struct AmberUserdataInfo
{
    int tag;
    int length;
    const char* data;
    uintptr_t metatable;
    int is_proxy;
    int has_destructor;
} AmberUserdataInfo;

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

#ifdef __cplusplus
}
#endif
