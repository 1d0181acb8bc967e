//! Random terminating programs: loops with constant bounds, arithmetic kept small by moduli,
//! closures, table writes, prints and coroutine generators. Built from an [`Unstructured`] byte
//! source (`arbitrary`), so the fuzzer drives them directly and proptest drives them through
//! random bytes; every program ends, and its work gives many pre-emption points.

use arbitrary::{Arbitrary, Result, Unstructured};

#[derive(Debug, Clone)]
pub enum Stmt {
    Assign(u8, Expr),
    Loop(u8, u8, Vec<Stmt>),
    Closure(u8, Expr),
    Call(u8, u8),
    TableSet(u8, u8, Expr),
    Print(Expr),
    Generator(u8, u8),
}

#[derive(Debug, Clone)]
pub enum Expr {
    Const(i16),
    Var(u8),
    Add(Box<Expr>, Box<Expr>),
    Mul(Box<Expr>, Box<Expr>),
    Mod(Box<Expr>, i16),
    TableGet(u8, u8),
}

/// A program: statements over six number variables, three tables and three functions.
#[derive(Debug, Clone)]
pub struct Program {
    pub stmts: Vec<Stmt>,
}

/// Nesting bounds: the generator never recurses deeper than these, whatever the input.
const EXPR_DEPTH: u32 = 3;
const LOOP_DEPTH: u32 = 2;
const STMTS: usize = 10;
const BODY: usize = 4;

fn expr(u: &mut Unstructured<'_>, depth: u32) -> Result<Expr> {
    let leaf = depth == 0 || u.is_empty();
    Ok(match u.int_in_range(0..=if leaf { 2 } else { 5 })? {
        0 => Expr::Const(u.arbitrary()?),
        1 => Expr::Var(u.int_in_range(0..=5)?),
        2 => Expr::TableGet(u.int_in_range(0..=2)?, u.int_in_range(0..=3)?),
        3 => Expr::Add(Box::new(expr(u, depth - 1)?), Box::new(expr(u, depth - 1)?)),
        4 => Expr::Mul(Box::new(expr(u, depth - 1)?), Box::new(expr(u, depth - 1)?)),
        _ => Expr::Mod(Box::new(expr(u, depth - 1)?), u.int_in_range(1..=96)?),
    })
}

fn stmt(u: &mut Unstructured<'_>, depth: u32) -> Result<Stmt> {
    let top = if depth == 0 || u.is_empty() { 5 } else { 6 };
    Ok(match u.int_in_range(0..=top)? {
        0 => Stmt::Assign(u.int_in_range(0..=5)?, expr(u, EXPR_DEPTH)?),
        1 => Stmt::Closure(u.int_in_range(0..=2)?, expr(u, EXPR_DEPTH)?),
        2 => Stmt::Call(u.int_in_range(0..=2)?, u.int_in_range(0..=5)?),
        3 => Stmt::TableSet(u.int_in_range(0..=2)?, u.int_in_range(0..=3)?, expr(u, EXPR_DEPTH)?),
        4 => Stmt::Print(expr(u, EXPR_DEPTH)?),
        5 => Stmt::Generator(u.int_in_range(0..=5)?, u.int_in_range(1..=5)?),
        _ => {
            let n = u.int_in_range(1..=BODY)?;
            let mut body = Vec::with_capacity(n);
            for _ in 0..n {
                body.push(stmt(u, depth - 1)?);
            }
            Stmt::Loop(u.int_in_range(0..=5)?, u.int_in_range(1..=11)?, body)
        }
    })
}

impl<'a> Arbitrary<'a> for Program {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let n = u.int_in_range(1..=STMTS)?;
        let mut stmts = Vec::with_capacity(n);
        for _ in 0..n {
            stmts.push(stmt(u, LOOP_DEPTH)?);
        }
        Ok(Program { stmts })
    }
}

fn render_expr(e: &Expr) -> String {
    match e {
        Expr::Const(c) => c.to_string(),
        Expr::Var(v) => format!("v{v}"),
        Expr::Add(a, b) => format!("({} + {})", render_expr(a), render_expr(b)),
        Expr::Mul(a, b) => format!("(({} * {}) % 1000003)", render_expr(a), render_expr(b)),
        Expr::Mod(a, m) => format!("({} % {m})", render_expr(a)),
        Expr::TableGet(t, k) => format!("(t{t}[{}] or 0)", k + 1),
    }
}

fn render(stmts: &[Stmt], depth: usize, out: &mut String) {
    let pad = "    ".repeat(depth);
    for s in stmts {
        match s {
            Stmt::Assign(v, e) => *out += &format!("{pad}v{v} = {}\n", render_expr(e)),
            Stmt::Loop(v, n, body) => {
                *out += &format!("{pad}for i{depth} = 1, {n} do\n{pad}    v{v} = (v{v} + i{depth}) % 100003\n");
                render(body, depth + 1, out);
                *out += &format!("{pad}end\n");
            }
            Stmt::Closure(f, e) => {
                *out += &format!("{pad}f{f} = function(x) return (x + {}) % 100003 end\n", render_expr(e))
            }
            Stmt::Call(f, v) => *out += &format!("{pad}v{v} = f{f}(v{v})\n"),
            Stmt::TableSet(t, k, e) => *out += &format!("{pad}t{t}[{}] = {}\n", k + 1, render_expr(e)),
            Stmt::Print(e) => *out += &format!("{pad}print({})\n", render_expr(e)),
            Stmt::Generator(v, n) => {
                *out += &format!(
                    "{pad}for g in coroutine.wrap(function() for j = 1, {n} do coroutine.yield(j * 3) end end) do v{v} = (v{v} + g) % 100003 end\n"
                )
            }
        }
    }
}

impl Program {
    /// The program as Luau source.
    pub fn source(&self) -> String {
        let mut s = String::from("local v0, v1, v2, v3, v4, v5 = 1, 2, 3, 4, 5, 6\nlocal t0, t1, t2 = {}, {}, {}\n");
        s += "local f0, f1, f2 = function(x) return x end, function(x) return x + 1 end, function(x) return x * 2 % 100003 end\n";
        render(&self.stmts, 0, &mut s);
        s += "print(v0, v1, v2, v3, v4, v5, #t0, #t1, #t2)\nresult = {v0, v1, t0, t1, t2}\n";
        s
    }

    /// A program from raw bytes (short inputs give small programs; never fails).
    pub fn from_bytes(bytes: &[u8]) -> Program {
        Program::arbitrary(&mut Unstructured::new(bytes)).unwrap_or(Program { stmts: vec![] })
    }
}

/// A differential case: a program and where, as fractions of its run, to persist it.
#[derive(Debug, Clone)]
pub struct DifferentialCase {
    pub program: Program,
    /// Up to three persist points, as fractions (0..=255 of 255) of the fresh run's points.
    pub points: Vec<u8>,
}

impl<'a> Arbitrary<'a> for DifferentialCase {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let n = u.int_in_range(1..=3)?;
        let mut points = Vec::with_capacity(n);
        for _ in 0..n {
            points.push(u.arbitrary()?);
        }
        Ok(DifferentialCase { program: Program::arbitrary(u)?, points })
    }
}
