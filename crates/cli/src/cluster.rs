//! `moss config cluster` and `moss show getbatch`.
use std::collections::BTreeMap;

use anyhow::{Context as _, Result, bail};
use moss_client::{Client, GetBatchStats};

use crate::fmt::{duration_ns, emit, iec, table};

pub async fn config(client: &Client, args: &[String]) -> Result<()> {
    if args.is_empty() {
        let config = client
            .cluster_config_json()
            .await
            .context("get cluster config")?;
        let text = serde_json::to_string_pretty(&config).context("format cluster config")?;
        println!("{text}");
        return Ok(());
    }
    // Keys alone print their values; a mix of reads and writes would be ambiguous.
    if args.iter().all(|arg| !arg.contains('=')) {
        let config = client
            .cluster_config_json()
            .await
            .context("get cluster config")?;
        for key in args {
            let value = find(&config, key).ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown configuration key {key:?}: expected KEY=VALUE to set, or a KEY to print (`moss config cluster` lists them all)"
                )
            })?;
            println!("{key} = {}", show(value));
        }
        return Ok(());
    }
    let pairs = args
        .iter()
        .map(|arg| parse_pair(arg))
        .collect::<Result<Vec<(String, String)>>>()?;
    client
        .set_cluster_config(&pairs)
        .await
        .context("set cluster config")?;
    let config = client
        .cluster_config_json()
        .await
        .context("get cluster config")?;
    for (key, _) in &pairs {
        println!("{key} = {}", lookup(&config, key));
    }
    Ok(())
}

/// `KEY=VALUE`, split at the first `=`.
fn parse_pair(arg: &str) -> Result<(String, String)> {
    match arg.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.trim().to_string()))
        }
        _ => bail!("invalid argument {arg:?}: expected KEY=VALUE (or only KEYs, to print them)"),
    }
}

/// The value at a dotted key.
fn find<'a>(config: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    key.split('.').try_fold(config, |node, part| node.get(part))
}

