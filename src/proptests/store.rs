//! Random sequences of upserts and deletes, applied to the store and to the
//! oracle: after every batch the store validates, holds the same records,
//! and every access path answers what a scan of the oracle answers.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::net::IpAddr;

use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use roaring::RoaringBitmap;
use serde_json::{json, Map, Value};

use crate::oracle::Oracle;
use crate::record::{ImageType, Member, MemberStatus, Record, Status};
use crate::store::{BitmapKey, OrderKey, Position, Store, TextField, BULK_MIN};
use crate::timestamp::Timestamp;

// Small pools, so that ids, names, timestamps and values collide a lot.
/// Ids of odd shapes and byte orders, UUIDs among them (kept as 16 bytes
/// while a chunk holds only those): sharing their first eight bytes, one
/// sorting between the others' texts, and near misses that must stay text.
pub(crate) const IDS: &[&str] = &[
    "b0",
    "b1",
    "b2",
    "b3",
    "b4",
    "b5",
    "b6",
    "b7",
    "b8",
    "b9",
    "B1",
    "b10",
    "é",
    "b1 ",
    "zz",
    "8172f6f2-3c7a-47ba-848e-de1b71b1f075",
    "8172f6f2-3c7a-47ba-848e-de1b71b1f076",
    "8172f6f2-0000-47ba-848e-de1b71b1f075",
    "0172f6f2-3c7a-47ba-848e-de1b71b1f075",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "8172f6f2-3c7a-47ba-848e-de1b71b1f07",
    "8172F6F2-3C7A-47BA-848E-DE1B71B1F075",
    "8172f6f2-3c7a-47ba-848e-de1b71b1f075 ",
];

/// A variant of a pool id, distinct for each `round`: a UUID stays a UUID
/// (its last four digits replaced), any other id gets a suffix.
pub(crate) fn id_variant(base: &str, round: usize) -> String {
    if round == 0 {
        return base.to_owned();
    }
    match crate::store::parse_uuid(base) {
        Some(_) => format!("{}{:04x}", &base[..32], round % 0x10000),
        None => format!("{base}~{round}"),
    }
}
pub(crate) const PROJECTS: &[&str] = &["p0", "p1", "p2", "p3"];
pub(crate) const EPS: &[&str] = &["0", "ep1", "ep2"];
pub(crate) const NAMES: &[&str] = &[
    "",
    "a",
    "ab",
    "autobk_b629",
    "autobk_b62",
    "manualbk_47222",
    "bk_",
    "é漢字bk",
    "AUTOBK",
];
pub(crate) const PATTERNS: &[&str] = &[
    "a", "b", "ab", "bk", "bk_", "autobk", "629", "漢字", "é", "zzz", "AUTO", "_b6",
];
pub(crate) const TYPES: &[&str] = &["OS::Nova::Server", "OS::Cinder::Volume", "x"];
pub(crate) const AZS: &[&str] = &["", "az1", "az2"];
pub(crate) const REFS: &[Option<&str>] = &[None, Some("r1"), Some("r2")];
pub(crate) const RESOURCES: &[&str] = &["vm1", "vm2", "vol1", ""];
pub(crate) const IP_TEXTS: &[&str] = &[
    "",
    "10.0.0.1",
    "10.0.0.1, 10.0.0.2",
    "bogus",
    "2001:db8::1",
    "::ffff:10.0.0.1",
    " 10.0.0.2 ,fe80::1%eth0",
];
pub(crate) const IPS: &[&str] = &[
    "10.0.0.1",
    "10.0.0.2",
    "2001:DB8::1",
    "::ffff:10.0.0.1",
    "10.0.0.3",
];

pub(crate) fn time() -> impl Strategy<Value = Timestamp> {
    // Six instants over about two days, and one a year later: ties,
    // several days for the day indexes, and a span between them that is
    // mostly empty (which the day-by-day page steps through sorted).
    (0i64..7).prop_map(|s| {
        let offset = if s == 6 {
            400 * 86_400_000_000
        } else {
            s * 40_000_000_001
        };
        Timestamp::from_micros(1_600_000_000_000_000 + offset).unwrap()
    })
}

fn owned(pool: &'static [Option<&'static str>]) -> impl Strategy<Value = Option<String>> {
    select(pool).prop_map(|v| v.map(str::to_owned))
}

fn s(pool: &'static [&'static str]) -> impl Strategy<Value = String> {
    select(pool).prop_map(str::to_owned)
}

