// Pre-emptible, persistable pattern matching (string.find, match, gmatch, gsub). The functions
// themselves are installed into the base image by amber_image.cpp; this header is the part the
// Rust side sees: the layout of a suspended matcher's state (which the validator's contract
// mirrors and the runtime compares at start-up) and the entry points of the differential test
// against Luau's own matcher. `luau/src/ffi.rs` mirrors it.
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// The facts of the persisted matcher state a validator must agree with.
typedef struct AmberMatchLayout
{
    uint32_t version;       // word 0 of every state
    uint32_t header_words;  // little-endian u32 words before the backtrack frames
    uint32_t frame_words;   // words per backtrack frame
    uint32_t max_frames;    // backtrack frames at most (Luau's matchdepth, less the outermost)
    uint32_t max_captures;  // LUA_MAXCAPTURES
    uint32_t chunk;         // characters one counting or balance step examines at most
} AmberMatchLayout;

void amber_match_layout(AmberMatchLayout* out);

// The differential test's view: a plain Luau state (no Amber scheduler) with the stock string
// library, and Amber's four functions as the global table `amber_string`. Closed with
// amber_match_close. NULL on allocation failure.
typedef struct AmberMatchState AmberMatchState;
AmberMatchState* amber_match_open(void);
void amber_match_close(AmberMatchState* state);

// Runs `source` (a chunk returning one string) in the state; the string is copied into `out`
// (truncated to `cap`). Returns the string's full length, or -1 with the error in `out`.
long amber_match_eval(AmberMatchState* state, const char* source, size_t length, char* out, size_t cap);

// Calls global function `fn` with the given strings as arguments and returns its one string
// result like amber_match_eval (the driver of a differential loop with no recompilation).
long amber_match_call(
    AmberMatchState* state, const char* fn, const char* const* args, const size_t* lengths, int nargs, char* out, size_t cap
);

#ifdef __cplusplus
}
#endif
