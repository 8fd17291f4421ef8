//! Results: per-cell summaries, ratios, the SPEC §5 targets, the text table and the JSON file.
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Value, json};

use crate::cells::{self, Latency, Memory, Sample};
use crate::data::DataSet;
use crate::delay::DelayStats;
use crate::stats::{Percentiles, Spread};
use crate::{KIB, MIB, Settings};

/// All runs of one cell.
#[derive(Debug, Clone)]
pub struct CellResult {
    pub id: String,
    /// `10k`, `shards-1m`, ...
    pub group: String,
    pub desc: String,
    /// `moss`, `nginx` or `local`.
    pub server: String,
    /// Payload size of one object (for MB/s).
    pub object_size: u64,
    pub samples: Vec<Sample>,
    pub delay: Option<DelayStats>,
}

impl CellResult {
    pub fn new(id: &str, group: &str, desc: String, server: &str, object_size: u64) -> Self {
        CellResult {
            id: id.into(),
            group: group.into(),
            desc,
            server: server.into(),
            object_size,
            samples: Vec::new(),
            delay: None,
        }
    }

    pub fn obj_per_s(&self) -> Spread {
        let v: Vec<f64> = self.samples.iter().map(Sample::obj_per_s).collect();
        Spread::of(&v)
    }

    pub fn mb_per_s(&self) -> Spread {
        let v: Vec<f64> = self
            .samples
            .iter()
            .map(|s| {
                if s.secs > 0.0 {
                    s.bytes as f64 / s.secs / 1e6
                } else {
                    0.0
                }
            })
            .collect();
        Spread::of(&v)
    }

    fn objects(&self) -> u64 {
        self.samples.iter().map(|s| s.objects).sum()
    }

    fn secs(&self) -> f64 {
        self.samples.iter().map(|s| s.secs).sum()
    }

    /// Server CPU µs per object over all runs.
    pub fn srv_us_per_obj(&self) -> f64 {
        let cpu: f64 = self.samples.iter().map(|s| s.srv_us).sum();
        cpu / self.objects().max(1) as f64
    }

    pub fn cli_us_per_obj(&self) -> f64 {
        let cpu: f64 = self.samples.iter().map(|s| s.cli_us).sum();
        cpu / self.objects().max(1) as f64
    }

    /// Fraction of one CPU the server / the client used during the runs.
    fn utilization(&self) -> (f64, f64) {
        let secs = self.secs().max(1e-9);
        let srv: f64 = self.samples.iter().map(|s| s.srv_us).sum::<f64>() / 1e6 / secs;
        let cli: f64 = self.samples.iter().map(|s| s.cli_us).sum::<f64>() / 1e6 / secs;
        (srv, cli)
    }

    pub fn errors(&self) -> u64 {
        self.samples.iter().map(|s| s.errors).sum()
    }

    /// Every run fetched something and nothing failed verification.
    pub fn verified(&self) -> bool {
        !self.samples.is_empty() && self.errors() == 0 && self.objects() > 0
    }

    fn first_error(&self) -> Option<String> {
        self.samples.iter().find_map(|s| s.first_error.clone())
    }

    pub fn to_json(&self) -> Value {
        let (srv_util, cli_util) = self.utilization();
        json!({
            "id": self.id,
            "group": self.group,
            "desc": self.desc,
            "server": self.server,
            "object_size": self.object_size,
            "obj_per_s": self.obj_per_s(),
            "mb_per_s": self.mb_per_s(),
            "srv_cpu_us_per_obj": self.srv_us_per_obj(),
            "cli_cpu_us_per_obj": self.cli_us_per_obj(),
            "srv_cpu_util": srv_util,
            "cli_cpu_util": cli_util,
            "objects": self.objects(),
            "checksums_verified": self.samples.iter().map(|s| s.checksums).sum::<u64>(),
            "errors": self.errors(),
            "verified": self.verified(),
            "first_error": self.first_error(),
            "delay": self.delay,
            "runs": self.samples,
        })
    }
}

