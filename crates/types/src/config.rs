//! The cluster-wide configuration: owned and persisted by the proxy, pushed to every node,
//! read and changed with AIStore's `set-config` calls using dotted keys.
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Cluster configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    #[serde(default)]
    pub get_batch: GetBatchConfig,
    #[serde(default)]
    pub keepalive: KeepaliveConfig,
    #[serde(default)]
    pub space: SpaceConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default, with = "crate::smap::string_u64")]
    pub config_version: u64,
}

/// `auth.*`: whether clients must present AuthN tokens. The proxy sets it from how it was started
/// (with an AuthN secret or not); it is not settable through the API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfig {
    #[serde(default)]
    pub enabled: bool,
}

/// `get_batch.*`: GetBatch tunables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GetBatchConfig {
    /// Soft errors (missing items) tolerated per request before it fails; 0 means the default
    /// (as in AIStore).
    pub max_soft_errs: i64,
    /// Page-cache look-ahead workers per DT request; -1 disables.
    pub warmup_workers: i64,
    /// How long the DT waits for a sender before get-from-neighbor.
    pub max_wait: Dur,
    /// Read-ahead window per request, in bytes (split across sources).
    pub window_bytes: u64,
    /// Concurrent work items a DT admits before answering 429.
    pub max_active: u64,
    /// Sum of admitted windows a DT allows before answering 429.
    pub max_window_total: u64,
}

impl Default for GetBatchConfig {
    fn default() -> Self {
        GetBatchConfig {
            max_soft_errs: 6,
            warmup_workers: 2,
            max_wait: Dur(Duration::from_secs(20)),
            window_bytes: 8 << 20,
            max_active: 64,
            max_window_total: 512 << 20,
        }
    }
}

impl GetBatchConfig {
    /// The soft-error limit in effect (`max_soft_errs`, with 0 meaning the default).
    pub fn soft_errs_limit(&self) -> u64 {
        match self.max_soft_errs {
            0 => GetBatchConfig::default().max_soft_errs as u64,
            n => n.max(0) as u64,
        }
    }
}

/// `space.*`: capacity watermarks (percent of a mountpath's file system). The `lru` job evicts
/// cached copies of remote buckets' objects, least recently used first, from a mountpath above
/// `highwm` until it is at `lowwm`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpaceConfig {
    pub highwm: i64,
    pub lowwm: i64,
}

impl Default for SpaceConfig {
    fn default() -> Self {
        SpaceConfig {
            highwm: 90,
            lowwm: 75,
        }
    }
}

/// `keepalive.*`: target liveness tracking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeepaliveConfig {
    /// How often targets report to the proxy.
    pub interval: Dur,
    /// Silence after which the proxy probes a target and drops it if the probe fails.
    pub timeout: Dur,
}

impl Default for KeepaliveConfig {
    fn default() -> Self {
        KeepaliveConfig {
            interval: Dur(Duration::from_secs(2)),
            timeout: Dur(Duration::from_secs(6)),
        }
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            get_batch: GetBatchConfig::default(),
            keepalive: KeepaliveConfig::default(),
            space: SpaceConfig::default(),
            auth: AuthConfig::default(),
            config_version: 1,
        }
    }
}

