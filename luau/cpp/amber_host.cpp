// Amber's host shim over Luau's internals: the base image, the pre-emptive scheduler's interrupt
// fast path, and the break-chain resume. Policy (budgets, outcomes, traces) lives in Rust; this
// file only does what needs VM internals or must run inside the interpreter's callbacks.

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

using amber_detail::kIdle;
using amber_detail::kMaxChain;
using amber_detail::RegistryEntry;
using amber_detail::Scheduler;

namespace
{

AmberVm* vm_of(lua_State* L)
{
    return static_cast<AmberVm*>(L->global->cb.userdata);
}

void copy_message(char* into, size_t cap, const char* text, size_t length)
{
    if (!into || cap == 0)
        return;
    size_t n = length < cap - 1 ? length : cap - 1;
    memcpy(into, text, n);
    into[n] = 0;
}

void copy_message(char* into, size_t cap, const std::string& text)
{
    copy_message(into, cap, text.data(), text.size());
}

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

} // namespace

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

namespace
{

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

int host_print(lua_State* L)
{
    AmberVm* vm = vm_of(L);
    int n = lua_gettop(L);
    std::string line;
    for (int i = 1; i <= n; i++)
    {
        size_t len = 0;
        const char* s = luaL_tolstring(L, i, &len);
        if (i > 1)
            line.push_back('\t');
        line.append(s, len);
        lua_pop(L, 1);
    }
    line.push_back('\n');
    vm->output += line;
    return 0;
}

// A function of a host library: its index is upvalue 1. Arguments and results are plain values
// (nil, booleans, numbers, vectors, strings); the host's error becomes a Luau error here, after
// the host has returned, so no exception ever crosses the host's frames.
int host_call(lua_State* L)
{
    AmberVm* vm = vm_of(L);
    int function = int(lua_tointeger(L, lua_upvalueindex(1)));
    int n = lua_gettop(L);
    std::vector<AmberHostValue> args(static_cast<size_t>(n));
    for (int i = 1; i <= n; i++)
    {
        AmberHostValue& a = args[size_t(i - 1)];
        a = AmberHostValue{};
        a.type = lua_type(L, i);
        switch (a.type)
        {
        case LUA_TNIL:
            break;
        case LUA_TBOOLEAN:
            a.boolean = lua_toboolean(L, i);
            break;
        case LUA_TNUMBER:
            a.number = lua_tonumber(L, i);
            break;
        case LUA_TVECTOR:
        {
            const float* v = lua_tovector(L, i);
            a.vector[0] = v[0];
            a.vector[1] = v[1];
            a.vector[2] = v[2];
            break;
        }
        case LUA_TSTRING:
            a.string = lua_tolstring(L, i, &a.length);
            break;
        default:
            luaL_error(L, "argument %d: host functions take nil, booleans, numbers, vectors and strings, not %s", i,
                luaL_typename(L, i));
        }
    }
    AmberHostReturn ret{};
    if (!vm->host_call)
        luaL_error(L, "this VM has no host functions");
    vm->host_call(vm->host_ctx, function, args.data(), n, &ret);
    if (ret.count < 0)
    {
        lua_pushlstring(L, ret.error ? ret.error : "host function failed", ret.error ? ret.error_length : 20);
        lua_error(L);
    }
    int count = ret.count > AMBER_HOST_RESULTS ? AMBER_HOST_RESULTS : ret.count;
    lua_checkstack(L, count);
    for (int i = 0; i < count; i++)
    {
        const AmberHostValue& v = ret.values[i];
        switch (v.type)
        {
        case LUA_TBOOLEAN:
            lua_pushboolean(L, v.boolean);
            break;
        case LUA_TNUMBER:
            lua_pushnumber(L, v.number);
            break;
        case LUA_TVECTOR:
            lua_pushvector(L, v.vector[0], v.vector[1], v.vector[2]);
            break;
        case LUA_TSTRING:
            lua_pushlstring(L, v.string ? v.string : "", v.string ? v.length : 0);
            break;
        default:
            lua_pushnil(L);
            break;
        }
    }
    return count;
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

char kind_letter(int type)
{
    switch (type)
    {
    case LUA_TTABLE:
        return 'T';
    case LUA_TFUNCTION:
        return 'F';
    case LUA_TUSERDATA:
        return 'U';
    default:
        return 'O';
    }
}

std::vector<std::string> sorted_string_keys(lua_State* L, int idx)
{
    std::vector<std::string> keys;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0)
    {
        if (lua_type(L, -2) == LUA_TSTRING)
        {
            size_t len = 0;
            const char* k = lua_tolstring(L, -2, &len);
            keys.emplace_back(k, len);
        }
        lua_pop(L, 1);
    }
    std::sort(keys.begin(), keys.end());
    return keys;
}

// The fixed-order scan that names the base image: @globals, every global in byte order with the
// members of library tables, type metatables, upvalues of library C closures, then the C
// functions behind closures the libraries make at run time. The first name an object is met
// under is its canonical name; later ones are recorded as aliases.
struct RegistryScan
{
    lua_State* L;
    std::vector<RegistryEntry>* entries;

