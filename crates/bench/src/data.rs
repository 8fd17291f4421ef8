//! The data set: plain objects per size and TAR shards, with everything a client needs to
//! request and verify them (names, sizes, checksums), and the untimed setup that uploads them.
use std::cell::Cell;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use moss_archive::tarfmt;
use xxhash_rust::xxh64::xxh64;

use crate::http::{Peer, Req, read_text};

/// Modification time written into shard member headers.
const MTIME: u64 = 1_700_000_000;

/// Small deterministic PRNG (splitmix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * n as f64) as usize % n.max(1)
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// Deterministic object content for `seed`.
pub fn content(seed: u64, size: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(size);
    out
}

/// A member inside a shard.
#[derive(Debug, Clone)]
pub struct MemberOf {
    /// Catalog id of the shard object.
    pub shard: u32,
    /// Name inside the shard (the archpath).
    pub archpath: String,
    /// Payload offset inside the shard.
    pub offset: u64,
}

/// One thing a client can ask for: a plain object, a whole shard, or a member of a shard.
#[derive(Debug, Clone)]
pub struct Item {
    /// Entry name in a GetBatch archive: `bucket/object[/archpath]`.
    pub tar_name: String,
    /// Payload size.
    pub size: u64,
    /// xxh64 (seed 0) of the payload.
    pub hash: u64,
    /// Seed of the content (plain objects and members).
    pub seed: u64,
    /// The GetBatch request entry, as JSON.
    pub json: String,
    /// Our GET path (through the proxy or directly on the owner).
    pub get_path: String,
    /// nginx path.
    pub web_path: String,
    /// Index of the owning target (found on disk after upload).
    pub owner: usize,
    /// The object's file on the owner (plain objects).
    pub file: PathBuf,
    /// Set for members of shards.
    pub member: Option<MemberOf>,
}

/// Everything requestable, addressed by a `u32` id.
#[derive(Debug, Default)]
pub struct Catalog {
    items: Vec<Item>,
}

impl Catalog {
    pub fn item(&self, id: u32) -> &Item {
        &self.items[id as usize]
    }

    /// Whether a fetch of `id` verifies its checksum (the same sample for every cell).
    pub fn sampled(id: u32) -> bool {
        id.is_multiple_of(16)
    }

    fn push(&mut self, item: Item) -> u32 {
        self.items.push(item);
        (self.items.len() - 1) as u32
    }

    /// Total payload bytes of `ids`.
    pub fn bytes_of(&self, ids: &[u32]) -> u64 {
        ids.iter().map(|&id| self.item(id).size).sum()
    }

    /// GetBatch request body for `ids`.
    pub fn batch_body(&self, ids: &[u32]) -> Bytes {
        let mut s = String::with_capacity(64 + ids.len() * 40);
        s.push_str("{\"in\":[");
        for (i, &id) in ids.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&self.item(id).json);
        }
        s.push_str("],\"mime\":\".tar\",\"strm\":true,\"coer\":false}");
        Bytes::from(s)
    }
}

/// Plain objects of one size.
#[derive(Debug)]
pub struct SizeSet {
    /// `10k`, `100k`, `1m`.
    pub label: String,
    pub size: u64,
    pub bucket: String,
    /// Catalog ids, object i at index i.
    pub ids: Vec<u32>,
    /// The seeded request order (catalog ids).
    pub perm: Vec<u32>,
}

impl SizeSet {
    /// GetBatch path for this set's bucket.
    pub fn batch_path(&self) -> String {
        format!("/v1/ml/moss/{}?provider=ais", self.bucket)
    }
}

/// TAR shards of `members` members each.
#[derive(Debug)]
pub struct ShardSet {
    pub bucket: String,
    /// Catalog ids of the shard objects.
    pub shards: Vec<u32>,
    /// Catalog ids of members, per shard.
    pub members: Vec<Vec<u32>>,
    /// Member payload size.
    pub member_size: u64,
}

impl ShardSet {
    pub fn batch_path(&self) -> String {
        format!("/v1/ml/moss/{}?provider=ais", self.bucket)
    }

    /// `n` members from `n` distinct random shards (`n` ≤ number of shards).
    pub fn pick_distinct(&self, rng: &mut Rng, n: usize) -> Vec<u32> {
        let mut order: Vec<usize> = (0..self.shards.len()).collect();
        rng.shuffle(&mut order);
        order
            .into_iter()
            .take(n)
            .map(|s| {
                let m = &self.members[s];
                m[rng.below(m.len())]
            })
            .collect()
    }

