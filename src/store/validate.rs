//! `internal_validate`: every index recomputed from the columns and
//! compared, for property tests and fuzz targets.

use std::collections::{BTreeMap, BTreeSet};

use roaring::RoaringBitmap;

use super::{DictColumn, OrderKey, Store, NULL_CODE};
use crate::index::{BitmapIndex, TrigramIndex};

type Expected = BTreeMap<u32, RoaringBitmap>;

fn compare(name: &str, index: &BitmapIndex, expected: &Expected) -> Result<(), String> {
    let actual: Expected = index.iter().map(|(c, b)| (c, b.clone())).collect();
    if &actual != expected {
        let codes: BTreeSet<u32> = actual.keys().chain(expected.keys()).copied().collect();
        let bad = codes.into_iter().find(|c| actual.get(c) != expected.get(c));
        return Err(format!(
            "bitmap index `{name}` disagrees with its column at code {bad:?}"
        ));
    }
    Ok(())
}

fn check_dict(name: &str, col: &DictColumn, live: &RoaringBitmap) -> Result<(), String> {
    let mut refs: BTreeMap<u32, u32> = BTreeMap::new();
    for (row, code) in col.codes().enumerate() {
        let is_live = live.contains(row as u32);
        if !is_live && code != NULL_CODE {
            return Err(format!("column `{name}`: dead row {row} holds code {code}"));
        }
        if code != NULL_CODE {
            *refs.entry(code).or_default() += 1;
        }
    }
    check_refs(name, &col.dict, &refs)
}

fn check_refs(name: &str, dict: &super::Dict, refs: &BTreeMap<u32, u32>) -> Result<(), String> {
    for code in 0..dict.code_bound() as u32 {
        let expected = refs.get(&code).copied().unwrap_or(0);
        if dict.refs(code) != expected {
            return Err(format!(
                "dictionary `{name}`: code {code} has {} references, rows hold {expected}",
                dict.refs(code)
            ));
        }
        if let Some(v) = dict.value_opt(code) {
            if dict.code(v) != Some(code) {
                return Err(format!(
                    "dictionary `{name}`: {v:?} does not map back to {code}"
                ));
            }
        }
    }
    if dict.len() != refs.len() || refs.keys().any(|&c| dict.value_opt(c).is_none()) {
        return Err(format!(
            "dictionary `{name}`: live values and referenced codes differ"
        ));
    }
    Ok(())
}

fn check_grams(name: &str, grams: &TrigramIndex, col: &DictColumn) -> Result<(), String> {
    let mut expected: BTreeMap<u32, RoaringBitmap> = BTreeMap::new();
    for (code, value) in col.dict.iter() {
        for g in TrigramIndex::expected(value) {
            expected.entry(g).or_default().insert(code);
        }
    }
    let actual: BTreeMap<u32, RoaringBitmap> = grams.iter().map(|(g, b)| (g, b.clone())).collect();
    if actual != expected {
        return Err(format!(
            "trigram index of `{name}` disagrees with its dictionary"
        ));
    }
    Ok(())
}

