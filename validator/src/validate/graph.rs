//! The object graph (petgraph): everything reachable from the roots, open upvalues owned by
//! exactly the thread they point into, coroutine resume chains acyclic and consistent with the
//! threads' statuses.

use super::frames::{CallFrameKind, ThreadLayout};
use super::{Context, obj};
use crate::contract::{CRole, vm};
use crate::diagnostics::{Code, Segment, Sink};
use crate::snapshot::*;
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::{HashMap, HashSet};

pub(crate) fn check(ctx: &Context<'_>, layouts: &super::Layouts, sink: &mut Sink) {
    Graph { ctx, sink }.run(layouts)
}

/// Which objects the walk from `root` reaches, following every reference of the model (a
/// reference out of range is skipped: the references family reported it, and a wrongly typed
/// one refuses the snapshot there too). Reachability is the one graph question asked of every
/// object, so it walks the model itself with an explicit stack (no recursion an attacker can
/// deepen) and one byte per object, instead of materialising the edges; the resume chains, a
/// handful of threads, use petgraph's algorithms.
fn reachable(objects: &[Object], root: u32) -> Vec<bool> {
    let n = objects.len();
    let mut reached = vec![false; n];
    let mut stack = vec![root];
    reached[root as usize] = true;
    while let Some(v) = stack.pop() {
        objects[v as usize].for_each_reference(|w| {
            if let Some(r) = reached.get_mut(w as usize)
                && !std::mem::replace(r, true)
            {
                stack.push(w);
            }
        });
    }
    reached
}

struct Graph<'c, 'a> {
    ctx: &'c Context<'a>,
    sink: &'c mut Sink,
}

impl Graph<'_, '_> {
    fn run(&mut self, layouts: &super::Layouts) {
        let s = self.ctx.s;
        let n = s.objects.len();
        if (s.roots.main_thread as usize) < n {
            let reached = reachable(&s.objects, s.roots.main_thread);
            for (i, r) in reached.iter().enumerate() {
                if !r {
                    self.sink.error(
                        Code::OrphanObject,
                        obj(s.objects[i].kind(), i as u32),
                        "not reachable from the main thread (a snapshot carries nothing the task cannot reach)",
                    );
                    if self.sink.is_full() {
                        break;
                    }
                }
            }
        }

        // Open upvalues: listed by exactly the thread they point into, once; one per slot.
        // Which thread lists each open upvalue (u32::MAX: none yet), indexed by object.
        let mut listed = vec![u32::MAX; s.objects.len()];
        for &ti in &self.ctx.threads {
            let Some(t) = self.ctx.thread(ti) else { continue };
            let mut slots: HashSet<u32> = HashSet::new();
            for &u in &t.open_upvalues {
                let here = || obj(ObjectKind::Thread, ti).with(Segment::Field("open upvalues"));
                match s.objects.get(u as usize) {
                    Some(Object::Upvalue(Upvalue::Open { thread, slot })) => {
                        if *thread != ti {
                            self.sink.error(
                                Code::UpvalueOwnership,
                                here(),
                                format!("lists upvalue#{u}, which points into thread#{thread}"),
                            );
                        }
                        if !slots.insert(*slot) {
                            self.sink.error(
                                Code::DuplicateOpenSlot,
                                here(),
                                format!("two open upvalues for stack slot {slot}"),
                            );
                        }
                    }
                    Some(Object::Upvalue(Upvalue::Closed(_))) => {
                        self.sink.error(Code::UpvalueOwnership, here(), format!("lists upvalue#{u}, which is closed"));
                    }
                    _ => continue, // reported by the references family
                }
                let prev = std::mem::replace(&mut listed[u as usize], ti);
                if prev != u32::MAX {
                    self.sink.error(
                        Code::UpvalueOwnership,
                        obj(ObjectKind::Upvalue, u),
                        format!("listed as open by thread#{prev} and again by thread#{ti}"),
                    );
                }
            }
        }
        for (ui, o) in s.objects.iter().enumerate() {
            if let Object::Upvalue(Upvalue::Open { thread, .. }) = o
                && listed[ui] == u32::MAX
                && matches!(s.objects.get(*thread as usize), Some(Object::Thread(_)))
            {
                self.sink.error(
                    Code::UpvalueOwnership,
                    obj(ObjectKind::Upvalue, ui as u32),
                    format!("open upvalue into thread#{thread} is not in that thread's open-upvalue list"),
                );
            }
        }

        self.check_resume_chains(layouts);
    }

