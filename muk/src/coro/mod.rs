//! MUK2: every server a stackful coroutine (corosensei) on one scheduler thread.
//!
//! - `kernel`: the tasks, what each waits for, the rendezvous between two of them;
//! - `ctx`: the [`crate::Ipc`] a task's server calls (local hand-offs, or the fabric);
//! - `scheduler`: the FIFO ready queue, the timers, the one shared doorbell it sleeps on;
//! - `timer`: millisecond deadlines;
//! - `io`: the tasks' sockets, and the one sleep on the doorbell and the sockets together;
//! - `guard`: a stack overflow reported with the server's name.

mod ctx;
mod guard;
mod io;
pub(crate) use guard::server_at;
mod kernel;
mod scheduler;
mod timer;

pub use io::{IoSleepStats, io_sleep_stats};

use crate::runner::{EndGuard, Hosted, ServerExit, Stopper};
use corosensei::Coroutine;
use corosensei::stack::DefaultStack;
use m3ipc::Proc;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::thread::JoinHandle;

/// Start the scheduler thread with every server as a coroutine.
pub(crate) fn spawn(
    servers: Vec<Hosted>,
    procs: Vec<Proc>,
    stopper: Stopper,
) -> std::io::Result<JoinHandle<Vec<ServerExit>>> {
    crate::sandbox::runner_starting();
    std::thread::Builder::new()
        .name("muk2".into())
        .spawn(move || {
            let _ended = EndGuard {
                stopper: stopper.clone(),
                thread: 0,
            };
            run(servers, procs, &stopper)
        })
}

fn run(servers: Vec<Hosted>, procs: Vec<Proc>, stopper: &Stopper) -> Vec<ServerExit> {
    let _altstack = guard::ensure_altstack();
    let names: Vec<String> = servers.iter().map(|s| s.name.clone()).collect();
    let k = Rc::new(kernel::Kernel::new(procs, names, stopper.clone()));
    let mut guards = Vec::new();
    for (i, hosted) in servers.into_iter().enumerate() {
        let Hosted {
            name,
            stack_size,
            mut server,
            ..
        } = hosted;
        let stack = match DefaultStack::new(stack_size) {
            Ok(s) => s,
            Err(e) => {
                k.exits.borrow_mut()[i] = Some(ServerExit {
                    name,
                    result: Err(format!("cannot map a stack of {stack_size} bytes: {e}")),
                });
                k.finish(i);
                continue;
            }
        };
        guards.push(guard::register(&stack, stack_size, &name));
        let k2 = Rc::clone(&k);
        let co: scheduler::TaskCoroutine =
            Coroutine::with_stack(stack, move |y: &ctx::TaskYielder, _| {
                let result = match ctx::CoroIpc::new(&k2, i, y) {
                    Some(mut ipc) => {
                        match catch_unwind(AssertUnwindSafe(|| server.serve(&mut ipc))) {
                            Ok(Ok(())) => Ok(()),
                            Ok(Err(e)) => Err(format!("{e}")),
                            Err(_) => Err("panicked".into()),
                        }
                    }
                    None => Err(format!("no task {i}")),
                };
                if let Some(exit) = k2.exits.borrow_mut().get_mut(i) {
                    *exit = Some(ServerExit { name, result });
                }
            });
        if let Some(task) = k.tasks.get(i) {
            *task.co.borrow_mut() = Some(co);
        }
    }
    // Stacks, signal stack and handlers are in place: the sandbox may close in.
    crate::sandbox::runner_ready();
    let out = scheduler::run(&k, stopper);
    // The coroutines hold the kernel (a cycle through `Rc`): drop them, then their guards.
    for task in &k.tasks {
        task.co.borrow_mut().take();
    }
    drop(guards);
    out
}