    bool known(GCObject* o) const
    {
        for (const RegistryEntry& e : *entries)
            if (e.object == o)
                return true;
        return false;
    }

    // Names the value on top of the stack (popping it); returns false for an alias or a value
    // that is not an object worth naming.
    bool name(const std::string& n)
    {
        int t = lua_type(L, -1);
        if (t != LUA_TTABLE && t != LUA_TFUNCTION && t != LUA_TUSERDATA)
        {
            lua_pop(L, 1);
            return false;
        }
        GCObject* o = gcvalue(luaA_toobject(L, -1));
        if (known(o))
        {
            // An alias: the same object under a later name (its canonical name came first).
            entries->push_back(RegistryEntry{n, 'A', o, nullptr, nullptr, nullptr});
            lua_pop(L, 1);
            return false;
        }
        RegistryEntry e{n, kind_letter(t), o, nullptr, nullptr, nullptr};
        if (t == LUA_TFUNCTION && clvalue(luaA_toobject(L, -1))->isC)
        {
            Closure* cl = clvalue(luaA_toobject(L, -1));
            e.function = cl->c.f;
            e.continuation = cl->c.cont;
            e.debugname = cl->c.debugname ? getstr(cl->c.debugname) : nullptr;
        }
        entries->push_back(e);
        lua_pop(L, 1);
        return true;
    }

    void upvalues_of(const std::string& n)
    {
        // The value to inspect is on top of the stack; it stays there.
        if (!lua_iscfunction(L, -1))
            return;
        for (int i = 1;; i++)
        {
            const char* upname = lua_getupvalue(L, -1, i);
            if (!upname)
                break;
            name(n + "#upvalue" + std::to_string(i));
        }
    }