pub(crate) fn record() -> impl Strategy<Value = Record> {
    let ids = (
        s(IDS),
        s(IDS),
        s(PROJECTS),
        s(EPS),
        s(NAMES),
        s(NAMES),
        s(RESOURCES),
    );
    let enums = (
        select(Status::ALL),
        select(ImageType::ALL),
        any::<bool>(),
        s(TYPES),
        s(AZS),
        0u64..3,
    );
    let refs = (owned(REFS), owned(REFS), owned(REFS), owned(REFS));
    let times = (
        time(),
        time(),
        proptest::option::of(time()),
        proptest::option::of(time()),
    );
    let members = subsequence(PROJECTS, 0..=3).prop_flat_map(|dests| {
        let n = dests.len();
        (
            Just(dests),
            proptest::collection::vec(select(MemberStatus::ALL), n),
        )
    });
    let ips = (select(IP_TEXTS), select(IP_TEXTS), any::<bool>(), 0usize..4);
    (ids, enums, refs, times, members, ips).prop_map(
        |(
            (
                id,
                checkpoint_id,
                project_id,
                enterprise_project_id,
                name,
                resource_name,
                resource_id,
            ),
            (status, image_type, dec, resource_type, resource_az, resource_size),
            (policy_id, vault_id, provider_id, parent_id),
            (created_at, updated_at, protected_at, expired_at),
            (dests, statuses),
            (private_ip, eip, eip_is_number, extend_kind),
        )| {
            let mut backup_data = Map::new();
            backup_data.insert("private_ip".into(), json!(private_ip));
            backup_data.insert(
                "eip".into(),
                if eip_is_number { json!(7) } else { json!(eip) },
            );
            Record {
                id,
                checkpoint_id,
                project_id,
                enterprise_project_id,
                name,
                description: String::new(),
                status,
                resource_id,
                resource_name,
                resource_type,
                resource_az,
                resource_size,
                image_type,
                policy_id,
                vault_id,
                provider_id,
                parent_id,
                dec,
                created_at,
                updated_at,
                protected_at,
                expired_at,
                // Some hold keys that v1 overwrites (its slow path).
                extend_info: [
                    json!({"k": [1, 2.5, null]}),
                    json!({}),
                    json!({"size": 3, "x": "y"}),
                    json!({"resource_az": "old", "k": {}}),
                ][extend_kind]
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                backup_data,
                replication_records: vec![json!({"id": "rep"})],
                children: Vec::new(),
                members: dests
                    .into_iter()
                    .zip(statuses)
                    .map(|(d, status)| Member {
                        dest_project_id: d.to_owned(),
                        status,
                    })
                    .collect(),
            }
        },
    )
}

#[derive(Debug, Clone)]
pub(super) enum Op {
    Upsert(Vec<Record>),
    Delete(Vec<String>),
}

pub(super) fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => proptest::collection::vec(record(), 0..8).prop_map(Op::Upsert),
        1 => proptest::collection::vec(s(IDS), 0..4).prop_map(Op::Delete),
    ]
}

/// The reference order of an ordered index, on records.
fn cmp_records(key: OrderKey, a: &Record, b: &Record) -> Ordering {
    let primary = match key {
        OrderKey::Id => return a.id.as_bytes().cmp(b.id.as_bytes()),
        OrderKey::CreatedAt => a.created_at.cmp(&b.created_at),
        OrderKey::UpdatedAt => a.updated_at.cmp(&b.updated_at),
        OrderKey::ProtectedAt => a.protected_at.cmp(&b.protected_at),
        OrderKey::Name => a.name.as_bytes().cmp(b.name.as_bytes()),
        OrderKey::Status => a.status.as_str().cmp(b.status.as_str()),
        OrderKey::ResourceId => a.resource_id.as_bytes().cmp(b.resource_id.as_bytes()),
        OrderKey::ResourceName => a.resource_name.as_bytes().cmp(b.resource_name.as_bytes()),
        OrderKey::CheckpointId => a.checkpoint_id.as_bytes().cmp(b.checkpoint_id.as_bytes()),
    };
    primary
        .then(a.created_at.cmp(&b.created_at))
        .then(a.id.as_bytes().cmp(b.id.as_bytes()))
}

/// Reads one string field of a record.
type Field = fn(&Record) -> &str;
/// Reads one nullable string field of a record.
type OptionalField = fn(&Record) -> Option<&str>;

fn ids_of(store: &Store, rows: &RoaringBitmap) -> BTreeSet<String> {
    rows.iter().map(|r| store.id_of(r).to_owned()).collect()
}

