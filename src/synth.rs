//! Synthetic backup records with realistic shapes, deterministic for a
//! seed: for demos, benchmarks and tests (the library does no I/O; the
//! `backdex gen` command writes these out).
//!
//! The shape: a few very large projects (the largest holds about 20% of
//! the records) and a long tail of small ones; about ten backups per
//! resource; status mostly `available`; mostly `OS::Nova::Server` and
//! `OS::Cinder::Volume`; six AZs; about 1,000 policies; some replicas and
//! some dedicated-cloud backups; creation times over one year with
//! microseconds; `protected_at` null while protecting; about 3% of the
//! backups shared to other projects.
//!
//! ```
//! use backdex::synth::{generate, SynthConfig};
//! let config = SynthConfig { records: 1000, ..SynthConfig::default() };
//! let a: Vec<_> = generate(&config).collect();
//! let b: Vec<_> = generate(&config).collect();
//! assert_eq!(a.len(), 1000);
//! assert_eq!(a, b, "deterministic for a seed");
//! ```

use serde_json::{json, Map, Value};

use crate::record::{ImageType, Member, MemberStatus, Record, Status};
use crate::timestamp::Timestamp;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthConfig {
    /// How many records.
    pub records: usize,
    /// How many projects (at least 4 are used).
    pub projects: usize,
    /// The seed; the same seed gives the same records.
    pub seed: u64,
    /// Keep the opaque objects nearly empty (only the addresses the `ip`
    /// filter reads), for very large stores.
    pub slim: bool,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            records: 100_000,
            projects: 1000,
            seed: 42,
            slim: false,
        }
    }
}

/// The one random number generator of backdex's synthetic data and its
/// randomised tests: SplitMix64, small, fast, deterministic for a seed
/// (so that a failure replays), and good enough for synthetic data.
///
/// ```
/// use backdex::synth::Rng;
/// let (mut a, mut b) = (Rng::new(7), Rng::new(7));
/// assert_eq!(a.next_u64(), b.next_u64());
/// assert!(a.below(10) < 10);
/// ```
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 for `n` = 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn uuid(&mut self) -> String {
        let (a, b) = (self.next_u64(), self.next_u64());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            (b >> 48) & 0x3fff | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }

    /// A project index: 20%, 10%, 6%, 4% for the four largest, then a
    /// log-uniform long tail over the rest.
    fn project(&mut self, projects: usize) -> usize {
        let u = self.unit();
        let head = [0.20, 0.30, 0.36, 0.40];
        if let Some(p) = head.iter().position(|&h| u < h) {
            return p;
        }
        // With only the four head projects there is no tail: spread the
        // rest over them.
        if projects <= 4 {
            return self.below(projects.max(1) as u64) as usize;
        }
        let tail = (projects - 4) as f64;
        4 + (tail.powf(self.unit()) as usize - 1).min(tail as usize - 1)
    }
}

const AZS: [&str; 6] = [
    "az1.dc1",
    "az2.dc1",
    "az3.dc1",
    "br-iaas-odin1a",
    "cn-north-4a",
    "cn-north-4b",
];
const POLICIES: u64 = 1000;

#[derive(Debug, Clone)]
struct Resource {
    id: String,
    name: String,
    project: usize,
    ep: String,
    resource_type: &'static str,
    az: &'static str,
    size: u64,
    policy: Option<u64>,
    vault: u64,
    private_ip: String,
    eip: String,
}

/// The records of `config`, generated lazily.
pub fn generate(config: &SynthConfig) -> impl Iterator<Item = Record> {
    let mut rng = Rng(config.seed ^ 0x6261_636B_6465_7800);
    let projects: Vec<String> = (0..config.projects.max(4))
        .map(|_| rng.uuid().replace('-', ""))
        .collect();
    let policies: Vec<String> = (0..POLICIES).map(|_| rng.uuid()).collect();
    let resources: Vec<Resource> = (0..(config.records / 10).max(1))
        .map(|i| resource(&mut rng, i, projects.len()))
        .collect();
    let config = config.clone();
    (0..config.records).map(move |_| {
        let r = &resources[rng.below(resources.len() as u64) as usize];
        record(&mut rng, r, &projects, &policies, config.slim)
    })
}

