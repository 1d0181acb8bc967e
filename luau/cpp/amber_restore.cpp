// Restore: builders called by Rust with a *verified* model, in two phases (make every object,
// then fill them). The collector is stopped for the duration, so no half-built object is ever
// traversed; new objects are only written into other new objects, and the finished task is
// anchored through the API (which applies the write barrier). Every index is checked again here:
// a validator bug ends in an error, never in undefined behaviour.

#include "amber_internal.h"

#include "lualib.h"

#include "lapi.h"
#include "ldo.h"
#include "lfunc.h"
#include "lgc.h"
#include "lstring.h"
#include "ltable.h"
#include "ludata.h"
#include "lbuffer.h"
#include "lmem.h"
#include "amber_tables.h"
#include "lbytecode.h"

#include <string.h>

// Exported from ltable.cpp by the anchored edit `ltable-export-mainposition`.
LuaNode* mainposition(const LuaTable* t, const TValue* key);

using amber_detail::RegistryEntry;



namespace
{

struct RestoreError
{
    const char* message;
};

[[noreturn]] void fail(const char* message)
{
    throw RestoreError{message};
}

GCObject* object_at(AmberVm* vm, int index, uint8_t kind)
{
    if (!vm->restore_active || index < 0 || size_t(index) >= vm->restoring.size())
        fail("object index out of range");
    GCObject* o = vm->restoring[index];
    if (!o)
        fail("object used before it was made");
    if (kind != 0xff && vm->restoring_kind[index] != kind)
        fail("object has another type than its slot requires");
    return o;
}

void from_amber(AmberVm* vm, const AmberRestoreValue* in, TValue* out)
{
    lua_State* L = vm->L;
    switch (in->kind)
    {
    case AMBER_RV_NIL:
        setnilvalue(out);
        return;
    case AMBER_RV_BOOLEAN:
        setbvalue(out, in->a != 0);
        return;
    case AMBER_RV_NUMBER:
    {
        double n;
        memcpy(&n, &in->b, sizeof(n));
        setnvalue(out, n);
        return;
    }
    case AMBER_RV_VECTOR:
    {
        uint32_t bits[3] = {in->a, uint32_t(in->b), uint32_t(in->b >> 32)};
        float v[3];
        memcpy(v, bits, sizeof(v));
        setvvalue(L, out, v[0], v[1], v[2], 0.0f);
        return;
    }
    case AMBER_RV_ITERATOR:
        setpvalue(out, reinterpret_cast<void*>(uintptr_t(in->b)), LU_TAG_ITERATOR);
        return;
    case AMBER_RV_OBJECT:
    {
        if (in->a > uint32_t(INT32_MAX))
            fail("object index out of range");
        GCObject* o = object_at(vm, int(in->a), 0xff);
        switch (vm->restoring_kind[in->a])
        {
        case LUA_TSTRING:
            setsvalue(L, out, &o->ts);
            return;
        case LUA_TTABLE:
            sethvalue(L, out, &o->h);
            return;
        case LUA_TFUNCTION:
            setclvalue(L, out, &o->cl);
            return;
        case LUA_TUSERDATA:
            setuvalue(L, out, &o->u);
            return;
        case LUA_TTHREAD:
            setthvalue(L, out, &o->th);
            return;
        case LUA_TBUFFER:
            setbufvalue(L, out, &o->buf);
            return;
        default:
            fail("an upvalue object cannot be a value");
        }
    }
    case AMBER_RV_PERMANENT:
    {
        if (in->a >= vm->registry.size())
            fail("permanent index out of range");
        if (vm->restoring_globals && in->a == uint32_t(vm->restoring_globals_index))
        {
            // The task sees the base globals through its view (names its image lacked hidden).
            sethvalue(L, out, vm->restoring_globals);
            return;
        }
        const RegistryEntry& e = vm->registry[in->a];
        if (!e.object)
            fail("a C-function identity cannot be a value");
        switch (e.object->gch.tt)
        {
        case LUA_TTABLE:
            sethvalue(L, out, &e.object->h);
            return;
        case LUA_TFUNCTION:
            setclvalue(L, out, &e.object->cl);
            return;
        case LUA_TUSERDATA:
            setuvalue(L, out, &e.object->u);
            return;
        default:
            fail("permanent of an unsupported type");
        }
    }
    default:
        fail("a value restore cannot write (a raw light userdata or a permanent this image lacks)");
    }
}

LuaTable* table_or_null(AmberVm* vm, const AmberRestoreValue* in)
{
    if (in->kind == AMBER_RV_NIL)
        return nullptr;
    TValue v;
    from_amber(vm, in, &v);
    if (!ttistable(&v))
        fail("slot requires a table");
    return hvalue(&v);
}

template<typename F>
int guarded(AmberVm* vm, char* err, size_t cap, F&& f)
{
    try
    {
        f();
        return 0;
    }
    catch (RestoreError& e)
    {
        if (err && cap)
        {
            strncpy(err, e.message, cap - 1);
            err[cap - 1] = 0;
        }
        return -1;
    }
    catch (std::exception& e)
    {
        if (err && cap)
        {
            strncpy(err, e.what(), cap - 1);
            err[cap - 1] = 0;
        }
        return -1;
    }
}

void put(AmberVm* vm, int index, GCObject* o, uint8_t kind)
{
    if (!vm->restore_active || index < 0 || size_t(index) >= vm->restoring.size())
        fail("object index out of range");
    if (vm->restoring[index])
        fail("object made twice");
    vm->restoring[index] = o;
    vm->restoring_kind[index] = kind;
}

lua_State* thread_at(AmberVm* vm, int index)
{
    return &object_at(vm, index, LUA_TTHREAD)->th;
}

// Frame `frame` (1-based) of thread `T`, as `f` describes it.
void restore_frame(lua_State* T, int frame, const AmberFrameInfo* f)
{
    if (frame < 1 || frame >= T->size_ci)
        fail("frame index out of range");
    int limit = T->stacksize - EXTRA_STACK;
    if (f->func < 0 || f->base <= f->func || f->base > limit || f->top < f->base || f->top > limit)
        fail("frame geometry outside the stack");
    CallInfo* ci = T->base_ci + frame;
    StkId func = T->stack + f->func;
    if (!ttisfunction(func))
        fail("frame function slot does not hold a function");
    Closure* cl = clvalue(func);
    ci->func = func;
    ci->base = T->stack + f->base;
    ci->top = T->stack + f->top;
    if (f->nresults < LUA_MULTRET || f->nresults > LUAI_MAXCSTACK)
        fail("frame result count out of range");
    ci->nresults = f->nresults;
    if (f->flags & ~unsigned(LUA_CALLINFO_RETURN | LUA_CALLINFO_HANDLE | LUA_CALLINFO_OPYIELD))
        fail("frame flags outside RETURN, HANDLE and OPYIELD");
    ci->flags = f->flags;
    if (f->is_lua)
    {
        if (cl->isC)
            fail("a Luau frame's function is a C function");
        Proto* p = cl->l.p;
        if (f->pc < 0 || f->pc >= p->sizecode)
            fail("saved pc outside the proto's code");
        if (f->flags & LUA_CALLINFO_HANDLE)
            fail("a Luau frame cannot handle errors");
        if ((f->flags & LUA_CALLINFO_OPYIELD) && (f->pc < 1 || LUAU_INSN_OP(p->code[f->pc - 1]) != LOP_FORGLOOP))
            fail("an OPYIELD frame is not suspended in a FORGLOOP");
        ci->p = p;
        ci->savedpc = p->code + f->pc;
    }
    else
    {
        if (!cl->isC)
            fail("a C frame's function is a Luau function");
        if (f->flags & (LUA_CALLINFO_RETURN | LUA_CALLINFO_OPYIELD))
            fail("a C frame carries Luau frame flags");
        if ((f->flags & LUA_CALLINFO_HANDLE) && !cl->c.cont)
            fail("a HANDLE frame without a continuation");
        ci->p = nullptr;
        if (f->errfunc < 0 || (f->errfunc > 0 && ci->base + (f->errfunc - 1) >= ci->top))
            fail("error-function slot outside the frame");
        ci->errfunc = f->errfunc;
    }
}

} // namespace

