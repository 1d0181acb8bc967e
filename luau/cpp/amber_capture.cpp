// Capture: read-only accessors over GC objects. They allocate nothing in the VM (a collector step
// could move the stacks being read), never dereference dead keys, and read only slots below a
// thread's top. Rust walks the object graph with them and builds the snapshot model
// (luau/src/capture.rs).

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

void to_amber(const TValue* o, AmberTV* out)
{
    memset(out, 0, sizeof(*out));
    out->type = ttype(o);
    switch (ttype(o))
    {
    case LUA_TBOOLEAN:
        out->boolean = bvalue(o);
        break;
    case LUA_TNUMBER:
        out->number = nvalue(o);
        break;
    case LUA_TVECTOR:
    {
        const float* v = vvalue(o);
        out->vector[0] = v[0];
        out->vector[1] = v[1];
        out->vector[2] = v[2];
        break;
    }
    case LUA_TLIGHTUSERDATA:
        out->tag = lightuserdatatag(o);
        out->ref = uintptr_t(pvalue(o));
        break;
    case LUA_TNIL:
        break;
    default:
        if (iscollectable(o))
            out->ref = uintptr_t(gcvalue(o));
        break;
    }
}

} // namespace

extern "C" {

// ----------------------------------------------------------------------------------------------
// Capture accessors. `o` is a GC object pointer previously handed out by these functions.

int amber_task_thread(AmberVm* vm, int thread_ref, uintptr_t* out)
{
    lua_State* L = vm->L;
    lua_getref(L, thread_ref);
    lua_State* T = lua_tothread(L, -1);
    lua_pop(L, 1);
    *out = uintptr_t(T);
    return T ? 0 : -1;
}

int amber_gc_type(uintptr_t o)
{
    return reinterpret_cast<GCObject*>(o)->gch.tt;
}

void amber_string_bytes(uintptr_t o, const char** data, size_t* length)
{
    TString* s = &reinterpret_cast<GCObject*>(o)->ts;
    *data = getstr(s);
    *length = s->len;
}

void amber_table_info(uintptr_t o, AmberTableInfo* out)
{
    LuaTable* t = &reinterpret_cast<GCObject*>(o)->h;
    out->array_size = t->sizearray;
    out->node_count = t->node == &luaH_dummynode ? 0 : sizenode(t);
    out->insert_hint = t->lastfree;
    out->readonly = t->readonly & 1;
    out->safeenv = t->safeenv;
    out->metatable = uintptr_t(t->metatable);
    out->has_order = t->iterorder != nullptr;
}

int amber_table_position_node(uintptr_t o, int p)
{
    LuaTable* t = &reinterpret_cast<GCObject*>(o)->h;
    return t->iterorder ? t->iterorder[p] : p;
}

int amber_table_position_origin(uintptr_t o, int p)
{
    LuaTable* t = &reinterpret_cast<GCObject*>(o)->h;
    return t->iterorder ? t->iterorder[2 * sizenode(t) + p] : p;
}

void amber_table_array(uintptr_t o, int i, AmberTV* out)
{
    LuaTable* t = &reinterpret_cast<GCObject*>(o)->h;
    to_amber(&t->array[i], out);
}

// 0: unused node; 1: key and value; 2: dead key (its object may be gone: never read).
int amber_table_node(uintptr_t o, int i, AmberTV* key, AmberTV* value)
{
    LuaTable* t = &reinterpret_cast<GCObject*>(o)->h;
    LuaNode* n = &t->node[i];
    if (n->key.tt == LUA_TNIL)
        return 0;
    if (n->key.tt == LUA_TDEADKEY)
        return 2;
    TValue k;
    k.value = n->key.value;
    memcpy(k.extra, n->key.extra, sizeof(k.extra));
    k.tt = n->key.tt;
    to_amber(&k, key);
    to_amber(&n->val, value);
    return 1;
}

void amber_closure_info(uintptr_t o, AmberClosureInfo* out)
{
    Closure* cl = &reinterpret_cast<GCObject*>(o)->cl;
    memset(out, 0, sizeof(*out));
    out->is_c = cl->isC;
    out->upvalues = cl->nupvalues;
    out->env = uintptr_t(cl->env);
    if (cl->isC)
    {
        out->function = uintptr_t(cl->c.f);
        out->continuation = uintptr_t(cl->c.cont);
    }
    else
    {
        out->proto = uintptr_t(cl->l.p);
        out->bytecode_id = cl->l.p->bytecodeid;
    }
}

// A closure's upvalue slot. For Lua closures a shared variable is an upvalue object (type
// LUA_TUPVAL, ref = the UpVal); a variable captured by value is the value itself.
void amber_closure_upvalue(uintptr_t o, int i, AmberTV* out)
{
    Closure* cl = &reinterpret_cast<GCObject*>(o)->cl;
    const TValue* v = cl->isC ? &cl->c.upvals[i] : &cl->l.uprefs[i];
    if (!cl->isC && ttisupval(v))
    {
        memset(out, 0, sizeof(*out));
        out->type = LUA_TUPVAL;
        out->ref = uintptr_t(upvalue(v));
        return;
    }
    to_amber(v, out);
}

// 1 if open (its value lives in a thread's stack), 0 if closed; the current value either way.
int amber_upvalue(uintptr_t o, AmberTV* value)
{
    UpVal* uv = &reinterpret_cast<GCObject*>(o)->uv;
    to_amber(uv->v, value);
    return upisopen(uv) ? 1 : 0;
}

void amber_thread_info(uintptr_t o, AmberThreadInfo* out)
{
    lua_State* T = &reinterpret_cast<GCObject*>(o)->th;
    memset(out, 0, sizeof(*out));
    out->status = T->status;
    out->top = int(T->top - T->stack);
    out->base = int(T->base - T->stack);
    out->frames = int(T->ci - T->base_ci);
    out->globals = uintptr_t(T->gt);
    out->namecall = uintptr_t(T->namecall);
    out->stack_size = T->stacksize;
}

void amber_thread_slot(uintptr_t o, int i, AmberTV* out)
{
    lua_State* T = &reinterpret_cast<GCObject*>(o)->th;
    to_amber(T->stack + i, out);
}

// Frame `i` (1-based: base_ci itself is implicit).
void amber_thread_frame(uintptr_t o, int i, AmberFrameInfo* out)
{
    lua_State* T = &reinterpret_cast<GCObject*>(o)->th;
    CallInfo* ci = T->base_ci + i;
    memset(out, 0, sizeof(*out));
    out->func = int(ci->func - T->stack);
    out->base = int(ci->base - T->stack);
    out->top = int(ci->top - T->stack);
    out->nresults = ci->nresults;
    out->flags = ci->flags;
    out->closure = ttisfunction(ci->func) ? uintptr_t(clvalue(ci->func)) : 0;
    if (out->closure && !clvalue(ci->func)->isC)
    {
        Proto* p = clvalue(ci->func)->l.p;
        out->is_lua = 1;
        out->pc = ci->savedpc ? int(ci->savedpc - p->code) : -1;
    }
    else
    {
        out->errfunc = ci->errfunc;
    }
}

// Open upvalues of a thread, innermost slot first; returns how many were written (up to cap).
int amber_thread_open_upvalues(uintptr_t o, uintptr_t* out, int cap, int* slots)
{
    lua_State* T = &reinterpret_cast<GCObject*>(o)->th;
    int n = 0;
    for (UpVal* uv = T->openupval; uv; uv = uv->u.open.threadnext)
    {
        if (n < cap)
        {
            out[n] = uintptr_t(uv);
            slots[n] = int(uv->v - T->stack);
        }
        n++;
    }
    return n;
}

void amber_userdata_info(uintptr_t o, AmberUserdataInfo* out)
{
    Udata* u = &reinterpret_cast<GCObject*>(o)->u;
    out->tag = u->tag;
    out->length = u->len;
    out->data = u->data;
    out->metatable = uintptr_t(u->metatable);
    out->is_proxy = u->tag == UTAG_PROXY;
    out->has_destructor = u->tag == UTAG_IDTOR;
}

void amber_buffer_bytes(uintptr_t o, const char** data, size_t* length)
{
    Buffer* b = &reinterpret_cast<GCObject*>(o)->buf;
    *data = b->data;
    *length = b->len;
}

} // extern "C"