    // A C function known by identity: the closure on top of the stack is a sample (popped).
    void identity(const std::string& n)
    {
        Closure* cl = clvalue(luaA_toobject(L, -1));
        entries->push_back(RegistryEntry{n, 'C', nullptr, cl->c.f, cl->c.cont, nullptr});
        lua_pop(L, 1);
    }
};

void build_registry(AmberVm* vm)
{
    lua_State* L = vm->L;
    RegistryScan scan{L, &vm->registry};
    lua_pushvalue(L, LUA_GLOBALSINDEX);
    scan.name("@globals");
    for (const std::string& g : sorted_string_keys(L, LUA_GLOBALSINDEX))
    {
        lua_rawgetfield(L, LUA_GLOBALSINDEX, g.c_str());
        bool is_table = lua_istable(L, -1);
        lua_pushvalue(L, -1);
        bool fresh = scan.name(g);
        if (fresh)
            scan.upvalues_of(g);
        if (fresh && is_table)
        {
            int lib = lua_gettop(L);
            for (const std::string& m : sorted_string_keys(L, lib))
            {
                lua_rawgetfield(L, lib, m.c_str());
                lua_pushvalue(L, -1);
                if (scan.name(g + "." + m))
                    scan.upvalues_of(g + "." + m);
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
    }
    lua_pushliteral(L, "");
    if (lua_getmetatable(L, -1))
        scan.name("@metatable.string");
    lua_pop(L, 1);
    lua_pushvector(L, 0.0f, 0.0f, 0.0f);
    if (lua_getmetatable(L, -1))
        scan.name("@metatable.vector");
    lua_pop(L, 1);
    // C functions of closures made at run time: named by identity, captured with their upvalues.
    // A sample of each is made here (before the base image is frozen) to learn the function:
    // lib.fn called with the arguments `push_args` pushes (it returns how many).
    auto sample = [&](const char* lib, const char* fn, const char* name, auto push_args) {
        lua_getglobal(L, lib);
        lua_getfield(L, -1, fn);
        lua_call(L, push_args(), 1);
        lua_remove(L, -2);
        scan.identity(name);
    };
    sample("coroutine", "wrap", "coroutine.wrap#resume", [&] {
        lua_getglobal(L, "print");
        return 1;
    });
    sample("string", "gmatch", "string.gmatch#iterator", [&] {
        lua_pushliteral(L, "");
        lua_pushliteral(L, "");
        return 2;
    });
    sample("utf8", "codes", "utf8.codes#iterator", [&] {
        lua_pushliteral(L, "");
        return 1;
    });

    // Roles by function pointer, for the runtime's check of the validator's contract.
    for (RegistryEntry& e : vm->registry)
    {
        if (e.kind == 'A' || !e.function)
            continue;
        std::string_view n = e.name;
        if (e.function == vm->pcall)
            e.role = AMBER_ROLE_PCALL;
        else if (e.function == vm->xpcall)
            e.role = AMBER_ROLE_XPCALL;
        else if (e.function == vm->coroutine_resume)
            e.role = AMBER_ROLE_RESUME;
        else if (e.function == vm->wrapped_resume)
            e.role = AMBER_ROLE_WRAPPED_RESUME;
        else if (e.function == vm->coroutine_yield)
            e.role = AMBER_ROLE_YIELD;
        else if (e.function == amber_detail::matcher_function(amber_detail::MatcherRole::Find))
            e.role = AMBER_ROLE_FIND;
        else if (e.function == amber_detail::matcher_function(amber_detail::MatcherRole::Match))
            e.role = AMBER_ROLE_MATCH;
        else if (e.function == amber_detail::matcher_function(amber_detail::MatcherRole::Gsub))
            e.role = AMBER_ROLE_GSUB;
        else if (e.function == amber_detail::matcher_function(amber_detail::MatcherRole::GmatchIterator))
            e.role = AMBER_ROLE_GMATCH_ITERATOR;
        // Known only through the sample above, which names it.
        else if (n == "utf8.codes#iterator")
            e.role = AMBER_ROLE_UTF8_ITERATOR;
    }
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

extern "C" {

int amber_flag_count(void)
{
    int n = 0;
    for (Luau::FValue<bool>* f = Luau::FValue<bool>::list; f; f = f->next)
        n++;
    return n;
}

int amber_flag_get(int index, const char** name, int* value)
{
    int i = 0;
    for (Luau::FValue<bool>* f = Luau::FValue<bool>::list; f; f = f->next, i++)
    {
        if (i == index)
        {
            *name = f->name;
            *value = f->value ? 1 : 0;
            return 0;
        }
    }
    return -1;
}

char* amber_compile(const char* source, size_t length, int optimization_level, int debug_level, size_t* out_length)
{
    try
    {
        lua_CompileOptions options = {};
        options.optimizationLevel = optimization_level;
        options.debugLevel = debug_level;
        return luau_compile(source, length, &options, out_length);
    }
    catch (...)
    {
        *out_length = 0;
        return nullptr;
    }
}

void amber_free(void* p)
{
    free(p);
}

namespace
{

constexpr double kFixedTime = 1700000000.0; // 2023-11-14 22:13:20 UTC

int fixed_clock(lua_State* L)
{
    lua_pushnumber(L, 0.0);
    return 1;
}

int fixed_time(lua_State* L)
{
    if (lua_isnoneornil(L, 1))
    {
        lua_pushnumber(L, kFixedTime);
        return 1;
    }
    return vm_of(L)->os_time(L); // a date table: converting it is deterministic, but for the zone
}

int fixed_date(lua_State* L)
{
    // Always UTC (the host's zone would show through) and the fixed time unless one is given.
    std::string format = luaL_optstring(L, 1, "%c");
    if (format.empty() || format[0] != '!')
        format.insert(format.begin(), '!');
    double t = luaL_optnumber(L, 2, kFixedTime);
    lua_settop(L, 0);
    lua_pushlstring(L, format.data(), format.size());
    lua_pushnumber(L, t);
    return vm_of(L)->os_date(L);
}

} // namespace

AmberVm* amber_vm_new(int deterministic, const AmberHostLibrary* libraries, int library_count, AmberHostCall call, void* ctx)
{
    AmberVm* vm = new (std::nothrow) AmberVm();
    if (!vm)
        return nullptr;
    vm->host_call = call;
    vm->host_ctx = ctx;
    lua_State* L = lua_newstate(amber_alloc, vm);
    if (!L)
    {
        delete vm;
        return nullptr;
    }
    vm->L = L;
    try
    {
        lua_Callbacks* cb = lua_callbacks(L);
        cb->userdata = vm;
        L->global->amber_countdown = kIdle;

        luaL_openlibs(L);

        // Pattern matching that can be pre-empted and persisted (amber_match.cpp).
        lua_getglobal(L, "string");
        amber_detail::install_matcher(L, -1);
        lua_pop(L, 1);

        // print goes to the host, never to the process's stdout.
        lua_pushcfunction(L, host_print, "print");
        lua_setglobal(L, "print");

        if (deterministic)
        {
            lua_getglobal(L, "os");
            lua_getfield(L, -1, "time");
            vm->os_time = lua_tocfunction(L, -1);
            lua_pop(L, 1);
            lua_getfield(L, -1, "date");
            vm->os_date = lua_tocfunction(L, -1);
            lua_pop(L, 1);
            lua_pushcfunction(L, fixed_clock, "clock");
            lua_setfield(L, -2, "clock");
            lua_pushcfunction(L, fixed_time, "time");
            lua_setfield(L, -2, "time");
            lua_pushcfunction(L, fixed_date, "date");
            lua_setfield(L, -2, "date");
            lua_pop(L, 1);
        }

        // Identify the coroutine library's resume functions, to follow suspended resume chains.
        lua_getglobal(L, "coroutine");
        lua_getfield(L, -1, "resume");
        vm->coroutine_resume = lua_tocfunction(L, -1);
        lua_pop(L, 1);
        lua_getfield(L, -1, "wrap");
        lua_getglobal(L, "print"); // any function will do as the body
        lua_call(L, 1, 1);
        vm->wrapped_resume = lua_tocfunction(L, -1);
        lua_pop(L, 1);
        lua_getfield(L, -1, "yield");
        vm->coroutine_yield = lua_tocfunction(L, -1);
        lua_pop(L, 2);
        lua_getglobal(L, "pcall");
        vm->pcall = lua_tocfunction(L, -1);
        lua_pop(L, 1);
        lua_getglobal(L, "xpcall");
        vm->xpcall = lua_tocfunction(L, -1);
        lua_pop(L, 1);

        // The host's libraries are part of the base image: scanned into the registry, frozen.
        for (int l = 0; l < library_count; l++)
        {
            const AmberHostLibrary& lib = libraries[l];
            lua_createtable(L, 0, lib.functions);
            for (int f = 0; f < lib.functions; f++)
            {
                lua_pushinteger(L, lib.first + f);
                lua_pushcclosure(L, host_call, lib.function_names[f], 1);
                lua_setfield(L, -2, lib.function_names[f]);
            }
            lua_setglobal(L, lib.name);
        }

        build_registry(vm);
        luaL_sandbox(L);

        // Scripts are loaded here, never run here: their constant closures and imports bind to
        // the base globals, and each task clones its main function into its own thread.
        vm->loader = lua_newthread(L);
        vm->loader_ref = lua_ref(L, -1);
        lua_pop(L, 1);

        cb->interrupt = amber_interrupt;
        cb->preresume = amber_preresume;
        cb->postresume = amber_postresume;
    }
    catch (...)
    {
        lua_close(L);
        delete vm;
        return nullptr;
    }
    return vm;
}

void amber_vm_free(AmberVm* vm)
{
    if (!vm)
        return;
    lua_close(vm->L);
    delete vm;
}

void amber_vm_set_preemption(AmberVm* vm, int enabled)
{
    lua_callbacks(vm->L)->interrupt = enabled ? amber_interrupt : nullptr;
}

int amber_vm_load(
    AmberVm* vm, const char* chunk, const char* bytecode, size_t length, int env_ref, int* out_ref, char* err, size_t err_cap
)
{
    lua_State* T = vm->loader;
    try
    {
        if (env_ref != 0)
        {
            // Imports resolve against the loading thread's globals (lvmload.cpp), not against
            // luau_load's `env`: load in a thread whose globals are the view.
            lua_getref(T, env_ref);
            if (!lua_istable(T, -1))
            {
                lua_settop(T, 0);
                copy_message(err, err_cap, std::string("the load environment is not a table"));
                return -1;
            }
            lua_State* V = lua_newthread(T);
            lua_pushvalue(T, -2);
            lua_xmove(T, V, 1);
            lua_replace(V, LUA_GLOBALSINDEX);
            if (luau_load(V, chunk, bytecode, length, 0) != 0)
            {
                size_t len = 0;
                const char* msg = lua_tolstring(V, -1, &len);
                copy_message(err, err_cap, msg ? msg : "load failed", msg ? len : 11);
                lua_settop(T, 0);
                return -1;
            }
            *out_ref = lua_ref(V, -1);
            lua_settop(V, 0);
            lua_settop(T, 0);
            return 0;
        }
        if (luau_load(T, chunk, bytecode, length, 0) != 0)
        {
            size_t len = 0;
            const char* msg = lua_tolstring(T, -1, &len);
            copy_message(err, err_cap, msg ? msg : "load failed", msg ? len : 11);
            lua_settop(T, 0);
            return -1;
        }
        *out_ref = lua_ref(T, -1);
        lua_settop(T, 0);
        return 0;
    }
    catch (std::exception& e)
    {
        lua_settop(T, 0);
        copy_message(err, err_cap, std::string("load failed: ") + e.what());
        return -1;
    }
}

int amber_vm_globals_view(
    AmberVm* vm, const char* const* names, const size_t* lengths, int count, int* out_ref, uintptr_t* out_object, char* err,
    size_t err_cap
)
{
    lua_State* L = vm->L;
    int top = lua_gettop(L);
    try
    {
        if (count < 0 || (count & (count - 1)) != 0)
        {
            copy_message(err, err_cap, std::string("a globals layout has 0 or a power of two positions"));
            return -1;
        }
        // As many nodes as the layout has positions: inserting at most that many keys never
        // rehashes, so every key keeps the node it is given here.
        lua_createtable(L, 0, count);
        int view = lua_gettop(L);
        LuaTable* t = hvalue(luaA_toobject(L, view));
        for (int p = 0; p < count; p++)
        {
            if (!names[p])
                continue;
            lua_pushlstring(L, names[p], lengths[p]);
            lua_pushvalue(L, -1);
            lua_rawget(L, LUA_GLOBALSINDEX);
            if (lua_isnil(L, -1))
            {
                lua_pop(L, 2); // a global this image lacks: its position stays empty
                continue;
            }
            if (lua_istable(L, -1) && lua_rawequal(L, -1, LUA_GLOBALSINDEX))
            {
                lua_pop(L, 1);
                lua_pushvalue(L, view); // `_G` and any other self-reference name the view
            }
            lua_rawset(L, view);
        }
        // Iteration follows the layout: position p is the node holding the name the layout
        // has at p (tables.h, explicit orders), so a loop over the globals goes on where it was.
        int size = t->node == &luaH_dummynode ? 0 : sizenode(t);
        if (size != count && count > 0)
        {
            lua_settop(L, top);
            copy_message(err, err_cap, std::string("the view's node count differs from the layout's"));
            return -1;
        }
        if (size > 0)
        {
            int* order = luaM_newarray(L, kAmberOrderSegments * size, int, t->memcat);
            for (int i = 0; i < kAmberOrderSegments * size; i++)
                order[i] = -1;
            bool natural = true;
            for (int p = 0; p < count; p++)
            {
                if (!names[p])
                    continue;
                TString* key = luaS_newlstr(L, names[p], lengths[p]);
                const TValue* slot = luaH_getstr(t, key);
                if (slot == luaO_nilobject)
                    continue;
                int node = gval2slot(t, slot);
                order[p] = node;
                order[size + node] = p;
                order[2 * size + p] = p;
                natural = natural && node == p;
            }
            if (natural)
                luaM_freearray(L, order, kAmberOrderSegments * size, int, t->memcat);
            else
                t->iterorder = order;
        }
        // Like the base globals: the fast paths may trust it (safeenv), and no script changes it.
        lua_setsafeenv(L, view, true);
        lua_setreadonly(L, view, true);
        *out_object = uintptr_t(t);
        *out_ref = lua_ref(L, view);
        lua_settop(L, top);
        return 0;
    }
    catch (std::exception& e)
    {
        lua_settop(L, top);
        copy_message(err, err_cap, std::string("globals view failed: ") + e.what());
        return -1;
    }
}

static void collect_protos(Proto* p, uintptr_t* out, int cap, int& n)
{
    if (p->bytecodeid >= 0 && p->bytecodeid < cap)
        out[p->bytecodeid] = uintptr_t(p);
    n = p->bytecodeid + 1 > n ? p->bytecodeid + 1 : n;
    for (int i = 0; i < p->sizep; i++)
        collect_protos(p->p[i], out, cap, n);
}

int amber_vm_script_protos(AmberVm* vm, int fn_ref, uintptr_t* out, int cap)
{
    lua_State* L = vm->loader;
    lua_getref(L, fn_ref);
    if (!lua_isLfunction(L, -1))
    {
        lua_pop(L, 1);
        return -1;
    }
    Proto* main = clvalue(luaA_toobject(L, -1))->l.p;
    lua_pop(L, 1);
    int n = 0;
    collect_protos(main, out, cap, n);
    return n;
}

void amber_vm_unref(AmberVm* vm, int ref)
{
    lua_unref(vm->L, ref);
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

static void no_destructor(lua_State*, void*) {}

int amber_task_set_userdata(AmberVm* vm, int thread_ref, const char* name, int tag, const char* data, size_t length, int with_destructor)
{
    lua_State* T = thread_of_ref(vm, thread_ref);
    if (!T || tag < 0 || tag >= LUA_UTAG_LIMIT || lua_status(T) != LUA_OK || lua_gettop(T) == 0)
        return -1;
    try
    {
        void* p = with_destructor ? lua_newuserdatadtor(T, length, no_destructor) : lua_newuserdatatagged(T, length, tag);
        if (length)
            memcpy(p, data, length);
        lua_setfield(T, LUA_GLOBALSINDEX, name);
        return 0;
    }
    catch (...)
    {
        return -1;
    }
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

void amber_vm_collect(AmberVm* vm)
{
    try
    {
        lua_gc(vm->L, LUA_GCCOLLECT, 0);
    }
    catch (...)
    {
    }
}

size_t amber_vm_memory(AmberVm* vm, int category)
{
    if (category < 0 || category >= LUA_MEMORY_CATEGORIES)
        return 0;
    return lua_totalbytes(vm->L, category);
}

size_t amber_vm_output_length(AmberVm* vm)
{
    return vm->output.size();
}

void amber_vm_take_output(AmberVm* vm, char* into, size_t length)
{
    size_t n = length < vm->output.size() ? length : vm->output.size();
    memcpy(into, vm->output.data(), n);
    vm->output.erase(0, n);
}

} // extern "C"
