// The base image: the VM's creation (standard libraries, Amber's pattern matcher, host print,
// the host's own libraries, the deterministic clock, sandboxed and frozen), the permanent
// registry that names its objects (a fixed-order scan), script loading, globals views, and
// the VM-wide entry points (output, memory, collection).

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

void collect_protos(Proto* p, uintptr_t* out, int cap, int& n)
{
    if (p->bytecodeid >= 0 && p->bytecodeid < cap)
        out[p->bytecodeid] = uintptr_t(p);
    n = p->bytecodeid + 1 > n ? p->bytecodeid + 1 : n;
    for (int i = 0; i < p->sizep; i++)
        collect_protos(p->p[i], out, cap, n);
}

void no_destructor(lua_State*, void*) {}

} // namespace

extern "C" {

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

int amber_vm_load(
    AmberVm* vm, const char* chunk, const char* bytecode, size_t length, int env_ref, int* out_ref, char* err, size_t err_cap
)
{
    lua_State* T = vm->loader;
    try
    {
        // The thread the chunk is loaded in: the loader, or one whose globals are the view.
        lua_State* L = T;
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
            L = lua_newthread(T);
            lua_pushvalue(T, -2);
            lua_xmove(T, L, 1);
            lua_replace(L, LUA_GLOBALSINDEX);
        }
        if (luau_load(L, chunk, bytecode, length, 0) != 0)
        {
            size_t len = 0;
            const char* msg = lua_tolstring(L, -1, &len);
            copy_message(err, err_cap, msg ? msg : "load failed", msg ? len : 11);
            lua_settop(T, 0);
            return -1;
        }
        *out_ref = lua_ref(L, -1);
        lua_settop(L, 0);
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

// ----------------------------------------------------------------------------------------------
// Registry

int amber_registry_count(AmberVm* vm)
{
    return int(vm->registry.size());
}

int amber_registry_entry(AmberVm* vm, int index, AmberRegistryView* out)
{
    if (index < 0 || size_t(index) >= vm->registry.size())
        return -1;
    const RegistryEntry& e = vm->registry[index];
    out->name = e.name.data();
    out->name_length = e.name.size();
    out->kind = e.kind;
    out->object = uintptr_t(e.object);
    out->function = uintptr_t(e.function);
    out->continuation = uintptr_t(e.continuation);
    out->role = e.role;
    return 0;
}
} // extern "C"