impl Store {
    /// Recomputes every index from the columns and compares: bitmaps,
    /// dictionaries and their reference counts, ordered indexes (content and
    /// order), trigrams, ip pairs, sharing. Slow (a full scan); for tests.
    ///
    /// # Errors
    ///
    /// A description of the first disagreement found.
    #[doc(hidden)]
    pub fn internal_validate(&self) -> Result<(), String> {
        let (c, x) = (&self.cols, &self.idx);
        let rows = c.rows();
        if !(&self.live & &self.free).is_empty()
            || self.live.len() + self.free.len() != rows as u64
            || self.live.max().is_some_and(|m| m as usize >= rows)
            || self.free.max().is_some_and(|m| m as usize >= rows)
        {
            return Err("live and free rows do not partition the row space".into());
        }

        let mut exp: [Expected; 10] = Default::default();
        let mut at_least: Vec<RoaringBitmap> = Vec::new();
        let mut dest_refs: BTreeMap<u32, u32> = BTreeMap::new();
        let mut ips = Vec::new();
        for row in self.live.iter() {
            let i = row as usize;
            let mut put = |which: usize, code: u32| {
                if code != NULL_CODE {
                    exp[which].entry(code).or_default().insert(row);
                }
            };
            put(0, *c.status.get(i) as u32);
            put(1, *c.image_type.get(i) as u32);
            put(2, u32::from(*c.dec.get(i)));
            put(3, c.project.code(i));
            put(4, c.ep.code(i));
            put(5, c.resource_type.code(i));
            put(6, c.resource_az.code(i));
            put(7, c.policy.code(i));
            put(8, c.vault.code(i));
            let members = c.members_of(i);
            for &(dest, _) in members.iter() {
                put(9, dest);
                *dest_refs.entry(dest).or_default() += 1;
            }
            if at_least.len() < members.len() {
                at_least.resize_with(members.len(), RoaringBitmap::new);
            }
            for b in &mut at_least[..members.len()] {
                b.insert(row);
            }
            ips.extend(c.ips(i).into_iter().map(|ip| (ip, row)));
            if c.id.get(i).is_none() {
                return Err(format!("live row {row} has no id"));
            }
        }
        for row in self.free.iter() {
            if c.id.get(row as usize).is_some() || !c.members_of(row as usize).is_empty() {
                return Err(format!("freed row {row} still holds data"));
            }
        }
        let named = [
            ("status", &x.status),
            ("image_type", &x.image_type),
            ("dec", &x.dec),
            ("project_id", &x.project),
            ("enterprise_project_id", &x.ep),
            ("resource_type", &x.resource_type),
            ("resource_az", &x.resource_az),
            ("policy_id", &x.policy),
            ("vault_id", &x.vault),
            ("shared to", &x.sharing.to),
        ];
        for (k, (name, index)) in named.iter().enumerate() {
            compare(name, index, &exp[k])?;
        }
        for (s, index) in x.sharing.to_status.iter().enumerate() {
            let mut e = Expected::new();
            for row in self.live.iter() {
                for &(dest, status) in c.members_of(row as usize) {
                    if status as usize == s {
                        e.entry(dest).or_default().insert(row);
                    }
                }
            }
            compare("shared to, by member status", index, &e)?;
        }
        let actual_at_least: Vec<RoaringBitmap> =
            x.sharing.at_least.iter().map(|b| (**b).clone()).collect();
        if actual_at_least != at_least {
            return Err("sharing index by member count disagrees with the members".into());
        }
        check_refs("dest_project_id", &c.dests, &dest_refs)?;

        for (name, col) in [
            ("project_id", &c.project),
            ("enterprise_project_id", &c.ep),
            ("name", &c.name),
            ("resource_id", &c.resource_id),
            ("resource_name", &c.resource_name),
            ("resource_type", &c.resource_type),
            ("resource_az", &c.resource_az),
            ("policy_id", &c.policy),
            ("vault_id", &c.vault),
            ("description", &c.description),
            ("provider_id", &c.provider_id),
            ("parent_id", &c.parent_id),
        ] {
            check_dict(name, col, &self.live)?;
        }
        check_grams("name", &x.name_grams, &c.name)?;
        check_grams("resource_name", &x.resource_name_grams, &c.resource_name)?;

        for key in OrderKey::ALL {
            let seq = x.order(key);
            seq.check(|&a, &b| c.cmp_rows(key, a, b))
                .map_err(|e| format!("ordered index {key:?}: {e}"))?;
            let held: RoaringBitmap = seq.iter().copied().collect();
            if held != self.live || seq.len() != self.len() {
                return Err(format!(
                    "ordered index {key:?} does not hold exactly the live rows"
                ));
            }
        }

        let mut days: BTreeMap<i64, RoaringBitmap> = BTreeMap::new();
        for row in self.live.iter() {
            days.entry(super::day_of(*c.created_at.get(row as usize)))
                .or_default()
                .insert(row);
        }
        let actual: BTreeMap<i64, RoaringBitmap> =
            x.days.iter().map(|(d, b)| (*d, b.clone())).collect();
        if actual != days {
            return Err("day index disagrees with created_at".into());
        }
        let overlap: RoaringBitmap = self
            .live
            .iter()
            .filter(|&row| {
                let stored: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(c.extend_info.str(row as usize)).unwrap_or_default();
                crate::api::render::v1_keys_overlap(&stored)
            })
            .collect();
        if overlap != x.extend_overlap {
            return Err("extend_info overlap bitmap disagrees with extend_info".into());
        }

        x.ips.check().map_err(|e| format!("ip index: {e}"))?;
        let mut actual_ips = x.ips.pairs();
        actual_ips.sort();
        ips.sort();
        if actual_ips != ips {
            return Err("ip index disagrees with backup_data".into());
        }
        Ok(())
    }
}