/// Compact rate: `95.1k`, `2.31k`, `812`.
pub fn rate(x: f64) -> String {
    if x >= 100_000.0 {
        format!("{:.0}k", x / 1e3)
    } else if x >= 10_000.0 {
        format!("{:.1}k", x / 1e3)
    } else if x >= 1_000.0 {
        format!("{:.2}k", x / 1e3)
    } else if x >= 10.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

/// Ratio text: `3.1x`, or `-` when unknown.
pub fn ratio(x: Option<f64>) -> String {
    match x {
        Some(v) if v.is_finite() => {
            if v >= 10.0 {
                format!("{v:.1}x")
            } else {
                format!("{v:.2}x")
            }
        }
        _ => "-".into(),
    }
}

/// Table rows for cells.
pub fn cell_rows(out: &mut String, cells: &[&CellResult]) {
    let _ = writeln!(
        out,
        "  {:<6} {:<46} {:>22} {:>9} {:>9} {:>9} {:>5}",
        "cell", "what", "obj/s median [min-max]", "MB/s", "srv µs/o", "cli µs/o", "err"
    );
    for c in cells {
        let s = c.obj_per_s();
        let (srv_util, cli_util) = c.utilization();
        // Flag a side that was (nearly) saturated: the measurement may be bound by it.
        let mark = match (srv_util >= 0.9, cli_util >= 0.9) {
            (true, true) => " S+C",
            (true, false) => " S",
            (false, true) => " C",
            _ => "",
        };
        let _ = writeln!(
            out,
            "  {:<6} {:<46} {:>22} {:>9.1} {:>9.1} {:>9.1} {:>5}{}",
            c.id,
            truncate(&c.desc, 46),
            format!("{} [{}-{}]", rate(s.median), rate(s.min), rate(s.max)),
            c.mb_per_s().median,
            c.srv_us_per_obj(),
            c.cli_us_per_obj(),
            c.errors(),
            mark
        );
        if let Some(e) = c.first_error() {
            let _ = writeln!(out, "         first error: {}", truncate(&e, 200));
        }
        if let Some(d) = &c.delay {
            let _ = writeln!(
                out,
                "         injected delay: target {:.0} µs, achieved mean {:.1} / p50 {:.1} / p99 {:.1} µs over {} exchanges",
                d.target_us, d.mean_us, d.p50_us, d.p99_us, d.count
            );
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Summary of cell T.
#[derive(Debug, Clone, Serialize)]
pub struct LatencySummary {
    pub batches: usize,
    pub batch: Percentiles,
    pub object: Percentiles,
    pub ttfb: Percentiles,
    pub headers: Percentiles,
    pub obj_per_s: f64,
    pub errors: u64,
}

impl LatencySummary {
    pub fn of(parts: &[Latency]) -> LatencySummary {
        let cat = |f: fn(&Latency) -> &Vec<f64>| -> Vec<f64> {
            parts.iter().flat_map(|p| f(p).iter().copied()).collect()
        };
        let objects: u64 = parts.iter().map(|p| p.sample.objects).sum();
        let secs: f64 = parts.iter().map(|p| p.sample.secs).sum();
        LatencySummary {
            batches: parts.iter().map(|p| p.batch.len()).sum(),
            batch: Percentiles::of_secs(&cat(|p| &p.batch)),
            object: Percentiles::of_secs(&cat(|p| &p.object)),
            ttfb: Percentiles::of_secs(&cat(|p| &p.ttfb)),
            headers: Percentiles::of_secs(&cat(|p| &p.headers)),
            obj_per_s: if secs > 0.0 {
                objects as f64 / secs
            } else {
                0.0
            },
            errors: parts.iter().map(|p| p.sample.errors).sum(),
        }
    }
}

/// One pass/fail check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub value: Option<f64>,
    pub threshold: String,
    /// `None` when not measured in this run.
    pub met: Option<bool>,
}

impl Check {
    pub fn at_least(name: &str, value: Option<f64>, min: f64, unit: &str) -> Check {
        Check {
            name: name.into(),
            value,
            threshold: format!(">= {min}{unit}"),
            met: value.map(|v| v >= min),
        }
    }

    pub fn at_most(name: &str, value: Option<f64>, max: f64, unit: &str) -> Check {
        Check {
            name: name.into(),
            value,
            threshold: format!("<= {max}{unit}"),
            met: value.map(|v| v <= max),
        }
    }

    pub fn line(&self) -> String {
        let verdict = match self.met {
            Some(true) => "MET ",
            Some(false) => "MISS",
            None => "n/a ",
        };
        let value = self.value.map_or("not measured".to_string(), |v| {
            if v.abs() >= 1000.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            }
        });
        format!(
            "  [{verdict}] {:<58} {:>12}   target {}",
            self.name, value, self.threshold
        )
    }
}

/// Memory cell text.
pub fn memory_lines(out: &mut String, m: &Memory) {
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let list = |v: &[u64]| {
        v.iter()
            .map(|&b| format!("{:.0}", mib(b)))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let _ = writeln!(
        out,
        "  {} concurrent GetBatch x {} entries x {} KiB: {:.2} s, {} objects, {} errors",
        m.requests,
        m.entries_per_request,
        m.object_size >> 10,
        m.sample.secs,
        m.sample.objects,
        m.sample.errors
    );
    let _ = writeln!(
        out,
        "  target RSS MiB: baseline {}; peak (VmHWM{}) {}; sampled peak {}; max peak {:.0} MiB",
        list(&m.baseline_rss),
        if m.peak_reset {
            ", reset before"
        } else {
            ", NOT reset"
        },
        list(&m.peak_rss),
        list(&m.sampled_peak_rss),
        mib(m.max_peak_rss)
    );
    if let Some(e) = &m.sample.first_error {
        let _ = writeln!(out, "  first error: {}", truncate(e, 200));
    }
}

/// Latency table lines.
pub fn latency_lines(out: &mut String, gb: &LatencySummary, get: &LatencySummary) {
    let _ = writeln!(
        out,
        "  {:<36} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "", "batch50", "batch95", "batch99", "obj50", "obj99", "hdr50", "ttfb50", "ttfb99", "obj/s"
    );
    for (name, s) in [
        ("GetBatch W=4 (ms)", gb),
        ("same batch as K=16 GETs, W=4 (ms)", get),
    ] {
        let _ = writeln!(
            out,
            "  {:<36} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9}   ({} batches, {} errors)",
            name,
            s.batch.p50_ms,
            s.batch.p95_ms,
            s.batch.p99_ms,
            s.object.p50_ms,
            s.object.p99_ms,
            s.headers.p50_ms,
            s.ttfb.p50_ms,
            s.ttfb.p99_ms,
            rate(s.obj_per_s),
            s.batches,
            s.errors
        );
    }
}

/// All results of the run, by cell.
pub struct Results {
    pub cells: Vec<CellResult>,
    /// RSS of the moss processes (proxy, then targets) after setup and after each group.
    pub rss_after: Vec<(String, Vec<u64>)>,
}

impl Results {
    pub fn get(&self, group: &str, id: &str) -> Option<&CellResult> {
        self.cells.iter().find(|c| c.group == group && c.id == id)
    }

    pub fn median(&self, group: &str, id: &str) -> Option<f64> {
        self.get(group, id)
            .filter(|c| c.verified())
            .map(|c| c.obj_per_s().median)
    }
}

/// Ratios of one plain-object size.
struct SizeRatios {
    best_a: Option<(String, f64)>,
    json: Value,
}

fn size_ratios(r: &Results, label: &str, st: &Settings) -> SizeRatios {
    let (batch, delay_us) = (st.batch, st.delay.as_secs_f64() * 1e6);
    let m = |id: &str| r.median(label, id);
    let div = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let best_a = [("A1", m("A1")), ("A2", m("A2"))]
        .into_iter()
        .filter_map(|(id, v)| v.map(|v| (id.to_string(), v)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let a = best_a.as_ref().map(|x| x.1);
    // The local bound is the fastest way this box moves the files: copied or by `sendfile`.
    let fastest = |ids: &[&str]| ids.iter().filter_map(|id| m(id)).reduce(f64::max);
    let l = fastest(&["L1", "L1z", "L4"]);
    let l1 = fastest(&["L1", "L1z"]);
    // Paper-regime model: per GET 2 exchanges + the K=1 loopback time; per batch 2 exchanges
    // + B times the W=1 streaming time per object (both measured at d=0 in this run).
    let achieved = r
        .get(label, "P2")
        .and_then(|c| c.delay.as_ref())
        .map(|d| d.mean_us)
        .unwrap_or(delay_us);
    let d = achieved / 1e6;
    let model = match (m("G1"), m("A1")) {
        (Some(g1), Some(a1)) if g1 > 0.0 && a1 > 0.0 => {
            let b = batch as f64;
            Some(b * (2.0 * d + 1.0 / g1) / (2.0 * d + b / a1))
        }
        _ => None,
    };
    let p = div(m("P1"), m("P2"));
    let srv = |id: &str| r.get(label, id).map(CellResult::srv_us_per_obj);
    let best_id = best_a.as_ref().map(|x| x.0.clone()).unwrap_or_default();
    let redirect_share = match (m("G1"), m("D1")) {
        (Some(g), Some(d)) if g > 0.0 && d > 0.0 => Some(1.0 - g / d),
        _ => None,
    };
    // The DT topology's floor: an entry the DT owns crosses one hop (L1), one of another
    // target's crosses two (R1); in a cluster of n targets (n-1)/n of them do.
    let relayed = (st.targets as f64 - 1.0) / st.targets as f64;
    let floor = |l: &str, r: &str| match (srv(l), srv(r)) {
        (Some(l), Some(r)) => Some((1.0 - relayed) * l + relayed * r),
        _ => None,
    };
    let json = json!({
        "best_getbatch": best_id,
        "best_getbatch_obj_per_s": a,
        "local_bound_obj_per_s": l,
        "a_over_l": div(a, l),
        "a1_over_l1": div(m("A1"), l1),
        "a2_over_l4": div(m("A2"), m("L4")),
        "a_over_g2": div(a, m("G2")),
        "a_over_n2": div(a, m("N2")),
        "a_over_n1": div(a, m("N1")),
        "a1_over_g1_equal_workers": div(m("A1"), m("G1")),
        "g2_over_n2": div(m("G2"), m("N2")),
        "p_ratio": p,
        "p_model": model,
        "p_over_model": div(p, model),
        "p_delay_achieved_us": achieved,
        "redirect_share_of_g1_time": redirect_share,
        "srv_cpu_us_per_obj": {
            "getbatch": best_a.as_ref().and_then(|x| srv(&x.0)),
            "get_k64": srv("G2"),
            "nginx_k64": srv("N2"),
            "local": srv("L1"),
            "local_sendfile": srv("L1z"),
            "topology_floor_copies": floor("L1", "R1"),
            "topology_floor_zero_copy": floor("L1z", "R1z"),
        },
    });
    SizeRatios { best_a, json }
}

#[allow(clippy::too_many_arguments)]
pub fn summarize(
    r: &Results,
    ds: &DataSet,
    st: &Settings,
    lat_gb: &LatencySummary,
    lat_get: &LatencySummary,
    memory: &cells::Memory,
    env: Value,
    config: Value,
) -> (String, Value, bool) {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "\nmoss-bench — {} rounds x {:.2} s per cell, interleaved; B={}; pinning: {}",
        st.rounds,
        st.cell_secs,
        st.batch,
        env["pinning"]["note"].as_str().unwrap_or("")
    );
    let _ = writeln!(
        text,
        "kernel {}, {} CPUs ({}), nginx: {}, git {}; machine load avg {} -> {}, other processes used ~{:.0}% of the machine's CPU during the run",
        env["kernel"].as_str().unwrap_or(""),
        env["nproc"],
        env["cpu_model"].as_str().unwrap_or(""),
        env["nginx_version"].as_str().unwrap_or("none"),
        env["git_rev"].as_str().unwrap_or(""),
        env["loadavg_start"].as_str().unwrap_or(""),
        env["loadavg_end"].as_str().unwrap_or(""),
        env["other_cpu_pct_of_machine_approx"]
            .as_f64()
            .unwrap_or(0.0),
    );
    let _ = writeln!(
        text,
        "marks: S / C = server / client CPU >= 90% busy during the cell (may bound the result)"
    );

    let mut size_json = serde_json::Map::new();
    let mut ratios_by_label = Vec::new();
    for set in &ds.sizes {
        let label = &set.label;
        let _ = writeln!(
            text,
            "\n== {} objects ({} of them, {} bytes each) ==",
            label,
            set.ids.len(),
            set.size
        );
        let cells: Vec<&CellResult> = r.cells.iter().filter(|c| &c.group == label).collect();
        cell_rows(&mut text, &cells);
        let sr = size_ratios(r, label, st);
        let j = &sr.json;
        let f = |k: &str| j[k].as_f64();
        let _ = writeln!(
            text,
            "  GetBatch best = {} {} obj/s | vs L {} | vs G2 {} | vs N2 {} | vs N1 {} | A1/G1 (equal workers) {} | G2/N2 {}",
            sr.best_a.as_ref().map(|x| x.0.as_str()).unwrap_or("-"),
            sr.best_a.as_ref().map(|x| rate(x.1)).unwrap_or("-".into()),
            f("a_over_l").map_or("-".into(), |v| format!("{:.0}%", v * 100.0)),
            ratio(f("a_over_g2")),
            ratio(f("a_over_n2")),
            ratio(f("a_over_n1")),
            ratio(f("a1_over_g1_equal_workers")),
            ratio(f("g2_over_n2")),
        );
        let _ = writeln!(
            text,
            "  paper regime P1/P2 = {} (model {}, {} of model; delay achieved {:.1} µs) | redirect share of G1 time {}",
            ratio(f("p_ratio")),
            ratio(f("p_model")),
            f("p_over_model").map_or("-".into(), |v| format!("{:.0}%", v * 100.0)),
            f("p_delay_achieved_us").unwrap_or(0.0),
            f("redirect_share_of_g1_time").map_or("-".into(), |v| format!("{:.0}%", v * 100.0)),
        );
        let us = |k: &str| j["srv_cpu_us_per_obj"][k].as_f64();
        let _ = writeln!(
            text,
            "  server CPU µs/object: GetBatch {} | nginx {} | floor of the DT topology with {} targets (L, R cells): {} copying, {} zero-copy",
            us("getbatch").map_or("-".into(), |v| format!("{v:.1}")),
            us("nginx_k64").map_or("-".into(), |v| format!("{v:.1}")),
            st.targets,
            us("topology_floor_copies").map_or("-".into(), |v| format!("{v:.1}")),
            us("topology_floor_zero_copy").map_or("-".into(), |v| format!("{v:.1}")),
        );
        size_json.insert(label.clone(), sr.json.clone());
        ratios_by_label.push((set.size, sr));
    }

    // Shards.
    let _ = writeln!(
        text,
        "\n== TAR shards: {} x {} members and {} x {} members of {} KiB ==",
        st.plan.small_shards,
        st.plan.small_members,
        st.plan.large_shards,
        st.plan.large_members,
        st.plan.member_size >> 10
    );
    let shard_cells: Vec<&CellResult> = r
        .cells
        .iter()
        .filter(|c| c.group.starts_with("shards"))
        .collect();
    let _ = writeln!(text, "  (obj/s = files/s; groups: shards-1m, shards-10m)");
    cell_rows(&mut text, &shard_cells);
    let s1 = r.median("shards-1m", "S1");
    let s2 = r.median("shards-1m", "S2");
    let s3 = r.median("shards-1m", "S3");
    let s1_10w = r.median("shards-10m", "S1");
    let s1_10c = r.median("shards-10m", "S1c");
    let s1_1c = r.median("shards-1m", "S1c");
    let div = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let _ = writeln!(
        text,
        "  S1/S2 {} | S1/S3 {} | 10 MiB shards: cold {} files/s, warm {} files/s (warm/cold {}); 1 MiB cold {} files/s",
        ratio(div(s1, s2)),
        ratio(div(s1, s3)),
        s1_10c.map_or("-".into(), rate),
        s1_10w.map_or("-".into(), rate),
        ratio(div(s1_10w, s1_10c)),
        s1_1c.map_or("-".into(), rate),
    );
    let shards_json = json!({
        "s1_files_per_s": s1, "s2_files_per_s": s2, "s3_files_per_s": s3,
        "s1_over_s2": div(s1, s2), "s1_over_s3": div(s1, s3),
        "s1_10m_cold_files_per_s": s1_10c, "s1_10m_warm_files_per_s": s1_10w,
        "s1_10m_warm_over_cold": div(s1_10w, s1_10c),
        "s1_1m_cold_files_per_s": s1_1c,
        "s1_10m_warm_over_1m": div(s1_10w, s1),
    });

    let _ = writeln!(
        text,
        "\n== latency T: batches of {} x {} objects, W=4 ==",
        st.batch,
        ds.sizes
            .iter()
            .min_by_key(|s| s.size)
            .map(|s| s.label.as_str())
            .unwrap_or("")
    );
    latency_lines(&mut text, lat_gb, lat_get);
    let lat_ratio = |a: f64, b: f64| if a > 0.0 { Some(b / a) } else { None };
    let p95_ratio = lat_ratio(lat_gb.batch.p95_ms, lat_get.batch.p95_ms);
    let p99_obj_ratio = lat_ratio(lat_gb.object.p99_ms, lat_get.object.p99_ms);
    let _ = writeln!(
        text,
        "  GETs/GetBatch: p95 batch latency {} (paper 2x), p99 per-object latency {} (paper 3.7x)",
        ratio(p95_ratio),
        ratio(p99_obj_ratio)
    );
    let latency_json = json!({
        "getbatch": lat_gb, "get_k16": lat_get,
        "p95_batch_get_over_getbatch": p95_ratio,
        "p99_object_get_over_getbatch": p99_obj_ratio,
    });

    let _ = writeln!(text, "\n== memory M ==");
    memory_lines(&mut text, memory);
    let _ = writeln!(text, "  moss RSS MiB (proxy / targets) over the run:");
    for (when, rss) in &r.rss_after {
        let list = rss
            .iter()
            .map(|&b| format!("{:.0}", b as f64 / MIB as f64))
            .collect::<Vec<_>>()
            .join(" / ");
        let _ = writeln!(text, "    after {when:<34} {list}");
    }

    // SPEC §5 targets.
    let by_size = |size: u64| {
        ratios_by_label
            .iter()
            .find(|(s, _)| *s == size)
            .map(|(_, r)| r)
    };
    let pick = |size: u64, key: &str| by_size(size).and_then(|r| r.json[key].as_f64());
    let mem_ok_sized = memory.object_size == MIB && memory.sample.errors == 0;
    let targets = vec![
        Check::at_least(
            "paper regime (W=1, +100 µs per exchange) at 10 KiB",
            pick(10 * KIB, "p_ratio"),
            15.0,
            "x",
        ),
        Check::at_least("paper regime at 1 MiB", pick(MIB, "p_ratio"), 2.0, "x"),
        Check::at_least(
            "GetBatch vs nginx K=64 at 10 KiB",
            pick(10 * KIB, "a_over_n2"),
            2.0,
            "x",
        ),
        Check::at_least(
            "GetBatch (best of A1/A2) vs local bound at 10 KiB",
            pick(10 * KIB, "a_over_l"),
            0.8,
            "",
        ),
        Check::at_least(
            "GetBatch (best of A1/A2) vs local bound at 1 MiB",
            pick(MIB, "a_over_l"),
            0.8,
            "",
        ),
        Check::at_least("S1 files/s from 1 MiB TAR shards", s1, 50_000.0, ""),
        Check::at_least("S1 vs S2 (download whole shards)", div(s1, s2), 10.0, "x"),
        Check::at_most(
            "TTFB p50, batch of 64 (T)",
            (lat_gb.batches > 0).then_some(lat_gb.ttfb.p50_ms),
            5.0,
            " ms",
        ),
        Check::at_most(
            "DT peak RSS, 16 concurrent batches of 1 MiB objects (MiB)",
            mem_ok_sized.then_some(memory.max_peak_rss as f64 / MIB as f64),
            512.0,
            " MiB",
        ),
    ];
    // perf-anchors §5.6 (informative).
    let srv_ratio = by_size(10 * KIB).and_then(|r| {
        let j = &r.json["srv_cpu_us_per_obj"];
        match (j["get_k64"].as_f64(), j["getbatch"].as_f64()) {
            (Some(g), Some(a)) if a > 0.0 => Some(g / a),
            _ => None,
        }
    });
    let anchors = vec![
        Check::at_least(
            "anchor: P-regime at 100 KiB",
            pick(100 * KIB, "p_ratio"),
            3.0,
            "x",
        ),
        Check::at_least(
            "anchor: P-regime / model at 10 KiB",
            pick(10 * KIB, "p_over_model"),
            0.7,
            "",
        ),
        Check::at_least(
            "anchor: GetBatch vs L at 10 KiB",
            pick(10 * KIB, "a_over_l"),
            0.6,
            "",
        ),
        Check::at_least(
            "anchor: GetBatch vs L at 1 MiB",
            pick(MIB, "a_over_l"),
            0.7,
            "",
        ),
        Check::at_least(
            "anchor: GET/GetBatch server CPU per 10 KiB object",
            srv_ratio,
            3.0,
            "x",
        ),
        Check::at_least(
            "anchor: GetBatch vs our GET K=64 at 10 KiB",
            pick(10 * KIB, "a_over_g2"),
            2.0,
            "x",
        ),
        Check::at_least(
            "anchor: GetBatch vs our GET K=64 at 1 MiB",
            pick(MIB, "a_over_g2"),
            0.9,
            "x",
        ),
        Check::at_least(
            "anchor: GetBatch vs nginx K=64 at 1 MiB",
            pick(MIB, "a_over_n2"),
            0.5,
            "x",
        ),
        Check::at_least("anchor: S1 vs S3 (range GETs)", div(s1, s3), 1.0, "x"),
        Check::at_least(
            "anchor: GET p95 batch latency / GetBatch p95",
            p95_ratio,
            1.0,
            "x",
        ),
    ];
    let _ = writeln!(text, "\n== SPEC §5 targets ==");
    for c in &targets {
        let _ = writeln!(text, "{}", c.line());
    }
    let _ = writeln!(text, "\n== perf-anchors §5.6 checks (informative) ==");
    for c in &anchors {
        let _ = writeln!(text, "{}", c.line());
    }
    let all_verified = r.cells.iter().all(CellResult::verified)
        && lat_gb.errors == 0
        && lat_get.errors == 0
        && memory.sample.errors == 0;
    let unverified: Vec<String> = r
        .cells
        .iter()
        .filter(|c| !c.verified())
        .map(|c| format!("{}/{}", c.group, c.id))
        .collect();
    let _ = writeln!(
        text,
        "\nverification: {}",
        if all_verified {
            "every response parsed and checked (count, order, names, sizes, sampled checksums)"
                .to_string()
        } else {
            format!("FAILED in {}", unverified.join(", "))
        }
    );

    let doc = json!({
        "schema": 1,
        "env": env,
        "config": config,
        "cells": r.cells.iter().map(CellResult::to_json).collect::<Vec<_>>(),
        "sizes": size_json,
        "shards": shards_json,
        "latency": latency_json,
        "memory": memory,
        "rss_timeline": r.rss_after.iter().map(|(when, rss)| json!({"after": when, "rss_bytes": rss})).collect::<Vec<_>>(),
        "targets": targets,
        "anchors": anchors,
        "all_verified": all_verified,
    });
    (text, doc, all_verified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting() {
        assert_eq!(rate(95_123.0), "95.1k");
        assert_eq!(rate(123_456.0), "123k");
        assert_eq!(rate(2_310.0), "2.31k");
        assert_eq!(rate(812.4), "812");
        assert_eq!(ratio(Some(3.125)), "3.12x");
        assert_eq!(ratio(Some(15.04)), "15.0x");
        assert_eq!(ratio(None), "-");
        let c = Check::at_least("x", Some(2.0), 1.5, "x");
        assert_eq!(c.met, Some(true));
        assert_eq!(Check::at_most("y", None, 5.0, " ms").met, None);
    }

    #[test]
    fn cell_summary() {
        let mut c = CellResult::new("A1", "10k", "d".into(), "moss", 10_240);
        for (objs, secs) in [(100, 1.0), (300, 1.0), (200, 1.0)] {
            c.samples.push(Sample {
                objects: objs,
                bytes: objs * 10_240,
                secs,
                srv_us: objs as f64 * 10.0,
                cli_us: objs as f64 * 2.0,
                ..Sample::default()
            });
        }
        assert_eq!(c.obj_per_s().median, 200.0);
        assert!((c.srv_us_per_obj() - 10.0).abs() < 1e-9);
        assert!(c.verified());
        let v = c.to_json();
        assert_eq!(v["verified"], true);
        assert_eq!(v["obj_per_s"]["max"], 300.0);
    }
}
