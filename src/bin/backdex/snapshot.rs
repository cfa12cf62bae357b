//! `backdex snapshot`: load records (or a snapshot) and write a snapshot,
//! which `--data` everywhere loads in a fraction of the time.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;

use crate::data::load;
use crate::{say, Failure};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Records: JSON Lines, one JSON array, or a snapshot.
    #[arg(long)]
    data: PathBuf,
    /// The snapshot to write (replaced if it exists).
    #[arg(long)]
    out: PathBuf,
    /// A position to keep in the snapshot (a replication LSN, say), as text.
    #[arg(long, default_value = "")]
    position: String,
}

pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    let loaded = load(&args.data)?;
    let shown = args.out.display();
    let t = Instant::now();
    let file = std::fs::File::create(&args.out)
        .map_err(|e| Failure::new(format!("cannot create {shown}: {e}")))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let bytes = loaded
        .store
        .write_snapshot(&mut out, args.position.as_bytes())
        .map_err(|e| Failure::new(format!("{shown}: {e}")))?;
    out.flush()
        .and_then(|()| out.get_ref().sync_all())
        .map_err(|e| Failure::new(format!("cannot write {shown}: {e}")))?;
    say(json!({
        "records": loaded.records,
        "load_ms": loaded.took.as_secs_f64() * 1e3,
        "snapshot_bytes": bytes,
        "write_ms": t.elapsed().as_secs_f64() * 1e3,
    }))
}