fn scan(oracle: &Oracle, keep: impl Fn(&Record) -> bool) -> BTreeSet<String> {
    oracle
        .records()
        .iter()
        .filter(|r| keep(r))
        .map(|r| r.id.clone())
        .collect()
}

fn check_against_oracle(store: &Store, oracle: &Oracle) -> Result<(), TestCaseError> {
    if let Err(e) = store.internal_validate() {
        return Err(TestCaseError::fail(e));
    }
    let mut expected: Vec<Record> = oracle.records().to_vec();
    expected.sort_by(|a, b| a.id.as_bytes().cmp(b.id.as_bytes()));
    prop_assert_eq!(store.records(), expected);
    prop_assert_eq!(store.len(), oracle.records().len());

    for &status in Status::ALL {
        prop_assert_eq!(
            ids_of(store, store.code_rows(BitmapKey::Status, status as u32)),
            scan(oracle, |r| r.status == status)
        );
    }
    for &t in ImageType::ALL {
        prop_assert_eq!(
            ids_of(store, store.code_rows(BitmapKey::ImageType, t as u32)),
            scan(oracle, |r| r.image_type == t)
        );
    }
    for dec in [false, true] {
        prop_assert_eq!(
            ids_of(store, store.code_rows(BitmapKey::Dec, u32::from(dec))),
            scan(oracle, |r| r.dec == dec)
        );
    }
    let eq_fields: [(BitmapKey, &[&str], OptionalField); 6] = [
        (BitmapKey::Project, PROJECTS, |r| Some(&r.project_id)),
        (BitmapKey::EnterpriseProject, EPS, |r| {
            Some(&r.enterprise_project_id)
        }),
        (BitmapKey::ResourceType, TYPES, |r| Some(&r.resource_type)),
        (BitmapKey::ResourceAz, AZS, |r| Some(&r.resource_az)),
        (BitmapKey::Policy, &["r1", "r2", ""], |r| {
            r.policy_id.as_deref()
        }),
        (BitmapKey::Vault, &["r1", "r2", ""], |r| {
            r.vault_id.as_deref()
        }),
    ];
    for (field, values, get) in eq_fields {
        for &v in values.iter().chain(&["missing"]) {
            prop_assert_eq!(
                ids_of(store, store.eq_rows(field, v)),
                scan(oracle, |r| get(r) == Some(v))
            );
        }
        let facet_total: u64 = store.values(field).map(|(_, rows)| rows.len()).sum();
        prop_assert_eq!(
            facet_total as usize,
            oracle.records().iter().filter(|r| get(r).is_some()).count()
        );
    }
    let key_fields: [(OrderKey, &[&str], Field); 5] = [
        (OrderKey::Id, IDS, |r| &r.id),
        (OrderKey::CheckpointId, IDS, |r| &r.checkpoint_id),
        (OrderKey::Name, NAMES, |r| &r.name),
        (OrderKey::ResourceId, RESOURCES, |r| &r.resource_id),
        (OrderKey::ResourceName, NAMES, |r| &r.resource_name),
    ];
    for (key, values, get) in key_fields {
        for &v in values.iter().chain(&["missing"]) {
            prop_assert_eq!(
                ids_of(store, &store.key_rows(key, v)),
                scan(oracle, |r| get(r) == v)
            );
        }
    }
    for &p in PATTERNS {
        prop_assert_eq!(
            ids_of(store, &store.contains_rows(TextField::Name, p)),
            scan(oracle, |r| r.name.contains(p))
        );
        prop_assert_eq!(
            ids_of(store, &store.contains_rows(TextField::ResourceName, p)),
            scan(oracle, |r| r.resource_name.contains(p))
        );
    }
    for &ip in IPS {
        let ip: IpAddr = ip.parse().unwrap();
        prop_assert_eq!(
            ids_of(store, &store.ip_rows(ip)),
            scan(oracle, |r| r.ip_addresses().contains(&ip))
        );
    }
    for &dest in PROJECTS {
        let shared = |r: &Record, st: Option<MemberStatus>| {
            r.members
                .iter()
                .any(|m| m.dest_project_id == dest && st.is_none_or(|s| m.status == s))
        };
        prop_assert_eq!(
            ids_of(store, store.shared_rows(dest, None)),
            scan(oracle, |r| shared(r, None))
        );
        for &st in MemberStatus::ALL {
            prop_assert_eq!(
                ids_of(store, store.shared_rows(dest, Some(st))),
                scan(oracle, |r| shared(r, Some(st)))
            );
        }
        let owned = store.eq_rows(BitmapKey::Project, dest);
        let entries: usize = oracle
            .records()
            .iter()
            .filter(|r| r.project_id == dest)
            .map(|r| r.members.len())
            .sum();
        prop_assert_eq!(store.sharing_entries(owned), entries as u64);
    }
    let base = 1_600_000_000_000_000;
    for (lo, hi) in [
        (base, base),
        (base + 1, base + 40_000_000_001),
        (base - 1, base + 86_400_000_000),
        (base + 40_000_000_001, base + 200_000_000_005),
        (i64::MIN, i64::MAX),
        (base + 5, base + 4),
    ] {
        prop_assert_eq!(
            ids_of(
                store,
                &store
                    .created_in(lo, hi)
                    .iter()
                    .fold(RoaringBitmap::new(), |acc, p| acc | p.as_ref())
            ),
            scan(oracle, |r| (lo..=hi).contains(&r.created_at.as_micros()))
        );
    }
    for &key in OrderKey::ALL {
        let mut sorted: Vec<&Record> = oracle.records().iter().collect();
        sorted.sort_by(|a, b| cmp_records(key, a, b));
        for desc in [false, true] {
            let order: Vec<&str> = if desc {
                sorted.iter().rev().map(|r| r.id.as_str()).collect()
            } else {
                sorted.iter().map(|r| r.id.as_str()).collect()
            };
            let walked: Vec<String> = store
                .walk(key, desc, None)
                .map(|r| store.id_of(r))
                .collect();
            prop_assert_eq!(&walked, &order, "{:?} desc={}", key, desc);
            // A walk starts after a position: the sort keys' indexes.
            if !Position::holds(key) {
                continue;
            }
            for (at, marker) in order.iter().enumerate() {
                let row = store.row_of(marker).unwrap();
                let after: Vec<String> = store
                    .walk(key, desc, Some(&store.position(row)))
                    .map(|r| store.id_of(r))
                    .collect();
                prop_assert_eq!(
                    &after[..],
                    &order[at + 1..],
                    "{:?} desc={} after {}",
                    key,
                    desc,
                    marker
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_oracle_after_every_batch(ops in proptest::collection::vec(op(), 1..24)) {
        let mut store = Store::new();
        let mut oracle = Oracle::new();
        for op in ops {
            let before = store.clone();
            let (got, want) = match &op {
                Op::Upsert(records) => (store.upsert(records), oracle.upsert(records)),
                Op::Delete(ids) => (store.delete(ids), oracle.delete(ids)),
            };
            prop_assert_eq!(&got, &want);
            if got.is_err() {
                prop_assert_eq!(store.records(), before.records(), "a rejected batch changed the store");
            }
            // The snapshot taken before the batch still answers as before.
            prop_assert!(before.internal_validate().is_ok());
            check_against_oracle(&store, &oracle)?;
        }
    }
}

#[test]
fn rejected_batches_change_nothing() {
    let base = Record::from_json(&json!({
        "id": "a", "checkpoint_id": "c", "project_id": "p", "name": "n", "status": "available",
        "resource_id": "r", "resource_type": "t",
        "created_at": "2020-01-01T00:00:00", "updated_at": "2020-01-01T00:00:00"
    }))
    .unwrap();
    let mut store = Store::new();
    store.upsert(std::slice::from_ref(&base)).unwrap();
    let other = Record {
        id: "b".into(),
        ..base.clone()
    };
    let dup = store
        .upsert(&[other.clone(), base.clone(), other.clone()])
        .unwrap_err();
    assert_eq!(
        dup.to_string(),
        "record 2: field `id`: duplicate id \"b\" (also record 0 of this batch)"
    );
    let bad_member = Record {
        members: vec![
            Member {
                dest_project_id: "q".into(),
                status: MemberStatus::Accept,
            },
            Member {
                dest_project_id: "q".into(),
                status: MemberStatus::Pending,
            },
        ],
        ..other.clone()
    };
    let err = store.upsert(&[other.clone(), bad_member]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("record 1: field `members[1].dest_project_id`"),
        "{err}"
    );
    let huge = Record {
        description: "x".repeat(crate::batch::MAX_TEXT_BYTES + 1),
        ..other.clone()
    };
    let err = store.upsert(&[huge]).unwrap_err();
    assert!(
        err.to_string().starts_with("record 0: field `description`"),
        "{err}"
    );
    let nested = |levels: usize| (0..levels).fold(Value::Null, |inner, _| json!([inner]));
    let too_deep = Record {
        children: vec![nested(100)],
        ..other.clone()
    };
    let err = store.upsert(std::slice::from_ref(&too_deep)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "record 0: field `children`: nested 102 levels deep; the limit is 100"
    );
    let deep = Record {
        children: vec![nested(98)],
        ..other.clone()
    };
    store.upsert(std::slice::from_ref(&deep)).unwrap();
    assert_eq!(store.get("b").unwrap().children, deep.children);
    store.delete(&["b"]).unwrap();
    assert_eq!(
        store.delete(&["a", "nope"]).unwrap_err(),
        crate::error::ChangeError::UnknownId {
            index: 1,
            id: "nope".into()
        }
    );
    assert_eq!(
        store.delete(&["a", "a"]).unwrap_err(),
        crate::error::ChangeError::DuplicateId {
            index: 1,
            first: 0,
            id: "a".into()
        }
    );
    assert_eq!(store.records(), vec![base]);
    store.internal_validate().unwrap();
}

#[test]
fn bulk_loads_and_large_replacements_match_the_oracle() {
    use crate::synth::{generate, SynthConfig};
    let config = SynthConfig {
        records: 6000,
        projects: 40,
        seed: 3,
        slim: false,
    };
    let first: Vec<Record> = generate(&config).collect();
    let mut store = Store::new();
    let mut oracle = Oracle::new();
    assert_eq!(store.upsert(&first), Ok(6000));
    oracle.upsert(&first).unwrap();
    store.internal_validate().unwrap();

    // Replace every other record (with new contents) and add as many new
    // ones: a second bulk batch over a non-empty store.
    let fresh: Vec<Record> = generate(&SynthConfig {
        seed: 4,
        ..config.clone()
    })
    .collect();
    let mut second: Vec<Record> = Vec::new();
    for (i, (old, new)) in first.iter().zip(&fresh).enumerate() {
        if i % 2 == 0 {
            second.push(Record {
                id: old.id.clone(),
                ..new.clone()
            });
        } else {
            second.push(new.clone());
        }
    }
    assert_eq!(store.upsert(&second), Ok(6000));
    oracle.upsert(&second).unwrap();
    let gone: Vec<&str> = first
        .iter()
        .skip(1)
        .step_by(3)
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(store.delete(&gone), Ok(gone.len()));
    oracle.delete(&gone).unwrap();
    // A large batch smaller than the store: its rows are sorted and merged
    // into the ordered indexes (half of it replaces records, new contents).
    let third_fresh: Vec<Record> = generate(&SynthConfig {
        records: 4500,
        seed: 5,
        ..config.clone()
    })
    .collect();
    let live: Vec<String> = store.records().iter().map(|r| r.id.clone()).collect();
    let third: Vec<Record> = third_fresh
        .iter()
        .enumerate()
        .map(|(i, r)| match i % 2 {
            0 => Record {
                id: live[i / 2 * 3].clone(),
                ..r.clone()
            },
            _ => r.clone(),
        })
        .collect();
    assert!(third.len() >= BULK_MIN && third.len() < store.len());
    assert_eq!(store.upsert(&third), Ok(third.len()));
    oracle.upsert(&third).unwrap();
    store.internal_validate().unwrap();
    // A small batch after the bulk ones takes the row-by-row path.
    assert_eq!(store.upsert(&fresh[..10]), Ok(10));
    oracle.upsert(&fresh[..10]).unwrap();
    store.internal_validate().unwrap();

    let mut expected = oracle.records().to_vec();
    expected.sort_by(|a, b| a.id.as_bytes().cmp(b.id.as_bytes()));
    assert_eq!(store.records(), expected);
    for &key in OrderKey::ALL {
        let mut sorted: Vec<&Record> = oracle.records().iter().collect();
        sorted.sort_by(|a, b| cmp_records(key, a, b));
        let walked: Vec<String> = store
            .walk(key, true, None)
            .map(|r| store.id_of(r))
            .collect();
        let order: Vec<&str> = sorted.iter().rev().map(|r| r.id.as_str()).collect();
        assert_eq!(walked, order, "{key:?}");
    }
    let big = &oracle.records()[17].project_id;
    let owned = store.eq_rows(BitmapKey::Project, big);
    assert_eq!(
        ids_of(&store, owned),
        scan(&oracle, |r| &r.project_id == big)
    );
    let pattern = "bk_1";
    assert_eq!(
        ids_of(&store, &store.contains_rows(TextField::Name, pattern)),
        scan(&oracle, |r| r.name.contains(pattern))
    );
}
