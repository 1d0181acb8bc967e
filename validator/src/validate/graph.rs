//! The object graph (petgraph): everything reachable from the roots, open upvalues owned by
//! exactly the thread they point into, coroutine resume chains acyclic and consistent with the
//! threads' statuses.

use super::frames::{CallFrameKind, ThreadLayout};
use super::{Context, obj};
use crate::bits::Marks;
use crate::contract::{CRole, vm};
use crate::diagnostics::{Code, Segment, Sink};
use crate::snapshot::*;
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::HashMap;

pub(crate) fn check(ctx: &Context<'_>, reach: Reach, chains: Chains, sink: &mut Sink) {
    Graph { ctx, sink }.run(reach, chains)
}

/// Which objects the walk from the main thread reaches, computed during the validator's pass
/// over the objects in index order: an object reached before the pass gets to it is expanded
/// when the pass decodes it anyway; one reached only after the pass went by (a reference back
/// to a lower index) is decoded and expanded at once, with an explicit stack (no recursion an
/// attacker can deepen). Each reached object is expanded once, one bit per object; a capture,
/// whose objects are numbered breadth-first from the main thread, needs no second decode. A
/// reference out of range is skipped (the references family reports it).
pub(crate) struct Reach {
    reached: Marks,
    behind: Vec<u32>,
    /// Open upvalues, for the ownership checks (a bit each: an open upvalue may be four bytes).
    open: Marks,
}

impl Reach {
    pub(crate) fn new(ctx: &Context<'_>) -> Reach {
        Reach::from(ctx.s.object_count(), ctx.s.roots.main_thread)
    }

    fn from(n: usize, root: u32) -> Reach {
        let mut reached = Marks::new(n);
        reached.mark(root);
        Reach { reached, behind: Vec::new(), open: Marks::new(n) }
    }

    /// Object `i` (`o`), as the pass reaches it.
    pub(crate) fn object(&mut self, ctx: &Context<'_>, i: u32, o: &ObjectRef<'_>) {
        if let ObjectRef::Upvalue(Upvalue::Open { .. }) = o {
            self.open.mark(i);
        }
        self.visit(
            i,
            |w| matches!(ctx.object_kind(w), Some(ObjectKind::String | ObjectKind::Buffer)),
            |_, f| o.for_each_reference(f),
            |v, f| {
                if let Some(ov) = ctx.s.object(v) {
                    ov.for_each_reference(f)
                }
            },
        );
    }

    /// The pass at object `i`: `refs_here` gives its references, `refs(v, f)` those of object
    /// `v` behind it, and `leaf(w)` whether object `w` refers to nothing (strings and buffers):
    /// those are never stacked (a million of them referred to from behind would otherwise stack
    /// four bytes each).
    fn visit(
        &mut self,
        i: u32,
        leaf: impl Fn(u32) -> bool,
        refs_here: impl FnOnce(u32, &mut dyn FnMut(u32)),
        mut refs: impl FnMut(u32, &mut dyn FnMut(u32)),
    ) {
        if !self.reached.get(i) {
            return;
        }
        // A newly reached object behind the pass is expanded at once; one ahead of it, when the
        // pass decodes it.
        let mark = |reached: &mut Marks, behind: &mut Vec<u32>, w: u32, at: u32| {
            if reached.mark(w) && w <= at && !leaf(w) {
                behind.push(w);
            }
        };
        let Reach { reached, behind, .. } = self;
        refs_here(i, &mut |w| mark(reached, behind, w, i));
        while let Some(v) = behind.pop() {
            refs(v, &mut |w| mark(reached, behind, w, i));
        }
    }
}

/// What the graph checks keep of the threads as they go by: which thread each resumes, and
/// which open upvalues some thread lists. Statuses are read from the snapshot when needed.
pub(crate) struct Chains {
    /// (thread, the thread it resumes), in thread order: at most one chain's worth
    /// ([`vm::MAX_RESUME_DEPTH`]; every resuming thread is on the chain from the main thread),
    /// so a snapshot of a million resuming threads holds no more than that here.
    resuming: Vec<(u32, u32)>,
    /// Whether more threads than that resume others (refused).
    too_many: bool,
    /// Open upvalues some thread lists (a bit each).
    listed: Marks,
}

