// Pattern matching that can be pre-empted and persisted mid-match: string.find, string.match,
// string.gmatch and string.gsub for the base image, with the semantics (results and error
// messages) of Luau's lstrlib.cpp, reimplemented as an explicit-state machine.
//
// Luau's matcher recurses on the C stack, so a match cannot be suspended. Here every place it
// would recurse pushes a backtrack frame onto an explicit stack instead, and the machine advances
// one bounded step at a time, charging one scheduler tick per step. When the scheduler wants the
// task back, the whole machine (cursor, frames, the operation's own loop state) is written into a
// `buffer` in the C function's frame and the function breaks like a pre-empted Luau frame; its
// continuation reads the buffer back and goes on. A suspended frame is therefore made only of
// ordinary values (the subject, the pattern, the state buffer, for gsub the replacement and an
// output buffer), which capture writes, the validator checks (validate/matcher.rs) and restore
// rebuilds like any other.
//
// gsub's replacement function, and `__index` functions of a replacement table, are called so that
// they may yield or be pre-empted too: the state is stored before the call and the continuation
// takes the value from the stack.

#include "amber_internal.h"
#include "amber_match.h"

#include "lua.h"
#include "luacode.h"
#include "lualib.h"

#include "lstate.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <string>

namespace
{

// ---- the persisted layout (docs/MATCHER.md; the validator's contract mirrors these) ----------

constexpr uint32_t kVersion = 1;
constexpr uint32_t kHeaderWords = 13;
constexpr uint32_t kFrameWords = 4;
constexpr uint32_t kMaxFrames = LUAI_MAXCCALLS - 1;
constexpr int kMaxCaptures = LUA_MAXCAPTURES;
constexpr uint32_t kChunk = 256;

enum Phase : uint32_t
{
    kMatching = 0, // inside a match attempt (or between attempts)
    kCallback = 1, // gsub: waiting for the replacement value of the match [start, end)
};

enum Mode : uint32_t
{
    kMatch = 0,   // process the pattern element at pp against subject position sp
    kFail = 1,    // the current path failed: backtrack
    kCount = 2,   // `*`/`+`: a repetitions of the class at pp counted from sp
    kBalance = 3, // `%b` at pp opened at sp; scanned to a with nesting depth b
    kPlain = 4,   // string.find without specials: next candidate at sp
};

enum FrameKind : uint32_t
{
    kOpen = 1,      // `(` or `()` at pp matched at s: a capture started
    kClose = 2,     // `)` at pp matched at s: the innermost unfinished capture closed
    kOptional = 3,  // `x?` at pp matched one at s; on failure go on without it
    kMaxExpand = 4, // `x*`/`x+` at pp from s, trying aux repetitions; on failure one fewer
    kMinExpand = 5, // `x-` at pp, trying from s; on failure one more
};

// Slots of a suspended frame (1-based stack indices from the C function's base).
constexpr int kFindState = 3; // find/match: subject, pattern, state
constexpr int kGsubState = 4; // gsub: subject, pattern, replacement, state, output
constexpr int kGsubOut = 5;
constexpr int kGmatchState = 1; // gmatch iterator: state (subject, pattern, position are upvalues)

constexpr int64_t kUnfinished = -1;
constexpr int64_t kPosition = -2;
constexpr uint32_t kMaxOutput = (1u << 30) - 64;

struct Frame
{
    uint32_t kind, s, pp, aux;
};

struct Capture
{
    uint32_t init;
    int64_t len;
};

enum Outcome
{
    kMatched,
    kNoMatch,
    kBreak,
};

void put_word(uint8_t* at, uint32_t v)
{
    at[0] = uint8_t(v);
    at[1] = uint8_t(v >> 8);
    at[2] = uint8_t(v >> 16);
    at[3] = uint8_t(v >> 24);
}

uint32_t get_word(const uint8_t* at)
{
    return uint32_t(at[0]) | uint32_t(at[1]) << 8 | uint32_t(at[2]) << 16 | uint32_t(at[3]) << 24;
}

// lua_replace for a state or output buffer: the popped slot above the top would otherwise keep
// a stale copy, which a callee's registers then capture as a second reference to the buffer (the
// validator requires these buffers to be referenced by their frame alone).
void replace_leaving_no_copy(lua_State* L, int slot)
{
    lua_replace(L, slot);
    setnilvalue(L->top);
}

// The scheduler's tick: true when the task must break now (amber_scheduler.cpp decides; it also
// raises the kill of a task whose pre-emption was deferred too long).
inline bool tick(lua_State* L)
{
    int64_t& countdown = L->global->amber_countdown;
    if (countdown > 0 && --countdown > 0)
        return false;
    return amber_detail::match_step_due(L);
}

// Luau's character classes (`match_class` in lstrlib.cpp: the C library's ctype in the C
// locale), as bit tables built once at start-up: one load and a mask per character instead of a
// switch and a libc call, which is most of what matching a `%w+` costs.
struct ClassTable
{
    static constexpr uint16_t kNegated = 0x8000;
    uint16_t bits[256];  // which classes each character is in
    uint16_t class_of[256]; // the class a letter after `%` names (upper case: negated), or 0

