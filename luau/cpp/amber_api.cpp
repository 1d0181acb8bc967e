// The plain C API: process-wide feature flags and the compiler, which need no VM.

#include "amber_api.h"

#include "luacode.h"

#include "Luau/Common.h"

#include <stdlib.h>

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

} // extern "C"
