//! What the follower reports: its state, the position applied, lag and
//! skipped rows, shared between the follower task and the HTTP handlers.
//! Readers wait on the applied position for `X-Min-LSN`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pg_walstream::SharedLsnFeedback;
use tokio::sync::{watch, Notify};

/// A PostgreSQL WAL position, `X/Y` in text (two hexadecimal halves).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// Parses `X/Y`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Lsn> {
        let (high, low) = text.trim().split_once('/')?;
        let hex = |s: &str| {
            (!s.is_empty() && s.len() <= 8 && s.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u32::from_str_radix(s, 16).ok())
                .flatten()
        };
        Some(Lsn((u64::from(hex(high)?) << 32) | u64::from(hex(low)?)))
    }
}

impl std::fmt::Display for Lsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

/// The follower's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The initial copy (or a snapshot's load) is under way.
    Syncing,
    /// Streaming, every change applied as it arrives.
    Following,
    /// The source cannot be read (reconnecting, or a fault that needs an
    /// operator); reads are answered from the last version.
    Degraded,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Syncing => "syncing",
            State::Following => "following",
            State::Degraded => "degraded",
        }
    }
}

/// What the follower tells the replication slot it may forget: tracked
/// from the transactions the reader hands on and the snapshots written.
#[derive(Debug, Default)]
struct Confirm {
    /// The current stream's feedback (its client sends what it holds).
    feedback: Option<Arc<SharedLsnFeedback>>,
    /// Snapshots are kept: only what they hold may be confirmed.
    snapshots: bool,
    /// A transaction is being received.
    in_transaction: bool,
    /// The end of the last transaction received.
    last_commit: u64,
    /// Everything received is confirmed (the client caps the value at what
    /// it received).
    everything: bool,
}

/// Shared between the follower and the handlers.
#[derive(Debug)]
pub struct Status {
    state: Mutex<(State, Option<String>)>,
    applied: watch::Sender<Lsn>,
    /// The position of the newest snapshot written (0: none).
    durable: AtomicU64,
    lag_ms: AtomicU64,
    skipped_rows: AtomicU64,
    /// Woken when a reader waits for a position not yet applied: the
    /// follower then asks the source for a heartbeat at once.
    pub wanted: Notify,
    confirm: Mutex<Confirm>,
}

impl Default for Status {
    fn default() -> Status {
        Status {
            state: Mutex::new((State::Syncing, None)),
            applied: watch::Sender::new(Lsn::default()),
            durable: AtomicU64::new(0),
            lag_ms: AtomicU64::new(0),
            skipped_rows: AtomicU64::new(0),
            wanted: Notify::new(),
            confirm: Mutex::new(Confirm::default()),
        }
    }
}

