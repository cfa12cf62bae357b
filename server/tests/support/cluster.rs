//! A private PostgreSQL for one test: `initdb` into a temporary directory,
//! `postgres` on a random loopback port and a unix socket in that
//! directory, `wal_level=logical`. As root (CI), the server runs as the
//! `postgres` system user, in a directory it owns: `initdb` and `postgres`
//! refuse root. Stopped, by its own data directory, when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// PostgreSQL's binaries: `BACKDEX_PG_BIN`, else Debian's PostgreSQL 15.
fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("BACKDEX_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
    dir.join(name)
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

pub struct Postgres {
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl Postgres {
    /// Initialises and starts a cluster; panics with what failed (a test
    /// harness: a missing PostgreSQL is a broken machine, and .ci/run
    /// installs it).
    pub fn start() -> Postgres {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "backdex-pg-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let as_postgres = running_as_root();
        assert!(
            bin("initdb").exists(),
            "PostgreSQL is not installed at {} (Debian: apt-get install postgresql; or set BACKDEX_PG_BIN)",
            bin("initdb").display()
        );
        let mut pg = Postgres {
            dir,
            port: 0,
            as_postgres,
        };
        if as_postgres {
            pg.run(
                "chown",
                &["-R", "postgres:postgres", &pg.dir.display().to_string()],
                false,
            );
        }
        let data = pg.data().display().to_string();
        pg.run(
            &bin("initdb").display().to_string(),
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            true,
        );
        // A free port, taken again by the server (retried if lost).
        for _ in 0..5 {
            pg.port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port");
            if pg.ctl_start() {
                return pg;
            }
        }
        panic!("PostgreSQL did not start: {}", pg.log());
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// The server's log, for a failed test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Runs a command (as `postgres` when `as_user` and root); panics on
    /// failure with its output.
    fn run(&self, program: &str, args: &[&str], as_user: bool) -> bool {
        let output = self
            .command(program, args, as_user)
            .output()
            .expect("a command");
        assert!(
            output.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        true
    }

    fn command(&self, program: &str, args: &[&str], as_user: bool) -> Command {
        if as_user && self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", program]).args(args);
            c
        } else {
            let mut c = Command::new(program);
            c.args(args);
            c
        }
    }

    fn ctl_start(&self) -> bool {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c wal_level=logical \
             -c max_wal_senders=20 -c max_replication_slots=20 -c fsync=off \
             -c wal_sender_timeout=10s",
            self.port,
            self.dir.display()
        );
        let data = self.data().display().to_string();
        let log = self.log_path().display().to_string();
        self.command(
            &bin("pg_ctl").display().to_string(),
            &[
                "-D", &data, "-l", &log, "-w", "-t", "60", "-o", &options, "start",
            ],
            true,
        )
        .output()
        .is_ok_and(|o| o.status.success())
    }

    /// Stops the server (`fast`: sessions are ended) and starts it again
    /// on the same port.
    pub fn restart(&self) {
        self.stop("fast");
        assert!(
            self.ctl_start(),
            "PostgreSQL did not restart: {}",
            self.log()
        );
    }

    /// Stops the server (a fast shutdown, which waits for its WAL
    /// senders' positions to be confirmed), to start it again with
    /// [`Postgres::start_again`]; panics if it does not stop within a
    /// minute.
    pub fn stop_for_restart(&self) {
        let data = self.data().display().to_string();
        let output = self
            .command(
                &bin("pg_ctl").display().to_string(),
                &["-D", &data, "-m", "fast", "-w", "-t", "60", "stop"],
                true,
            )
            .output()
            .expect("pg_ctl");
        assert!(
            output.status.success(),
            "PostgreSQL did not stop: {}{}",
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
    }

    /// Starts a stopped server again on the same port.
    pub fn start_again(&self) {
        assert!(
            self.ctl_start(),
            "PostgreSQL did not start again: {}",
            self.log()
        );
    }

    fn stop(&self, mode: &str) {
        let data = self.data().display().to_string();
        let _ = self
            .command(
                &bin("pg_ctl").display().to_string(),
                &["-D", &data, "-m", mode, "-w", "stop"],
                true,
            )
            .output();
    }

    /// A libpq connection string for this server.
    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    /// A client connection.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url(), postgres::NoTls)
            .unwrap_or_else(|e| panic!("connecting to PostgreSQL: {e}\n{}", self.log()))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop("immediate");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
