// The plain C API: feature flags and the compiler, which need no VM (amber_api.cpp).
// `luau/src/ffi/api.rs` mirrors this file.
//
// Every function here catches C++ exceptions (Luau errors are exceptions) and reports failure as
// a status code, so no exception ever crosses into Rust through these entry points.
#pragma once

#include <stddef.h>
#include <stdint.h>


#ifdef __cplusplus
extern "C" {
#endif

// Process-wide feature flags (Luau FFlags). Index 0..amber_flag_count()-1.
int amber_flag_count(void);
int amber_flag_get(int index, const char** name, int* value);

// Compiles source to bytecode (or an encoded compile error: first byte 0). Free with amber_free.
char* amber_compile(const char* source, size_t length, int optimization_level, int debug_level, size_t* out_length);
void amber_free(void* p);

#ifdef __cplusplus
}
#endif
