//! Placement: AIStore-compatible highest-random-weight (HRW) hashing over targets and over a
//! target's mountpaths, computed locally by every node from its cluster map.
use moss_types::Bck;
use moss_types::smap::{Smap, Snode};
use xxhash_rust::xxh64::{Xxh64, xxh64};

/// Seed of every placement hash (AIStore's `MLCG32`).
pub const SEED: u64 = 1_103_515_245;

/// Digest of a node id, mountpath or uname.
pub fn digest(text: &str) -> u64 {
    xxh64(text.as_bytes(), SEED)
}

/// The 64-bit mixer AIStore applies to `node_digest ^ key_digest` (two splitmix64 rounds and the
/// xoshiro256** scrambler).
pub fn mix64(x: u64) -> u64 {
    const GR: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut z = x.wrapping_add(GR);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z = (z ^ (z >> 31)).wrapping_add(GR);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z = (z ^ (z >> 31)).wrapping_mul(5);
    z.rotate_left(7).wrapping_mul(9)
}

/// Picks the candidate with the highest weight for `key`; ties (a 64-bit collision) go to the first.
pub fn hrw<'a, T>(
    key: u64,
    candidates: impl IntoIterator<Item = &'a T>,
    digest_of: impl Fn(&T) -> u64,
) -> Option<&'a T>
where
    T: 'a,
{
    let mut best: Option<(&T, u64)> = None;
    for candidate in candidates {
        let weight = mix64(digest_of(candidate) ^ key);
        if best.is_none_or(|(_, w)| weight > w) {
            best = Some((candidate, weight));
        }
    }
    best.map(|(c, _)| c)
}

/// The target owning the object with uname digest `key` (maintenance targets excluded).
pub fn owner(smap: &Smap, key: u64) -> Option<&Snode> {
    hrw(key, smap.active_targets(), |t| t.id_digest)
}

/// The target owning an object uname.
pub fn owner_of<'a>(smap: &'a Smap, uname: &str) -> Option<&'a Snode> {
    owner(smap, digest(uname))
}

/// `digest(&bck.object_uname(objname))` without building the uname (this runs for every
/// object access and every GetBatch entry).
pub fn object_digest(bck: &Bck, objname: &str) -> u64 {
    let mut h = Xxh64::new(SEED);
    for part in [
        bck.provider.as_str(),
        "/@",
        &bck.namespace.uuid,
        "#",
        &bck.namespace.name,
        "/",
        &bck.name,
        "/",
        objname,
    ] {
        h.update(part.as_bytes());
    }
    h.digest()
}

/// The target owning an object.
pub fn owner_of_object<'a>(smap: &'a Smap, bck: &Bck, objname: &str) -> Option<&'a Snode> {
    owner(smap, object_digest(bck, objname))
}

/// Active targets by descending HRW weight for the object: its owner first, then each target
/// that would own it if all before it were gone (AIStore's `HrwTargetList`). Redundancy pieces
/// go to the targets after the owner.
pub fn ranked_targets<'a>(smap: &'a Smap, bck: &Bck, objname: &str) -> Vec<&'a Snode> {
    let key = object_digest(bck, objname);
    let mut weighted: Vec<(u64, &Snode)> = smap
        .active_targets()
        .map(|t| (mix64(t.id_digest ^ key), t))
        .collect();
    // Stable on ties, like `hrw`: the first in id order wins.
    weighted.sort_by_key(|w| std::cmp::Reverse(w.0));
    weighted.into_iter().map(|(_, t)| t).collect()
}

/// A target's mountpath with its digest, for mountpath selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mountpath {
    pub path: String,
    pub digest: u64,
}

impl Mountpath {
    /// A mountpath; `path` should be clean (no trailing `/`), as AIStore hashes the cleaned path.
    pub fn new(path: &str) -> Mountpath {
        let clean = path.trim_end_matches('/');
        let clean = if clean.is_empty() { "/" } else { clean };
        Mountpath {
            path: clean.to_string(),
            digest: digest(clean),
        }
    }
}

