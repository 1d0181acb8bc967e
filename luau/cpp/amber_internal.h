// Internal state shared by Amber's C++ files (not part of the C interface).
#pragma once

#include "amber_api.h"
#include "amber_capture.h"
#include "amber_image.h"
#include "amber_restore.h"
#include "amber_scheduler.h"
#include "amber_types.h"

#include "lua.h"
#include "lobject.h"
#include "lstate.h"

#include <stdint.h>
#include <string.h>

#include <string>
#include <vector>

namespace amber_detail
{

// Coroutine resumes nest at most LUAI_MAXCCALLS deep; anything deeper is refused by Luau first.
inline constexpr int kMaxChain = LUAI_MAXCCALLS + 8;

// Ticks left in the current slice live in `global_State::amber_countdown` (an anchored edit), so
// the interpreter decrements them inline and calls the interrupt only when a pre-emption is due.
inline constexpr int64_t kIdle = INT64_MAX / 2;

struct Scheduler
{
    int64_t budget = 0;
    uint64_t defer_cap = 0;
    bool deferring = false;
    bool killed = false;
    bool preempt_after_yield = false;
    int64_t countdown_cut = 0; // ticks removed from the countdown by preempt_after_yield
    uint64_t deferred_now = 0;
    uint64_t deferrals = 0;
    uint64_t max_deferred = 0;
    int kill_kind = 0; // AmberKillKind
    std::string kill_reason;

    // Threads currently inside lua_resume, outermost first (maintained by pre/postresume).
    lua_State* active[kMaxChain];
    int active_len = 0;
    bool active_overflow = false;
};

// One permanent of the registry: a base-image object, or a C function known by identity.
struct RegistryEntry
{
    std::string name;
    char kind; // T table, F function, C C-function identity, U userdata, O other
    GCObject* object; // NULL for C-function identities
    lua_CFunction function; // C closures and identities
    lua_Continuation continuation;
    const char* debugname;
    int role = AMBER_ROLE_NONE;
};

// Pattern matching (amber_match.cpp). A matching step's tick came due: true when the task must
// break now (amber_scheduler.cpp decides as for an interrupt, and raises a deferred task's kill).
bool match_step_due(lua_State* L);

// Sets Amber's find, match, gmatch and gsub into the table at `table`.
void install_matcher(lua_State* L, int table);

// The C functions whose frames a suspended thread may hold mid-match.
enum class MatcherRole
{
    Find,
    Match,
    Gsub,
    GmatchIterator,
};
lua_CFunction matcher_function(MatcherRole role);

} // namespace amber_detail

struct AmberVm
{
    amber_detail::Scheduler sched; // first member: cb.userdata points at the AmberVm
    lua_State* L = nullptr;
    lua_State* loader = nullptr;
    int loader_ref = LUA_NOREF;
    std::string output;
    lua_CFunction coroutine_resume = nullptr;
    lua_CFunction wrapped_resume = nullptr;
    // The other C functions of the validator's contract, by pointer (see AMBER_ROLE_*).
    lua_CFunction pcall = nullptr;
    lua_CFunction xpcall = nullptr;
    lua_CFunction coroutine_yield = nullptr;
    lua_CFunction os_time = nullptr; // the library's, called by the deterministic versions
    lua_CFunction os_date = nullptr;
    // The registry in scan order: what each permanent name stands for.
    std::vector<amber_detail::RegistryEntry> registry;
    // Objects being built by a restore (GC stopped meanwhile), and its memory category.
    std::vector<GCObject*> restoring;
    std::vector<uint8_t> restoring_kind;
    struct DeferredKey
    {
        int table;
        TValue key;
        TValue value;
    };
    std::vector<DeferredKey> restoring_deferred;
    struct PositionedKey
    {
        int table;
        int position;
        int node; // the node the snapshot's layout had it at
        TValue key;
    };
    std::vector<PositionedKey> restoring_positions;
    bool restore_active = false;
    size_t restore_orders = 0; // explicit orders attached by the last restore
    int restore_gc_was_running = 0;
    // During a restore into a globals view: permanent `restoring_globals_index` (the base
    // globals) stands for this table instead.
    int restoring_globals_index = -1;
    LuaTable* restoring_globals = nullptr;
    // Host library functions (AmberHostCall): called by host_call with their index.
    AmberHostCall host_call = nullptr;
    void* host_ctx = nullptr;
    // The memory limit in force (a slice of a limited task, or a restore): growth that would
    // take `limit_category` past `limit_bytes` fails (amber_alloc), and the task is killed.
    int limit_category = -1;
    size_t limit_bytes = 0;
    size_t limit_used = 0; // the category's bytes when the limit was hit
};


namespace amber_detail
{

inline AmberVm* vm_of(lua_State* L)
{
    return static_cast<AmberVm*>(L->global->cb.userdata);
}

// Copies a message for the caller, truncated to `cap` and NUL-terminated.
inline void copy_message(char* into, size_t cap, const char* text, size_t length)
{
    if (!into || cap == 0)
        return;
    size_t n = length < cap - 1 ? length : cap - 1;
    memcpy(into, text, n);
    into[n] = 0;
}

inline void copy_message(char* into, size_t cap, const std::string& text)
{
    copy_message(into, cap, text.data(), text.size());
}

// The scheduler (amber_scheduler.cpp): the callbacks the base image installs, the allocator
// that enforces memory limits, and a task's thread by its anchor.
void amber_interrupt(lua_State* L, int gc);
void amber_preresume(lua_State* L);
void amber_postresume(lua_State* L);
void* amber_alloc(void* ud, void* ptr, size_t osize, size_t nsize);
lua_State* thread_of_ref(AmberVm* vm, int ref);

} // namespace amber_detail