    /// One random member of one random shard.
    pub fn pick_one(&self, rng: &mut Rng) -> u32 {
        let m = &self.members[rng.below(self.shards.len())];
        m[rng.below(m.len())]
    }
}

/// Sizes and counts of the data set.
#[derive(Debug, Clone)]
pub struct Plan {
    /// (label, size, count) of plain objects.
    pub sizes: Vec<(String, u64, usize)>,
    pub small_shards: usize,
    pub small_members: usize,
    pub large_shards: usize,
    pub large_members: usize,
    pub member_size: u64,
}

/// The whole data set.
#[derive(Debug)]
pub struct DataSet {
    pub cat: Catalog,
    pub sizes: Vec<SizeSet>,
    pub small: ShardSet,
    pub large: ShardSet,
}

const SHARD_BUCKET: &str = "bench-shards";

fn plain_json(objname: &str) -> String {
    format!("{{\"objname\":\"{objname}\"}}")
}

impl DataSet {
    /// Builds the catalog (names, sizes, checksums) for `plan`; nothing is uploaded yet.
    pub fn build(plan: &Plan) -> DataSet {
        let mut cat = Catalog::default();
        let mut sizes = Vec::new();
        for (set_no, (label, size, count)) in plan.sizes.iter().enumerate() {
            let bucket = format!("bench-{label}");
            let mut ids = Vec::with_capacity(*count);
            for i in 0..*count {
                let objname = format!("o-{i:06}");
                let seed = ((set_no as u64 + 1) << 40) | i as u64;
                let data = content(seed, *size as usize);
                ids.push(cat.push(Item {
                    tar_name: format!("{bucket}/{objname}"),
                    size: *size,
                    hash: xxh64(&data, 0),
                    seed,
                    json: plain_json(&objname),
                    get_path: format!("/v1/objects/{bucket}/{objname}?provider=ais"),
                    web_path: format!("/{bucket}/{objname}"),
                    owner: 0,
                    file: PathBuf::new(),
                    member: None,
                }));
            }
            let mut perm = ids.clone();
            Rng::new(0x5EED + set_no as u64).shuffle(&mut perm);
            sizes.push(SizeSet {
                label: label.clone(),
                size: *size,
                bucket,
                ids,
                perm,
            });
        }
        let small = build_shards(
            &mut cat,
            "1m",
            0xA1,
            plan.small_shards,
            plan.small_members,
            plan.member_size,
        );
        let large = build_shards(
            &mut cat,
            "10m",
            0xA2,
            plan.large_shards,
            plan.large_members,
            plan.member_size,
        );
        DataSet {
            cat,
            sizes,
            small,
            large,
        }
    }

    /// Total bytes to upload.
    pub fn upload_bytes(&self) -> u64 {
        let plain: u64 = self.sizes.iter().map(|s| self.cat.bytes_of(&s.ids)).sum();
        plain + self.cat.bytes_of(&self.small.shards) + self.cat.bytes_of(&self.large.shards)
    }

    /// Creates the buckets and uploads every object and shard through the proxy, `peers.len()`
    /// PUTs in flight.
    pub async fn upload(&self, peers: &mut [Peer], proxy: SocketAddr) -> Result<()> {
        let mut buckets: Vec<&str> = self.sizes.iter().map(|s| s.bucket.as_str()).collect();
        buckets.push(SHARD_BUCKET);
        for bucket in buckets {
            create_bucket(&mut peers[0], proxy, bucket).await?;
        }
        let mut jobs: Vec<u32> = Vec::new();
        for s in &self.sizes {
            jobs.extend(&s.ids);
        }
        jobs.extend(&self.small.shards);
        jobs.extend(&self.large.shards);
        // Big shards first so the tail of the upload is short objects.
        jobs.sort_by_key(|&id| std::cmp::Reverse(self.cat.item(id).size));
        let next = Cell::new(0usize);
        let done_bytes = Cell::new(0u64);
        let total = self.upload_bytes();
        let started = Instant::now();
        let last_print = Cell::new(Instant::now());
        let (jobs, next, done_bytes, last_print) = (&jobs, &next, &done_bytes, &last_print);
        let workers = peers.iter_mut().map(|peer| async move {
            loop {
                let i = next.get();
                let Some(&id) = jobs.get(i) else {
                    return Ok::<(), anyhow::Error>(());
                };
                next.set(i + 1);
                let body = self.object_bytes(id);
                let item = self.cat.item(id);
                let path = item.get_path.clone();
                put_object(peer, proxy, &path, body).await?;
                done_bytes.set(done_bytes.get() + item.size);
                if last_print.get().elapsed().as_secs_f64() > 2.0 {
                    last_print.set(Instant::now());
                    eprintln!(
                        "  uploaded {:.0} of {:.0} MB ({:.0} MB/s)",
                        done_bytes.get() as f64 / 1e6,
                        total as f64 / 1e6,
                        done_bytes.get() as f64 / 1e6 / started.elapsed().as_secs_f64()
                    );
                }
            }
        });
        let results = futures::future::join_all(workers).await;
        for r in results {
            r?;
        }
        Ok(())
    }

