//! The follower against a real PostgreSQL (started by the test): random
//! transactions of inserts, updates, deletes and member changes through a
//! real client; after each, reads with `X-Min-LSN` answer exactly what the
//! database answers: byte for byte what one store loaded from the
//! database's own JSON answers, and the counts and page ids of the same
//! questions asked in SQL.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use backdex::synth::{generate, Rng, SynthConfig};
use backdex::Record;
use support::random::{change, pick, request, STATUSES};
use support::{
    assert_answers, projects_of, reference, share_across, tokens_file, wal_position, write,
    write_all, Postgres, Server,
};

fn records(n: usize, seed: u64) -> Vec<Record> {
    generate(&SynthConfig {
        records: n,
        projects: 6,
        seed,
        slim: false,
    })
    .collect()
}

/// The ids of one project's records, in SQL.
fn records_of(sql: &mut postgres::Client, project: &str) -> BTreeSet<String> {
    sql.query("SELECT id FROM backups WHERE project_id = $1", &[&project])
        .expect("the ids")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The ids of a v1 list page, in order.
fn page_ids(body: &str) -> Vec<String> {
    let json: serde_json::Value = serde_json::from_str(body).expect("JSON");
    json["checkpoint_items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn a_follower_answers_what_the_database_answers() {
    let pg = Postgres::start();
    let mut sql = pg.client();
    sql.batch_execute(support::SCHEMA).expect("the schema");
    let mut initial = records(300, 1);
    let projects = projects_of(&initial);
    // Members across the projects, so that sharing has answers.
    let mut rng = Rng::new(7);
    share_across(&mut initial, &projects, &mut rng, 120);
    write_all(&mut sql, &initial);
    let mut ids: Vec<String> = initial.iter().map(|r| r.id.clone()).collect();
    // New records to insert later: other ids, the same projects.
    let mut fresh: Vec<Record> = records(600, 2)
        .into_iter()
        .filter(|r| projects.contains(&r.project_id))
        .map(|mut r| {
            r.id = format!("n-{}", r.id);
            r
        })
        .collect();

    let tokens = tokens_file(pg.dir(), &projects);
    let server = Server::start(&[
        "--follow",
        &pg.url(),
        "--tokens",
        &tokens.display().to_string(),
        "--heartbeat-ms",
        "200",
    ]);
    let health = server.wait_until(Duration::from_secs(60), |h| h["state"] == "following");
    assert_eq!(health["records"], 300, "{health}");

    let mut checked = 0;
    for round in 0..30 {
        {
            let mut tx = sql.transaction().expect("a transaction");
            for _ in 0..1 + rng.below(6) {
                change(&mut tx, &mut rng, &mut ids, &mut fresh, &projects);
            }
            tx.commit().expect("committed");
        }
        let at = wal_position(&mut sql);
        let want = reference(&mut sql);
        let requests: Vec<(String, String)> = (0..25)
            .map(|_| request(&mut rng, &projects, &ids))
            .collect();
        assert_answers(&server, &want, &at, &requests, &format!("round {round}"));
        checked += requests.len();
        // The same questions asked in SQL: counts, and page ids in order.
        for p in &projects {
            let count: i64 = sql
                .query_one(
                    "SELECT count(*) FROM backups WHERE project_id = $1 AND status = 'available'",
                    &[p],
                )
                .expect("a count")
                .get(0);
            let (_, body) = server.get(
                &format!("/v1/{p}/checkpoint_items/count?status=available"),
                &[("X-Auth-Token", &format!("reader-{p}")), ("X-Min-LSN", &at)],
            );
            assert_eq!(body, format!("{{\"count\":{count}}}"), "{p}");
            let page: Vec<String> = sql
                .query(
                    "SELECT id FROM backups WHERE project_id = $1 ORDER BY created_at DESC, id DESC LIMIT 10",
                    &[p],
                )
                .expect("a page")
                .iter()
                .map(|r| r.get(0))
                .collect();
            let (_, body) = server.get(
                &format!("/v1/{p}/checkpoint_items?limit=10"),
                &[("X-Auth-Token", &format!("reader-{p}")), ("X-Min-LSN", &at)],
            );
            assert_eq!(page_ids(&body), page, "{p}");
            let shared: i64 = sql
                .query_one(
                    "SELECT count(*) FROM backup_members WHERE dest_project_id = $1",
                    &[p],
                )
                .expect("a count")
                .get(0);
            let (_, body) = server.get(
                &format!("/v2/{p}/os-vendor-backup-sharing/count?share_to_me=true"),
                &[("X-Auth-Token", &format!("reader-{p}")), ("X-Min-LSN", &at)],
            );
            assert_eq!(body, format!("{{\"count\":{shared}}}"), "{p}");
        }
    }
    assert!(checked >= 300);
    let health = server.health();
    assert_eq!(health["skipped_rows"], 0, "{health}");

    // A marker walk while writes go on: between any two pages a
    // transaction inserts, updates (status, name, updated_at: not the
    // walk's order) and deletes. Every record there from the first page
    // to the last is walked exactly once, in order; none twice.
    let p: String = sql
        .query_one(
            "SELECT project_id FROM backups GROUP BY project_id ORDER BY count(*) DESC, project_id LIMIT 1",
            &[],
        )
        .expect("the largest project")
        .get(0);
    let at_start = records_of(&mut sql, &p);
    let token = format!("reader-{p}");
    let mut walked: Vec<String> = Vec::new();
    let mut deleted: BTreeSet<String> = BTreeSet::new();
    let mut marker: Option<String> = None;
    let mut at = wal_position(&mut sql);
    for page in 0.. {
        assert!(page < 1000, "the walk ends");
        let query = match &marker {
            Some(m) => format!("limit=4&marker={m}"),
            None => "limit=4".to_owned(),
        };
        let (status, body) = server.get(
            &format!("/v1/{p}/checkpoint_items?{query}"),
            &[("X-Auth-Token", &token), ("X-Min-LSN", &at)],
        );
        assert_eq!(status, 200, "page {page}: {body}");
        let items = page_ids(&body);
        let Some(last) = items.last().cloned() else {
            break;
        };
        walked.extend(items);
        marker = Some(last.clone());
        // The writes, never deleting the marker the next page starts from.
        let mut tx = sql.transaction().expect("a transaction");
        if let Some(r) = fresh.pop() {
            write(&mut tx, &r);
            ids.push(r.id);
        }
        let id = pick(&mut rng, &ids).clone();
        let status = pick(&mut rng, &STATUSES).as_str();
        tx.execute(
            "UPDATE backups SET status = $2, name = name || 'w', updated_at = updated_at + interval '1 hour' WHERE id = $1",
            &[&id, &status],
        )
        .expect("an update");
        let i = rng.below(ids.len() as u64) as usize;
        if ids[i] != last {
            let id = ids.swap_remove(i);
            tx.execute("DELETE FROM backups WHERE id = $1", &[&id])
                .expect("a delete");
            deleted.insert(id);
        }
        tx.commit().expect("committed");
        at = wal_position(&mut sql);
    }
    let unique: BTreeSet<&String> = walked.iter().collect();
    assert_eq!(
        unique.len(),
        walked.len(),
        "no record walked twice: {walked:?}"
    );
    let at_end = records_of(&mut sql, &p);
    for id in at_start.iter().filter(|id| !deleted.contains(*id)) {
        assert!(
            unique.contains(id),
            "{id} was there all along and was not walked"
        );
    }
    for id in &walked {
        assert!(
            at_start.contains(id) || at_end.contains(id) || deleted.contains(id),
            "{id} walked but never there"
        );
    }
    // In the walk's order: the survivors' (created_at desc, id desc).
    let order: Vec<String> = sql
        .query(
            "SELECT id FROM backups WHERE project_id = $1 ORDER BY created_at DESC, id DESC",
            &[&p],
        )
        .expect("the order")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let survivors: Vec<&String> = walked.iter().filter(|id| at_end.contains(*id)).collect();
    let expected: Vec<&String> = order.iter().filter(|id| unique.contains(id)).collect();
    assert_eq!(survivors, expected, "the walk is in order");
    assert!(
        walked.len() >= 20,
        "a walk of several pages: {}",
        walked.len()
    );

    // Writes go to the database, not to a follower.
    let (status, body) = server.post(
        "/internal/records:upsert",
        "[]",
        &[("X-Auth-Token", &format!("admin-{}", projects[0]))],
    );
    assert_eq!(status, 403, "{body}");
    // A position that is not one, and one far ahead.
    let p = &projects[0];
    let path = format!("/v1/{p}/checkpoint_items/count");
    let token = format!("reader-{p}");
    let (status, body) = server.get(&path, &[("X-Auth-Token", &token), ("X-Min-LSN", "soon")]);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("X-Min-LSN"), "{body}");
    let (status, body) = server.get(&path, &[("X-Auth-Token", &token), ("X-Min-LSN", "FF/0")]);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("NotFresh") && body.contains("FF/0"), "{body}");

    // The metrics agree with /healthz and count what was asked.
    let (status, metrics) = server.get("/metrics", &[]);
    assert_eq!(status, 200);
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|v| v.trim().parse::<f64>().ok())
            })
            .unwrap_or_else(|| panic!("{name} in\n{metrics}"))
    };
    let health = server.health();
    let applied =
        support::lsn(health["applied_lsn"].as_str().expect("applied_lsn")).expect("an LSN");
    assert!(value("backdex_follower_applied_lsn ") >= applied as f64);
    assert_eq!(value("backdex_follower_state{state=\"following\"} "), 1.0);
    assert!(value("backdex_http_requests_total{route=\"v1.count\",status=\"200\"} ") >= 30.0);
    assert_eq!(
        value("backdex_http_requests_total{route=\"v1.count\",status=\"503\"} "),
        1.0
    );
    assert!(value("backdex_http_request_duration_seconds_count{route=\"v3.list\"} ") >= 1.0);
}