extern "C" {

int amber_restore_begin(
    AmberVm* vm, int objects, int memcat, size_t memory_limit, int globals_index, int globals_view_ref, char* err, size_t cap
)
{
    return guarded(vm, err, cap, [&] {
        if (vm->restore_active)
            fail("a restore is already in progress");
        if (objects < 0)
            fail("negative object count");
        vm->restoring_globals_index = -1;
        vm->restoring_globals = nullptr;
        if (globals_view_ref != 0)
        {
            if (globals_index < 0 || size_t(globals_index) >= vm->registry.size())
                fail("globals index out of range");
            lua_getref(vm->L, globals_view_ref);
            bool table = lua_istable(vm->L, -1);
            LuaTable* view = table ? hvalue(luaA_toobject(vm->L, -1)) : nullptr;
            lua_pop(vm->L, 1);
            if (!view)
                fail("the globals view is not a table");
            vm->restoring_globals_index = globals_index;
            vm->restoring_globals = view;
        }
        vm->restoring.assign(size_t(objects), nullptr);
        vm->restoring_deferred.clear();
        vm->restoring_positions.clear();
        vm->restoring_kind.assign(size_t(objects), 0);
        vm->restore_orders = 0;
        vm->restore_gc_was_running = lua_gc(vm->L, LUA_GCISRUNNING, 0);
        lua_gc(vm->L, LUA_GCSTOP, 0);
        lua_setmemcat(vm->L, memcat);
        if (memory_limit > 0 && memcat >= 0 && memcat < LUA_MEMORY_CATEGORIES)
        {
            vm->limit_category = memcat;
            vm->limit_bytes = memory_limit;
        }
        vm->restore_active = true;
    });
}

static void restore_stop(AmberVm* vm)
{
    vm->limit_category = -1;
    vm->sched.killed = false;
    vm->restoring_globals_index = -1;
    vm->restoring_globals = nullptr;
    vm->restoring.clear();
    vm->restoring_deferred.clear();
    vm->restoring_positions.clear();
    vm->restoring_kind.clear();
    vm->restore_active = false;
    lua_setmemcat(vm->L, 0);
    if (vm->restore_gc_was_running)
        lua_gc(vm->L, LUA_GCRESTART, 0);
}

size_t amber_restore_orders(AmberVm* vm)
{
    return vm->restore_orders;
}

void amber_restore_abort(AmberVm* vm)
{
    // Nothing built so far is reachable from any root: the collector reclaims it.
    if (vm->restore_active)
        restore_stop(vm);
}

int amber_restore_end(AmberVm* vm, int main_thread, int* out_ref, char* err, size_t cap)
{
    int rc = guarded(vm, err, cap, [&] {
        lua_State* T = thread_at(vm, main_thread);
        lua_State* L = vm->L;
        luaD_checkstack(L, 1);
        setthvalue(L, L->top, T);
        incr_top(L);
        *out_ref = lua_ref(L, -1);
        lua_pop(L, 1);
    });
    restore_stop(vm);
    return rc;
}

int amber_restore_string(AmberVm* vm, int index, const char* data, size_t length, char* err, size_t cap)
{
    return guarded(vm, err, cap, [&] { put(vm, index, obj2gco(luaS_newlstr(vm->L, data, length)), LUA_TSTRING); });
}

int amber_restore_table(AmberVm* vm, int index, int array_size, int node_count, char* err, size_t cap)
{
    return guarded(vm, err, cap, [&] {
        if (array_size < 0 || node_count < 0 || (node_count & (node_count - 1)) != 0)
            fail("table sizes must be non-negative and the node count 0 or a power of two");
        LuaTable* t = luaH_new(vm->L, array_size, node_count);
        if ((node_count == 0 ? 0 : sizenode(t)) != node_count || t->sizearray != array_size)
            fail("the VM did not make a table of the requested shape");
        put(vm, index, obj2gco(t), LUA_TTABLE);
    });
}

int amber_restore_lua_closure(AmberVm* vm, int index, uintptr_t proto, char* err, size_t cap)
{
    return guarded(vm, err, cap, [&] {
        Proto* p = reinterpret_cast<Proto*>(proto);
        if (!p)
            fail("no proto");
        // The proto's count; filling the closure checks the snapshot's list against it.
        int upvalues = p->nups;
        // The environment is set when the closure is filled; the base globals stand in.
        Closure* cl = luaF_newLclosure(vm->L, upvalues, vm->L->gt, p);
        for (int i = 0; i < upvalues; i++)
            setnilvalue(&cl->l.uprefs[i]);
        put(vm, index, obj2gco(cl), LUA_TFUNCTION);
    });
}

int amber_restore_c_closure(AmberVm* vm, int index, int registry_index, int upvalues, char* err, size_t cap)
{
    return guarded(vm, err, cap, [&] {
        if (registry_index < 0 || size_t(registry_index) >= vm->registry.size())
            fail("C function index out of range");
        const RegistryEntry& e = vm->registry[registry_index];
        if (!e.function)
            fail("permanent is not a C function");
        if (upvalues < 0 || upvalues > 255)
            fail("too many upvalues");
        Closure* cl = luaF_newCclosure(vm->L, upvalues, vm->L->gt);
        cl->c.f = e.function;
        cl->c.cont = e.continuation;
        cl->c.debugname = e.debugname ? luaS_new(vm->L, e.debugname) : nullptr;
        for (int i = 0; i < upvalues; i++)
            setnilvalue(&cl->c.upvals[i]);
        put(vm, index, obj2gco(cl), LUA_TFUNCTION);
    });
}

int amber_restore_thread(AmberVm* vm, int index, int stack_slots, int frames, char* err, size_t cap)
{
    return guarded(vm, err, cap, [&] {
        if (stack_slots < 1 || frames < 0 || frames >= LUAI_MAXCALLS)
            fail("thread shape out of range");
        lua_State* L = vm->L;
        lua_State* T = lua_newthread(L);
        lua_pop(L, 1); // kept alive by the stopped collector, anchored at the end
        if (stack_slots > T->stacksize - EXTRA_STACK)
            luaD_reallocstack(T, stack_slots, 0);
        if (frames + 1 > T->size_ci)
            luaD_reallocCI(T, frames + 2);
        // Frames not written yet are recognisably empty (amber_restore_thread_finish checks).
        memset(T->base_ci + 1, 0, sizeof(CallInfo) * size_t(T->size_ci - 1));
        put(vm, index, obj2gco(T), LUA_TTHREAD);
    });
}

int amber_restore_userdata(AmberVm* vm, int index, int tag, const char* data, size_t length, char* err, size_t cap)
{
    return guarded(vm, err, cap, [&] {
        if (tag != UTAG_PROXY && (tag < 0 || tag >= LUA_UTAG_LIMIT))
            fail("userdata tag out of range");
        if (length > (1u << 30))
            fail("userdata too large");
        Udata* u = luaU_newudata(vm->L, length, tag);
        if (length)
            memcpy(u->data, data, length);
        put(vm, index, obj2gco(u), LUA_TUSERDATA);
    });
}

int amber_restore_buffer(AmberVm* vm, int index, const char* data, size_t length, char* err, size_t cap)
{
    return guarded(vm, err, cap, [&] {
        if (length > MAX_BUFFER_SIZE)
            fail("buffer too large");
        Buffer* b = luaB_newbuffer(vm->L, length);
        if (length)
            memcpy(b->data, data, length);
        put(vm, index, obj2gco(b), LUA_TBUFFER);
    });
}

int amber_restore_table_array(AmberVm* vm, int index, const AmberRestoreValue* values, int count, char* err, size_t cap)
{
    // One call for the whole array part: a million-entry table is one guarded call, not a
    // million.
    return guarded(vm, err, cap, [&] {
        LuaTable* t = &object_at(vm, index, LUA_TTABLE)->h;
        if (count < 0 || count > t->sizearray)
            fail("more array values than array slots");
        for (int k = 0; k < count; ++k)
            from_amber(vm, &values[k], &t->array[k]);
    });
}

int amber_restore_table_node(
    AmberVm* vm, int index, int position, int node, const AmberRestoreValue* key, const AmberRestoreValue* value, char* err, size_t cap
)
{
    return guarded(vm, err, cap, [&] {
        LuaTable* t = &object_at(vm, index, LUA_TTABLE)->h;
        if (t->node == &luaH_dummynode || node < 0 || node >= sizenode(t) || position < 0 || position >= sizenode(t))
            fail("hash node out of range");
        TValue k;
        from_amber(vm, key, &k);
        if (ttisnil(&k) || (ttisnumber(&k) && nvalue(&k) != nvalue(&k)))
            fail("nil or NaN table key");
        TValue v;
        from_amber(vm, value, &v);
        vm->restoring_positions.push_back({index, position, node, k});
        if (iscollectable(&k) && !ttisstring(&k))
        {
            // A key hashed by address: its main position is another one in this VM, so it cannot
            // go back to its captured node. It is inserted when the table is finished.
            vm->restoring_deferred.push_back({index, k, v});
            return;
        }
        LuaNode* n = gnode(t, node);
        if (!ttisnil(gkey(n)))
            fail("hash node written twice");
        setnodekey(vm->L, n, &k);
        setobj2t(vm->L, gval(n), &v);
    });
}

} // extern "C"