/// A config value as text: strings without quotes, sections as compact JSON.
fn show(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The value at a dotted key, as text.
fn lookup(config: &serde_json::Value, key: &str) -> String {
    find(config, key).map_or_else(|| "(not reported by the cluster)".to_string(), show)
}

/// `moss show getbatch`: the node-lifetime GetBatch counters of every target.
pub async fn show_getbatch(client: &Client) -> Result<()> {
    let stats = client
        .getbatch_stats()
        .await
        .context("get GetBatch stats")?;
    emit(&job_table(&stats))?;
    Ok(())
}

/// `moss log show NODE`: the node's current log, as it is.
pub async fn log_show(client: &Client, node: &str, severity: &str) -> Result<()> {
    let id = node
        .strip_prefix("t[")
        .or_else(|| node.strip_prefix("p["))
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(node);
    let text = client
        .node_log(id, severity)
        .await
        .with_context(|| format!("get the log of {node}"))?;
    emit(&text)?;
    Ok(())
}

/// `moss show performance`: one row per target from its `node_status`.
pub async fn show_performance(client: &Client) -> Result<()> {
    const HEADER: [&str; 8] = [
        "NODE",
        "GET",
        "GET-BYTES",
        "PUT",
        "PUT-BYTES",
        "ERR-GET",
        "GETBATCH",
        "DISK-USED",
    ];
    let smap = client.smap().await.context("get the cluster map")?;
    let mut rows = Vec::new();
    for id in smap.tmap.keys() {
        let node = format!("t[{id}]");
        let Ok(status) = client.node_status(id).await else {
            let mut cells = vec![node];
            cells.extend(std::iter::repeat_n("-".to_string(), HEADER.len() - 2));
            cells.push("(no answer)".to_string());
            rows.push(cells);
            continue;
        };
        let counter = |name: &str| -> u64 {
            status["tracker"][name]["v"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let cap = &status["capacity"];
        let used: u64 = cap["total_used"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        rows.push(vec![
            node,
            counter("get.n").to_string(),
            iec(counter("get.size")),
            counter("put.n").to_string(),
            iec(counter("put.size")),
            counter("err.get.n").to_string(),
            counter("getbatch.n").to_string(),
            format!("{} ({}%)", iec(used), cap["pct_max"].as_u64().unwrap_or(0)),
        ]);
    }
    emit(&table(&HEADER, &rows))?;
    Ok(())
}

/// The per-target GetBatch table (`ais show job get-batch` style).
pub fn job_table(stats: &BTreeMap<String, Option<GetBatchStats>>) -> String {
    const HEADER: [&str; 10] = [
        "NODE",
        "REQS",
        "OBJS",
        "FILES",
        "PENDING",
        "SENDING",
        "AVG-WAIT",
        "SOFT-ERRS",
        "ERRS",
        "BEWARM",
    ];
    let rows: Vec<Vec<String>> = stats
        .iter()
        .map(|(id, row)| {
            let node = format!("t[{id}]");
            let Some(s) = row else {
                let mut cells = vec![node];
                cells.extend(std::iter::repeat_n("-".to_string(), HEADER.len() - 2));
                cells.push("(no answer)".to_string());
                return cells;
            };
            let avg_wait = match s.reqs {
                0 => "-".to_string(),
                reqs => duration_ns(s.rxwait_ns / reqs),
            };
            let bewarm = if s.bewarm_workers > 0 {
                format!("{} ({} done)", s.bewarm_workers, s.bewarm_done)
            } else {
                "off".to_string()
            };
            vec![
                node,
                s.reqs.to_string(),
                format!("{} ({})", s.obj_count, iec(s.obj_bytes)),
                format!("{} ({})", s.file_count, iec(s.file_bytes)),
                s.active_work_items.to_string(),
                s.active_send_streams.to_string(),
                avg_wait,
                s.err_soft_count.to_string(),
                s.err_count.to_string(),
                bewarm,
            ]
        })
        .collect();
    table(&HEADER, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keys_are_found_and_shown() {
        let config = serde_json::json!({
            "get_batch": {"max_soft_errs": 6, "max_wait": "30s"},
            "keepalive": {"interval": "2s"}
        });
        assert_eq!(lookup(&config, "get_batch.max_soft_errs"), "6");
        assert_eq!(lookup(&config, "get_batch.max_wait"), "30s");
        assert_eq!(lookup(&config, "keepalive"), r#"{"interval":"2s"}"#);
        assert!(find(&config, "get_batch.nope").is_none());
    }

    #[test]
    fn pairs_and_lookups() {
        assert_eq!(
            parse_pair("get_batch.max_wait=5s").unwrap(),
            ("get_batch.max_wait".to_string(), "5s".to_string())
        );
        assert_eq!(parse_pair("a=b=c").unwrap().1, "b=c");
        assert!(parse_pair("novalue").is_err());
        assert!(parse_pair("=1").is_err());
        let config = serde_json::json!({"get_batch": {"max_soft_errs": 10, "max_wait": "20s"}});
        assert_eq!(lookup(&config, "get_batch.max_soft_errs"), "10");
        assert_eq!(lookup(&config, "get_batch.max_wait"), "20s");
        assert!(lookup(&config, "get_batch.nope").starts_with("(not"));
    }

    #[test]
    fn job_table_rows() {
        let busy = GetBatchStats {
            reqs: 4,
            obj_count: 10,
            obj_bytes: 3 << 20,
            file_count: 2,
            file_bytes: 2048,
            rxwait_ns: 10_000_000,
            err_soft_count: 1,
            active_work_items: 1,
            bewarm_workers: 2,
            bewarm_done: 7,
            ..Default::default()
        };
        let stats: BTreeMap<String, Option<GetBatchStats>> = [
            ("a1".to_string(), Some(busy)),
            ("b2".to_string(), Some(GetBatchStats::default())),
            ("c3".to_string(), None),
        ]
        .into();
        let text = job_table(&stats);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        let cells = |line: &str| {
            line.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            cells(lines[0]),
            [
                "NODE",
                "REQS",
                "OBJS",
                "FILES",
                "PENDING",
                "SENDING",
                "AVG-WAIT",
                "SOFT-ERRS",
                "ERRS",
                "BEWARM"
            ]
        );
        assert_eq!(
            cells(lines[1]),
            [
                "t[a1]",
                "4",
                "10 (3.00MiB)",
                "2 (2.00KiB)",
                "1",
                "0",
                "2.5ms",
                "1",
                "0",
                "2 (7 done)"
            ]
        );
        assert_eq!(cells(lines[2])[6], "-");
        assert_eq!(cells(lines[2])[9], "off");
        assert!(lines[3].starts_with("t[c3]") && lines[3].ends_with("(no answer)"));
    }
}