fn resource(rng: &mut Rng, i: usize, projects: usize) -> Resource {
    let project = rng.project(projects);
    let resource_type = match rng.below(100) {
        0..=69 => "OS::Nova::Server",
        70..=97 => "OS::Cinder::Volume",
        _ => "OS::Workspace::DesktopV2",
    };
    let prefix = match resource_type {
        "OS::Nova::Server" => ["ecs-web", "ecs-db", "ecs-app", "k8s-node"][rng.below(4) as usize],
        "OS::Cinder::Volume" => ["vol-data", "vol-log", "evs-sys"][rng.below(3) as usize],
        _ => "desktop",
    };
    let octets = (rng.below(256), rng.below(256), 2 + rng.below(250));
    Resource {
        id: rng.uuid(),
        name: format!("{prefix}-{:04}", i % 10_000),
        project,
        // Projects use one to three enterprise projects; "0" is the default one.
        ep: match rng.below(10) {
            0..=5 => "0".to_owned(),
            n => format!("ep-{project:04}-{}", n % 2),
        },
        resource_type,
        az: AZS[rng.below(AZS.len() as u64) as usize],
        size: [10, 20, 40, 40, 100, 500][rng.below(6) as usize],
        policy: rng.chance(0.8).then(|| rng.below(POLICIES)),
        vault: rng.below(2000),
        private_ip: format!("192.168.{}.{}", octets.0, octets.2),
        eip: if rng.chance(0.3) {
            format!("121.36.{}.{}", octets.1, octets.2)
        } else {
            String::new()
        },
    }
}

fn status(rng: &mut Rng) -> Status {
    match rng.below(1000) {
        0..=899 => Status::Available,
        900..=929 => Status::Error,
        930..=949 => Status::Protecting,
        950..=964 => Status::Deleting,
        965..=979 => Status::Deleted,
        980..=984 => Status::WaitingProtect,
        985..=989 => Status::Restoring,
        990..=994 => Status::WaitingRestore,
        _ => Status::WaitingDelete,
    }
}

