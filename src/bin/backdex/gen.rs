//! `backdex gen`: synthetic records as JSON Lines on standard output.

use std::io::{BufWriter, ErrorKind, Write};

use backdex::synth::{generate, SynthConfig};

use crate::Failure;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// How many records.
    #[arg(long)]
    records: usize,
    /// How many projects (the largest holds about 20% of the records).
    #[arg(long, default_value_t = 1000)]
    projects: usize,
    /// The seed: the same seed writes the same records.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Keep the opaque objects nearly empty (for very large N).
    #[arg(long)]
    slim: bool,
}

pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    let config = SynthConfig {
        records: args.records,
        projects: args.projects,
        seed: args.seed,
        slim: args.slim,
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
    let written = generate(&config).try_for_each(|record| {
        serde_json::to_writer(&mut out, &record).map_err(std::io::Error::from)?;
        out.write_all(b"\n")
    });
    match written.and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        // A reader that stops early (`| head`) is not an error.
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::new(format!("cannot write: {e}"))),
    }
}
