// The pre-emptive scheduler's side inside the VM: the interrupt fast path's slow half (due
// pre-emptions, deferral, kills), the resume hooks that track which threads are inside
// lua_resume, the allocator that enforces a task's memory limit, and the task entry points
// (spawn, one slice of a task, its values and its stop site). Policy (budgets, outcomes,
// traces) lives in Rust (luau/src/vm.rs); this file does what must run inside the interpreter.

#include "amber_internal.h"

#include "lua.h"
#include "lualib.h"
#include "luacode.h"

#include "Luau/Common.h"

#include "lapi.h"
#include "ldo.h"
#include "lgc.h"
#include "lobject.h"
#include "lstate.h"
#include "lstring.h"
#include "ltable.h"
#include "lmem.h"

#include "amber_tables.h"

#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

using amber_detail::amber_alloc;
using amber_detail::amber_interrupt;
using amber_detail::amber_postresume;
using amber_detail::amber_preresume;
using amber_detail::copy_message;
using amber_detail::kIdle;
using amber_detail::kMaxChain;
using amber_detail::RegistryEntry;
using amber_detail::Scheduler;
using amber_detail::thread_of_ref;
using amber_detail::vm_of;

namespace
{

bool chain_yieldable(const Scheduler& s)
{
    if (s.active_overflow)
        return false;
    for (int i = 0; i < s.active_len; i++)
        if (!lua_isyieldable(s.active[i]))
            return false;
    return true;
}

// Everything past the decrement: true for a due pre-emption; counts a deferral, or raises the
// kill. Shared by the interpreter's interrupt and the pattern matcher's steps.
LUAU_NOINLINE bool tick_due(lua_State* L, Scheduler& s)
{
    if (s.killed)
        luaL_error(L, "%s", s.kill_reason.c_str());

    if (!chain_yieldable(s))
    {
        if (!s.deferring)
        {
            s.deferring = true;
            s.deferrals++;
            s.deferred_now = 0;
        }
        s.deferred_now++;
        if (s.deferred_now > s.max_deferred)
            s.max_deferred = s.deferred_now;
        if (s.deferred_now > s.defer_cap)
        {
            s.killed = true;
            s.kill_kind = AMBER_KILL_DEFERRED;
            s.kill_reason = "task killed: pre-emption deferred for more than " + std::to_string((unsigned long long)s.defer_cap) +
                            " interrupt ticks (running where it cannot be suspended: a metamethod, a sort comparator or another C call)";
            luaL_error(L, "%s", s.kill_reason.c_str());
        }
        return false;
    }
    s.deferring = false;
    return true;
}

// The thread a broken thread is waiting on: its top frame is coroutine.resume (child in the first
// argument) or a wrapped coroutine's function (child in its first upvalue). NULL if neither.
lua_State* broken_child(AmberVm* vm, lua_State* T)
{
    if (T->status != LUA_BREAK || T->ci == T->base_ci)
        return nullptr;
    CallInfo* ci = T->ci;
    if (!ttisfunction(ci->func))
        return nullptr;
    Closure* cl = clvalue(ci->func);
    if (!cl->isC)
        return nullptr;
    if (cl->c.f == vm->coroutine_resume && ci->base < T->top && ttisthread(ci->base))
        return thvalue(ci->base);
    if (cl->c.f == vm->wrapped_resume && cl->nupvalues >= 1 && ttisthread(&cl->c.upvals[0]))
        return thvalue(&cl->c.upvals[0]);
    return nullptr;
}

int derive_chain(AmberVm* vm, lua_State* main, lua_State** chain)
{
    int n = 0;
    chain[n++] = main;
    while (n < kMaxChain)
    {
        lua_State* child = broken_child(vm, chain[n - 1]);
        if (!child)
            break;
        chain[n++] = child;
    }
    return n;
}

void build_traceback(lua_State* T, std::string& out)
{
    lua_Debug ar;
    for (int level = 0; level < 64 && lua_getinfo(T, level, "sln", &ar); ++level)
    {
        out += ar.short_src ? ar.short_src : "?";
        if (ar.currentline > 0)
            out += ":" + std::to_string(ar.currentline);
        if (ar.name)
        {
            out += " function ";
            out += ar.name;
        }
        out += "\n";
    }
}

void describe_error(lua_State* T, std::string& out)
{
    if (lua_gettop(T) == 0)
    {
        out = "(no error object)";
        return;
    }
    int t = lua_type(T, -1);
    if (t == LUA_TSTRING)
    {
        size_t len = 0;
        const char* s = lua_tolstring(T, -1, &len);
        out.assign(s, len);
    }
    else if (t == LUA_TNUMBER)
    {
        char buf[64];
        snprintf(buf, sizeof(buf), "%.14g", lua_tonumber(T, -1));
        out = buf;
    }
    else
    {
        out = std::string("(error object is a ") + lua_typename(T, t) + " value)";
    }
}

} // namespace

