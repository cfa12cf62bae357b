//! `backdex oracle`: the JSON Lines protocol of SEMANTICS §8. One reply
//! line per input line, in order, flushed after each; a malformed line gets
//! an error reply and the next line is read as usual; only the end of input
//! ends it.

use std::io::{BufRead, Write};

use backdex::oracle::Oracle;
use backdex::quote::Quoted;
use backdex::{ids_from_json, records_from_value, ChangeError, Response, Scope, Shards, Store};
use serde_json::{json, Value};

use crate::data::split_request;
use crate::Failure;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Answer from the naive reference store (scans and sort_by) instead
    /// of backdex's indexes.
    #[arg(long, conflicts_with = "shards")]
    naive: bool,
    /// Answer from N stores, each record on the store of its tenant's
    /// virtual shard, every request through partial answers and their
    /// merge (the answers equal one store's, byte for byte).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096))]
    shards: Option<u32>,
}

/// Whichever store answers.
enum Backend {
    Indexed(Box<Store>),
    Naive(Oracle),
    Sharded(Shards),
}

impl Backend {
    fn upsert(&mut self, records: &[backdex::Record]) -> Result<usize, ChangeError> {
        match self {
            Backend::Indexed(s) => s.upsert(records),
            Backend::Naive(o) => o.upsert(records),
            Backend::Sharded(s) => s.upsert(records),
        }
    }

    fn delete(&mut self, ids: &[String]) -> Result<usize, ChangeError> {
        match self {
            Backend::Indexed(s) => s.delete(ids),
            Backend::Naive(o) => o.delete(ids),
            Backend::Sharded(s) => s.delete(ids),
        }
    }

    fn reset(&mut self) {
        match self {
            Backend::Indexed(s) => **s = Store::new(),
            Backend::Naive(o) => *o = Oracle::new(),
            Backend::Sharded(s) => *s = Shards::new(s.stores().len()),
        }
    }

    fn handle(&self, path: &str, query: &str, scope: &Scope) -> Response {
        match self {
            Backend::Indexed(s) => s.handle(path, query, scope),
            Backend::Naive(o) => o.handle(path, query, scope),
            Backend::Sharded(s) => s.handle(path, query, scope),
        }
    }
}

/// `{"ok":false,"status":400,"body":{"error":{...}}}`. Every 400 of the
/// protocol uses §6's 400 code, `InvalidParameter`.
fn rejected(message: String) -> Value {
    json!({"ok": false, "status": 400, "body": {"error": {"code": "InvalidParameter", "message": message}}})
}

fn changed(result: Result<usize, ChangeError>) -> Value {
    match result {
        Ok(count) => json!({"ok": true, "count": count}),
        Err(e) => rejected(e.to_string()),
    }
}

fn reply(backend: &mut Backend, line: &[u8]) -> Value {
    let mut value: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => return rejected(format!("the line is not valid JSON: {e}")),
    };
    let Some(op) = value.get("op").and_then(Value::as_str).map(str::to_owned) else {
        return rejected("the line needs an \"op\": upsert, delete, reset or request".into());
    };
    match op.as_str() {
        "upsert" => match value
            .get_mut("records")
            .map(Value::take)
            .map(records_from_value)
        {
            None => rejected("upsert needs \"records\": an array of records".into()),
            Some(Err(e)) => rejected(e.to_string()),
            Some(Ok(records)) => changed(backend.upsert(&records)),
        },
        "delete" => match value.get("ids").map(ids_from_json) {
            None => rejected("delete needs \"ids\": an array of id strings".into()),
            Some(Err(e)) => rejected(e.to_string()),
            Some(Ok(ids)) => changed(backend.delete(&ids)),
        },
        "reset" => {
            backend.reset();
            json!({"ok": true, "count": 0})
        }
        "request" => {
            let Some(target) = value.get("path").and_then(Value::as_str) else {
                return rejected(
                    "request needs \"path\": a string such as \"/v1/p1/checkpoint_items?limit=2\""
                        .into(),
                );
            };
            let scope: Scope = match value.get("scope").cloned().map(serde_json::from_value) {
                Some(Ok(scope)) => scope,
                Some(Err(e)) => return rejected(format!("bad \"scope\": {e}")),
                None => {
                    return rejected(
                        "request needs \"scope\": {\"project_id\", \"admin\", \"granted_eps\"}"
                            .into(),
                    )
                }
            };
            let (path, query) = split_request(target);
            let response = backend.handle(path, query, &scope);
            json!({"ok": response.status == 200, "status": response.status, "body": response.json()})
        }
        other => rejected(format!(
            "unknown op {}; use upsert, delete, reset or request",
            Quoted(other)
        )),
    }
}

pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    let mut backend = match (args.naive, args.shards) {
        (true, _) => Backend::Naive(Oracle::new()),
        (false, Some(n)) => Backend::Sharded(Shards::new(n as usize)),
        (false, None) => Backend::Indexed(Box::default()),
    };
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(Failure::new(format!("cannot read standard input: {e}"))),
        }
        let answer = reply(&mut backend, &line);
        let written = serde_json::to_writer(&mut out, &answer)
            .map_err(std::io::Error::from)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush());
        if let Err(e) = written {
            // Nobody is reading the answers any more.
            return if e.kind() == std::io::ErrorKind::BrokenPipe {
                Ok(())
            } else {
                Err(Failure::new(format!("cannot write: {e}")))
            };
        }
    }
}
