//! Locks whose poisoning stops the process.
//!
//! A mutex is poisoned when a thread panicked while holding it: what it guards may be
//! half changed. Going on with it, or silently without it (a HELLO answered but the
//! terminal never registered), would act on state nobody can trust. So the process
//! says so and aborts, and systemd restarts it from the ledger, which is the truth.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`; a poisoned one stops the process.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(_) => poisoned(),
    }
}

#[cold]
fn poisoned() -> ! {
    let why =
        "a lock was poisoned by a panic while it was held; stopping, to restart from the ledger";
    tracing::error!("{why}");
    eprintln!("posbridge: {why}");
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_healthy_lock_is_taken_and_released() {
        let m = Mutex::new(1);
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 2);
    }
}
