//! A fixed set of objects (ONNX sessions) handed out one at a time. `Session::run` needs
//! `&mut`, so each concurrent inference takes its own session.

use std::sync::{Condvar, Mutex};

pub struct Pool<T> {
    items: Mutex<Vec<T>>,
    available: Condvar,
    size: usize,
}

impl<T> Pool<T> {
    pub fn new(items: Vec<T>) -> Self {
        let size = items.len();
        Pool { items: Mutex::new(items), available: Condvar::new(), size }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Runs `f` with an item, waiting for one to be free.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut item = {
            let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(item) = items.pop() {
                    break item;
                }
                items = self.available.wait(items).unwrap_or_else(|p| p.into_inner());
            }
        };
        let result = f(&mut item);
        self.items.lock().unwrap_or_else(|p| p.into_inner()).push(item);
        self.available.notify_one();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::Pool;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn never_hands_out_more_than_it_has() {
        let pool = Pool::new(vec![0u32, 0]);
        let busy = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..50 {
                        pool.with(|n| {
                            let now = busy.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(now, Ordering::SeqCst);
                            *n += 1;
                            std::thread::yield_now();
                            busy.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                });
            }
        });
        assert!(peak.load(Ordering::SeqCst) <= 2);
    }
}