/// The mountpath holding the object with uname digest `key`.
pub fn mountpath_for(mountpaths: &[Mountpath], key: u64) -> Option<&Mountpath> {
    hrw(key, mountpaths, |m| m.digest)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use moss_types::smap::{PROXY, TARGET};

    use super::*;

    fn smap(ids: &[&str]) -> Smap {
        let proxy = Snode::new("p1", PROXY, "http://127.0.0.1:8080", digest("p1"));
        let tmap: BTreeMap<_, _> = ids
            .iter()
            .map(|id| {
                (
                    id.to_string(),
                    Snode::new(id, TARGET, "http://127.0.0.1:1", digest(id)),
                )
            })
            .collect();
        Smap {
            pmap: [("p1".to_string(), proxy.clone())].into(),
            proxy_si: proxy,
            tmap,
            uuid: String::new(),
            creation_time: String::new(),
            version: 1,
        }
    }

    // Vectors from the reference notes (ais-core.md §2.4).
    #[test]
    fn object_digest_is_the_digest_of_the_uname() {
        let mut ns = Bck::ais("bck1");
        ns.namespace = moss_types::bucket::Namespace::parse("@uuid1#ns1").unwrap();
        for bck in [Bck::ais("b"), ns] {
            for objname in ["o", "a/b c/d.jpg", "ü/\u{1F600}", ""] {
                assert_eq!(
                    object_digest(&bck, objname),
                    digest(&bck.object_uname(objname)),
                    "{bck:?} {objname}"
                );
            }
        }
    }

    #[test]
    fn digests_and_mixer_match_reference_vectors() {
        assert_eq!(digest(""), 0xaaa3_5758_9155_7d33);
        assert_eq!(mix64(0), 0x1a70_a846_bd9c_c2a9);
        assert_eq!(mix64(1), 0xc588_3e37_0b09_26c3);
        assert_eq!(digest("t1aaaaaa"), 7_121_389_483_902_232_619);
        assert_eq!(digest("t2bbbbbb"), 14_038_709_307_019_125_995);
        assert_eq!(digest("t3cccccc"), 10_952_930_699_838_777_106);
        assert_eq!(digest("ais/@#ns1/bck1/obj-0"), 0x92f8_2c9b_b946_5c25);
        assert_eq!(
            Mountpath::new("/tmp/ais/mp1/3").digest,
            0x1a7e_a9dd_a76b_ded7
        );
        assert_eq!(
            Mountpath::new("/tmp/ais/mp4/3/").digest,
            0xeb14_c35f_7ffb_406e
        );
    }

    #[test]
    fn owners_and_mountpaths_match_reference_vectors() {
        let smap = smap(&["t1aaaaaa", "t2bbbbbb", "t3cccccc"]);
        let mpaths: Vec<_> = (1..=4)
            .map(|i| Mountpath::new(&format!("/tmp/ais/mp{i}/3")))
            .collect();
        let expect = [
            ("obj-0", 0x291662eaafb87d03u64, "t3cccccc", "/tmp/ais/mp4/3"),
            ("obj-1", 0x49f074db46e40b3e, "t3cccccc", "/tmp/ais/mp1/3"),
            ("obj-2", 0x35f3ad12df15194d, "t1aaaaaa", "/tmp/ais/mp3/3"),
            ("obj-3", 0xc82cd9c6ec941a9d, "t3cccccc", "/tmp/ais/mp2/3"),
            ("obj-4", 0x43d9311743f5ab8b, "t1aaaaaa", "/tmp/ais/mp4/3"),
            ("obj-5", 0xf75cc577d0fdf1c7, "t1aaaaaa", "/tmp/ais/mp4/3"),
        ];
        for (obj, key, target, mpath) in expect {
            let uname = format!("ais/@#/bck1/{obj}");
            assert_eq!(digest(&uname), key, "{uname}");
            assert_eq!(
                owner_of(&smap, &uname).unwrap().daemon_id,
                target,
                "{uname}"
            );
            assert_eq!(mountpath_for(&mpaths, key).unwrap().path, mpath, "{uname}");
        }
        let key = digest("ais/@#/bck1/obj-0");
        assert_eq!(mix64(digest("t1aaaaaa") ^ key), 0x49f6_3067_099f_ba0a);
        assert_eq!(mix64(digest("t2bbbbbb") ^ key), 0x7eae_4a8d_a4bf_8b5c);
        assert_eq!(mix64(digest("t3cccccc") ^ key), 0xb696_3be3_1d5b_a451);
    }

    #[test]
    fn maintenance_targets_are_skipped_and_empty_maps_have_no_owner() {
        let mut smap = smap(&["t1aaaaaa", "t2bbbbbb", "t3cccccc"]);
        let uname = "ais/@#/bck1/obj-0";
        smap.tmap.get_mut("t3cccccc").unwrap().flags = moss_types::smap::FLAG_MAINTENANCE;
        assert_ne!(owner_of(&smap, uname).unwrap().daemon_id, "t3cccccc");
        smap.tmap.clear();
        assert!(owner_of(&smap, uname).is_none());
    }

    #[test]
    fn placement_spreads_objects_evenly() {
        let smap = smap(&["ta", "tb", "tc"]);
        let mut counts = BTreeMap::<String, usize>::new();
        for i in 0..3000 {
            let owner = owner_of(&smap, &format!("ais/@#/b/o-{i}")).unwrap();
            *counts.entry(owner.daemon_id.clone()).or_default() += 1;
        }
        assert!(
            counts.values().all(|&n| (800..1200).contains(&n)),
            "{counts:?}"
        );
    }

    #[test]
    fn ranked_targets_start_with_the_owner_and_list_each_successor() {
        let ids = ["ta", "tb", "tc", "td", "te"];
        let bck = Bck::ais("b");
        for i in 0..200 {
            let name = format!("o-{i}");
            let mut smap = smap(&ids);
            let ranked: Vec<String> = ranked_targets(&smap, &bck, &name)
                .iter()
                .map(|t| t.daemon_id.clone())
                .collect();
            assert_eq!(ranked.len(), ids.len());
            // Removing the owner makes the next one the owner, and so on.
            for id in &ranked {
                assert_eq!(&owner_of_object(&smap, &bck, &name).unwrap().daemon_id, id);
                smap.tmap.remove(id);
            }
        }
    }
}
