//! `max_parallel`: slots handed out first come, first served, in the order the requests
//! were made.
//!
//! A semaphore would serve its waiters in the order their tasks happened to reach it,
//! which on a multi-threaded runtime is not the config's order: `-j 1` ran
//! build/test/deploy in a random order. Here a request takes its place in the queue
//! when it is made (the supervisor makes the first ones in config order, before any job
//! task runs), and waiting on it later keeps that place.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// The pool of slots; cheap to clone.
#[derive(Clone)]
pub struct Slots {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    free: usize,
    queue: VecDeque<oneshot::Sender<Permit>>,
}

/// One running job's slot; given back when dropped.
pub struct Permit {
    inner: Arc<Mutex<Inner>>,
}

/// A place in the queue.
pub struct Request {
    granted: oneshot::Receiver<Permit>,
}

impl Slots {
    pub fn new(count: usize) -> Self {
        Slots {
            inner: Arc::new(Mutex::new(Inner {
                free: count,
                queue: VecDeque::new(),
            })),
        }
    }

    /// Joins the queue now.
    pub fn request(&self) -> Request {
        let (tx, rx) = oneshot::channel();
        let mut inner = lock(&self.inner);
        inner.queue.push_back(tx);
        grant(&mut inner, &self.inner);
        Request { granted: rx }
    }
}

impl Request {
    /// The slot, if it was granted already.
    pub fn try_now(&mut self) -> Option<Permit> {
        self.granted.try_recv().ok()
    }

    /// Waits for the slot. Cancel safe: the place in the queue is kept until the
    /// request itself is dropped.
    pub async fn granted(&mut self) -> Option<Permit> {
        (&mut self.granted).await.ok()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut inner = lock(&self.inner);
        inner.free += 1;
        grant(&mut inner, &self.inner);
    }
}

/// Hands free slots to the front of the queue. A request dropped while waiting gives
/// its slot straight to the next one.
fn grant(inner: &mut MutexGuard<'_, Inner>, shared: &Arc<Mutex<Inner>>) {
    while inner.free > 0 {
        let Some(tx) = inner.queue.pop_front() else {
            return;
        };
        inner.free -= 1;
        let permit = Permit {
            inner: shared.clone(),
        };
        if let Err(unwanted) = tx.send(permit) {
            // Dropping it here would lock again: count the slot back by hand.
            std::mem::forget(unwanted);
            inner.free += 1;
        }
    }
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    inner
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_served_in_order() {
        let slots = Slots::new(1);
        let mut a = slots.request();
        let mut b = slots.request();
        let mut c = slots.request();
        let first = a.try_now().expect("a is first");
        assert!(b.try_now().is_none() && c.try_now().is_none());
        drop(first);
        assert!(c.try_now().is_none());
        let second = b.try_now().expect("b is next");
        // A request given up while waiting passes its turn on.
        drop(c);
        let mut d = slots.request();
        drop(second);
        assert!(d.try_now().is_some());
    }

    #[test]
    fn a_request_dropped_after_its_grant_frees_the_slot() {
        let slots = Slots::new(1);
        let a = slots.request();
        let mut b = slots.request();
        drop(a);
        assert!(b.try_now().is_some());
    }
}
