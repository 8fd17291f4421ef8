//! Prometheus exposition (text format 0.0.4) with AIStore's metric names.
//!
//! Written out directly rather than through a metrics crate: the reference's names
//! (`ais_target_getbatch_count`, no `_total` suffix) are part of our contract, and the OpenMetrics
//! encoders insist on renaming counters.
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Kind of a metric, as written in `# TYPE`.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Counter,
    Gauge,
}

/// Accumulates the exposition text of one node.
pub struct Exposition {
    text: String,
    labels: String,
}

impl Exposition {
    /// Starts an exposition whose samples all carry `node_id`.
    pub fn new(node_id: &str) -> Exposition {
        let escaped = node_id.replace('\\', "\\\\").replace('"', "\\\"");
        Exposition {
            text: String::with_capacity(4096),
            labels: format!("{{node_id=\"{escaped}\"}}"),
        }
    }

    /// Adds one sample with its HELP and TYPE lines.
    pub fn add(&mut self, name: &str, kind: Kind, help: &str, value: u64) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        let _ = writeln!(self.text, "{name}{} {value}", self.labels);
    }

    pub fn finish(self) -> String {
        self.text
    }
}

/// Object-API counters of a target.
#[derive(Debug, Default)]
pub struct ObjectMetrics {
    pub get_count: AtomicU64,
    pub get_bytes: AtomicU64,
    pub put_count: AtomicU64,
    pub put_bytes: AtomicU64,
    pub err_get_count: AtomicU64,
    pub err_put_count: AtomicU64,
    pub gfn_count: AtomicU64,
    pub rebalance_moved_count: AtomicU64,
}

impl ObjectMetrics {
    pub fn render(&self, out: &mut Exposition) {
        let rows: [(&str, &AtomicU64, &str); 8] = [
            (
                "ais_target_get_count",
                &self.get_count,
                "object GETs served",
            ),
            (
                "ais_target_get_bytes",
                &self.get_bytes,
                "bytes served by object GETs",
            ),
            ("ais_target_put_count", &self.put_count, "objects written"),
            (
                "ais_target_put_bytes",
                &self.put_bytes,
                "bytes written by object PUTs",
            ),
            (
                "ais_target_err_get_count",
                &self.err_get_count,
                "failed object GETs",
            ),
            (
                "ais_target_err_put_count",
                &self.err_put_count,
                "failed object PUTs",
            ),
            (
                "moss_target_gfn_count",
                &self.gfn_count,
                "objects fetched from a neighbor on a local miss",
            ),
            (
                "moss_target_rebalance_moved_count",
                &self.rebalance_moved_count,
                "objects moved to their new owner",
            ),
        ];
        for (name, value, help) in rows {
            out.add(name, Kind::Counter, help, value.load(Ordering::Relaxed));
        }
    }
}

pub fn inc(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}
