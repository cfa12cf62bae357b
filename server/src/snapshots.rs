//! Snapshots of the follower's store in `--snapshot-dir`: written
//! periodically and on shutdown, each with the replication position it
//! holds (the library's snapshot format carries it), and the newest loaded
//! at start. A snapshot is written to a temporary file, synced, then
//! renamed into place, so a crash leaves either the old newest or the new
//! one, whole.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use std::sync::Arc;
use std::time::Duration;

use backdex::{Engine, Store};
use pg_walstream::CancellationToken;

use crate::status::{Lsn, Status};

const PREFIX: &str = "backdex-";
const SUFFIX: &str = ".snap";
/// Snapshots kept: the newest and the one before (while the newest is
/// being read back after a crash, say).
const KEEP: usize = 2;

/// A snapshot's file name: its position, fixed-width hexadecimal, so that
/// names sort as positions do.
fn name(lsn: Lsn) -> String {
    format!("{PREFIX}{:016X}{SUFFIX}", lsn.0)
}

fn position_of_name(name: &str) -> Option<Lsn> {
    let hex = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    (hex.len() == 16).then(|| u64::from_str_radix(hex, 16).ok().map(Lsn))?
}

/// The snapshots in `dir`, oldest first.
fn list(dir: &Path) -> std::io::Result<Vec<(Lsn, PathBuf)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(lsn) = entry.file_name().to_str().and_then(position_of_name) {
            found.push((lsn, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// The newest snapshot: its store and position.
///
/// # Errors
///
/// The directory cannot be read, or the newest snapshot is damaged (the
/// message names the file; a damaged snapshot is not skipped silently).
pub fn load_newest(dir: &Path) -> Result<Option<(Store, Lsn)>, String> {
    let Some((lsn, path)) = list(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .pop()
    else {
        return Ok(None);
    };
    let file = File::open(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let restored = Store::read_snapshot(std::io::BufReader::new(file))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let held = std::str::from_utf8(&restored.position)
        .ok()
        .and_then(Lsn::parse);
    if held != Some(lsn) {
        return Err(format!(
            "{}: it holds position {:?}, its name says {lsn}",
            path.display(),
            String::from_utf8_lossy(&restored.position)
        ));
    }
    Ok(Some((restored.store, lsn)))
}

/// Writes `store` at `lsn` into `dir` and removes all but the newest
/// [`KEEP`]; returns the file written.
///
/// # Errors
///
/// Any I/O error, with the path.
pub fn write(dir: &Path, store: &Store, lsn: Lsn) -> Result<PathBuf, String> {
    let path = dir.join(name(lsn));
    let temporary = dir.join(format!(".{}.tmp", name(lsn)));
    let failed = |e: &dyn std::fmt::Display| format!("writing {}: {e}", temporary.display());
    let file = File::create(&temporary).map_err(|e| failed(&e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    store
        .write_snapshot(&mut out, lsn.to_string().as_bytes())
        .map_err(|e| failed(&e))?;
    out.flush().map_err(|e| failed(&e))?;
    let file = out.into_inner().map_err(|e| failed(&e.error()))?;
    file.sync_all().map_err(|e| failed(&e))?;
    fs::rename(&temporary, &path).map_err(|e| failed(&e))?;
    // The rename itself is durable once the directory is synced.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| failed(&e))?;
    if let Ok(all) = list(dir) {
        for (_, old) in all.iter().rev().skip(KEEP) {
            let _ = fs::remove_file(old);
        }
    }
    Ok(path)
}

/// Writes a snapshot of the engine's version every `every` when its
/// position moved, and a last one once `shutdown` is cancelled and
/// `finished` (the follower stopped) resolves. Each written position
/// becomes the status's durable position: the slot is confirmed only up
/// to it.
pub async fn keep(
    engine: Arc<Engine>,
    dir: PathBuf,
    status: Arc<Status>,
    every: Duration,
    shutdown: CancellationToken,
    finished: impl std::future::Future<Output = ()>,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => snapshot_now(&engine, &dir, &status).await,
            () = shutdown.cancelled() => break,
        }
    }
    finished.await;
    snapshot_now(&engine, &dir, &status).await;
}

/// Writes the engine's version if its position is newer than the durable
/// one.
async fn snapshot_now(engine: &Arc<Engine>, dir: &Path, status: &Arc<Status>) {
    let (store, position) = engine.snapshot_at();
    let Some(lsn) = std::str::from_utf8(&position).ok().and_then(Lsn::parse) else {
        return;
    };
    if lsn <= status.durable() {
        return;
    }
    let dir = dir.to_owned();
    let started = std::time::Instant::now();
    match tokio::task::spawn_blocking(move || write(&dir, &store, lsn)).await {
        Ok(Ok(path)) => {
            status.set_durable(lsn);
            tracing::info!(path = %path.display(), at = %lsn, ms = started.elapsed().as_millis() as u64, "snapshot written");
        }
        Ok(Err(e)) => tracing::error!(error = %e, "snapshot not written"),
        Err(e) => tracing::error!(error = %e, "snapshot not written"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_as_positions_and_read_back() {
        assert_eq!(name(Lsn(0x16_B374_D848)), "backdex-00000016B374D848.snap");
        assert_eq!(
            position_of_name("backdex-00000016B374D848.snap"),
            Some(Lsn(0x16_B374_D848))
        );
        for other in [
            "backdex-1.snap",
            "x-00000016B374D848.snap",
            ".backdex-00000016B374D848.snap.tmp",
        ] {
            assert_eq!(position_of_name(other), None, "{other}");
        }
    }

    #[test]
    fn the_newest_is_loaded_and_old_ones_go() {
        let dir = std::env::temp_dir().join(format!("backdex-snapshots-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("a directory");
        assert_eq!(load_newest(&dir).map(|s| s.is_none()), Ok(true));
        let store = Store::new();
        for lsn in [5, 7, 6, 9] {
            write(&dir, &store, Lsn(lsn)).expect("written");
        }
        let (_, at) = load_newest(&dir).expect("readable").expect("a snapshot");
        assert_eq!(at, Lsn(9));
        assert_eq!(list(&dir).expect("listed").len(), KEEP);
        // A damaged newest snapshot is an error naming it, not skipped.
        fs::write(dir.join(name(Lsn(10))), b"not a snapshot").expect("written");
        let error = load_newest(&dir).expect_err("damaged");
        assert!(error.contains("backdex-000000000000000A.snap"), "{error}");
        let _ = fs::remove_dir_all(&dir);
    }
}