namespace
{

int main_position(AmberVm* vm, LuaTable* t, LuaNode* n, int size)
{
    TValue k;
    getnodekey(vm->L, &k, n);
    int mp = int(mainposition(t, &k) - t->node);
    if (mp < 0 || mp >= size)
        fail("main position out of range");
    return mp;
}

void move_node(AmberVm* vm, LuaNode* from, LuaNode* to)
{
    TValue k;
    getnodekey(vm->L, &k, from);
    setnodekey(vm->L, to, &k);
    setobj2t(vm->L, gval(to), gval(from));
    setnilvalue(gkey(from));
    setnilvalue(gval(from));
}

// Finishes a hash part: keys hashed by contents are at their captured nodes; keys hashed by
// address (the deferred ones, from `first` on) are placed here. Luau's invariant is kept: the node
// at a main position holds a key of that main position whenever any key has it. Unlike Luau's
// newkey, a node whose value is nil is never taken as free: it is an entry a suspended `next`
// may still name. Then every chain is rebuilt from its main position.
void place_and_chain(AmberVm* vm, LuaTable* t, int size, size_t first)
{
    // Keys hashed by contents whose main position held a key hashed by address in the old VM
    // (that one goes elsewhere here) move to their main position; their iteration position is
    // kept by the explicit order.
    for (int i = 0; i < size; i++)
    {
        LuaNode* n = gnode(t, i);
        if (ttisnil(gkey(n)))
            continue;
        int mp = main_position(vm, t, n, size);
        if (mp != i && ttisnil(gkey(gnode(t, mp))))
            move_node(vm, n, gnode(t, mp));
    }
    int cursor = size; // free nodes are searched downwards, as Luau's getfreepos does
    auto free_node = [&]() -> LuaNode* {
        while (cursor > 0)
        {
            LuaNode* n = gnode(t, --cursor);
            if (ttisnil(gkey(n)))
                return n;
        }
        fail("no free node for a key hashed by address");
    };
    for (size_t d = first; d < vm->restoring_deferred.size(); d++)
    {
        const TValue* key = &vm->restoring_deferred[d].key;
        LuaNode* mp = mainposition(t, key);
        if (mp < t->node || mp >= t->node + size)
            fail("main position out of range");
        LuaNode* target = mp;
        if (!ttisnil(gkey(mp)))
        {
            if (main_position(vm, t, mp, size) == int(mp - t->node))
                target = free_node(); // mp heads its chain: join it from a free node
            else
                move_node(vm, mp, free_node()); // a key of another chain sits here: move it
        }
        setnodekey(vm->L, target, key);
        setobj2t(vm->L, gval(target), &vm->restoring_deferred[d].value);
    }
    std::vector<int> last(size_t(size), -1);
    for (int i = 0; i < size; i++)
        gnext(gnode(t, i)) = 0;
    for (int i = 0; i < size; i++)
    {
        LuaNode* n = gnode(t, i);
        if (ttisnil(gkey(n)))
            continue;
        int mp = main_position(vm, t, n, size);
        LuaNode* head = gnode(t, mp);
        if (ttisnil(gkey(head)) || main_position(vm, t, head, size) != mp)
            fail("a key's main position does not head its chain");
        if (i == mp)
            continue;
        int prev = last[mp] < 0 ? mp : last[mp];
        gnext(gnode(t, prev)) = i - prev;
        last[mp] = i;
    }
}

} // namespace

