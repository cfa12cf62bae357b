//! The `backdex` command line: how a newcomer meets backdex (`demo`), how a
//! benchmark harness drives it (`gen`, `bench`), and how other
//! implementations use it as their test oracle (`oracle`, `query`). The
//! library does no I/O; this binary does all of it.

mod bench;
mod data;
mod demo;
mod gen;
mod malloc;
mod oracle;
mod query;
mod snapshot;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// An embeddable query engine for cloud backup records, on the command line.
#[derive(Debug, Parser)]
#[command(name = "backdex", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a synthetic store in memory and run the seeds' example requests.
    Demo(demo::Args),
    /// Write synthetic records as JSON Lines to standard output.
    Gen(gen::Args),
    /// Load records from a file and answer one request.
    Query(query::Args),
    /// The JSON Lines oracle protocol of SEMANTICS §8, on stdin and stdout.
    Oracle(oracle::Args),
    /// Time requests in process, for a benchmark harness.
    Bench(bench::Args),
    /// Load records and write a snapshot, which `--data` loads fast.
    Snapshot(snapshot::Args),
}

/// A failure to report in words: the message, and the exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) message: String,
    pub(crate) code: u8,
}

impl Failure {
    pub(crate) fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: 1,
        }
    }
}

/// Writes one line to standard output. A closed pipe (`| head`) ends the
/// command quietly instead of failing.
pub(crate) fn say(line: impl std::fmt::Display) -> Result<(), Failure> {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Failure {
            message: String::new(),
            code: 0,
        }),
        Err(e) => Err(Failure::new(format!("cannot write: {e}"))),
    }
}

fn main() -> ExitCode {
    malloc::pin_mmap_threshold();
    // No input may end in a panic's backtrace: should one happen anyway,
    // say so in one line.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("backdex: internal error (a bug, please report it): {info}");
    }));
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Gen(args) => gen::run(&args),
        Command::Query(args) => query::run(&args),
        Command::Oracle(args) => oracle::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Snapshot(args) => snapshot::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("backdex: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}