    /// The bytes stored for an object or shard.
    fn object_bytes(&self, id: u32) -> Bytes {
        let item = self.cat.item(id);
        if let Some(set) = [&self.small, &self.large]
            .into_iter()
            .find(|s| s.shards.contains(&id))
        {
            let Some(pos) = set.shards.iter().position(|&s| s == id) else {
                return Bytes::new();
            };
            return Bytes::from(shard_bytes(&self.cat, &set.members[pos]));
        }
        Bytes::from(content(item.seed, item.size as usize))
    }

    /// Finds each plain object's file under the targets' data dirs (`<dir>/mp/@ais/<bucket>/%ob/`)
    /// and records its owner.
    pub fn locate_files(&mut self, target_dirs: &[PathBuf]) -> Result<()> {
        for set in &self.sizes {
            for &id in &set.ids {
                let item = &mut self.cat.items[id as usize];
                let objname = item
                    .tar_name
                    .split_once('/')
                    .map(|(_, o)| o.to_string())
                    .unwrap_or_default();
                let found = target_dirs.iter().enumerate().find_map(|(t, dir)| {
                    let p = dir
                        .join("mp")
                        .join("@ais")
                        .join(&set.bucket)
                        .join("%ob")
                        .join(&objname);
                    p.is_file().then_some((t, p))
                });
                let Some((owner, file)) = found else {
                    bail!(
                        "object file {}/{objname} not found under any target's mp/@ais/ dir",
                        set.bucket
                    );
                };
                ensure!(
                    std::fs::metadata(&file)?.len() == item.size,
                    "{} has the wrong size on disk",
                    file.display()
                );
                item.owner = owner;
                item.file = file;
            }
        }
        Ok(())
    }

    /// Hard-links every plain object into `root/<bucket>/<object>` for nginx.
    pub fn link_web_root(&self, root: &Path) -> Result<()> {
        for set in &self.sizes {
            let dir = root.join(&set.bucket);
            std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
            for &id in &set.ids {
                let item = self.cat.item(id);
                let link = root.join(item.web_path.trim_start_matches('/'));
                if std::fs::hard_link(&item.file, &link).is_err() {
                    std::fs::copy(&item.file, &link)
                        .with_context(|| format!("link or copy {}", item.file.display()))?;
                }
            }
        }
        Ok(())
    }
}

/// Byte length of the header `push_file_header` writes for `name`.
fn header_len(name: &str, size: u64) -> u64 {
    let mut v = Vec::new();
    tarfmt::push_file_header(&mut v, name, size, MTIME);
    v.len() as u64
}

fn build_shards(
    cat: &mut Catalog,
    label: &str,
    tag: u64,
    count: usize,
    members: usize,
    member_size: u64,
) -> ShardSet {
    let mut shards = Vec::with_capacity(count);
    let mut all_members = Vec::with_capacity(count);
    for s in 0..count {
        let objname = format!("s{label}-{s:04}.tar");
        let mut offset = 0u64;
        let mut ids = Vec::with_capacity(members);
        let mut placeholder_members = Vec::with_capacity(members);
        for m in 0..members {
            let archpath = format!("m-{m:04}.bin");
            let seed = (tag << 40) | ((s as u64) << 20) | m as u64;
            let data = content(seed, member_size as usize);
            offset += header_len(&archpath, member_size);
            placeholder_members.push(Item {
                tar_name: format!("{SHARD_BUCKET}/{objname}/{archpath}"),
                size: member_size,
                hash: xxh64(&data, 0),
                seed,
                json: format!("{{\"objname\":\"{objname}\",\"archpath\":\"{archpath}\"}}"),
                get_path: String::new(),
                web_path: String::new(),
                owner: 0,
                file: PathBuf::new(),
                member: Some(MemberOf {
                    shard: 0,
                    archpath,
                    offset,
                }),
            });
            offset += member_size + tarfmt::padding(member_size) as u64;
        }
        let shard_size = offset + tarfmt::TRAILER.len() as u64;
        let shard_id = cat.push(Item {
            tar_name: format!("{SHARD_BUCKET}/{objname}"),
            size: shard_size,
            hash: 0,
            seed: 0,
            json: plain_json(&objname),
            get_path: format!("/v1/objects/{SHARD_BUCKET}/{objname}?provider=ais"),
            web_path: format!("/{SHARD_BUCKET}/{objname}"),
            owner: 0,
            file: PathBuf::new(),
            member: None,
        });
        for mut item in placeholder_members {
            if let Some(m) = item.member.as_mut() {
                m.shard = shard_id;
            }
            ids.push(cat.push(item));
        }
        shards.push(shard_id);
        all_members.push(ids);
    }
    ShardSet {
        bucket: SHARD_BUCKET.into(),
        shards,
        members: all_members,
        member_size,
    }
}