extern "C" {

int amber_restore_table_finish(
    AmberVm* vm, int index, int insert_hint, const AmberRestoreValue* metatable, int readonly, int safeenv, char* err, size_t cap
)
{
    return guarded(vm, err, cap, [&] {
        LuaTable* t = &object_at(vm, index, LUA_TTABLE)->h;
        int size = t->node == &luaH_dummynode ? 0 : sizenode(t);
        // A table's nodes are written just before it is finished, so its deferred keys (hashed
        // by address) are the last ones recorded.
        size_t first = vm->restoring_deferred.size();
        while (first > 0 && vm->restoring_deferred[first - 1].table == index)
            first--;
        if (size > 0)
            place_and_chain(vm, t, size, first);
        else if (first != vm->restoring_deferred.size())
            fail("keys for a table without a hash part");
        vm->restoring_deferred.resize(first);
        if (size > 0 && (insert_hint < 0 || insert_hint > size))
            fail("free-position hint out of range");
        if (size == 0 && (insert_hint > 0 || -insert_hint > t->sizearray))
            fail("array boundary hint out of range");

        // Iteration order: where each captured position's key lives now. Where that is not the
        // position itself, the table iterates through an explicit order.
        size_t from = vm->restoring_positions.size();
        while (from > 0 && vm->restoring_positions[from - 1].table == index)
            from--;
        bool natural = true;
        struct Placed
        {
            int position, node, origin;
        };
        std::vector<Placed> placed;
        placed.reserve(vm->restoring_positions.size() - from);
        for (size_t e = from; e < vm->restoring_positions.size(); e++)
        {
            const TValue* slot = luaH_get(t, &vm->restoring_positions[e].key);
            if (slot == luaO_nilobject)
                fail("a restored key cannot be found again");
            int n = gval2slot(t, slot);
            if (n < 0 || n >= size)
                fail("a restored key is outside the hash part");
            placed.push_back({vm->restoring_positions[e].position, n, vm->restoring_positions[e].node});
            natural = natural && n == vm->restoring_positions[e].position;
        }
        vm->restoring_positions.resize(from);
        if (!natural)
        {
            amber_table_droporder(vm->L, t);
            int* order = luaM_newarray(vm->L, kAmberOrderSegments * size, int, t->memcat);
            for (int i = 0; i < kAmberOrderSegments * size; i++)
                order[i] = -1;
            for (const Placed& e : placed)
            {
                if (order[e.position] != -1 || order[size + e.node] != -1)
                    fail("two entries claim one position or node");
                order[e.position] = e.node;
                order[size + e.node] = e.position;
                order[2 * size + e.position] = e.origin;
            }
            t->iterorder = order;
            vm->restore_orders++;
        }
        t->lastfree = insert_hint; // for an empty hash part this is the array boundary (aboundary)
        t->metatable = table_or_null(vm, metatable);
        t->tmcache = 0; // metamethod presence is unknown: let lookups recompute it
        t->safeenv = safeenv != 0;
        (void)readonly; // frozen by amber_restore_table_freeze, after everything is written
    });
}

int amber_restore_table_freeze(AmberVm* vm, int index, char* err, size_t cap)
{
    return guarded(vm, err, cap, [&] { object_at(vm, index, LUA_TTABLE)->h.readonly = 1; });
}

int amber_restore_upvalue_closed(AmberVm* vm, int index, const AmberRestoreValue* value, char* err, size_t cap)
{
    return guarded(vm, err, cap, [&] {
        // Made closed at once, as luaF_closeupval leaves an upvalue: its value in itself. Being
        // new it is white, so the collector's closing fix-up (luaC_upvalclosed) has nothing to do.
        lua_State* L = vm->L;
        TValue v;
        from_amber(vm, value, &v);
        UpVal* uv = luaM_newgco(L, UpVal, sizeof(UpVal), L->activememcat, LUA_TUPVAL);
        luaC_init(L, uv, LUA_TUPVAL);
        uv->markedopen = 0;
        setobj(L, &uv->u.value, &v);
        uv->v = &uv->u.value;
        luaC_upvalclosed(L, uv);
        put(vm, index, obj2gco(uv), LUA_TUPVAL);
    });
}

int amber_restore_upvalue_open(AmberVm* vm, int index, int thread, int slot, char* err, size_t cap)
{
    return guarded(vm, err, cap, [&] {
        lua_State* T = thread_at(vm, thread);
        if (slot < 0 || T->stack + slot >= T->top)
            fail("open upvalue slot outside the thread's live stack");
        bool wasactive = T->isactive;
        T->isactive = true; // findupval expects a running thread (which never turns black, so it needs
        // no barrier); with the collector stopped nothing turns black here either
        UpVal* uv = luaF_findupval(T, T->stack + slot);
        T->isactive = wasactive;
        put(vm, index, obj2gco(uv), LUA_TUPVAL);
    });
}

int amber_restore_lua_closure_fill(AmberVm* vm, int index, const AmberRestoreValue* env, const int* upvalues, int count, char* err, size_t cap)
{
    return guarded(vm, err, cap, [&] {
        Closure* cl = &object_at(vm, index, LUA_TFUNCTION)->cl;
        if (cl->isC || count != cl->nupvalues)
            fail("closure fill does not match the closure");
        LuaTable* e = table_or_null(vm, env);
        if (!e)
            fail("a closure needs an environment table");
        cl->env = e;
        for (int i = 0; i < count; i++)
        {
            UpVal* uv = &object_at(vm, upvalues[i], LUA_TUPVAL)->uv;
            setupvalue(vm->L, &cl->l.uprefs[i], uv);
        }
    });
}

int amber_restore_c_closure_fill(AmberVm* vm, int index, const AmberRestoreValue* env, const AmberRestoreValue* upvalues, int count, char* err, size_t cap)
{
    return guarded(vm, err, cap, [&] {
        Closure* cl = &object_at(vm, index, LUA_TFUNCTION)->cl;
        if (!cl->isC || count != cl->nupvalues)
            fail("C closure fill does not match the closure");
        LuaTable* e = table_or_null(vm, env);
        if (e)
            cl->env = e;
        for (int i = 0; i < count; i++)
            from_amber(vm, &upvalues[i], &cl->c.upvals[i]);
    });
}

int amber_restore_userdata_metatable(AmberVm* vm, int index, const AmberRestoreValue* metatable, char* err, size_t cap)
{
    return guarded(vm, err, cap, [&] {
        Udata* u = &object_at(vm, index, LUA_TUSERDATA)->u;
        u->metatable = table_or_null(vm, metatable);
    });
}

int amber_restore_thread_stack(AmberVm* vm, int index, const AmberRestoreValue* values, int count, char* err, size_t cap)
{
    // The stack from its bottom, in one call (as for array parts).
    return guarded(vm, err, cap, [&] {
        lua_State* T = thread_at(vm, index);
        if (count < 0 || count > T->stacksize - EXTRA_STACK)
            fail("more stack values than stack slots");
        for (int k = 0; k < count; ++k)
            from_amber(vm, &values[k], T->stack + k);
    });
}

int amber_restore_thread_frames(AmberVm* vm, int index, const AmberFrameInfo* frames, int count, char* err, size_t cap)
{
    // Every frame of the thread in one call, bottom first; a refusal names the frame.
    int k = 0;
    int rc = guarded(vm, err, cap, [&] {
        lua_State* T = thread_at(vm, index);
        if (count < 0 || count >= T->size_ci)
            fail("more frames than the thread was made for");
        for (; k < count; ++k)
            restore_frame(T, k + 1, &frames[k]);
    });
    if (rc != 0 && err && cap)
    {
        char message[256];
        snprintf(message, sizeof(message), "frame %d: %s", k, err);
        strncpy(err, message, cap - 1);
        err[cap - 1] = 0;
    }
    return rc;
}

int amber_restore_thread_finish(AmberVm* vm, int index, const AmberThreadInfo* info, const AmberRestoreValue* globals, int namecall, char* err, size_t cap)
{
    return guarded(vm, err, cap, [&] {
        lua_State* T = thread_at(vm, index);
        int limit = T->stacksize - EXTRA_STACK;
        if (info->frames < 0 || info->frames >= T->size_ci || info->top < 1 || info->top > limit || info->base < 1 ||
            info->base > info->top)
            fail("thread geometry out of range");
        LuaTable* gt = table_or_null(vm, globals);
        if (!gt)
            fail("a thread needs a globals table");
        T->gt = gt;
        T->namecall = namecall >= 0 ? &object_at(vm, namecall, LUA_TSTRING)->ts : nullptr;
        T->top = T->stack + info->top;
        for (StkId s = T->top; s < T->stack + T->stacksize; s++)
            setnilvalue(s);
        T->ci = T->base_ci + info->frames;
        T->base = T->stack + info->base;
        if (info->frames > 0 && T->ci->top > T->stack + limit)
            fail("top frame outside the stack");
        // What resuming relies on across frames: a Luau frame without RETURN returns into a
        // Luau caller; every C frame but a yielded thread's top has a continuation.
        for (int k = 1; k <= info->frames; k++)
        {
            CallInfo* ci = T->base_ci + k;
            if (!ci->func || !ttisfunction(ci->func))
                fail("a frame was not restored");
            Closure* cl = clvalue(ci->func);
            if (!cl->isC && !(ci->flags & LUA_CALLINFO_RETURN) && (k == 1 || !isLua(ci - 1)))
                fail("a Luau frame without RETURN above a frame that is not Luau");
            if (cl->isC && !cl->c.cont && !(k == info->frames && info->status == LUA_YIELD))
                fail("a C frame without a continuation where the thread resumes through it");
        }
        switch (info->status)
        {
        case LUA_OK:
        case LUA_YIELD:
        case LUA_BREAK:
        case LUA_ERRRUN:
            T->status = uint8_t(info->status);
            break;
        default:
            fail("unsupported thread status");
        }
    });
}

void amber_memory_model(AmberMemoryModel* out)
{
    out->string = sizestring(0) - 1;
    out->table = sizeof(LuaTable);
    out->value = sizeof(TValue);
    out->node = sizeof(LuaNode);
    out->lua_closure = sizeLclosure(0);
    out->c_closure = sizeCclosure(0);
    out->upvalue = sizeof(UpVal);
    out->thread = sizeof(lua_State);
    out->frame = sizeof(CallInfo);
    out->userdata = sizeudata(0);
    out->buffer = offsetof(Buffer, data);
    out->extra_stack = EXTRA_STACK;
}

} // extern "C"
