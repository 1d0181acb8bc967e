//! Pattern matching: Amber's pre-emptible matcher returns what Luau's own returns (values and
//! error messages), call for call. Both run in one plain Luau state ([`MatcherLab`]); a Luau
//! driver makes the same call through each and compares the printed results.

use crate::generators::patterns::PatternCase;
use amber_luau::MatcherLab;

const DRIVER: &str = r##"
local function show(ok, ...)
    local t = table.pack(...)
    local out = { tostring(ok) }
    for i = 1, t.n do
        out[#out + 1] = type(t[i]) .. ":" .. tostring(t[i])
    end
    return table.concat(out, " | ")
end
local replacements = setmetatable({ a = "A", ["("] = 7, x = false }, {
    __index = function(_, k)
        if k == "b" then return nil end
        if type(k) == "number" then return k * 10 end
        if #k > 2 then return string.upper(k) end
        return nil
    end,
})
local function replace(...)
    local first, n = ..., select("#", ...)
    if first == "x" then return nil end
    if first == "a" then return false end
    if first == "b(" then return {} end
    if type(first) == "number" then return first * 2 end
    return n .. ":" .. tostring(first)
end
local function number(s) if s == "" then return nil end return tonumber(s) end
local function run(lib, op, s, p, a, b)
    if op == "find" then return show(pcall(lib.find, s, p, number(a), b == "1")) end
    if op == "match" then return show(pcall(lib.match, s, p, number(a))) end
    if op == "gmatch" then
        return show(pcall(function()
            local seen = {}
            for x, y, z in lib.gmatch(s, p) do
                seen[#seen + 1] = tostring(x) .. "," .. tostring(y) .. "," .. tostring(z)
                if #seen >= 64 then break end
            end
            return table.concat(seen, ";")
        end))
    end
    if op == "gsub_s" then return show(pcall(lib.gsub, s, p, a, number(b))) end
    if op == "gsub_t" then return show(pcall(lib.gsub, s, p, replacements, number(b))) end
    return show(pcall(lib.gsub, s, p, replace, number(b)))
end
function compare(op, s, p, a, b)
    local stock = run(string, op, s, p, a, b)
    local amber = run(amber_string, op, s, p, a, b)
    if stock == amber then return "=" .. stock end
    return "stock: " .. stock .. "\namber: " .. amber
end
return "ready"
"##;

/// A lab with the comparison driver loaded.
pub struct PatternOracle {
    lab: MatcherLab,
}

impl PatternOracle {
    pub fn new() -> Result<PatternOracle, String> {
        let mut lab = MatcherLab::new().ok_or("cannot create a Luau state")?;
        lab.eval(DRIVER).map_err(|e| String::from_utf8_lossy(&e).into_owned())?;
        Ok(PatternOracle { lab })
    }

    /// What both matchers returned on `case` (pcall's status and the values, printed), or
    /// `Err` with the difference between them.
    pub fn check(&mut self, case: &PatternCase) -> Result<String, String> {
        let args = case.arguments();
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        match self.lab.call("compare", &refs) {
            Ok(same) if same.first() == Some(&b'=') => Ok(String::from_utf8_lossy(&same[1..]).into_owned()),
            Ok(diff) => Err(format!("{case:?}\n{}", String::from_utf8_lossy(&diff))),
            Err(e) => Err(format!("{case:?}\nthe driver failed: {}", String::from_utf8_lossy(&e))),
        }
    }
}