impl ClusterConfig {
    /// Sets one dotted key (`get_batch.max_soft_errs`) from its text form, then validates.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let mut tree = serde_json::to_value(&*self).map_err(|e| e.to_string())?;
        let mut node = &mut tree;
        for part in key.split('.') {
            node = node
                .as_object_mut()
                .and_then(|o| o.get_mut(part))
                .ok_or_else(|| format!("unknown configuration key {key:?}"))?;
        }
        if node.is_object() {
            return Err(format!(
                "configuration key {key:?} is a section, not a value"
            ));
        }
        *node = match node {
            serde_json::Value::Number(_) => value
                .parse::<i64>()
                .map(serde_json::Value::from)
                .map_err(|_| {
                    format!("invalid value {value:?} for {key:?}: expecting an integer")
                })?,
            serde_json::Value::Bool(_) => value
                .parse::<bool>()
                .map(serde_json::Value::from)
                .map_err(|_| {
                    format!("invalid value {value:?} for {key:?}: expecting true or false")
                })?,
            _ => serde_json::Value::from(value),
        };
        let updated: ClusterConfig = serde_json::from_value(tree)
            .map_err(|e| format!("invalid value {value:?} for {key:?}: {e}"))?;
        updated.validate()?;
        self.keep_auth(&updated)?;
        *self = updated;
        Ok(())
    }

    /// Merges a partial JSON object (`{"get_batch":{"max_wait":"5s"}}`), then validates.
    pub fn merge(&mut self, partial: &serde_json::Value) -> Result<(), String> {
        let mut tree = serde_json::to_value(&*self).map_err(|e| e.to_string())?;
        merge_json(&mut tree, partial, "")?;
        let updated: ClusterConfig =
            serde_json::from_value(tree).map_err(|e| format!("invalid configuration: {e}"))?;
        updated.validate()?;
        self.keep_auth(&updated)?;
        *self = updated;
        Ok(())
    }

    /// `auth.*` follows how the proxy was started; the API cannot switch it.
    fn keep_auth(&self, updated: &ClusterConfig) -> Result<(), String> {
        if updated.auth != self.auth {
            return Err("auth.enabled cannot be changed through the API: start the proxy with (or without) --auth-secret-file".into());
        }
        Ok(())
    }

    /// Checks ranges of every knob.
    pub fn validate(&self) -> Result<(), String> {
        let space = &self.space;
        if !(0 <= space.lowwm && space.lowwm < space.highwm && space.highwm <= 100) {
            return Err(format!(
                "invalid space.lowwm={} / space.highwm={} (expecting 0 <= lowwm < highwm <= 100)",
                space.lowwm, space.highwm
            ));
        }
        let gb = &self.get_batch;
        if gb.max_soft_errs < 0 {
            return Err(format!(
                "invalid get_batch.max_soft_errs={} (expecting non-negative integer)",
                gb.max_soft_errs
            ));
        }
        if !(gb.warmup_workers == -1 || (0..=10).contains(&gb.warmup_workers)) {
            return Err(format!(
                "invalid get_batch.warmup_workers={} (expecting -1 to disable, or range [0, 10])",
                gb.warmup_workers
            ));
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(60)).contains(&gb.max_wait.0) {
            return Err(format!(
                "invalid get_batch.max_wait={} (must be in range [1s, 1m])",
                gb.max_wait
            ));
        }
        if !(256 << 10..=1 << 30).contains(&gb.window_bytes) {
            return Err(format!(
                "invalid get_batch.window_bytes={} (must be in range [256KiB, 1GiB])",
                gb.window_bytes
            ));
        }
        if gb.max_active == 0 || gb.max_window_total < gb.window_bytes {
            return Err(
                "invalid get_batch.max_active/max_window_total (must admit at least one request)"
                    .into(),
            );
        }
        let ka = &self.keepalive;
        if ka.interval.0 < Duration::from_millis(100) || ka.timeout.0 < ka.interval.0 {
            return Err(format!(
                "invalid keepalive.interval={} / keepalive.timeout={} (interval ≥ 100ms, timeout ≥ interval)",
                ka.interval, ka.timeout
            ));
        }
        Ok(())
    }
}

fn merge_json(
    tree: &mut serde_json::Value,
    partial: &serde_json::Value,
    path: &str,
) -> Result<(), String> {
    let Some(fields) = partial.as_object() else {
        return Err(format!(
            "invalid configuration at {path:?}: expecting an object"
        ));
    };
    for (key, value) in fields {
        let full = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        let Some(slot) = tree.as_object_mut().and_then(|o| o.get_mut(key)) else {
            return Err(format!("unknown configuration key {full:?}"));
        };
        if slot.is_object() {
            merge_json(slot, value, &full)?;
        } else {
            *slot = value.clone();
        }
    }
    Ok(())
}