impl Status {
    pub fn state(&self) -> (State, Option<String>) {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Sets the state and its reason (`None` clears it).
    pub fn set_state(&self, state: State, reason: Option<String>) {
        *self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (state, reason);
    }

    pub fn applied(&self) -> Lsn {
        *self.applied.borrow()
    }

    /// A version holding every change up to `lsn` is published.
    pub fn set_applied(&self, lsn: Lsn) {
        self.applied.send_if_modified(|at| {
            let newer = lsn > *at;
            if newer {
                *at = lsn;
            }
            newer
        });
    }

    pub fn durable(&self) -> Lsn {
        Lsn(self.durable.load(Ordering::Relaxed))
    }

    /// A snapshot holding every change up to `lsn` is written.
    pub fn set_durable(&self, lsn: Lsn) {
        self.durable.fetch_max(lsn.0, Ordering::Relaxed);
        self.refresh_confirm();
    }

    fn confirm(&self) -> std::sync::MutexGuard<'_, Confirm> {
        self.confirm
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new stream starts at `at`, everything before it applied.
    pub fn attach_feedback(&self, feedback: Arc<SharedLsnFeedback>, snapshots: bool, at: Lsn) {
        {
            let mut c = self.confirm();
            *c = Confirm {
                feedback: Some(feedback),
                snapshots,
                in_transaction: false,
                last_commit: at.0,
                everything: false,
            };
        }
        self.refresh_confirm();
    }

    /// A transaction begins on the stream. When everything received was
    /// being confirmed, the stream gets a fresh feedback holding only the
    /// durable position (a client's feedback never moves back), returned
    /// for the reader to install before it reads on.
    pub fn transaction_begins(&self) -> Option<Arc<SharedLsnFeedback>> {
        let mut c = self.confirm();
        c.in_transaction = true;
        if !(c.snapshots && c.everything) {
            return None;
        }
        let fresh = SharedLsnFeedback::new_shared();
        let durable = self.durable().0;
        fresh.update_flushed_lsn(durable);
        fresh.update_applied_lsn(durable);
        c.feedback = Some(fresh.clone());
        c.everything = false;
        Some(fresh)
    }

    /// A transaction ending at `end` was received whole.
    pub fn transaction_ends(&self, end: Lsn) {
        {
            let mut c = self.confirm();
            c.in_transaction = false;
            c.last_commit = c.last_commit.max(end.0);
        }
        self.refresh_confirm();
    }

    /// Tells the stream's client what the slot may forget. Without
    /// snapshots, everything received: a restart copies afresh anyway. With
    /// them, what the newest snapshot holds; and everything received when
    /// no transaction is open and the snapshot holds every one received,
    /// so that PostgreSQL's shutdown, which waits for its senders' WAL to be
    /// confirmed, is not held up by an idle follower.
    pub fn refresh_confirm(&self) {
        let durable = self.durable().0;
        let mut c = self.confirm();
        let everything = !c.snapshots || (!c.in_transaction && c.last_commit <= durable);
        let value = if everything { u64::MAX } else { durable };
        if let Some(feedback) = &c.feedback {
            feedback.update_flushed_lsn(value);
            feedback.update_applied_lsn(value);
        }
        c.everything = everything;
    }

    pub fn lag_ms(&self) -> u64 {
        self.lag_ms.load(Ordering::Relaxed)
    }

    pub fn set_lag(&self, lag: Duration) {
        let ms = u64::try_from(lag.as_millis()).unwrap_or(u64::MAX);
        self.lag_ms.store(ms, Ordering::Relaxed);
    }

    pub fn skipped_rows(&self) -> u64 {
        self.skipped_rows.load(Ordering::Relaxed)
    }

    pub fn add_skipped(&self, n: u64) {
        self.skipped_rows.fetch_add(n, Ordering::Relaxed);
    }

    /// Waits until `lsn` is applied, at most `timeout`; whether it was.
    pub async fn wait_for(&self, lsn: Lsn, timeout: Duration) -> bool {
        if self.applied() >= lsn {
            return true;
        }
        self.wanted.notify_one();
        let mut applied = self.applied.subscribe();
        tokio::time::timeout(timeout, applied.wait_for(|&at| at >= lsn))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_read_and_write_as_postgresql_does() {
        assert_eq!(Lsn::parse("16/B374D848"), Some(Lsn(0x16_B374_D848)));
        assert_eq!(Lsn(0x16_B374_D848).to_string(), "16/B374D848");
        assert_eq!(Lsn::parse("0/0"), Some(Lsn(0)));
        for bad in ["", "16", "/1", "1/", "g/1", "1/2/3", "123456789/0"] {
            assert_eq!(Lsn::parse(bad), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn a_reader_waits_for_its_position_and_no_longer() {
        let status = std::sync::Arc::new(Status::default());
        status.set_applied(Lsn(10));
        assert!(status.wait_for(Lsn(10), Duration::ZERO).await);
        assert!(!status.wait_for(Lsn(11), Duration::from_millis(20)).await);
        let later = status.clone();
        let waiter =
            tokio::spawn(async move { later.wait_for(Lsn(12), Duration::from_secs(5)).await });
        status.set_applied(Lsn(12));
        assert!(waiter.await.expect("joined"));
    }
}