    ClassTable()
    {
        const char* names = "acdglpsuwxz";
        for (int c = 0; c < 256; c++)
        {
            const bool in[] = {
                isalpha(c) != 0, iscntrl(c) != 0, isdigit(c) != 0, isgraph(c) != 0, islower(c) != 0, ispunct(c) != 0,
                isspace(c) != 0, isupper(c) != 0, isalnum(c) != 0, isxdigit(c) != 0, c == 0,
            };
            bits[c] = 0;
            class_of[c] = 0;
            for (int k = 0; names[k]; k++)
                if (in[k])
                    bits[c] |= uint16_t(1u << k);
        }
        for (int k = 0; names[k]; k++)
        {
            class_of[uint8_t(names[k])] = uint16_t(1u << k);
            class_of[uint8_t(toupper(names[k]))] = uint16_t((1u << k) | kNegated);
        }
    }
};

const ClassTable kClasses;

inline bool class_matches(int c, int cl)
{
    uint16_t k = kClasses.class_of[uint8_t(cl)];
    if (k == 0)
        return cl == c;
    bool r = (kClasses.bits[uint8_t(c)] & (k & ~ClassTable::kNegated)) != 0;
    return (k & ClassTable::kNegated) ? !r : r;
}

// The machine. Positions are byte offsets: sp into the subject, pp into the pattern. Reads past
// either end see 0, as Luau's matcher sees the strings' terminating NUL.
class Matcher
{
public:
    lua_State* L;
    const uint8_t* s;
    uint32_t slen;
    const uint8_t* p;
    uint32_t plen;
    uint32_t pstart; // 1 past an anchoring `^`, else 0

    // The operation's loop.
    uint32_t phase = kMatching;
    uint32_t start = 0; // where the current attempt began (gsub: its `src`)
    uint32_t end = 0;   // gsub, callback phase: end of the match being replaced
    uint32_t count = 0; // gsub: replacements made
    int32_t limit = 0;  // gsub: replacements allowed
    uint32_t out_len = 0;

    // The cursor.
    uint32_t mode = kMatch, sp = 0, pp = 0, a = 0, b = 0;

    uint32_t nframes = 0;
    int level = 0;
    Frame frames[kMaxFrames];
    Capture caps[kMaxCaptures];

    // gsub's output: local until it outgrows it or must be persisted, then a buffer in kGsubOut.
    uint8_t local[256];
    uint8_t* heap = nullptr;
    uint32_t cap = 0;

    Matcher(lua_State* L, const char* subject, size_t sl, const char* pattern, size_t pl, uint32_t pattern_start)
        : L(L)
        , s(reinterpret_cast<const uint8_t*>(subject))
        , slen(uint32_t(sl))
        , p(reinterpret_cast<const uint8_t*>(pattern))
        , plen(uint32_t(pl))
        , pstart(pattern_start)
    {
    }

    uint8_t sat(uint32_t i) const
    {
        return i < slen ? s[i] : 0;
    }

    uint8_t pat(uint32_t i) const
    {
        return i < plen ? p[i] : 0;
    }

    void begin_attempt(uint32_t at)
    {
        start = at;
        nframes = 0;
        level = 0;
        mode = kMatch;
        sp = at;
        pp = pstart;
        a = b = 0;
    }

    // The slice's countdown, kept in a register while the machine runs and written back on
    // every way out (an error raised by a step included). Written back as the smaller of the
    // two: the allocator zeroes the VM's countdown to have a memory kill raised at once.
    struct Countdown
    {
        int64_t* at;
        int64_t left;
        ~Countdown()
        {
            if (left < *at)
                *at = left;
        }
    };

    Outcome run()
    {
        Countdown ticks{&L->global->amber_countdown, L->global->amber_countdown};
        for (;;)
        {
            switch (mode)
            {
            case kMatch:
                if (pp >= plen)
                    return kMatched;
                dispatch();
                // Failing with nothing to go back to ends the attempt within this step.
                if (mode == kFail && nframes == 0)
                    return kNoMatch;
                break;
            case kFail:
                if (!backtrack())
                    return kNoMatch;
                break;
            case kCount:
                count_step();
                break;
            case kBalance:
                balance_step();
                break;
            default:
                luaL_error(L, "corrupt pattern-matching state");
            }
            // tick(), with the countdown in a local.
            if (ticks.left > 0 && --ticks.left > 0)
                continue;
            *ticks.at = ticks.left;
            bool due = amber_detail::match_step_due(L);
            ticks.left = *ticks.at;
            if (due)
                return kBreak;
        }
    }

    // ---- pattern elements ----

    uint32_t class_end(uint32_t i)
    {
        uint8_t c = pat(i++);
        if (c == '%')
        {
            if (i >= plen)
                luaL_error(L, "malformed pattern (ends with '%%')");
            return i + 1;
        }
        if (c == '[')
        {
            if (pat(i) == '^')
                i++;
            do
            {
                if (i >= plen)
                    luaL_error(L, "malformed pattern (missing ']')");
                uint8_t d = p[i++];
                if (d == '%' && i < plen)
                    i++;
            } while (pat(i) != ']');
            return i + 1;
        }
        return i;
    }

    // The set `[...]` at i whose closing `]` is at ec.
    bool set_matches(int c, uint32_t i, uint32_t ec) const
    {
        bool in = true;
        if (pat(i + 1) == '^')
        {
            in = false;
            i++;
        }
        while (++i < ec)
        {
            uint8_t d = p[i];
            if (d == '%')
            {
                i++;
                if (class_matches(c, pat(i)))
                    return in;
            }
            else if (pat(i + 1) == '-' && i + 2 < ec)
            {
                i += 2;
                if (p[i - 2] <= c && c <= p[i])
                    return in;
            }
            else if (d == c)
                return in;
        }
        return !in;
    }