fn record(
    rng: &mut Rng,
    r: &Resource,
    projects: &[String],
    policies: &[String],
    slim: bool,
) -> Record {
    // One year of creation times, from 2025-11-01, to the microsecond.
    const START: i64 = 1_761_955_200_000_000;
    const YEAR: u64 = 365 * 86_400 * 1_000_000;
    let created = START + rng.below(YEAR) as i64;
    let at = |micros: i64| Timestamp::from_micros(micros).unwrap_or(Timestamp::MIN);
    let status = status(rng);
    let protecting = matches!(status, Status::Protecting | Status::WaitingProtect);
    let auto = r.policy.is_some() && rng.chance(0.85);
    let name = if auto {
        format!("autobk_{:04x}", rng.below(0x10000))
    } else if rng.chance(0.7) {
        format!("manualbk_{:05}", rng.below(100_000))
    } else {
        [
            "before-upgrade",
            "daily-check",
            "pre-migration",
            "weekly full",
            "备份-测试",
        ][rng.below(5) as usize]
            .to_owned()
    };
    let image_type = if rng.chance(0.05) {
        ImageType::Replication
    } else {
        ImageType::Backup
    };
    let members = if rng.chance(0.03) {
        let mut members: Vec<Member> = Vec::new();
        for _ in 0..1 + rng.below(2) {
            let dest = projects[rng.project(projects.len())].clone();
            if dest != projects[r.project] && members.iter().all(|m| m.dest_project_id != dest) {
                let status = match rng.below(10) {
                    0..=6 => MemberStatus::Accept,
                    7..=8 => MemberStatus::Pending,
                    _ => MemberStatus::Reject,
                };
                members.push(Member {
                    dest_project_id: dest,
                    status,
                });
            }
        }
        members
    } else {
        Vec::new()
    };
    let mut backup_data = Map::new();
    backup_data.insert("private_ip".into(), json!(r.private_ip));
    backup_data.insert("eip".into(), json!(r.eip));
    let mut extend_info = Map::new();
    let mut replication_records = Vec::new();
    if !slim {
        for (k, v) in [
            ("__openstack_region_name", json!("cn-north-4")),
            ("cloudservicetype", json!("QEMU")),
            ("ram", json!(4096)),
            ("vcpus", json!(4)),
            ("disk", json!(r.size)),
            ("imagetype", json!("gold")),
        ] {
            backup_data.insert(k.into(), v);
        }
        extend_info = json!({
            "auto_trigger": auto,
            "supported_restore_mode": "backup",
            "contain_system_disk": r.resource_type == "OS::Nova::Server",
            "support_lld": true,
            "architecture": "x86_64",
            "system_disk": false,
            "progress": if protecting { rng.below(100) } else { 100 },
            "fail_reason": if status == Status::Error { "backup timed out" } else { "" },
        })
        .as_object()
        .cloned()
        .unwrap_or_default();
        if image_type == ImageType::Replication {
            replication_records.push(json!({
                "id": rng.uuid(),
                "source_region": "cn-north-4",
                "destination_region": "cn-east-3",
                "status": "success",
                "created_at": at(created).to_string(),
            }));
        }
    }
    let updated = created + rng.below(3_600_000_000) as i64;
    Record {
        id: rng.uuid(),
        checkpoint_id: rng.uuid(),
        project_id: projects[r.project].clone(),
        enterprise_project_id: r.ep.clone(),
        name,
        description: if rng.chance(0.1) {
            "nightly backup".into()
        } else {
            String::new()
        },
        status,
        resource_id: r.id.clone(),
        resource_name: r.name.clone(),
        resource_type: r.resource_type.to_owned(),
        resource_az: r.az.to_owned(),
        resource_size: r.size,
        image_type,
        policy_id: r
            .policy
            .filter(|_| auto)
            .map(|p| policies[p as usize].clone()),
        vault_id: Some(format!("vault-{:04}", r.vault)),
        provider_id: Some("0daac4c5-6707-4851-97ba-169e36266b66".into()),
        parent_id: None,
        dec: rng.chance(0.02),
        created_at: at(created),
        updated_at: at(updated),
        protected_at: (!protecting).then(|| at(created + rng.below(600_000_000) as i64)),
        expired_at: auto.then(|| at(created + 90 * 86_400 * 1_000_000)),
        extend_info,
        backup_data,
        replication_records,
        children: Vec::<Value>::new(),
        members,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn shape_is_realistic() {
        let config = SynthConfig {
            records: 50_000,
            projects: 500,
            seed: 7,
            slim: false,
        };
        let records: Vec<Record> = generate(&config).collect();
        let mut per_project: HashMap<&str, usize> = HashMap::new();
        for r in &records {
            *per_project.entry(&r.project_id).or_default() += 1;
            r.validate().unwrap();
        }
        let mut sizes: Vec<usize> = per_project.values().copied().collect();
        sizes.sort_unstable();
        let biggest = *sizes.last().unwrap() as f64 / records.len() as f64;
        assert!(
            (0.17..0.23).contains(&biggest),
            "largest project holds {biggest}"
        );
        assert!(sizes[0] < 100, "a long tail of small projects");
        let available = records
            .iter()
            .filter(|r| r.status == Status::Available)
            .count();
        assert!(available > 40_000 && available < 50_000);
        let shared = records.iter().filter(|r| !r.members.is_empty()).count();
        assert!(shared > 500 && shared < 2500, "{shared} shared");
        let ids: std::collections::HashSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids.len(), records.len(), "ids are unique");
        assert!(records.iter().all(|r| r.protected_at.is_some()
            || matches!(r.status, Status::Protecting | Status::WaitingProtect)));
        let other: Vec<Record> = generate(&SynthConfig { seed: 8, ..config })
            .take(10)
            .collect();
        assert_ne!(other, records[..10]);
    }

    #[test]
    fn few_projects_stay_in_range() {
        for projects in 0..6 {
            let config = SynthConfig {
                records: 300,
                projects,
                ..Default::default()
            };
            assert_eq!(generate(&config).count(), 300);
        }
    }
}
