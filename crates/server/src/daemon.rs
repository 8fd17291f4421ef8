//! What a node tells about itself: its log (`GET /v1/daemon?what=log`) and its status and
//! counters (`what=node_status`, the SDK's `get_performance()`), served by proxies and targets
//! alike; the proxy reaches any node through `/v1/reverse/daemon`.
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use moss_archive::Format;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::http::{ApiError, Query};
use crate::node::Shared;

/// File of every line at info level and above, in the log directory (AIStore's `.INFO`).
pub const INFO_LOG: &str = "moss.INFO";
/// File of warnings and errors (AIStore keeps both in its `.ERROR` log).
pub const ERROR_LOG: &str = "moss.ERROR";

static LOG_DIR: OnceLock<PathBuf> = OnceLock::new();

/// Where this process writes its logs (set once, at start, by the binary).
pub fn set_log_dir(dir: PathBuf) {
    let _ = LOG_DIR.set(dir);
}

/// Bytes gathered before a chunk goes to the response.
const CHUNK: usize = 256 << 10;

/// A `Write` on a blocking thread whose bytes become a streamed response body (bounded: the
/// writer waits while the client is slow).
pub struct ChannelSink {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    buf: BytesMut,
}

impl ChannelSink {
    /// The sink and the body its bytes go to.
    pub fn new() -> (ChannelSink, mpsc::Receiver<Result<Bytes, io::Error>>) {
        let (tx, rx) = mpsc::channel(4);
        let sink = ChannelSink {
            tx,
            buf: BytesMut::with_capacity(CHUNK),
        };
        (sink, rx)
    }

    /// Another handle on the same body (to end it with an error).
    pub fn sender(&self) -> mpsc::Sender<Result<Bytes, io::Error>> {
        self.tx.clone()
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl Write for ChannelSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// The body of a [`ChannelSink`].
pub fn channel_body(mut rx: mpsc::Receiver<Result<Bytes, io::Error>>) -> Body {
    Body::from_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

/// `what=log&severity=info|warning|error[&all=true]`: the current log file, or (with `all`) a
/// `.tar.gz` of every log file of that severity.
pub async fn log(query: &Query) -> Result<Response, ApiError> {
    let severity = query.str("severity");
    let file = match severity.chars().next().map(|c| c.to_ascii_lowercase()) {
        None | Some('i') => INFO_LOG,
        Some('w' | 'e') => ERROR_LOG,
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "unknown log severity {severity:?} (expecting info, warning or error)"
            )));
        }
    };
    let dir = LOG_DIR
        .get()
        .ok_or_else(|| {
            ApiError::not_found("this node keeps no log files (started without a data directory)")
        })?
        .clone();
    if crate::http::parse_bool(query.str("all")) {
        return archive_logs(dir, file).await;
    }
    let path = dir.join(file);
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ApiError::not_found(format!("log {}: {e}", path.display())))?;
    let mut response = Response::new(Body::from_stream(tokio_util::io::ReaderStream::new(file)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

/// A `.tar.gz` of the log files whose names hold `kind`'s suffix (rotated ones included).
async fn archive_logs(dir: PathBuf, kind: &str) -> Result<Response, ApiError> {
    let suffix = Path::new(kind)
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| format!(".{e}"))
        .unwrap_or_default();
    let (sink, rx) = ChannelSink::new();
    let abort = sink.sender();
    tokio::task::spawn_blocking(move || {
        let written = (|| -> io::Result<()> {
            let mut out = moss_archive::writer::new_writer(Format::Tgz, sink);
            let mut names: Vec<_> = std::fs::read_dir(&dir)?
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter(|e| e.file_name().to_string_lossy().contains(&suffix))
                .collect();
            names.sort_by_key(|e| e.file_name());
            for entry in names {
                let mut file = std::fs::File::open(entry.path())?;
                let md = file.metadata()?;
                let mtime = md
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs());
                // The current file may still grow: archive what it held when it was opened.
                let size = md.len();
                out.start_entry(&entry.file_name().to_string_lossy(), size, mtime)?;
                let mut left = size;
                let mut buf = vec![0u8; 64 << 10];
                while left > 0 {
                    let want = buf.len().min(left as usize);
                    let n = io::Read::read(&mut file, &mut buf[..want])?;
                    if n == 0 {
                        return Err(io::Error::other("log file shrank while archived"));
                    }
                    out.write_data(&buf[..n])?;
                    left -= n as u64;
                }
                out.finish_entry()?;
            }
            out.finish()
        })();
        if let Err(e) = written {
            tracing::warn!("log archive aborted: {e}");
            let _ = abort.blocking_send(Err(e));
        }
    });
    let mut response = Response::new(channel_body(rx));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/gzip"),
    );
    Ok(response)
}