    bool single(uint32_t at, uint32_t i, uint32_t ep) const
    {
        if (at >= slen)
            return false;
        int c = s[at];
        switch (p[i])
        {
        case '.':
            return true;
        case '%':
            return class_matches(c, pat(i + 1));
        case '[':
            return set_matches(c, i, ep - 1);
        default:
            return p[i] == c;
        }
    }

    void push_frame(uint32_t kind, uint32_t at, uint32_t i, uint32_t aux)
    {
        if (nframes >= kMaxFrames)
            luaL_error(L, "pattern too complex");
        frames[nframes++] = Frame{kind, at, i, aux};
    }

    void fail()
    {
        mode = kFail;
    }

    void dispatch()
    {
        switch (p[pp])
        {
        case '(':
            open_capture();
            return;
        case ')':
            close_capture();
            return;
        case '$':
            if (pp + 1 == plen)
            {
                if (sp == slen)
                    pp = plen;
                else
                    fail();
                return;
            }
            break;
        case '%':
            switch (pat(pp + 1))
            {
            case 'b':
                balance_begin();
                return;
            case 'f':
                frontier();
                return;
            case '0':
            case '1':
            case '2':
            case '3':
            case '4':
            case '5':
            case '6':
            case '7':
            case '8':
            case '9':
                back_reference();
                return;
            default:
                break;
            }
            break;
        default:
            break;
        }
        single_element();
    }

    void open_capture()
    {
        if (level >= kMaxCaptures)
            luaL_error(L, "too many captures");
        bool position = pat(pp + 1) == ')';
        caps[level] = Capture{sp, position ? kPosition : kUnfinished};
        level++;
        push_frame(kOpen, sp, pp, 0);
        pp += position ? 2 : 1;
    }

    void close_capture()
    {
        int l = level - 1;
        while (l >= 0 && caps[l].len != kUnfinished)
            l--;
        if (l < 0)
            luaL_error(L, "invalid pattern capture");
        caps[l].len = int64_t(sp) - int64_t(caps[l].init);
        push_frame(kClose, sp, pp, uint32_t(l));
        pp++;
    }

    void balance_begin()
    {
        if (pp + 3 >= plen)
            luaL_error(L, "malformed pattern (missing arguments to '%%b')");
        if (sat(sp) != p[pp + 2])
            return fail();
        mode = kBalance;
        a = sp;
        b = 1;
    }

    void balance_step()
    {
        uint8_t open = p[pp + 2], close = p[pp + 3];
        for (uint32_t n = 0; n < kChunk; n++)
        {
            if (++a >= slen)
            {
                a = b = 0;
                return fail();
            }
            uint8_t c = s[a];
            if (c == close)
            {
                if (--b == 0)
                {
                    sp = a + 1;
                    pp += 4;
                    mode = kMatch;
                    a = 0;
                    return;
                }
            }
            else if (c == open)
                b++;
        }
    }

    void frontier()
    {
        uint32_t set = pp + 2;
        if (pat(set) != '[')
            luaL_error(L, "missing '[' after '%%f' in pattern");
        uint32_t ep = class_end(set);
        int previous = sp == 0 ? 0 : s[sp - 1];
        if (!set_matches(previous, set, ep - 1) && set_matches(sat(sp), set, ep - 1))
            pp = ep;
        else
            fail();
    }

    void back_reference()
    {
        int l = int(pat(pp + 1)) - '1';
        if (l < 0 || l >= level || caps[l].len == kUnfinished)
            luaL_error(L, "invalid capture index %%%d", l + 1);
        int64_t len = caps[l].len;
        if (len == kPosition || int64_t(slen - sp) < len || memcmp(s + caps[l].init, s + sp, size_t(len)) != 0)
            return fail();
        sp += uint32_t(len);
        pp += 2;
    }

    void single_element()
    {
        uint32_t ep = class_end(pp);
        uint8_t suffix = pat(ep);
        if (!single(sp, pp, ep))
        {
            if (suffix == '*' || suffix == '?' || suffix == '-')
                pp = ep + 1;
            else
                fail();
            return;
        }
        switch (suffix)
        {
        case '?':
            push_frame(kOptional, sp, pp, 0);
            sp++;
            pp = ep + 1;
            return;
        case '+':
            sp++;
            mode = kCount;
            a = 0;
            count_step(ep); // the first chunk in this step: most runs are shorter than one
            return;
        case '*':
            mode = kCount;
            a = 0;
            count_step(ep);
            return;
        case '-':
            push_frame(kMinExpand, sp, pp, 0);
            pp = ep + 1;
            return;
        default:
            sp++;
            pp = ep;
            return;
        }
    }

    void count_step()
    {
        count_step(class_end(pp));
    }

    // Up to kChunk more repetitions of the class at pp (ending at ep), with the class decoded
    // once: the run stops at the first character that does not match, or at the subject's end.
    void count_step(uint32_t ep)
    {
        uint32_t at = sp + a;
        uint32_t stop = slen - at < kChunk ? slen : at + kChunk;
        uint32_t i = at;
        switch (p[pp])
        {
        case '.':
            i = stop;
            break;
        case '%':
        {
            int cl = pat(pp + 1);
            while (i < stop && class_matches(s[i], cl))
                i++;
            break;
        }
        case '[':
            while (i < stop && set_matches(s[i], pp, ep - 1))
                i++;
            break;
        default:
        {
            uint8_t c = p[pp];
            while (i < stop && s[i] == c)
                i++;
            break;
        }
        }
        a = i - sp;
        if (i - at < kChunk)
        {
            push_frame(kMaxExpand, sp, pp, a);
            sp += a;
            pp = ep + 1;
            mode = kMatch;
            a = 0;
        }
    }

