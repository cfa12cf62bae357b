//! Splitting CPU-bound work of one batch over the machine's cores, with
//! scoped threads (no pool, no dependency). Small inputs stay on the
//! calling thread; if a thread cannot be spawned, its share runs inline.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Inputs shorter than this are not worth a thread.
const MIN_PARALLEL: usize = 4096;

/// The number of worker threads, asked once: `available_parallelism`
/// reads cgroup files on Linux, which cost more than a small batch.
fn threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get))
}

/// `f(index, item)` for every item, in order, on up to
/// `available_parallelism` threads working on contiguous chunks.
pub(crate) fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(usize, &T) -> R + Sync) -> Vec<R> {
    if items.len() < MIN_PARALLEL || threads() < 2 {
        return items.iter().enumerate().map(|(i, t)| f(i, t)).collect();
    }
    let threads = threads();
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let run = move |start: usize, part: &[T]| -> Vec<R> {
            part.iter()
                .enumerate()
                .map(|(i, t)| f(start + i, t))
                .collect()
        };
        let mut parts = items.chunks(chunk).enumerate();
        let first = parts.next();
        let spawned: Vec<_> = parts
            .map(|(k, part)| {
                let start = k * chunk;
                (
                    start,
                    part,
                    std::thread::Builder::new()
                        .spawn_scoped(scope, move || run(start, part))
                        .ok(),
                )
            })
            .collect();
        let mut out = Vec::with_capacity(items.len());
        if let Some((_, part)) = first {
            out.extend(run(0, part));
        }
        for (start, part, handle) in spawned {
            match handle.map(|h| h.join()) {
                Some(Ok(results)) => out.extend(results),
                // Not spawned, or panicked (then the same panic recurs here).
                _ => out.extend(run(start, part)),
            }
        }
        out
    })
}

/// Runs `job(k)` for every `k` in `0..jobs` on up to `available_parallelism`
/// threads, each taking the next job when done (so that at most one job
/// per thread holds its scratch memory at a time); results in job order.
pub(crate) fn jobs<R: Send>(jobs: usize, job: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            if k >= jobs {
                return done;
            }
            done.push((k, job(k)));
        }
    };
    let helpers = threads().min(jobs).saturating_sub(1);
    let mut results: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..helpers)
            .filter_map(|_| std::thread::Builder::new().spawn_scoped(scope, work).ok())
            .collect();
        let mut all = work();
        for h in handles {
            // A helper fails only by panicking; its unfinished job is lost
            // and redone below.
            all.extend(h.join().unwrap_or_default());
        }
        all
    });
    results.sort_by_key(|(k, _)| *k);
    let mut out = Vec::with_capacity(jobs);
    let mut have = results.into_iter().peekable();
    for k in 0..jobs {
        match have.next_if(|(j, _)| *j == k) {
            Some((_, r)) => out.push(r),
            None => out.push(job(k)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn map_keeps_order_and_indexes() {
        let items: Vec<u64> = (0..10_000).collect();
        let out = super::map(&items, |i, &v| (i as u64, v * 2));
        assert!(out
            .iter()
            .enumerate()
            .all(|(i, &(j, v))| j == i as u64 && v == 2 * i as u64));
    }

    #[test]
    fn jobs_returns_every_result_in_order() {
        assert_eq!(
            super::jobs(9, |k| k * k),
            (0..9).map(|k| k * k).collect::<Vec<_>>()
        );
        assert!(super::jobs(0, |k| k).is_empty());
    }
}