/// What a node adds to its status: counters (AIStore's tracker names) and mountpath usage.
#[derive(Default)]
pub struct NodeStats {
    pub counters: Vec<(&'static str, u64)>,
    /// (mountpath, bytes used, capacity)
    pub mountpaths: Vec<(String, u64, u64)>,
}

/// `what=node_status`: AIStore's `stats.NodeStatus` fields (the SDK returns them as a dict).
pub fn node_status(shared: &Shared, stats: NodeStats) -> Value {
    let smap = shared.smap.load();
    let bmd = shared.bmd.load();
    let config = shared.config.load();
    let me = smap.node(&shared.id).cloned();
    let tracker: serde_json::Map<String, Value> = stats
        .counters
        .iter()
        .map(|(name, v)| (name.to_string(), json!({"v": v.to_string()})))
        .collect();
    let (mut used, mut total) = (0u64, 0u64);
    let mut mountpaths = serde_json::Map::new();
    let mut pcts = Vec::new();
    for (path, u, cap) in &stats.mountpaths {
        used += u;
        total += cap;
        let pct = if *cap == 0 { 0 } else { u * 100 / cap };
        pcts.push(pct);
        mountpaths.insert(
            path.clone(),
            json!({"used": u.to_string(), "avail": cap.saturating_sub(*u).to_string(),
                   "pct_used": pct, "fs": ""}),
        );
    }
    let (mem_total, mem_avail) = meminfo();
    json!({
        "snode": me,
        "tracker": tracker,
        "capacity": {
            "mountpaths": mountpaths,
            "cs_err": "",
            "total_used": used.to_string(),
            "total_avail": total.saturating_sub(used).to_string(),
            "pct_max": pcts.iter().max().copied().unwrap_or(0),
            "pct_avg": if pcts.is_empty() { 0 } else { pcts.iter().sum::<u64>() / pcts.len() as u64 },
            "pct_min": pcts.iter().min().copied().unwrap_or(0),
        },
        "status": "",
        "deployment": "dev",
        "ais_version": concat!("moss ", env!("CARGO_PKG_VERSION")),
        "build_time": "",
        "k8s_pod_name": "",
        "cluster": {
            "smap": {
                "primary": {
                    "pub_url": smap.proxy_si.url(),
                    "control_url": smap.proxy_si.url(),
                    "id": smap.proxy_si.daemon_id,
                },
                "uuid": smap.uuid,
                "version": smap.version.to_string(),
            },
            "bmd": {"uuid": smap.uuid, "version": bmd.version.to_string()},
            "rmd": {"version": "0"},
            "config": {"version": config.config_version.to_string()},
            "etlmd": {"version": "0"},
            "flags": 0,
        },
        "sys_info": {
            "mem_used": mem_total.saturating_sub(mem_avail).to_string(),
            "mem_avail": mem_avail.to_string(),
            "pct_mem_used": if mem_total == 0 { 0.0 } else {
                (mem_total - mem_avail.min(mem_total)) as f64 * 100.0 / mem_total as f64
            },
            "pct_cpu_used": 0.0,
            "load_avg": load_avg(),
        },
        "smap_version": smap.version.to_string(),
    })
}

/// (total, available) memory in bytes, from `/proc/meminfo` (zeros where it is not readable).
fn meminfo() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("MemTotal:"), field("MemAvailable:"))
}

/// `{"one": …, "five": …, "fifteen": …}` from `/proc/loadavg`.
fn load_avg() -> Value {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text
        .split_whitespace()
        .map(|v| v.parse::<f64>().unwrap_or(0.0));
    json!({
        "one": it.next().unwrap_or(0.0),
        "five": it.next().unwrap_or(0.0),
        "fifteen": it.next().unwrap_or(0.0),
    })
}