    // Unwinds to the newest frame with an alternative left; false when none is.
    bool backtrack()
    {
        while (nframes > 0)
        {
            Frame& f = frames[nframes - 1];
            switch (f.kind)
            {
            case kOpen:
                level--;
                break;
            case kClose:
                caps[f.aux].len = kUnfinished;
                break;
            case kOptional:
                mode = kMatch;
                sp = f.s;
                pp = class_end(f.pp) + 1;
                nframes--;
                return true;
            case kMaxExpand:
                if (f.aux == 0)
                    break;
                f.aux--;
                mode = kMatch;
                sp = f.s + f.aux;
                pp = class_end(f.pp) + 1;
                return true;
            case kMinExpand:
            {
                uint32_t ep = class_end(f.pp);
                if (!single(f.s, f.pp, ep))
                    break;
                f.s++;
                mode = kMatch;
                sp = f.s;
                pp = ep + 1;
                return true;
            }
            default:
                luaL_error(L, "corrupt pattern-matching state");
            }
            nframes--;
        }
        return false;
    }

    // ---- captures ----

    void push_capture(int i, uint32_t from, uint32_t to)
    {
        if (i >= level)
        {
            if (i != 0)
                luaL_error(L, "invalid capture index");
            lua_pushlstring(L, reinterpret_cast<const char*>(s) + from, to - from);
            return;
        }
        int64_t l = caps[i].len;
        if (l == kUnfinished)
            luaL_error(L, "unfinished capture");
        if (l == kPosition)
            lua_pushinteger(L, int(caps[i].init) + 1);
        else
            lua_pushlstring(L, reinterpret_cast<const char*>(s) + caps[i].init, size_t(l));
    }

    // `whole`: with no captures, the whole match is the one value (find pushes none).
    int push_captures(bool whole, uint32_t from, uint32_t to)
    {
        int n = (level == 0 && whole) ? 1 : level;
        luaL_checkstack(L, n, "too many captures");
        for (int i = 0; i < n; i++)
            push_capture(i, from, to);
        return n;
    }

    // ---- gsub's output ----

    void grow(uint32_t extra)
    {
        uint64_t need = uint64_t(out_len) + extra;
        if (need > kMaxOutput)
            luaL_error(L, "resulting string too large");
        uint64_t next = cap ? uint64_t(cap) * 2 : 1024;
        while (next < need)
            next *= 2;
        if (next > kMaxOutput)
            next = kMaxOutput;
        uint8_t* fresh = static_cast<uint8_t*>(lua_newbuffer(L, size_t(next)));
        memcpy(fresh, heap ? heap : local, out_len);
        replace_leaving_no_copy(L, kGsubOut);
        heap = fresh;
        cap = uint32_t(next);
    }

    void append(const void* data, size_t n)
    {
        if (heap && uint64_t(out_len) + n <= cap)
        {
            // The common case, and single characters (every unmatched one) without a memcpy call.
            if (n == 1)
                heap[out_len] = *static_cast<const uint8_t*>(data);
            else
                memcpy(heap + out_len, data, n);
            out_len += uint32_t(n);
            return;
        }
        if (n == 0)
            return;
        if (!heap && out_len + n <= sizeof(local))
        {
            memcpy(local + out_len, data, n);
            out_len += uint32_t(n);
            return;
        }
        if (!heap || uint64_t(out_len) + n > cap)
            grow(uint32_t(n > kMaxOutput ? kMaxOutput : n));
        memcpy(heap + out_len, data, n);
        out_len += uint32_t(n);
    }

    void push_output()
    {
        lua_pushlstring(L, reinterpret_cast<const char*>(heap ? heap : local), out_len);
    }

    // ---- persistence ----

    // Writes the state into the buffer at `slot` (replacing it unless it has the exact size).
    // Fields the mode does not use are written as zero: one state, one encoding.
    void store(int slot)
    {
        size_t size = size_t(kHeaderWords + kFrameWords * nframes) * 4;
        size_t have = 0;
        uint8_t* into = static_cast<uint8_t*>(lua_tobuffer(L, slot, &have));
        if (!into || have != size)
        {
            into = static_cast<uint8_t*>(lua_newbuffer(L, size));
            replace_leaving_no_copy(L, slot);
        }
        uint32_t msp = sp, mpp = pp, ma = a, mb = b;
        if (mode == kFail)
            msp = mpp = ma = mb = 0;
        else if (mode == kMatch || mode == kPlain)
            ma = mb = 0;
        else if (mode == kCount)
            mb = 0;
        if (mode == kPlain)
            mpp = 0;
        const uint32_t header[kHeaderWords] = {
            kVersion, phase, mode, msp, mpp, ma, mb, start, end, count, uint32_t(limit), out_len, nframes,
        };
        for (uint32_t k = 0; k < kHeaderWords; k++)
            put_word(into + 4 * k, header[k]);
        uint8_t* at = into + 4 * kHeaderWords;
        for (uint32_t k = 0; k < nframes; k++, at += 4 * kFrameWords)
        {
            const Frame& f = frames[k];
            put_word(at, f.kind);
            put_word(at + 4, f.s);
            put_word(at + 8, f.pp);
            // A closing frame's capture index is derived on load.
            put_word(at + 12, f.kind == kClose ? 0 : f.aux);
        }
    }