impl Chains {
    pub(crate) fn new(ctx: &Context<'_>) -> Chains {
        Chains { resuming: Vec::new(), too_many: false, listed: Marks::new(ctx.s.object_count()) }
    }

    /// Thread object `ti` (`t`), with its derived layout when its frames were accepted.
    pub(crate) fn thread(
        &mut self,
        ctx: &Context<'_>,
        ti: u32,
        t: &Thread,
        layout: Option<&ThreadLayout>,
        sink: &mut Sink,
    ) {
        // Open upvalues: listed by exactly the thread they point into, once; one per slot (a
        // bit per stack slot; a slot past the stack is refused by the references family).
        let mut slots = Marks::new(t.stack.len());
        for &u in &t.open_upvalues {
            let here = || obj(ObjectKind::Thread, ti).with(Segment::Field("open upvalues"));
            if ctx.object_kind(u) != Some(ObjectKind::Upvalue) {
                continue; // reported by the references family
            }
            match ctx.object(u) {
                Some(ObjectRef::Upvalue(Upvalue::Open { thread, slot })) => {
                    if thread != ti {
                        sink.error(
                            Code::UpvalueOwnership,
                            here(),
                            format!("lists upvalue#{u}, which points into thread#{thread}"),
                        );
                    }
                    if (slot as usize) < t.stack.len() && !slots.mark(slot) {
                        sink.error(Code::DuplicateOpenSlot, here(), format!("two open upvalues for stack slot {slot}"));
                    }
                }
                Some(ObjectRef::Upvalue(Upvalue::Closed(_))) => {
                    sink.error(Code::UpvalueOwnership, here(), format!("lists upvalue#{u}, which is closed"));
                }
                _ => continue,
            }
            if !self.listed.mark(u) {
                sink.error(
                    Code::UpvalueOwnership,
                    obj(ObjectKind::Upvalue, u),
                    format!("listed as open more than once (again by thread#{ti})"),
                );
            }
        }
        let child = layout.and_then(|layout| {
            let child = resumed_child(ctx, t, layout);
            if child.is_none()
                && let Some(CallFrameKind::C { role: role @ (CRole::Resume | CRole::WrappedResume), .. }) =
                    layout.frames.last().map(|f| f.kind)
            {
                sink.error(
                    Code::ResumeStatus,
                    obj(ObjectKind::Thread, ti),
                    format!(
                        "its top frame is {} but {} holds no thread to resume",
                        role.name(),
                        if role == CRole::Resume { "its first slot" } else { "the closure's first upvalue" }
                    ),
                );
            }
            child
        });
        if let Some(child) = child {
            if self.resuming.len() < vm::MAX_RESUME_DEPTH {
                self.resuming.push((ti, child));
            } else if !std::mem::replace(&mut self.too_many, true) {
                sink.error(
                    Code::ResumeChainTooDeep,
                    obj(ObjectKind::Thread, ti),
                    format!(
                        "more than {} threads are resuming others; the chain from the main thread, where each \
                         of them must be, holds at most that many",
                        vm::MAX_RESUME_DEPTH
                    ),
                );
            }
        }
    }
}