/// A duration in Go's text form (`20s`, `1m30s`, `500ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl Dur {
    /// Parses `1h2m3s4ms` style text (units: h, m, s, ms, us, ns; a bare `0` is allowed).
    pub fn parse(text: &str) -> Result<Dur, String> {
        let invalid = || format!("invalid duration {text:?}");
        if text == "0" {
            return Ok(Dur(Duration::ZERO));
        }
        let mut total = Duration::ZERO;
        let mut rest = text;
        if rest.is_empty() {
            return Err(invalid());
        }
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .ok_or_else(invalid)?;
            let value: u64 = rest[..digits].parse().map_err(|_| invalid())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let unit = match &rest[..unit_len] {
                "h" => Duration::from_secs(3600),
                "m" => Duration::from_secs(60),
                "s" => Duration::from_secs(1),
                "ms" => Duration::from_millis(1),
                "us" | "µs" => Duration::from_micros(1),
                "ns" => Duration::from_nanos(1),
                _ => return Err(invalid()),
            };
            total += unit
                .checked_mul(u32::try_from(value).map_err(|_| invalid())?)
                .ok_or_else(invalid)?;
            rest = &rest[unit_len..];
        }
        Ok(Dur(total))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.is_zero() {
            return f.write_str("0s");
        }
        if d.subsec_nanos() != 0 {
            if d.as_nanos().is_multiple_of(1_000_000) {
                return write!(f, "{}ms", d.as_millis());
            }
            return write!(f, "{}ns", d.as_nanos());
        }
        let secs = d.as_secs();
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 {
            write!(f, "{s}s")?;
        }
        Ok(())
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Dur::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_spec() {
        let c = ClusterConfig::default();
        assert_eq!(c.get_batch.max_soft_errs, 6);
        assert_eq!(c.get_batch.warmup_workers, 2);
        assert_eq!(c.get_batch.max_wait.to_string(), "20s");
        c.validate().unwrap();
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["get_batch"]["max_wait"], "20s");
    }

    #[test]
    fn set_by_dotted_key_validates() {
        let mut c = ClusterConfig::default();
        c.set("get_batch.max_soft_errs", "10").unwrap();
        assert_eq!(c.get_batch.max_soft_errs, 10);
        assert_eq!(c.get_batch.soft_errs_limit(), 10);
        let mut zero = c.clone();
        zero.set("get_batch.max_soft_errs", "0").unwrap();
        assert_eq!(
            zero.get_batch.soft_errs_limit(),
            6,
            "0 means the default, as in AIStore"
        );
        c.set("get_batch.max_wait", "1m").unwrap();
        assert_eq!(c.get_batch.max_wait.0, Duration::from_secs(60));
        assert!(
            c.set("get_batch.max_wait", "2m")
                .unwrap_err()
                .contains("range [1s, 1m]")
        );
        assert!(
            c.set("get_batch.nope", "1")
                .unwrap_err()
                .contains("unknown configuration key")
        );
        assert!(c.set("get_batch", "1").is_err());
        assert!(c.set("get_batch.max_soft_errs", "x").is_err());
        assert!(c.set("get_batch.max_soft_errs", "-1").is_err());
        assert_eq!(
            c.get_batch.max_soft_errs, 10,
            "a rejected value changes nothing"
        );
    }

    #[test]
    fn merge_partial_json() {
        let mut c = ClusterConfig::default();
        c.merge(&serde_json::json!({"get_batch": {"warmup_workers": -1}}))
            .unwrap();
        assert_eq!(c.get_batch.warmup_workers, -1);
        assert!(c.merge(&serde_json::json!({"bogus": 1})).is_err());
    }

    #[test]
    fn durations_round_trip() {
        for (text, d) in [
            ("20s", 20_000),
            ("1m30s", 90_000),
            ("500ms", 500),
            ("1h", 3_600_000),
        ] {
            let parsed = Dur::parse(text).unwrap();
            assert_eq!(parsed.0, Duration::from_millis(d));
            assert_eq!(parsed.to_string(), text);
        }
        for bad in ["", "s", "10", "5x", "1.5s"] {
            assert!(Dur::parse(bad).is_err(), "{bad}");
        }
    }
}