    // gsub's output becomes (or stays) the buffer in kGsubOut.
    void store_output()
    {
        if (!heap)
        {
            uint32_t had = out_len;
            grow(0);
            out_len = had;
        }
    }

    [[noreturn]] void corrupt(const char* why)
    {
        luaL_error(L, "corrupt pattern-matching state: %s", why);
    }

    // Reads a state written by `store` back, re-deriving the captures from the frames. The
    // validator has proven the state consistent; these checks are the defence in depth that
    // keeps a state it missed from reading outside the strings.
    void load(int slot)
    {
        size_t size = 0;
        const uint8_t* from = static_cast<const uint8_t*>(lua_tobuffer(L, slot, &size));
        if (!from || size < 4 * kHeaderWords)
            corrupt("no state buffer");
        uint32_t h[kHeaderWords];
        for (uint32_t k = 0; k < kHeaderWords; k++)
            h[k] = get_word(from + 4 * k);
        if (h[0] != kVersion)
            corrupt("unknown version");
        phase = h[1];
        mode = h[2];
        sp = h[3];
        pp = h[4];
        a = h[5];
        b = h[6];
        start = h[7];
        end = h[8];
        count = h[9];
        limit = int32_t(h[10]);
        out_len = h[11];
        nframes = h[12];
        if (nframes > kMaxFrames || size != size_t(kHeaderWords + kFrameWords * nframes) * 4)
            corrupt("frame count");
        if (phase > kCallback || mode > kPlain || sp > slen || pp > plen || start > slen || end > slen)
            corrupt("cursor");
        if ((mode == kCount && (pp >= plen || uint64_t(sp) + a > slen)) ||
            (mode == kBalance && (pp + 3 >= plen || a < sp || a >= slen || b == 0)))
            corrupt("cursor");
        const uint8_t* at = from + 4 * kHeaderWords;
        level = 0;
        for (uint32_t k = 0; k < nframes; k++, at += 4 * kFrameWords)
        {
            Frame f{get_word(at), get_word(at + 4), get_word(at + 8), get_word(at + 12)};
            if (f.s > slen || f.pp >= plen)
                corrupt("frame position");
            switch (f.kind)
            {
            case kOpen:
                if (level >= kMaxCaptures)
                    corrupt("captures");
                caps[level++] = Capture{f.s, pat(f.pp + 1) == ')' ? kPosition : kUnfinished};
                break;
            case kClose:
            {
                int l = level - 1;
                while (l >= 0 && caps[l].len != kUnfinished)
                    l--;
                if (l < 0 || f.s < caps[l].init)
                    corrupt("captures");
                caps[l].len = int64_t(f.s) - int64_t(caps[l].init);
                f.aux = uint32_t(l);
                break;
            }
            case kOptional:
            case kMinExpand:
                break;
            case kMaxExpand:
                if (uint64_t(f.s) + f.aux > slen)
                    corrupt("frame position");
                break;
            default:
                corrupt("frame kind");
            }
            frames[k] = f;
        }
    }

