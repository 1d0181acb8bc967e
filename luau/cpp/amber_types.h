// Types shared by Amber's C interfaces (amber_image.h, amber_scheduler.h, amber_capture.h,
// amber_restore.h). `luau/src/ffi/types.rs` mirrors this file.
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

// The type tag used for a Lua closure's shared upvalue slot (LUA_TUPVAL).
typedef struct AmberTV
{
    int type;      // lua_Type (capture also LUA_TUPVAL for a shared upvalue)
    int tag;       // light userdata tag
    int boolean;
    double number;
    float vector[3];
    uintptr_t ref; // GC object or light userdata bits
} AmberTV;

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

#ifdef __cplusplus
}
#endif
