//! `backdex query`: load a file, answer one request, print the body.

use std::path::PathBuf;

use backdex::{parse_request, Scope, DEFAULT_MAX_LIMIT};

use crate::data::{load, split_request};
use crate::{say, Failure};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Records: JSON Lines, one JSON array, or a snapshot.
    #[arg(long)]
    data: PathBuf,
    /// The caller's project (the route's project must be this one).
    #[arg(long)]
    project: String,
    /// The caller is an admin (may use all_tenants=true).
    #[arg(long)]
    admin: bool,
    /// Restrict the caller to these enterprise projects (comma-separated;
    /// an empty value grants none).
    #[arg(long, value_name = "EP,EP,...")]
    granted_eps: Option<String>,
    /// Print how the request is planned (`Store::explain`) on standard
    /// error before the answer.
    #[arg(long)]
    explain: bool,
    /// The request, `PATH?QUERY`, e.g. '/v1/p1/checkpoint_items?status=error&limit=2'.
    request: String,
}

pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    let loaded = load(&args.data)?;
    let scope = Scope {
        project_id: args.project.clone(),
        admin: args.admin,
        granted_eps: args.granted_eps.as_ref().map(|eps| {
            eps.split(',')
                .filter(|e| !e.is_empty())
                .map(str::to_owned)
                .collect()
        }),
    };
    let (path, query) = split_request(&args.request);
    if args.explain {
        // A request the parser refuses has no plan; its answer says why.
        if let Ok(q) = parse_request(path, query, &scope, DEFAULT_MAX_LIMIT) {
            if let Ok(plan) = loaded.store.explain(&scope, &q) {
                eprint!("{plan}");
            }
        }
    }
    let response = loaded.store.handle(path, query, &scope);
    say(&response.body)?;
    if (200..300).contains(&response.status) {
        Ok(())
    } else {
        let body = response.json();
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or("the request failed");
        Err(Failure::new(format!(
            "{} {}: {message}",
            response.status,
            body["error"]["code"].as_str().unwrap_or("")
        )))
    }
}