    void load_output()
    {
        size_t size = 0;
        uint8_t* data = static_cast<uint8_t*>(lua_tobuffer(L, kGsubOut, &size));
        if (!data || size < out_len || size > kMaxOutput)
            corrupt("output buffer");
        heap = data;
        cap = uint32_t(size);
    }
};

// ---- string.find and string.match ----------------------------------------------------------

bool has_specials(const char* p, size_t l)
{
    for (size_t i = 0; i < l; i++)
        if (strchr("^$*+?.([%-", p[i]) && p[i] != 0)
            return true;
    return false;
}

int suspend_find(lua_State* L, Matcher& m)
{
    lua_settop(L, kFindState);
    m.store(kFindState);
    return lua_break(L);
}

int plain_find(lua_State* L, Matcher& m)
{
    for (;;)
    {
        uint32_t at = m.sp;
        if (m.plen == 0)
        {
            lua_pushinteger(L, int(at) + 1);
            lua_pushinteger(L, int(at));
            return 2;
        }
        if (m.plen > m.slen - at)
            break;
        const void* hit = memchr(m.s + at, m.p[0], m.slen - m.plen - at + 1);
        if (!hit)
            break;
        uint32_t cand = uint32_t(static_cast<const uint8_t*>(hit) - m.s);
        if (memcmp(m.s + cand + 1, m.p + 1, m.plen - 1) == 0)
        {
            lua_pushinteger(L, int(cand) + 1);
            lua_pushinteger(L, int(cand + m.plen));
            return 2;
        }
        m.sp = cand + 1;
        if (tick(L))
            return suspend_find(L, m);
    }
    lua_pushnil(L);
    return 1;
}

// `fresh`: start an attempt at m.start; otherwise the machine continues where it stopped.
int run_find(lua_State* L, Matcher& m, bool find, bool fresh)
{
    if (m.mode == kPlain)
        return plain_find(L, m);
    for (;;)
    {
        if (fresh)
            m.begin_attempt(m.start);
        fresh = true;
        Outcome o = m.run();
        if (o == kBreak)
            return suspend_find(L, m);
        if (o == kMatched)
        {
            if (!find)
                return m.push_captures(true, m.start, m.sp);
            lua_pushinteger(L, int(m.start) + 1);
            lua_pushinteger(L, int(m.sp));
            return m.push_captures(false, 0, 0) + 2;
        }
        if (m.start < m.slen && m.pstart == 0)
            m.start++;
        else
            break;
    }
    lua_pushnil(L);
    return 1;
}

int find_entry(lua_State* L, bool find)
{
    size_t ls, lp;
    const char* s = luaL_checklstring(L, 1, &ls);
    const char* p = luaL_checklstring(L, 2, &lp);
    int init = luaL_optinteger(L, 3, 1);
    if (init < 0)
        init += int(ls) + 1;
    if (init < 1)
        init = 1;
    else if (init > int(ls) + 1)
    {
        lua_pushnil(L);
        return 1;
    }
    bool plain = find && (lua_toboolean(L, 4) || !has_specials(p, lp));
    lua_settop(L, 2);
    Matcher m(L, s, ls, p, lp, !plain && lp > 0 && p[0] == '^' ? 1 : 0);
    m.start = uint32_t(init - 1);
    if (plain)
    {
        m.mode = kPlain;
        m.sp = m.start;
    }
    return run_find(L, m, find, true);
}

// A continuation's subject and pattern, slots 1 and 2. The validator proved them strings; this is
// the defence in depth, shared by every continuation that keeps them in its frame.
void frame_strings(lua_State* L, const char** s, size_t* ls, const char** p, size_t* lp)
{
    if (lua_type(L, 1) != LUA_TSTRING || lua_type(L, 2) != LUA_TSTRING)
        luaL_error(L, "corrupt pattern-matching state: strings");
    luaL_checkstack(L, LUA_MINSTACK, "pattern matching");
    *s = lua_tolstring(L, 1, ls);
    *p = lua_tolstring(L, 2, lp);
}

int find_resume(lua_State* L, bool find)
{
    if (lua_gettop(L) != kFindState)
        luaL_error(L, "corrupt pattern-matching state: stack");
    const char *s, *p;
    size_t ls, lp;
    frame_strings(L, &s, &ls, &p, &lp);
    Matcher m(L, s, ls, p, lp, 0);
    m.load(kFindState);
    if (m.phase != kMatching || (m.mode == kPlain && !find))
        m.corrupt("phase");
    if (m.mode != kPlain && lp > 0 && p[0] == '^')
        m.pstart = 1;
    return run_find(L, m, find, false);
}

int str_find(lua_State* L)
{
    return find_entry(L, true);
}

int str_find_cont(lua_State* L, int)
{
    return find_resume(L, true);
}

int str_match(lua_State* L)
{
    return find_entry(L, false);
}

int str_match_cont(lua_State* L, int)
{
    return find_resume(L, false);
}

// ---- string.gmatch -------------------------------------------------------------------------

int run_gmatch(lua_State* L, Matcher& m, bool fresh)
{
    for (;;)
    {
        if (fresh)
        {
            if (m.start > m.slen)
                return 0;
            m.begin_attempt(m.start);
        }
        fresh = true;
        Outcome o = m.run();
        if (o == kBreak)
        {
            lua_settop(L, kGmatchState);
            m.store(kGmatchState);
            return lua_break(L);
        }
        if (o == kMatched)
        {
            uint32_t e = m.sp;
            lua_pushinteger(L, int(e == m.start ? e + 1 : e));
            lua_replace(L, lua_upvalueindex(3));
            return m.push_captures(true, m.start, e);
        }
        m.start++;
    }
}

bool gmatch_strings(lua_State* L, const char** s, size_t* ls, const char** p, size_t* lp)
{
    if (lua_type(L, lua_upvalueindex(1)) != LUA_TSTRING || lua_type(L, lua_upvalueindex(2)) != LUA_TSTRING)
        return false;
    *s = lua_tolstring(L, lua_upvalueindex(1), ls);
    *p = lua_tolstring(L, lua_upvalueindex(2), lp);
    return true;
}

int gmatch_iterator(lua_State* L)
{
    const char *s, *p;
    size_t ls, lp;
    if (!gmatch_strings(L, &s, &ls, &p, &lp))
        luaL_error(L, "corrupt gmatch iterator");
    lua_settop(L, 0);
    Matcher m(L, s, ls, p, lp, 0);
    m.start = uint32_t(lua_tointeger(L, lua_upvalueindex(3)));
    if (m.start > m.slen + 1)
        luaL_error(L, "corrupt gmatch iterator");
    return run_gmatch(L, m, true);
}

int gmatch_iterator_cont(lua_State* L, int)
{
    const char *s, *p;
    size_t ls, lp;
    if (lua_gettop(L) != kGmatchState || !gmatch_strings(L, &s, &ls, &p, &lp))
        luaL_error(L, "corrupt pattern-matching state: stack");
    luaL_checkstack(L, LUA_MINSTACK, "pattern matching");
    Matcher m(L, s, ls, p, lp, 0);
    m.load(kGmatchState);
    if (m.phase != kMatching || m.mode == kPlain)
        m.corrupt("phase");
    return run_gmatch(L, m, false);
}

int str_gmatch(lua_State* L)
{
    luaL_checkstring(L, 1);
    luaL_checkstring(L, 2);
    lua_settop(L, 2);
    lua_pushinteger(L, 0);
    lua_pushcclosurek(L, gmatch_iterator, nullptr, 3, gmatch_iterator_cont);
    return 1;
}

// ---- string.gsub ---------------------------------------------------------------------------

// Before anything that may yield or break: the whole state into the frame's slots.
void store_gsub(Matcher& m)
{
    m.store_output();
    m.store(kGsubState);
}

// The replacement value on top of the stack joins the output (or the match itself, for
// nil/false); pops it.
void take_value(Matcher& m)
{
    lua_State* L = m.L;
    if (!lua_toboolean(L, -1))
    {
        lua_pop(L, 1);
        m.append(m.s + m.start, m.end - m.start);
        return;
    }
    if (!lua_isstring(L, -1))
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    size_t n = 0;
    const char* v = lua_tolstring(L, -1, &n);
    m.append(v, n);
    lua_pop(L, 1);
}

// Calls the function below the top `nargs` values for one result, where it may yield or be
// pre-empted: true if it did (the continuation takes over).
bool call_suspendable(Matcher& m, int nargs)
{
    store_gsub(m);
    lua_call(m.L, nargs, 1);
    int status = lua_status(m.L);
    return status == LUA_YIELD || status == LUA_BREAK;
}

// A string or number replacement, with its `%` escapes.
void add_template(Matcher& m)
{
    lua_State* L = m.L;
    size_t l = 0;
    const char* t = lua_tolstring(L, 3, &l);
    size_t i = 0;
    while (i < l)
    {
        const char* esc = static_cast<const char*>(memchr(t + i, '%', l - i));
        size_t run = esc ? size_t(esc - (t + i)) : l - i;
        m.append(t + i, run);
        i += run;
        if (i >= l)
            break;
        i++; // the escape
        uint8_t d = i < l ? uint8_t(t[i]) : 0;
        if (!isdigit(d))
        {
            if (d != '%')
                luaL_error(L, "invalid use of '%c' in replacement string", '%');
            m.append("%", 1);
        }
        else if (d == '0')
            m.append(m.s + m.start, m.end - m.start);
        else
        {
            int c = d - '1';
            if (c < m.level && m.caps[c].len >= 0)
                m.append(m.s + m.caps[c].init, size_t(m.caps[c].len));
            else
            {
                m.push_capture(c, m.start, m.end);
                size_t n = 0;
                const char* v = lua_tolstring(L, -1, &n);
                m.append(v, n);
                lua_pop(L, 1);
            }
        }
        i++;
    }
}

// A table replacement: the first capture looked up as the VM's GETTABLE would, except that an
// `__index` function is called where it may yield or be pre-empted. True if it did.
bool add_from_table(Matcher& m)
{
    lua_State* L = m.L;
    m.push_capture(0, m.start, m.end); // 6: key
    lua_pushvalue(L, 3);               // 7: the table being indexed
    for (int loop = 0; loop < 100; loop++)
    {
        if (!lua_istable(L, 7))
        {
            // Not a table: the VM indexes it (its metamethods cannot yield).
            lua_pushvalue(L, 6);
            L->nCcalls++;
            lua_gettable(L, 7);
            L->nCcalls--;
            lua_replace(L, 6);
            lua_settop(L, 6);
            take_value(m);
            return false;
        }
        lua_pushvalue(L, 6);
        lua_rawget(L, 7);
        if (!lua_isnil(L, -1) || !lua_getmetatable(L, 7))
        {
            lua_replace(L, 6);
            lua_settop(L, 6);
            take_value(m);
            return false;
        }
        lua_rawgetfield(L, -1, "__index");
        if (lua_isnil(L, -1))
        {
            lua_settop(L, 6);
            lua_pushnil(L);
            lua_replace(L, 6);
            take_value(m);
            return false;
        }
        if (lua_isfunction(L, -1))
        {
            // [.., key, t, nil, mt, fn] -> [.., fn, t, key]
            lua_replace(L, 8);
            lua_settop(L, 8);
            lua_insert(L, 6); // fn key t
            lua_insert(L, 7); // fn t key
            if (call_suspendable(m, 2))
                return true;
            take_value(m);
            return false;
        }
        lua_replace(L, 7);
        lua_settop(L, 7);
    }
    luaL_error(L, "'__index' chain too long; possible loop");
    return false;
}

// Adds the replacement of the match [m.start, m.end); true if a call it made suspended.
bool add_value(Matcher& m)
{
    lua_State* L = m.L;
    switch (lua_type(L, 3))
    {
    case LUA_TFUNCTION:
    {
        lua_pushvalue(L, 3);
        int n = m.push_captures(true, m.start, m.end);
        if (call_suspendable(m, n))
            return true;
        take_value(m);
        return false;
    }
    case LUA_TTABLE:
        return add_from_table(m);
    default:
        add_template(m);
        return false;
    }
}

// `entry`: 0 a fresh attempt at m.start, 1 continue the suspended attempt, 2 a replacement value
// is on top of the stack.
int run_gsub(lua_State* L, Matcher& m, int entry)
{
    for (;;)
    {
        bool matched = false;
        if (entry == 2)
        {
            m.phase = kMatching;
            take_value(m);
            matched = true;
        }
        else
        {
            if (int32_t(m.count) >= m.limit)
                break;
            if (entry == 0)
                m.begin_attempt(m.start);
            Outcome o = m.run();
            if (o == kBreak)
            {
                store_gsub(m);
                return lua_break(L);
            }
            if (o == kMatched)
            {
                matched = true;
                m.count++;
                m.end = m.sp;
                m.phase = kCallback;
                m.nframes = 0; // the captures stay in `caps` for the replacement
                m.mode = kMatch;
                m.sp = m.pp = 0;
                if (add_value(m))
                    return -1;
                m.phase = kMatching;
            }
        }
        entry = 0;
        uint32_t src = m.start;
        if (matched && m.end > src)
            m.start = m.end;
        else if (src < m.slen)
        {
            m.append(m.s + src, 1);
            m.start = src + 1;
        }
        else
            break;
        m.end = 0;
        if (m.pstart == 1)
            break;
    }
    m.append(m.s + m.start, m.slen - m.start);
    m.push_output();
    lua_pushinteger(L, int(m.count));
    return 2;
}

int str_gsub(lua_State* L)
{
    size_t ls, lp;
    const char* s = luaL_checklstring(L, 1, &ls);
    const char* p = luaL_checklstring(L, 2, &lp);
    int tr = lua_type(L, 3);
    int limit = luaL_optinteger(L, 4, int(ls) + 1);
    luaL_argexpected(L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3, "string/function/table");
    lua_settop(L, 3);
    lua_pushnil(L); // kGsubState
    lua_pushnil(L); // kGsubOut
    Matcher m(L, s, ls, p, lp, lp > 0 && p[0] == '^' ? 1 : 0);
    m.limit = limit;
    return run_gsub(L, m, 0);
}

int str_gsub_cont(lua_State* L, int)
{
    int top = lua_gettop(L);
    if (top != kGsubOut && top != kGsubOut + 1)
        luaL_error(L, "corrupt pattern-matching state: stack");
    const char *s, *p;
    size_t ls, lp;
    frame_strings(L, &s, &ls, &p, &lp);
    Matcher m(L, s, ls, p, lp, lp > 0 && p[0] == '^' ? 1 : 0);
    m.load(kGsubState);
    m.load_output();
    bool waiting = m.phase == kCallback;
    if (m.mode == kPlain || waiting != (top == kGsubOut + 1) || (waiting && (m.nframes != 0 || m.end < m.start)))
        m.corrupt("phase");
    return run_gsub(L, m, waiting ? 2 : 1);
}

// ---- the differential test's plain state ---------------------------------------------------

const luaL_Reg kFunctions[] = {
    {"find", str_find},
    {"match", str_match},
    {"gmatch", str_gmatch},
    {"gsub", str_gsub},
};

lua_Continuation continuation_of(lua_CFunction f)
{
    if (f == str_find)
        return str_find_cont;
    if (f == str_match)
        return str_match_cont;
    if (f == str_gsub)
        return str_gsub_cont;
    return nullptr;
}

void push_function(lua_State* L, const luaL_Reg& r)
{
    lua_pushcclosurek(L, r.func, r.name, 0, continuation_of(r.func));
}

} // namespace

