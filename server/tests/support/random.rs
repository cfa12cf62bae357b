//! Random changes to the database and random read requests, shared by
//! the follower's and the cluster's tests.

use backdex::synth::Rng;
use backdex::{MemberStatus, Record, Status};

use super::write;

pub fn pick<'a, T>(rng: &mut Rng, items: &'a [T]) -> &'a T {
    &items[rng.below(items.len() as u64) as usize]
}

pub const STATUSES: [Status; 4] = [
    Status::Available,
    Status::Error,
    Status::Protecting,
    Status::Deleting,
];

/// One random change to the database inside `tx`.
pub fn change(
    tx: &mut postgres::Transaction<'_>,
    rng: &mut Rng,
    ids: &mut Vec<String>,
    fresh: &mut Vec<Record>,
    projects: &[String],
) {
    match rng.below(6) {
        // A new backup.
        0 | 1 => {
            if let Some(r) = fresh.pop() {
                write(tx, &r);
                ids.push(r.id);
            }
        }
        // An update of its status, name and time.
        2 => {
            if ids.is_empty() {
                return;
            }
            let id = pick(rng, ids).clone();
            let status = pick(rng, &STATUSES).as_str();
            tx.execute(
                "UPDATE backups SET status = $2, name = name || 'x', updated_at = updated_at + interval '1 hour' WHERE id = $1",
                &[&id, &status],
            )
            .expect("an update");
        }
        // A delete (its members go with it).
        3 => {
            if ids.is_empty() {
                return;
            }
            let i = rng.below(ids.len() as u64) as usize;
            let id = ids.swap_remove(i);
            tx.execute("DELETE FROM backups WHERE id = $1", &[&id])
                .expect("a delete");
        }
        // A member shared, re-answered or withdrawn.
        _ => {
            if ids.is_empty() {
                return;
            }
            let id = pick(rng, ids).clone();
            let dest = pick(rng, projects).clone();
            let status = pick(
                rng,
                &[
                    MemberStatus::Pending,
                    MemberStatus::Accept,
                    MemberStatus::Reject,
                ],
            )
            .as_str();
            if rng.below(3) == 0 {
                // An existing sharing withdrawn.
                let offset = rng.below(50) as i64;
                tx.execute(
                    "DELETE FROM backup_members WHERE (backup_id, dest_project_id) IN
                     (SELECT backup_id, dest_project_id FROM backup_members
                      ORDER BY backup_id, dest_project_id OFFSET $1 LIMIT 1)",
                    &[&offset],
                )
                .expect("a member withdrawn");
            } else {
                tx.execute(
                    "INSERT INTO backup_members VALUES ($1, $2, $3)
                     ON CONFLICT (backup_id, dest_project_id) DO UPDATE SET status = excluded.status",
                    &[&id, &dest, &status],
                )
                .expect("a member shared");
            }
        }
    }
}

/// Random read requests over the four APIs, as one of the projects.
pub fn request(rng: &mut Rng, projects: &[String], ids: &[String]) -> (String, String) {
    let p = pick(rng, projects).clone();
    let admin = rng.below(4) == 0;
    let token = if admin {
        format!("admin-{p}")
    } else {
        format!("reader-{p}")
    };
    let mut params: Vec<String> = Vec::new();
    let path = match rng.below(5) {
        0 => format!("/v1/{p}/checkpoint_items/count"),
        1 | 2 => {
            params.push(format!("limit={}", 1 + rng.below(20)));
            params.push(
                pick(
                    rng,
                    &[
                        "sort=created_at:desc",
                        "sort=name:asc",
                        "sort=updated_at:asc",
                        "sort=status:desc,name:asc",
                    ],
                )
                .to_string(),
            );
            format!("/v1/{p}/checkpoint_items")
        }
        3 => {
            params.push(
                pick(
                    rng,
                    &[
                        "own_type=private",
                        "own_type=shared",
                        "own_type=all_granted",
                    ],
                )
                .to_string(),
            );
            params.push(format!("limit={}", 1 + rng.below(20)));
            format!("/v3/{p}/backups")
        }
        _ => {
            if rng.below(2) == 0 {
                params.push("share_to_me=true".into());
            }
            format!("/v2/{p}/os-vendor-backup-sharing/count")
        }
    };
    if rng.below(3) == 0 {
        params.push(format!("status={}", pick(rng, &STATUSES).as_str()));
    }
    if admin && rng.below(2) == 0 && !path.contains("sharing") {
        params.push("all_tenants=true".into());
    }
    if !ids.is_empty() && rng.below(4) == 0 && !path.ends_with("count") {
        params.push(format!("marker={}", pick(rng, ids)));
    }
    (format!("{path}?{}", params.join("&")), token)
}
