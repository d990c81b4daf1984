//! Freeing long chains of Deferreds without deep C recursion, on CPython 3.13.
//!
//! Freeing a Deferred frees what it holds (its result, its callbacks), which may be
//! other Deferreds holding more: a chain a million long is freed by nested
//! deallocations.  CPython's "trashcan" stops that nesting by putting objects aside
//! and freeing them once the outermost deallocation is done.  Up to 3.12 it steps in
//! after 50 nested levels, and from 3.14 on when the real C stack runs low; on 3.13
//! only near its C recursion limit (10,000 levels).  Each level of a txdefer chain
//! takes more C stack than a level of Twisted's, so there a chain of more than about
//! 10,000 needed twice the stack Twisted needs (4 MiB instead of 2) and crashed a
//! thread given less.
//!
//! On 3.13, therefore, a Deferred's state keeps its own count of nested teardowns on
//! this thread.  Past `MAX_NESTING`, what the state holds is put aside, and the
//! outermost teardown frees it after its own, in a loop, as the trashcan does.  On
//! every other version the state is freed as any Rust value is: that costs nothing
//! and CPython's trashcan is enough.

use std::cell::{Cell, RefCell};

use crate::deferred::State;

/// Nested teardowns after which the rest is put aside (CPython's trashcan used 50).
const MAX_NESTING: u32 = 50;

thread_local! {
    /// Teardowns of states in progress on this thread.
    static NESTING: Cell<u32> = const { Cell::new(0) };
    /// States put aside, freed by the outermost teardown.
    static PUT_ASIDE: RefCell<Vec<State>> = const { RefCell::new(Vec::new()) };
}

impl Drop for State {
    fn drop(&mut self) {
        if self.holds_nothing() {
            return;
        }
        NESTING.with(|count| {
            let nesting = count.get() + 1;
            count.set(nesting);
            if nesting <= MAX_NESTING || !put_aside(self) {
                self.release();
            }
            if nesting == 1 {
                // The outermost teardown: free what was put aside, one state at a
                // time.  The count stays at 1 meanwhile, so that those teardowns
                // (which may put more aside) do not drain the list themselves, one
                // inside the other.
                while let Some(held) = PUT_ASIDE.try_with(|aside| aside.borrow_mut().pop()).ok().flatten() {
                    drop(held);
                }
            }
            count.set(nesting - 1);
        });
    }
}

impl State {
    /// Nothing that could free another object.
    fn holds_nothing(&self) -> bool {
        self.result.is_none()
            && self.canceller.is_none()
            && self.chained_to.is_none()
            && self.debug_info.is_none()
            && self.callbacks.is_empty()
    }

    /// Free what the state holds, in the order its fields are declared (the order in
    /// which they would be freed without this `Drop`).
    fn release(&mut self) {
        drop(self.result.take());
        drop(self.canceller.take());
        drop(self.chained_to.take());
        drop(self.debug_info.take());
        if !self.callbacks.is_empty() {
            drop(self.callbacks.take());
        }
    }
}

/// Move what `state` holds to the list the outermost teardown frees; false if the
/// list is gone (the thread is exiting), and nothing was moved.
fn put_aside(state: &mut State) -> bool {
    PUT_ASIDE
        .try_with(|aside| aside.borrow_mut().push(std::mem::take(state)))
        .is_ok()
}
