//! The cluster map (AIStore `Smap`) and bucket metadata (`BMD`) as they travel on the wire.
use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::bucket::Bck;

/// Node role, as `daemon_type` spells it.
pub const PROXY: &str = "proxy";
pub const TARGET: &str = "target";

/// Flag bits of [`Snode::flags`] that take a target out of placement.
pub const FLAG_MAINTENANCE: u64 = 1 << 2;
pub const FLAG_DECOMMISSION: u64 = 1 << 3;

/// One network endpoint of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetInfo {
    #[serde(default)]
    pub node_ip_addr: String,
    #[serde(default)]
    pub node_hostname: String,
    #[serde(default)]
    pub daemon_port: String,
    #[serde(default)]
    pub direct_url: String,
}

impl NetInfo {
    /// Endpoint for `http://host:port`.
    pub fn from_url(url: &str) -> NetInfo {
        let hostport = url
            .trim_start_matches("http://")
            .trim_start_matches("https://");
        let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, ""));
        NetInfo {
            node_ip_addr: host.to_string(),
            node_hostname: host.to_string(),
            daemon_port: port.trim_end_matches('/').to_string(),
            direct_url: url.trim_end_matches('/').to_string(),
        }
    }
}

/// A node in the cluster map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snode {
    pub daemon_id: String,
    pub daemon_type: String,
    pub public_net: NetInfo,
    #[serde(default)]
    pub intra_control_net: NetInfo,
    #[serde(default)]
    pub intra_data_net: NetInfo,
    #[serde(default)]
    pub flags: u64,
    #[serde(default)]
    pub id_digest: u64,
}

impl Snode {
    /// A node reachable at one URL on all three networks.
    pub fn new(id: &str, daemon_type: &str, url: &str, id_digest: u64) -> Snode {
        let net = NetInfo::from_url(url);
        Snode {
            daemon_id: id.to_string(),
            daemon_type: daemon_type.to_string(),
            public_net: net.clone(),
            intra_control_net: net.clone(),
            intra_data_net: net,
            flags: 0,
            id_digest,
        }
    }

    /// Base URL for every call to this node.
    pub fn url(&self) -> &str {
        &self.public_net.direct_url
    }

    /// Display name: `p[id]` or `t[id]`.
    pub fn display(&self) -> String {
        let role = if self.daemon_type == PROXY { 'p' } else { 't' };
        format!("{role}[{}]", self.daemon_id)
    }

    /// True when the node takes part in placement.
    pub fn in_placement(&self) -> bool {
        self.flags & (FLAG_MAINTENANCE | FLAG_DECOMMISSION) == 0
    }
}

/// The versioned cluster map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Smap {
    pub pmap: BTreeMap<String, Snode>,
    pub proxy_si: Snode,
    pub tmap: BTreeMap<String, Snode>,
    #[serde(default)]
    pub uuid: String,
    #[serde(default)]
    pub creation_time: String,
    #[serde(with = "string_u64")]
    pub version: u64,
}

impl Smap {
    /// Active targets (not in maintenance), in id order.
    pub fn active_targets(&self) -> impl Iterator<Item = &Snode> {
        self.tmap.values().filter(|t| t.in_placement())
    }

    /// Looks up any node by id.
    pub fn node(&self, id: &str) -> Option<&Snode> {
        self.tmap.get(id).or_else(|| self.pmap.get(id))
    }
}

/// Properties of one bucket in the BMD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketProps {
    pub bck: Bck,
    /// Creation time, unix nanoseconds.
    #[serde(with = "string_u64")]
    pub created: u64,
    /// Bucket id: distinguishes incarnations of a bucket with the same name.
    #[serde(with = "string_u64")]
    pub bid: u64,
    /// Buckets renamed into this one: their data, wherever a target still finds it, belongs here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub renamed_from: Vec<Bck>,
    /// The id of the rename job still moving objects into this bucket (empty when none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub renaming: String,
    #[serde(default)]
    pub versioning: Versioning,
    /// Provider-specific props (AIStore's `extra`); only `extra.aws` has fields.
    #[serde(default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
    /// Feature bits (AIStore's `features`, a decimal string).
    #[serde(default = "no_features")]
    pub features: String,
    /// `ec.*`: erasure coding and replicas across targets.
    #[serde(default)]
    pub ec: EcConf,
    /// `mirror.*`: copies on other mountpaths of the owner.
    #[serde(default)]
    pub mirror: MirrorConf,
}

/// `ec.*`: each object of an `ais` bucket is also stored on other targets — objects smaller than
/// `objsize_limit` as `parity_slices` full replicas, larger ones as `data_slices` + `parity_slices`
/// Reed-Solomon slices — so that up to `parity_slices` targets may be lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EcConf {
    pub enabled: bool,
    pub data_slices: u32,
    pub parity_slices: u32,
    pub objsize_limit: u64,
}

impl Default for EcConf {
    fn default() -> EcConf {
        EcConf {
            enabled: false,
            data_slices: 2,
            parity_slices: 2,
            objsize_limit: 256 * 1024,
        }
    }
}