    /// The thread a suspended thread is resuming: its top frame (as derived) is
    /// `coroutine.resume` (child in its first slot) or a wrapped coroutine (child in the
    /// closure's first upvalue). The host's chain walk reads exactly these places.
    fn resumed_child(&self, t: &Thread, layout: &ThreadLayout) -> Option<u32> {
        let top = layout.frames.last()?;
        let CallFrameKind::C { role, .. } = top.kind else { return None };
        let candidate = match role {
            CRole::Resume => t.stack.get(top.base as usize).copied(),
            CRole::WrappedResume => match t.stack.get(top.func as usize) {
                Some(Value::Object(c)) => match self.ctx.s.objects.get(*c as usize) {
                    Some(Object::CClosure(cc)) => cc.upvalues.first().copied(),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        };
        match candidate {
            Some(Value::Object(i)) if matches!(self.ctx.s.objects.get(i as usize), Some(Object::Thread(_))) => Some(i),
            _ => None,
        }
    }

    fn check_resume_chains(&mut self, layouts: &super::Layouts) {
        let s = self.ctx.s;
        let mut chain: DiGraph<u32, ()> = DiGraph::new();
        let mut node_of: HashMap<u32, NodeIndex> = HashMap::new();
        let mut parent_of: HashMap<u32, u32> = HashMap::new();
        let mut child_of: HashMap<u32, u32> = HashMap::new();
        let mut node = |g: &mut DiGraph<u32, ()>, i: u32| *node_of.entry(i).or_insert_with(|| g.add_node(i));
        for &pi in &self.ctx.threads {
            let Some(t) = self.ctx.thread(pi) else { continue };
            let Some(layout) = self.ctx.layout(layouts, pi) else { continue };
            let Some(child) = self.resumed_child(t, layout) else {
                if let Some(CallFrameKind::C { role: role @ (CRole::Resume | CRole::WrappedResume), .. }) =
                    layout.frames.last().map(|f| f.kind)
                {
                    self.sink.error(
                        Code::ResumeStatus,
                        obj(ObjectKind::Thread, pi),
                        format!(
                            "its top frame is {} but {} holds no thread to resume",
                            role.name(),
                            if role == CRole::Resume { "its first slot" } else { "the closure's first upvalue" }
                        ),
                    );
                }
                continue;
            };
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
            if t.status != ThreadStatus::Preempted {
                self.sink.error(
                    Code::ResumeStatus,
                    obj(ObjectKind::Thread, pi),
                    format!("is resuming thread#{child} but is {}, not pre-empted", t.status.name()),
                );
            }
            if let Some(Object::Thread(c)) = s.objects.get(child as usize)
                && c.status != ThreadStatus::Preempted
            {
                self.sink.error(
                    Code::ResumeStatus,
                    obj(ObjectKind::Thread, child),
                    format!("thread#{pi} is pre-empted while resuming it, but it is {}", c.status.name()),
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
        for &ti in &self.ctx.threads {
            let Some(t) = self.ctx.thread(ti) else { continue };
            if ti == s.roots.main_thread {
                if let Some(p) = parent_of.get(&ti) {
                    self.sink.error(
                        Code::ResumeStatus,
                        obj(ObjectKind::Thread, ti),
                        format!("the main thread is resumed by thread#{p}"),
                    );
                }
            } else if t.status == ThreadStatus::Preempted && !parent_of.contains_key(&ti) {
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
    use super::reachable;
    use crate::snapshot::{Object, Upvalue, Value};

    fn upvalue_to(i: u32) -> Object {
        Object::Upvalue(Upvalue::Closed(Value::Object(i)))
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
        assert_eq!(reachable(&objects, 0), vec![true, true, true, false, false, false]);
        assert_eq!(reachable(&objects, 4), vec![true, true, true, false, true, false]);
        assert_eq!(reachable(&objects, 5), vec![false, false, false, false, false, true]);
        assert_eq!(reachable(&objects[..1], 0), vec![true]);
    }
}