/// The TAR bytes of a shard with `members` (catalog ids, in order).
fn shard_bytes(cat: &Catalog, members: &[u32]) -> Vec<u8> {
    let total: u64 = members
        .iter()
        .map(|&id| 1024 + cat.item(id).size)
        .sum::<u64>()
        + 1024;
    let mut out = Vec::with_capacity(total as usize);
    for &id in members {
        let item = cat.item(id);
        let archpath = item
            .member
            .as_ref()
            .map(|m| m.archpath.as_str())
            .unwrap_or_default();
        tarfmt::push_file_header(&mut out, archpath, item.size, MTIME);
        out.extend_from_slice(&content(item.seed, item.size as usize));
        out.resize(out.len() + tarfmt::padding(item.size), 0);
    }
    out.extend_from_slice(&tarfmt::TRAILER);
    out
}

/// `POST /v1/buckets/<b>?provider=ais {"action":"create-bck"}`.
pub async fn create_bucket(peer: &mut Peer, proxy: SocketAddr, bucket: &str) -> Result<()> {
    let path = format!("/v1/buckets/{bucket}?provider=ais");
    let req = Req::post(&path, Bytes::from_static(b"{\"action\":\"create-bck\"}")).json();
    let resp = peer.send_follow(proxy, &req, None).await?;
    let status = resp.status();
    let text = read_text(resp).await;
    ensure!(
        status.is_success(),
        "create bucket {bucket}: {status} {text}"
    );
    Ok(())
}

/// PUT through the proxy (following its redirect with the body re-sent).
pub async fn put_object(peer: &mut Peer, proxy: SocketAddr, path: &str, body: Bytes) -> Result<()> {
    let req = Req::put(path, body);
    let resp = peer.send_follow(proxy, &req, None).await?;
    let status = resp.status();
    let text = read_text(resp).await;
    ensure!(status.is_success(), "PUT {path}: {status} {text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            sizes: vec![("10k".into(), 10 << 10, 5)],
            small_shards: 3,
            small_members: 4,
            large_shards: 2,
            large_members: 5,
            member_size: 1000,
        }
    }

    #[test]
    fn shard_offsets_match_the_bytes() {
        let ds = DataSet::build(&plan());
        for (s, &shard) in ds.small.shards.iter().enumerate() {
            let bytes = shard_bytes(&ds.cat, &ds.small.members[s]);
            assert_eq!(bytes.len() as u64, ds.cat.item(shard).size);
            for &m in &ds.small.members[s] {
                let item = ds.cat.item(m);
                let off = item.member.as_ref().unwrap().offset as usize;
                let payload = &bytes[off..off + item.size as usize];
                assert_eq!(xxh64(payload, 0), item.hash);
            }
        }
    }

    #[test]
    fn batch_body_is_json() {
        let ds = DataSet::build(&plan());
        let ids = vec![ds.sizes[0].ids[0], ds.small.members[1][2]];
        let body = ds.cat.batch_body(&ids);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["in"][0]["objname"], "o-000000");
        assert_eq!(v["in"][1]["objname"], "s1m-0001.tar");
        assert_eq!(v["in"][1]["archpath"], "m-0002.bin");
        assert_eq!(v["strm"], true);
    }

    #[test]
    fn picks_are_distinct_and_in_range() {
        let ds = DataSet::build(&plan());
        let mut rng = Rng::new(1);
        let picked = ds.small.pick_distinct(&mut rng, 3);
        let mut shards: Vec<u32> = picked
            .iter()
            .map(|&id| ds.cat.item(id).member.as_ref().unwrap().shard)
            .collect();
        shards.sort();
        shards.dedup();
        assert_eq!(shards.len(), 3);
        let mut perm = ds.sizes[0].perm.clone();
        perm.sort();
        assert_eq!(perm, ds.sizes[0].ids);
    }
}
