//! Header and query-parameter names shared by nodes and clients (AIStore spellings).

pub const CALLER_ID: &str = "ais-caller-id";
pub const CALLER_NAME: &str = "ais-caller-name";
pub const CALLER_SMAP_VER: &str = "ais-caller-smap-ver";
pub const CHECKSUM_TYPE: &str = "ais-checksum-type";
pub const CHECKSUM_VALUE: &str = "ais-checksum-value";
pub const VERSION: &str = "ais-version";
pub const ATIME: &str = "ais-atime";
pub const PRESENT: &str = "ais-present";
pub const LOCATION: &str = "ais-location";
pub const NAME: &str = "ais-name";
pub const BUCKET_PROPS: &str = "ais-bucket-props";
pub const CUSTOM_MD: &str = "ais-custom-md";
pub const APPEND_HANDLE: &str = "ais-append-handle";
pub const NODE_ID: &str = "ais-node-id";
/// Intra-cluster authentication token (see `moss_server::intra`).
pub const INTRA_AUTH: &str = "ais-intra-auth";
/// An object's mtime (as stored) on intra-cluster GETs, for a DT that reads an entry around its
/// failed sender and writes the same TAR header the sender would have.
pub const OBJ_MTIME: &str = "moss-obj-mtime";
pub const MIRROR_COPIES: &str = "ais-mirror-copies";
pub const MIRROR_PATHS: &str = "ais-mirror-paths";
pub const EC_GENERATION: &str = "ais-ec-generation";
pub const EC_DATA: &str = "ais-ec-data";
pub const EC_PARITY: &str = "ais-ec-parity";
pub const EC_REPLICATED: &str = "ais-ec-replicated";
pub const CHUNKS_COUNT: &str = "ais-chunks-count";
pub const CHUNKS_MAX_SIZE: &str = "ais-chunks-max-chunk-size";
/// The job id of a bucket-info summary (`HEAD /v1/buckets/B?bsumm_remote`).
pub const XACTION_ID: &str = "ais-xaction-id";
/// A bucket summary (`BsummResult` JSON) in bucket-info answers.
pub const BUCKET_SUMM: &str = "ais-bucket-summ";

/// Redirect markers the proxy appends to a redirected URL.
pub const QP_PROXY_ID: &str = "pid";
pub const QP_UNIX_TIME: &str = "utm";
/// The proxy's signature of a redirect (moss): HMAC under the cluster secret.
pub const QP_SIGNATURE: &str = "sig";
pub const QP_PROVIDER: &str = "provider";
pub const QP_NAMESPACE: &str = "namespace";
pub const QP_ARCHPATH: &str = "archpath";
pub const QP_ARCHMIME: &str = "archmime";
pub const QP_ARCHREGX: &str = "archregx";
pub const QP_ARCHMODE: &str = "archmode";
pub const QP_COLOC: &str = "coloc";
pub const QP_WHAT: &str = "what";