namespace amber_detail
{

void install_matcher(lua_State* L, int table)
{
    for (const luaL_Reg& r : kFunctions)
    {
        push_function(L, r);
        lua_setfield(L, table < 0 ? table - 1 : table, r.name);
    }
}

lua_CFunction matcher_function(MatcherRole role)
{
    switch (role)
    {
    case MatcherRole::Find:
        return str_find;
    case MatcherRole::Match:
        return str_match;
    case MatcherRole::Gsub:
        return str_gsub;
    case MatcherRole::GmatchIterator:
        return gmatch_iterator;
    }
    return nullptr;
}

} // namespace amber_detail

extern "C" void amber_match_layout(AmberMatchLayout* out)
{
    out->version = kVersion;
    out->header_words = kHeaderWords;
    out->frame_words = kFrameWords;
    out->max_frames = kMaxFrames;
    out->max_captures = kMaxCaptures;
    out->chunk = kChunk;
}

struct AmberMatchState
{
    lua_State* L;
};

extern "C" AmberMatchState* amber_match_open(void)
{
    lua_State* L = luaL_newstate();
    if (!L)
        return nullptr;
    // No Amber VM behind this state: the matcher's ticks never come due.
    L->global->amber_countdown = amber_detail::kIdle;
    try
    {
        luaL_openlibs(L);
        lua_newtable(L);
        amber_detail::install_matcher(L, -1);
        lua_setglobal(L, "amber_string");
    }
    catch (...)
    {
        lua_close(L);
        return nullptr;
    }
    return new AmberMatchState{L};
}