impl EcConf {
    /// Whether an object of `size` bytes is stored as full replicas (else as slices).
    pub fn replicates(&self, size: u64) -> bool {
        size < self.objsize_limit
    }

    /// How many other targets hold a piece of an object of `size` bytes.
    pub fn pieces(&self, size: u64) -> usize {
        if self.replicates(size) {
            self.parity_slices as usize
        } else {
            (self.data_slices + self.parity_slices) as usize
        }
    }
}

/// `mirror.*`: each object of an `ais` bucket is kept as `copies` full copies (itself included)
/// on distinct mountpaths of its target, so that a lost or damaged disk costs no data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MirrorConf {
    pub enabled: bool,
    pub copies: u32,
    /// AIStore's write-behind queue length; moss makes copies before it acknowledges a write,
    /// so the value is kept and shown but changes nothing.
    pub burst_buffer: u32,
}

impl Default for MirrorConf {
    fn default() -> MirrorConf {
        MirrorConf {
            enabled: false,
            copies: 2,
            burst_buffer: 512,
        }
    }
}

impl MirrorConf {
    /// Copies each object should have, itself included (1 without mirroring).
    pub fn wanted(&self) -> usize {
        if self.enabled {
            self.copies.max(1) as usize
        } else {
            1
        }
    }
}

fn no_features() -> String {
    "0".into()
}

/// `versioning.*`: for remote buckets, whether warm reads check the cloud.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Versioning {
    pub enabled: bool,
    /// Every warm GET first compares the cached copy with the cloud's (as `?latest-ver=true`).
    pub validate_warm_get: bool,
    /// Like `validate_warm_get`, and a copy the cloud no longer has is removed.
    pub synchronize: bool,
}

impl Default for Versioning {
    fn default() -> Versioning {
        Versioning {
            enabled: true,
            validate_warm_get: false,
            synchronize: false,
        }
    }
}

/// `extra`: provider-specific bucket props.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Extra {
    #[serde(skip_serializing_if = "ExtraAws::is_empty")]
    pub aws: ExtraAws,
}

impl Extra {
    pub fn is_empty(&self) -> bool {
        self.aws.is_empty()
    }
}

/// `extra.aws`: per-bucket S3 endpoint and region (override the node's environment).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExtraAws {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cloud_region: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub profile: String,
}

impl ExtraAws {
    pub fn is_empty(&self) -> bool {
        self.endpoint.is_empty() && self.cloud_region.is_empty() && self.profile.is_empty()
    }
}

impl BucketProps {
    /// Props of a bucket created now.
    pub fn new(bck: Bck, created: u64, bid: u64) -> BucketProps {
        BucketProps {
            bck,
            created,
            bid,
            renamed_from: Vec::new(),
            renaming: String::new(),
            versioning: Versioning::default(),
            extra: Extra::default(),
            features: no_features(),
            ec: EcConf::default(),
            mirror: MirrorConf::default(),
        }
    }
}

/// Bucket metadata: every bucket of the cluster, versioned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bmd {
    #[serde(with = "string_u64")]
    pub version: u64,
    #[serde(default)]
    pub uuid: String,
    /// Keyed by bucket uname prefix (`ais/@#/name/`).
    #[serde(default)]
    pub buckets: BTreeMap<String, BucketProps>,
}

impl Bmd {
    /// Props of `bck`, if it exists.
    pub fn get(&self, bck: &Bck) -> Option<&BucketProps> {
        self.buckets.get(&bck.uname_prefix())
    }

    pub fn get_mut(&mut self, bck: &Bck) -> Option<&mut BucketProps> {
        self.buckets.get_mut(&bck.uname_prefix())
    }

    /// The bucket that `old` was renamed into, if any (its data belongs there).
    pub fn renamed_into(&self, old: &Bck) -> Option<&BucketProps> {
        self.buckets.values().find(|p| p.renamed_from.contains(old))
    }
}

/// AIStore sends many int64 fields as JSON strings; accept both forms, emit strings.
pub mod string_u64 {
    use super::*;

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Num(u64),
            Text(String),
        }
        match Either::deserialize(d)? {
            Either::Num(n) => Ok(n),
            Either::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smap_json_has_aistore_shape() {
        let p = Snode::new("p1", PROXY, "http://127.0.0.1:8080", 7);
        let t = Snode::new("t1", TARGET, "http://127.0.0.1:8081", 9);
        let smap = Smap {
            pmap: [("p1".to_string(), p.clone())].into(),
            proxy_si: p,
            tmap: [("t1".to_string(), t)].into(),
            uuid: "u".into(),
            creation_time: "now".into(),
            version: 12,
        };
        let v: serde_json::Value = serde_json::to_value(&smap).unwrap();
        assert_eq!(v["version"], "12");
        assert_eq!(v["tmap"]["t1"]["public_net"]["daemon_port"], "8081");
        assert_eq!(
            v["tmap"]["t1"]["public_net"]["direct_url"],
            "http://127.0.0.1:8081"
        );
        assert_eq!(v["tmap"]["t1"]["id_digest"], 9);
        let back: Smap = serde_json::from_value(v).unwrap();
        assert_eq!(back, smap);
    }
}
