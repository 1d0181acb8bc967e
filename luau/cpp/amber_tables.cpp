// Explicit iteration orders: allocation and lifetime (see amber_tables.h).

#include "amber_tables.h"

#include "lmem.h"
#include "lobject.h"
#include "lstate.h"

#include <string.h>

void amber_table_droporder(lua_State* L, LuaTable* t)
{
    if (t->iterorder)
    {
        luaM_freearray(L, t->iterorder, kAmberOrderSegments * sizenode(t), int, t->memcat);
        t->iterorder = nullptr;
    }
}

void amber_table_cloneorder(lua_State* L, LuaTable* to, const LuaTable* from)
{
    if (!from->iterorder || to->lsizenode != from->lsizenode)
        return;
    int n = kAmberOrderSegments * sizenode(from);
    to->iterorder = luaM_newarray(L, n, int, to->memcat);
    memcpy(to->iterorder, from->iterorder, size_t(n) * sizeof(int));
}

void amber_table_naturalorder(LuaTable* t)
{
    if (!t->iterorder)
        return;
    int size = sizenode(t);
    for (int i = 0; i < size; i++)
    {
        t->iterorder[i] = i;
        t->iterorder[size + i] = i;
        t->iterorder[2 * size + i] = i;
    }
}