extern "C" void amber_match_close(AmberMatchState* state)
{
    if (!state)
        return;
    lua_close(state->L);
    delete state;
}

namespace
{

long copy_result(lua_State* L, int status, char* out, size_t cap)
{
    size_t n = 0;
    const char* text = lua_tolstring(L, -1, &n);
    if (!text)
    {
        text = "(no string result)";
        n = strlen(text);
        status = -1;
    }
    if (cap > 0)
    {
        size_t k = n < cap ? n : cap;
        memcpy(out, text, k);
    }
    lua_settop(L, 0);
    return status == 0 ? long(n) : -1;
}

} // namespace

extern "C" long amber_match_eval(AmberMatchState* state, const char* source, size_t length, char* out, size_t cap)
{
    lua_State* L = state->L;
    size_t bytecode_size = 0;
    char* bytecode = luau_compile(source, length, nullptr, &bytecode_size);
    int status = luau_load(L, "=differential", bytecode, bytecode_size, 0);
    free(bytecode);
    if (status == 0)
        status = lua_pcall(L, 0, 1, 0);
    return copy_result(L, status, out, cap);
}

extern "C" long amber_match_call(
    AmberMatchState* state, const char* fn, const char* const* args, const size_t* lengths, int nargs, char* out, size_t cap
)
{
    lua_State* L = state->L;
    lua_getglobal(L, fn);
    for (int i = 0; i < nargs; i++)
        lua_pushlstring(L, args[i], lengths[i]);
    int status = lua_pcall(L, nargs, 1, 0);
    return copy_result(L, status, out, cap);
}