namespace amber_detail
{

void amber_interrupt(lua_State* L, int gc)
{
    // The collector's calls happen at allocation-dependent moments, which differ between a fresh
    // and a restored heap: they are never counted.
    if (gc >= 0)
        return;
    // The interpreter's own calls arrive with the countdown already at or below zero. Calls from
    // elsewhere (Luau's own library code) arrive with ticks left: count them here.
    int64_t& countdown = L->global->amber_countdown;
    if (countdown > 0 && --countdown > 0)
        return;
    if (tick_due(L, vm_of(L)->sched))
        lua_break(L);
}

void amber_preresume(lua_State* L)
{
    Scheduler& s = vm_of(L)->sched;
    if (s.active_len < kMaxChain)
        s.active[s.active_len++] = L;
    else
        s.active_overflow = true;
}

void amber_postresume(lua_State* L)
{
    Scheduler& s = vm_of(L)->sched;
    // A coroutine just yielded to its resumer: pre-empt at the resumer's next interrupt.
    if (s.preempt_after_yield && L->status == LUA_YIELD && s.active_len > 1 && L->global->amber_countdown > 1)
    {
        s.countdown_cut += L->global->amber_countdown - 1;
        L->global->amber_countdown = 1;
    }
    if (s.active_len > 0 && s.active[s.active_len - 1] == L)
        s.active_len--;
    else
        s.active_overflow = true;
}

// The VM's allocator: the C heap, with the memory limit in force. Growth that would take the
// limited category past its limit fails (Luau then raises "not enough memory" where it
// allocated), and the task is killed: the scheduler re-raises at every later interrupt, so a
// pcall cannot keep it alive. Small blocks come from pages of Luau's own allocator, so the
// category can pass its limit by less than one page per size class before a page is refused.
void* amber_alloc(void* ud, void* ptr, size_t osize, size_t nsize)
{
    AmberVm* vm = static_cast<AmberVm*>(ud);
    if (nsize == 0)
    {
        free(ptr);
        return nullptr;
    }
    if (nsize > osize && vm->limit_category >= 0 && vm->L)
    {
        size_t used = vm->L->global->memcatbytes[vm->limit_category];
        size_t grow = nsize - osize;
        if (used > vm->limit_bytes || grow > vm->limit_bytes - used)
        {
            Scheduler& s = vm->sched;
            if (!s.killed)
            {
                s.killed = true;
                s.kill_kind = AMBER_KILL_MEMORY;
                s.kill_reason = "task killed: memory limit of " + std::to_string((unsigned long long)vm->limit_bytes) + " bytes reached";
                vm->limit_used = used;
            }
            // The next interrupt takes the slow path and raises the kill.
            vm->L->global->amber_countdown = 0;
            return nullptr;
        }
    }
    return realloc(ptr, nsize);
}

lua_State* thread_of_ref(AmberVm* vm, int ref)
{
    lua_State* L = vm->L;
    lua_getref(L, ref);
    lua_State* T = lua_tothread(L, -1);
    lua_pop(L, 1);
    return T;
}

} // namespace amber_detail

bool amber_detail::match_step_due(lua_State* L)
{
    // A state without Amber's scheduler (the differential test's), or with pre-emption off:
    // matching steps are never due.
    AmberVm* vm = static_cast<AmberVm*>(L->global->cb.userdata);
    if (!vm || L->global->cb.interrupt != amber_interrupt)
    {
        L->global->amber_countdown = kIdle;
        return false;
    }
    return tick_due(L, vm->sched);
}

