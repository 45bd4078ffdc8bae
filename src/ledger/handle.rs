//! [`LedgerHandle`]: the ledger on a thread of its own, for async callers.
//!
//! Calls queue up while the thread works; the thread then runs everything waiting in
//! one transaction and answers each caller only after that transaction is on disk.
//! Each call is its own savepoint, so one failing call leaves the others intact.

use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use tokio::sync::oneshot;

use super::{FileCause, Ledger, LedgerError};

/// Tells a caller how its call ended, once the batch's commit result is known.
type Finish = Box<dyn FnOnce(Option<&LedgerError>) + Send>;
/// One call: runs against the ledger and returns how to answer it.
type Job = Box<dyn FnOnce(&mut Ledger) -> Finish + Send>;

/// Most calls grouped into one commit.
const MAX_BATCH: usize = 256;

/// How often the write-ahead log is folded into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The ledger for async code. Cheap to clone; the thread stops when every clone is
/// dropped.
#[derive(Clone)]
pub struct LedgerHandle {
    jobs: std_mpsc::Sender<Job>,
}

impl LedgerHandle {
    /// Moves the ledger onto its own thread, with a second thread that checkpoints
    /// the write-ahead log into the database file in the background, so commits on
    /// the refund path never wait for a checkpoint.
    pub fn spawn(mut ledger: Ledger) -> Result<LedgerHandle, LedgerError> {
        let thread_error = |e: std::io::Error| LedgerError::File {
            path: "ledger thread".into(),
            reason: e.to_string(),
            cause: Some(FileCause::Io(Arc::new(e))),
        };
        let mut checkpointer = ledger.checkpointer()?;
        ledger.leave_checkpoints_to_background()?;
        let (jobs, queue) = std_mpsc::channel::<Job>();
        let (stop_tx, stop_rx) = std_mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("ledger".into())
            .spawn(move || {
                run(ledger, queue);
                drop(stop_tx);
            })
            .map_err(thread_error)?;
        std::thread::Builder::new()
            .name("ledger-checkpoint".into())
            .spawn(move || {
                // Ends when the ledger thread ends (its sender is dropped).
                while let Err(std_mpsc::RecvTimeoutError::Timeout) =
                    stop_rx.recv_timeout(CHECKPOINT_EVERY)
                {
                    if let Err(e) = checkpointer.checkpoint() {
                        tracing::warn!("ledger checkpoint: {e}");
                    }
                }
                let _ = checkpointer.checkpoint();
            })
            .map_err(thread_error)?;
        Ok(LedgerHandle { jobs })
    }

    /// Runs `f` on the ledger and returns its result once it is committed.
    pub async fn call<R, F>(&self, f: F) -> Result<R, LedgerError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Ledger) -> Result<R, LedgerError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |ledger: &mut Ledger| {
            let result = f(ledger);
            Box::new(move |commit: Option<&LedgerError>| {
                let answer = match commit {
                    Some(e) => Err(e.clone()),
                    None => result,
                };
                let _ = tx.send(answer);
            })
        });
        self.jobs.send(job).map_err(|_| LedgerError::Closed)?;
        rx.await.unwrap_or(Err(LedgerError::Closed))
    }
}

fn run(mut ledger: Ledger, queue: std_mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        // Without the outer transaction each call still commits alone.
        let batched = match ledger.begin_batch() {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("ledger: cannot group changes ({e}); committing one by one");
                false
            }
        };
        let mut finishes = vec![first(&mut ledger)];
        while finishes.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => finishes.push(job(&mut ledger)),
                Err(_) => break,
            }
        }
        let commit = if batched {
            ledger.commit_batch().err()
        } else {
            None
        };
        if let Some(e) = &commit {
            tracing::error!("ledger commit failed: {e}");
        }
        for finish in finishes {
            finish(commit.as_ref());
        }
    }
}