/// The thread a suspended thread is resuming: its top frame (as derived) is
/// `coroutine.resume` (child in its first slot) or a wrapped coroutine (child in the closure's
/// first upvalue). The host's chain walk reads exactly these places.
fn resumed_child(ctx: &Context<'_>, t: &Thread, layout: &ThreadLayout) -> Option<u32> {
    let top = layout.frames.last()?;
    let CallFrameKind::C { role, .. } = top.kind else { return None };
    let candidate = match role {
        CRole::Resume => t.stack.get(top.base as usize).copied(),
        CRole::WrappedResume => match t.stack.get(top.func as usize) {
            Some(Value::Object(c)) if ctx.object_kind(*c) == Some(ObjectKind::CClosure) => match ctx.object(*c) {
                Some(ObjectRef::CClosure(cc)) => cc.upvalues.first().copied(),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    };
    match candidate {
        Some(Value::Object(i)) if ctx.object_kind(i) == Some(ObjectKind::Thread) => Some(i),
        _ => None,
    }
}

struct Graph<'c, 'a> {
    ctx: &'c Context<'a>,
    sink: &'c mut Sink,
}

impl Graph<'_, '_> {
    fn run(&mut self, reach: Reach, chains: Chains) {
        let s = self.ctx.s;
        let n = s.object_count();
        if (s.roots.main_thread as usize) < n {
            for (i, kind) in s.kinds() {
                if !reach.reached.get(i) {
                    self.sink.error(
                        Code::OrphanObject,
                        obj(kind, i),
                        "not reachable from the main thread (a snapshot carries nothing the task cannot reach)",
                    );
                    if self.sink.is_full() {
                        break;
                    }
                }
            }
        }
        let open = s.indices_of(ObjectKind::Upvalue).filter(|&u| reach.open.get(u) && !chains.listed.get(u));
        for (ui, thread) in open.filter_map(|u| match s.upvalue(u)? {
            Upvalue::Open { thread, .. } => Some((u, thread)),
            Upvalue::Closed(_) => None,
        }) {
            if self.ctx.object_kind(thread) == Some(ObjectKind::Thread) {
                self.sink.error(
                    Code::UpvalueOwnership,
                    obj(ObjectKind::Upvalue, ui),
                    format!("open upvalue into thread#{thread} is not in that thread's open-upvalue list"),
                );
            }
        }
        self.check_resume_chains(&chains);
    }

    fn check_resume_chains(&mut self, chains: &Chains) {
        let s = self.ctx.s;
        let mut chain: DiGraph<u32, ()> = DiGraph::new();
        let mut node_of: HashMap<u32, NodeIndex> = HashMap::new();
        let mut parent_of: HashMap<u32, u32> = HashMap::new();
        let mut child_of: HashMap<u32, u32> = HashMap::new();
        let mut node = |g: &mut DiGraph<u32, ()>, i: u32| *node_of.entry(i).or_insert_with(|| g.add_node(i));
        for &(pi, child) in &chains.resuming {
            let status = s.thread_head(pi).map_or(ThreadStatus::Dead, |(status, _)| status);
            child_of.insert(pi, child);
            let (a, b) = (node(&mut chain, pi), node(&mut chain, child));
            chain.add_edge(a, b, ());
            if let Some(other) = parent_of.insert(child, pi) {
                self.sink.error(
                    Code::ResumedTwice,
                    obj(ObjectKind::Thread, child),
                    format!("resumed by thread#{other} and by thread#{pi} at once"),
                );
            }
            if status != ThreadStatus::Preempted {
                self.sink.error(
                    Code::ResumeStatus,
                    obj(ObjectKind::Thread, pi),
                    format!("is resuming thread#{child} but is {}, not pre-empted", status.name()),
                );
            }
            if let Some((c, _)) = s.thread_head(child)
                && c != ThreadStatus::Preempted
            {
                self.sink.error(
                    Code::ResumeStatus,
                    obj(ObjectKind::Thread, child),
                    format!("thread#{pi} is pre-empted while resuming it, but it is {}", c.name()),
                );
            }
        }
        if !petgraph::algo::is_cyclic_directed(&chain) {
            // The host resumes a chain from its innermost thread; the VM nests resumes at most
            // LUAI_MAXCCALLS deep, and so does the host's walk.
            let mut depth = 1;
            let mut at = s.roots.main_thread;
            while let Some(&next) = child_of.get(&at) {
                depth += 1;
                at = next;
                if depth > vm::MAX_RESUME_DEPTH {
                    self.sink.error(
                        Code::ResumeChainTooDeep,
                        obj(ObjectKind::Thread, s.roots.main_thread),
                        format!(
                            "the resume chain from the main thread is deeper than {} threads",
                            vm::MAX_RESUME_DEPTH
                        ),
                    );
                    break;
                }
            }
        } else {
            let scc = petgraph::algo::tarjan_scc(&chain);
            for component in scc.into_iter().filter(|c| c.len() > 1 || c.iter().any(|&n| chain.contains_edge(n, n))) {
                let members: Vec<String> = component.iter().map(|&n| format!("thread#{}", chain[n])).collect();
                self.sink.error(
                    Code::ResumeCycle,
                    obj(ObjectKind::Thread, chain[component[0]]),
                    format!("resume chain forms a cycle: {}", members.join(" -> ")),
                );
            }
        }
        // A pre-empted coroutine is suspended only as part of a chain from the main thread.
        for ti in s.indices_of(ObjectKind::Thread) {
            let status = s.thread_head(ti).map_or(ThreadStatus::Dead, |(status, _)| status);
            if ti == s.roots.main_thread {
                if let Some(p) = parent_of.get(&ti) {
                    self.sink.error(
                        Code::ResumeStatus,
                        obj(ObjectKind::Thread, ti),
                        format!("the main thread is resumed by thread#{p}"),
                    );
                }
            } else if status == ThreadStatus::Preempted && !parent_of.contains_key(&ti) && !chains.too_many {
                self.sink.error(
                    Code::ResumeStatus,
                    obj(ObjectKind::Thread, ti),
                    "a pre-empted coroutine that no pre-empted thread is resuming",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Reach;
    use crate::snapshot::{Object, Upvalue, Value};

    fn upvalue_to(i: u32) -> Object {
        Object::Upvalue(Upvalue::Closed(Value::Object(i)))
    }

    /// The pass over `objects` in order from `root`, as the validator runs it.
    fn walk(objects: &[Object], root: u32) -> Vec<bool> {
        let mut reach = Reach::from(objects.len(), root);
        for i in 0..objects.len() as u32 {
            reach.visit(
                i,
                |w| matches!(objects.get(w as usize), Some(Object::String(_) | Object::Buffer(_))),
                |v, f| objects[v as usize].for_each_reference(f),
                |v, f| objects[v as usize].for_each_reference(f),
            );
        }
        (0..objects.len() as u32).map(|i| reach.reached.get(i)).collect()
    }

    #[test]
    fn reachability_follows_references_through_cycles_and_skips_out_of_range_ones() {
        // 0 -> 2 -> 1 -> 0 (a cycle), 3 -> 3, 4 -> 0 (4 is not reached), 5 -> #99 (out of range).
        let objects = vec![
            upvalue_to(2),
            upvalue_to(0),
            Object::Upvalue(Upvalue::Open { thread: 1, slot: 0 }),
            upvalue_to(3),
            upvalue_to(0),
            upvalue_to(99),
        ];
        assert_eq!(walk(&objects, 0), vec![true, true, true, false, false, false]);
        assert_eq!(walk(&objects, 4), vec![true, true, true, false, true, false]);
        assert_eq!(walk(&objects, 5), vec![false, false, false, false, false, true]);
        assert_eq!(walk(&objects[..1], 0), vec![true]);
    }

    #[test]
    fn references_back_past_the_pass_are_followed_at_once() {
        // 3 -> 1 -> 0 -> 2: everything the root reaches lies behind it or behind what it reaches.
        let objects = vec![upvalue_to(2), upvalue_to(0), upvalue_to(2), upvalue_to(1), upvalue_to(4)];
        assert_eq!(walk(&objects, 3), vec![true, true, true, true, false]);
        // A chain that points backwards all the way down is walked without recursion.
        let n = 100_000u32;
        let chain: Vec<Object> = (0..n).map(|i| upvalue_to(i.saturating_sub(1))).collect();
        assert!(walk(&chain, n - 1).iter().all(|&r| r));
    }
}