extern "C" {

void amber_vm_set_preemption(AmberVm* vm, int enabled)
{
    lua_callbacks(vm->L)->interrupt = enabled ? amber_interrupt : nullptr;
}

int amber_task_spawn(AmberVm* vm, int fn_ref, int memcat, int* out_thread_ref, uintptr_t* out_proto, char* err, size_t err_cap)
{
    lua_State* L = vm->L;
    int top = lua_gettop(L);
    try
    {
        // New threads inherit the creating thread's category: the task's thread, its proxy
        // globals and everything it allocates later are charged to `memcat`.
        lua_setmemcat(L, memcat);
        lua_State* T = lua_newthread(L);
        lua_setmemcat(L, 0);
        *out_thread_ref = lua_ref(L, -1);
        lua_settop(L, top);

        luaL_sandboxthread(T);
        lua_getref(T, fn_ref);
        if (!lua_isfunction(T, -1))
        {
            lua_unref(L, *out_thread_ref);
            copy_message(err, err_cap, std::string("script is not loaded in this VM"));
            return -1;
        }
        lua_clonefunction(T, -1);
        lua_remove(T, -2);
        *out_proto = reinterpret_cast<uintptr_t>(clvalue(luaA_toobject(T, -1))->l.p);
        return 0;
    }
    catch (std::exception& e)
    {
        lua_setmemcat(L, 0);
        lua_settop(L, top);
        copy_message(err, err_cap, std::string("spawn failed: ") + e.what());
        return -1;
    }
}

int amber_task_resume(
    AmberVm* vm, int thread_ref, const AmberSlice* slice, AmberSliceResult* out, char* message, size_t message_cap, char* trace,
    size_t trace_cap
)
{
    Scheduler& s = vm->sched;
    memset(out, 0, sizeof(*out));
    out->rng_state = slice->rng_state;

    lua_State* main = thread_of_ref(vm, thread_ref);
    if (!main)
    {
        out->status = AMBER_NOT_RESUMABLE;
        copy_message(message, message_cap, std::string("unknown task"));
        return out->status;
    }
    int costatus = lua_costatus(vm->L, main);
    if (costatus == LUA_COFIN || costatus == LUA_COERR)
    {
        out->status = AMBER_NOT_RESUMABLE;
        copy_message(message, message_cap, std::string("task is not resumable: it has finished or failed"));
        return out->status;
    }

    lua_State* chain[kMaxChain];
    int n = derive_chain(vm, main, chain);

    s.budget = slice->budget < 1 ? 1 : (slice->budget > kIdle ? kIdle : slice->budget);
    s.defer_cap = slice->defer_cap;
    s.preempt_after_yield = slice->preempt_after_yield != 0;
    s.countdown_cut = 0;
    s.deferring = false;
    s.killed = false;
    s.kill_kind = AMBER_KILL_NONE;
    s.kill_reason.clear();
    s.deferred_now = 0;
    s.deferrals = 0;
    s.max_deferred = 0;
    s.active_len = 0;
    s.active_overflow = false;
    // Resuming a pre-empted thread re-executes the instruction it stopped at, and its interrupt
    // fires again first of all: that re-fire is the site already counted, so it is not counted
    // twice (the LUA_BREAK status is exactly "skip the next interrupt here").
    // A thread broken inside pattern matching (a C frame on top) continues through its C
    // continuation instead, with no re-fire.
    lua_State* innermost = chain[n - 1];
    bool refire = innermost->status == LUA_BREAK && innermost->ci != innermost->base_ci && isLua(innermost->ci);
    global_State* g = vm->L->global;
    int64_t start_countdown = s.budget + (refire ? 1 : 0);
    g->amber_countdown = start_countdown;

    g->rngstate = slice->rng_state;
    if (slice->memory_limit > 0 && slice->memory_category >= 0 && slice->memory_category < LUA_MEMORY_CATEGORIES)
    {
        vm->limit_category = slice->memory_category;
        vm->limit_bytes = slice->memory_limit;
    }

    int status = LUA_OK;
    for (int i = n - 1; i >= 0; i--)
    {
        status = lua_resume(chain[i], i > 0 ? chain[i - 1] : nullptr, 0);
        if (status == LUA_BREAK)
            break;
        // Otherwise the parent's resume continuation collects this thread's results or error.
    }

    out->rng_state = g->rngstate;
    out->deferrals = s.deferrals;
    out->max_deferred = s.max_deferred;
    // Ticks past zero were spent deferred; they are counted in `max_deferred`, not here.
    int64_t left = g->amber_countdown < 0 ? 0 : g->amber_countdown;
    int64_t used = start_countdown - left - (refire ? 1 : 0) - s.countdown_cut;
    out->ticks = used < 0 ? 0 : uint64_t(used);
    bool killed = s.killed;
    int kill_kind = s.kill_kind;
    std::string kill_reason = s.kill_reason;
    g->amber_countdown = kIdle;
    s.killed = false;
    s.active_len = 0;
    vm->limit_category = -1;
    // A kill stands whatever the script did after it (a pcall may have swallowed the allocation
    // error before the next interrupt re-raised it); an error ending is reported further down,
    // with its traceback.
    if (killed && (status == LUA_OK || status == LUA_YIELD || status == LUA_BREAK))
    {
        lua_settop(main, 0);
        out->status = AMBER_KILLED;
        out->kill_kind = kill_kind;
        out->kill_value = kill_kind == AMBER_KILL_MEMORY ? vm->limit_used : s.defer_cap;
        copy_message(message, message_cap, kill_reason);
        return out->status;
    }

    if (status == LUA_BREAK)
    {
        out->status = AMBER_PREEMPTED;
        return out->status;
    }

    if (status == LUA_OK || status == LUA_YIELD)
    {
        out->status = status == LUA_OK ? AMBER_FINISHED : AMBER_YIELDED;
        out->nvalues = lua_gettop(main);
        return out->status;
    }

    std::string msg, tb;
    describe_error(main, msg);
    try
    {
        build_traceback(main, tb);
    }
    catch (...)
    {
        tb = "(traceback unavailable)\n";
    }
    lua_settop(main, 0);
    if (killed)
    {
        out->status = AMBER_KILLED;
        out->kill_kind = kill_kind;
        out->kill_value = kill_kind == AMBER_KILL_MEMORY ? vm->limit_used : s.defer_cap;
        copy_message(message, message_cap, kill_reason);
    }
    else
    {
        out->status = AMBER_ERRORED;
        copy_message(message, message_cap, msg);
    }
    copy_message(trace, trace_cap, tb);
    return out->status;
}

int amber_task_value(AmberVm* vm, int thread_ref, int index, AmberValue* out)
{
    lua_State* T = thread_of_ref(vm, thread_ref);
    memset(out, 0, sizeof(*out));
    if (!T || index < 1 || index > lua_gettop(T))
        return -1;
    int t = lua_type(T, index);
    out->type = t;
    out->type_name = lua_typename(T, t);
    switch (t)
    {
    case LUA_TBOOLEAN:
        out->boolean = lua_toboolean(T, index);
        break;
    case LUA_TNUMBER:
        out->number = lua_tonumber(T, index);
        break;
    case LUA_TVECTOR:
    {
        const float* v = lua_tovector(T, index);
        out->vector[0] = v[0];
        out->vector[1] = v[1];
        out->vector[2] = v[2];
        break;
    }
    case LUA_TSTRING:
        // A string value: lua_tolstring does not convert, so this cannot allocate or throw.
        out->string = lua_tolstring(T, index, &out->length);
        break;
    default:
        break;
    }
    return 0;
}

void amber_task_clear(AmberVm* vm, int thread_ref)
{
    lua_State* T = thread_of_ref(vm, thread_ref);
    if (T && lua_status(T) != LUA_BREAK)
        lua_settop(T, 0);
}

int amber_task_site(AmberVm* vm, int thread_ref, AmberSite* out)
{
    memset(out, 0, sizeof(*out));
    lua_State* main = thread_of_ref(vm, thread_ref);
    if (!main)
        return -1;
    lua_State* chain[kMaxChain];
    int n = derive_chain(vm, main, chain);
    lua_State* T = chain[n - 1];
    if (T->status != LUA_BREAK || T->ci == T->base_ci || !isLua(T->ci))
        return -1;
    Proto* p = clvalue(T->ci->func)->l.p;
    out->bytecode_id = p->bytecodeid;
    out->pc = int(T->ci->savedpc - p->code);
    out->chunk = p->source ? getstr(p->source) : "";
    out->chunk_length = p->source ? p->source->len : 0;
    out->proto = uintptr_t(p);
    return 0;
}

} // extern "C"
