//! Commands that run as jobs — `moss rm`, `moss cp`, `moss archive`, `moss bucket mv|summary`,
//! `moss job start|stop|wait` — and `moss show job`.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use moss_client::{ArchiveOptions, Client, CopyOptions, JobOutcome, JobSnaps, snap_bucket};
use moss_types::jobs::{GET_BATCH, ListRange, Snap, USER_ABORT, kind_info};
use moss_types::template::Template;

use crate::fmt::{emit, iec, table};
use crate::names::{bucket, bucket_and_object};
use crate::{ArchiveArgs, CpArgs, JobCommand, PrefetchArgs, RmArgs, SelectArgs, progress};

/// How often a command waiting for its job looks at it.
const POLL: Duration = Duration::from_millis(250);

/// The selection the flags describe, and how many names it has when that is known.
fn selection(args: &SelectArgs, names: &[String]) -> Result<Option<(ListRange, Option<u64>)>> {
    let given = [
        !names.is_empty(),
        args.list.is_some(),
        args.template.is_some(),
        args.prefix.is_some(),
        args.all,
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        bail!("give only one of: object names, --list, --template, --prefix, --all");
    }
    if !names.is_empty() {
        return Ok(Some(listed(names.to_vec())));
    }
    if let Some(file) = &args.list {
        return Ok(Some(listed(read_list(file)?)));
    }
    if let Some(template) = &args.template {
        let parsed = Template::parse(template)
            .map_err(anyhow::Error::msg)?
            .ok_or_else(|| anyhow::anyhow!("--template {template:?} has no range ({{A..B}} or @N); use --prefix for a prefix"))?;
        let range = ListRange {
            objnames: Vec::new(),
            template: template.clone(),
        };
        return Ok(Some((range, Some(parsed.count()))));
    }
    if let Some(prefix) = &args.prefix {
        if prefix.contains(['{', '}', '@', '%']) {
            bail!("--prefix {prefix:?} contains template characters; use --template");
        }
        return Ok(Some((prefix_selection(prefix), None)));
    }
    if args.all {
        return Ok(Some((prefix_selection(""), None)));
    }
    Ok(None)
}

fn listed(names: Vec<String>) -> (ListRange, Option<u64>) {
    let count = names.len() as u64;
    let range = ListRange {
        objnames: names,
        template: String::new(),
    };
    (range, Some(count))
}

/// A prefix selection; the whole bucket is `*` (an empty template means "nothing" to clients).
fn prefix_selection(prefix: &str) -> ListRange {
    ListRange {
        objnames: Vec::new(),
        template: if prefix.is_empty() {
            "*".to_string()
        } else {
            prefix.to_string()
        },
    }
}

/// Names from a file (one per line; blank lines and `#` comments skipped) or `-` for stdin.
fn read_list(file: &PathBuf) -> Result<Vec<String>> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("read names from stdin")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?
    };
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    if names.is_empty() {
        bail!("{}: no names", file.display());
    }
    Ok(names)
}

/// Waits for job `id` with a progress bar (a bar when the total is known, else a counter).
async fn follow(client: &Client, id: &str, total: Option<u64>, unit: &str) -> Result<JobOutcome> {
    let bar = progress::count(total.unwrap_or(0), unit);
    if total.is_none() {
        bar.set_length(0);
    }
    let outcome = client
        .wait_job(id, POLL, |objects, bytes| {
            bar.set_position(objects);
            if total.is_none() {
                bar.set_length(objects);
            }
            bar.set_message(iec(bytes));
        })
        .await;
    bar.finish_and_clear();
    outcome.with_context(|| format!("wait for job {id}"))
}

/// Prints a job's result; fails when it was aborted or had errors.
fn report(what: &str, id: &str, outcome: &JobOutcome, started: Instant) -> Result<()> {
    let took = started.elapsed().as_secs_f64();
    if outcome.aborted {
        bail!("{what}: job {id} aborted: {}", outcome.error);
    }
    println!(
        "{what}: {} object(s), {} (job {id}, {took:.1}s)",
        outcome.objects,
        iec(outcome.bytes)
    );
    if !outcome.error.is_empty() {
        bail!("{what}: job {id} finished with errors: {}", outcome.error);
    }
    Ok(())
}

pub async fn rm(client: &Client, args: RmArgs) -> Result<()> {
    let bck = bucket(&args.bucket)?;
    let Some((range, total)) = selection(&args.select, &args.names)? else {
        bail!("moss rm: say what to delete: object names, --list, --template, --prefix or --all");
    };
    let started = Instant::now();
    let id = client
        .delete_objects(&bck, &range)
        .await
        .with_context(|| format!("delete from {bck}"))?;
    let outcome = follow(client, &id, total, "deleted").await?;
    report(&format!("deleted from {bck}"), &id, &outcome, started)
}

pub async fn prefetch(client: &Client, args: PrefetchArgs) -> Result<()> {
    let bck = bucket(&args.bucket)?;
    let Some((range, total)) = selection(&args.select, &args.names)? else {
        bail!(
            "moss prefetch: say what to fetch: object names, --list, --template, --prefix or --all"
        );
    };
    let started = Instant::now();
    let id = client
        .prefetch_objects(&bck, &range, args.latest)
        .await
        .with_context(|| format!("prefetch from {bck}"))?;
    let outcome = follow(client, &id, total, "fetched").await?;
    report(&format!("prefetched from {bck}"), &id, &outcome, started)
}

/// `moss evict BUCKET …`: a selection evicts those objects (a job); `--all` the whole bucket's
/// cached copies (the bucket keeps its props).
pub async fn evict(client: &Client, args: RmArgs) -> Result<()> {
    let bck = bucket(&args.bucket)?;
    let started = Instant::now();
    if args.select.all && args.names.is_empty() {
        client
            .evict_bucket(&bck, true)
            .await
            .with_context(|| format!("evict {bck}"))?;
        println!(
            "evicted every cached object of {bck} ({:.1}s)",
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let Some((range, total)) = selection(&args.select, &args.names)? else {
        bail!("moss evict: say what to evict: object names, --list, --template, --prefix or --all");
    };
    let id = client
        .evict_objects(&bck, &range)
        .await
        .with_context(|| format!("evict from {bck}"))?;
    let outcome = follow(client, &id, total, "evicted").await?;
    report(&format!("evicted from {bck}"), &id, &outcome, started)
}

pub async fn cp(client: &Client, args: CpArgs) -> Result<()> {
    let src = bucket(&args.source)?;
    let dst = bucket(&args.destination)?;
    let options = CopyOptions {
        prepend: args.prepend.clone().unwrap_or_default(),
        dry_run: args.dry_run,
        workers: args.workers.unwrap_or(0),
        continue_on_error: args.coer,
    };
    let started = Instant::now();
    let only_prefix =
        args.names.is_empty() && args.select.list.is_none() && args.select.template.is_none();
    let (id, total) = if only_prefix {
        let prefix = args.select.prefix.clone().unwrap_or_default();
        let id = client
            .copy_bucket(&src, &dst, &prefix, &options)
            .await
            .with_context(|| format!("copy {src} to {dst}"))?;
        (id, None)
    } else {
        let Some((range, total)) = selection(&args.select, &args.names)? else {
            bail!("moss cp: nothing selected");
        };
        let id = client
            .copy_objects(&src, &dst, &range, &options)
            .await
            .with_context(|| format!("copy objects of {src} to {dst}"))?;
        (id, total)
    };
    let outcome = follow(client, &id, total, "copied").await?;
    let what = if args.dry_run {
        format!("dry run: would copy {src} to {dst}")
    } else {
        format!("copied {src} to {dst}")
    };
    report(&what, &id, &outcome, started)
}

pub async fn archive(client: &Client, args: ArchiveArgs) -> Result<()> {
    let src = bucket(&args.source)?;
    let (dst, archname) = bucket_and_object(&args.destination)?;
    let Some((range, _)) = selection(&args.select, &args.names)? else {
        bail!(
            "moss archive: say what to archive: object names, --list, --template, --prefix or --all"
        );
    };
    let options = ArchiveOptions {
        include_bucket: args.include_bucket,
        append: args.append,
        continue_on_error: args.coer,
    };
    let started = Instant::now();
    let id = client
        .archive_objects(&src, &dst, &archname, &range, &options)
        .await
        .with_context(|| format!("archive objects of {src} into {dst}/{archname}"))?;
    let spinner = progress::count(0, "archived");
    let outcome = client
        .wait_job(&id, POLL, |_, _| spinner.tick())
        .await
        .with_context(|| format!("wait for job {id}"));
    spinner.finish_and_clear();
    let outcome = outcome?;
    if outcome.aborted {
        bail!("archive: job {id} aborted: {}", outcome.error);
    }
    let snaps = client.job_snapshots(&id, "").await?;
    let what = snaps
        .values()
        .flatten()
        .map(|s| s.ctlmsg.clone())
        .find(|m| !m.is_empty())
        .unwrap_or_else(|| format!("{dst}/{archname}"));
    println!(
        "archived: {what} ({}, job {id}, {:.1}s)",
        iec(outcome.bytes),
        started.elapsed().as_secs_f64()
    );
    if !outcome.error.is_empty() {
        bail!("archive: job {id} skipped objects: {}", outcome.error);
    }
    Ok(())
}

pub async fn rename(client: &Client, from: &str, to: &str) -> Result<()> {
    let (from, to) = (bucket(from)?, bucket(to)?);
    let started = Instant::now();
    let id = client
        .rename_bucket(&from, &to)
        .await
        .with_context(|| format!("rename {from} to {to}"))?;
    loop {
        let status = client.job_status(&id).await?;
        if status.end_time != 0 {
            if status.aborted || !status.err.is_empty() {
                bail!("rename: job {id} failed: {}", status.err);
            }
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    println!(
        "renamed {from} to {to} (job {id}, {:.1}s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub async fn summary(client: &Client, name: &str, prefix: &str) -> Result<()> {
    let bck = bucket(name)?;
    let s = client
        .bucket_summary(&bck, prefix)
        .await
        .with_context(|| format!("summarize {bck}"))?;
    let rows = vec![vec![
        bck.to_string(),
        s.obj_count.present.to_string(),
        iec(s.total_size.present_objs),
        iec(s.total_size.on_disk),
        format!("{}%", s.used_pct),
    ]];
    emit(&table(
        &["NAME", "OBJECTS", "SIZE", "SIZE ON DISK", "USAGE(%)"],
        &rows,
    ))?;
    Ok(())
}

pub async fn job(client: &Client, command: JobCommand) -> Result<()> {
    match command {
        JobCommand::Start { kind, bucket, wait } => {
            let bucket = bucket.map(|b| crate::names::bucket(&b)).transpose()?;
            let id = client
                .start_job(&kind, bucket.as_deref())
                .await
                .with_context(|| format!("start {kind}"))?;
            if !wait {
                println!("{id}");
                return Ok(());
            }
            let started = Instant::now();
            let outcome = follow(client, &id, None, "objects").await?;
            report(&format!("{kind} finished"), &id, &outcome, started)
        }
        JobCommand::Stop { job } => {
            let (id, kind) = id_or_kind(&job);
            client
                .stop_job(&id, &kind)
                .await
                .with_context(|| format!("stop {job}"))?;
            println!("stopped {job}");
            Ok(())
        }
        JobCommand::Wait { id } => {
            let started = Instant::now();
            let outcome = follow(client, &id, None, "objects").await?;
            report(&format!("job {id} done"), &id, &outcome, started)
        }
    }
}

/// A command-line `KIND|ID`: a known kind (or display name) is a kind, anything else an id.
fn id_or_kind(text: &str) -> (String, String) {
    match kind_info(text) {
        Some(info) => (String::new(), info.kind.to_string()),
        None => (text.to_string(), String::new()),
    }
}

pub async fn show_job(client: &Client, which: Option<String>, refresh: Option<f64>) -> Result<()> {
    let (id, kind) = which.as_deref().map(id_or_kind).unwrap_or_default();
    let Some(seconds) = refresh else {
        let snaps = client.job_snapshots(&id, &kind).await.context("get jobs")?;
        emit(&render_jobs(&snaps))?;
        return Ok(());
    };
    if !seconds.is_finite() || seconds <= 0.0 || seconds > 86_400.0 {
        bail!("invalid --refresh {seconds}: expecting seconds in (0, 86400]");
    }
    let period = Duration::from_secs_f64(seconds);
    loop {
        let snaps = client.job_snapshots(&id, &kind).await.context("get jobs")?;
        let text = format!("{}{}", render_jobs(&snaps), "-".repeat(72) + "\n");
        if !emit(&text)? {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

const COLUMNS: [&str; 9] = [
    "NODE", "ID", "KIND", "BUCKET", "OBJECTS", "BYTES", "START", "END", "STATE",
];

/// Every job in `ais show job`'s layout: one table per kind (GetBatch jobs first, each with its
/// per-target control lines), one row per target, and a Total row.
pub fn render_jobs(snaps: &JobSnaps) -> String {
    let mut by_job: BTreeMap<(String, String), Vec<(&String, &Snap)>> = BTreeMap::new();
    for (node, list) in snaps {
        for snap in list {
            let first = snap.kind != GET_BATCH;
            by_job
                .entry((format!("{}{}", u8::from(first), snap.kind), snap.id.clone()))
                .or_default()
                .push((node, snap));
        }
    }
    if by_job.is_empty() {
        return "no jobs\n".to_string();
    }
    let mut out = String::new();
    let mut rows_of_kind: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    let mut totals: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for ((order, id), rows) in &by_job {
        let kind = &order[1..];
        let mut table_rows = Vec::new();
        let mut total = (0, 0);
        for (node, snap) in rows {
            total.0 += snap.stats.loc_objs;
            total.1 += snap.stats.loc_bytes;
            table_rows.push(row(node, snap));
        }
        if kind == GET_BATCH {
            out.push_str(&format!("{kind}[{id}] (ctl:\n"));
            for (_, snap) in rows.iter().filter(|(_, s)| !s.ctlmsg.is_empty()) {
                out.push_str(&format!("  {}\n", snap.ctlmsg));
            }
            out.push_str(")\n");
            out.push_str(&with_total(&table_rows, total));
            continue;
        }
        rows_of_kind
            .entry(kind.to_string())
            .or_default()
            .extend(table_rows);
        let t = totals.entry(kind.to_string()).or_default();
        t.0 += total.0;
        t.1 += total.1;
    }
    for (kind, rows) in &rows_of_kind {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&with_total(
            rows,
            totals.get(kind).copied().unwrap_or_default(),
        ));
    }
    out
}

fn with_total(rows: &[Vec<String>], (objects, bytes): (u64, u64)) -> String {
    let mut rows = rows.to_vec();
    if rows.len() > 1 {
        rows.push(vec![
            String::new(),
            String::new(),
            String::new(),
            "Total:".to_string(),
            objects.to_string(),
            iec(bytes),
        ]);
    }
    table(&COLUMNS, &rows)
}

fn row(node: &str, snap: &Snap) -> Vec<String> {
    let end = if snap.finished() {
        clock(&snap.end_time)
    } else {
        "-".to_string()
    };
    vec![
        format!("t[{node}]"),
        snap.id.clone(),
        snap.kind.clone(),
        snap_bucket(snap),
        snap.stats.loc_objs.to_string(),
        iec(snap.stats.loc_bytes),
        clock(&snap.start_time),
        end,
        state(snap),
    ]
}

/// STATE as `ais show job` words it, checked in its order.
pub fn state(snap: &Snap) -> String {
    if snap.abort_err == USER_ABORT {
        return "Aborted by user".to_string();
    }
    if snap.aborted || !snap.abort_err.is_empty() {
        return format!("Aborted: {:?}", snap.abort_err);
    }
    if snap.finished() {
        if snap.err.is_empty() {
            return "Finished".to_string();
        }
        return format!("Finished with errors: {:?}", snap.err);
    }
    if snap.is_idle {
        return "Idle".to_string();
    }
    if snap.err.is_empty() {
        "Running".to_string()
    } else {
        format!("Running with errors: {:?}", snap.err)
    }
}

/// `HH:MM:SS` (UTC) of an RFC 3339 time.
fn clock(rfc3339: &str) -> String {
    let Ok(at) = humantime::parse_rfc3339(rfc3339) else {
        return "-".to_string();
    };
    let secs = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use moss_types::jobs::{BckJson, SnapStats, ZERO_TIME};

    fn snap(id: &str, kind: &str, objs: u64) -> Snap {
        Snap {
            id: id.into(),
            kind: kind.into(),
            start_time: "2026-12-01T14:38:20.5Z".into(),
            end_time: ZERO_TIME.into(),
            bck: BckJson {
                name: "nnn".into(),
                provider: "ais".into(),
                ..Default::default()
            },
            stats: SnapStats {
                loc_objs: objs,
                loc_bytes: objs * 1024,
                ..Default::default()
            },
            ctlmsg: format!("pending:(1,1) reqs:{objs}"),
            ..Default::default()
        }
    }

    #[test]
    fn jobs_render_as_ais_show_job() {
        let mut snaps = JobSnaps::new();
        snaps.insert("a1".into(), vec![snap("gbt-x", GET_BATCH, 10)]);
        let mut finished = snap("Dabcdefghi", "delete-listrange", 3);
        finished.end_time = "2026-12-01T14:38:21Z".into();
        finished.is_idle = true;
        snaps.insert("b2".into(), vec![snap("gbt-x", GET_BATCH, 5), finished]);
        let text = render_jobs(&snaps);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "get-batch[gbt-x] (ctl:");
        assert_eq!(lines[1], "  pending:(1,1) reqs:10");
        assert_eq!(lines[3], ")");
        assert!(lines[4].starts_with("NODE"), "{text}");
        assert!(
            lines[5].starts_with("t[a1]") && lines[5].ends_with("Running"),
            "{text}"
        );
        assert!(lines[5].contains("ais://nnn") && lines[5].contains("14:38:20"));
        assert!(
            lines[7].contains("Total:") && lines[7].contains("15"),
            "{text}"
        );
        assert!(text.contains("delete-listrange"));
        assert!(text.lines().last().unwrap().ends_with("Finished"), "{text}");
    }

    #[test]
    fn states_in_aistores_order() {
        let mut s = snap("J", "copy-bck", 0);
        assert_eq!(state(&s), "Running");
        s.is_idle = true;
        assert_eq!(state(&s), "Idle");
        s.end_time = "2026-12-01T14:38:21Z".into();
        s.err = "x missing".into();
        assert_eq!(state(&s), "Finished with errors: \"x missing\"");
        s.aborted = true;
        s.abort_err = USER_ABORT.into();
        assert_eq!(state(&s), "Aborted by user");
        s.abort_err = "t[x] left".into();
        assert_eq!(state(&s), "Aborted: \"t[x] left\"");
    }

    #[test]
    fn kinds_and_ids_are_told_apart() {
        assert_eq!(
            id_or_kind("copy-objects"),
            (String::new(), "copy-listrange".into())
        );
        assert_eq!(
            id_or_kind("tco-abcdefghij"),
            ("tco-abcdefghij".into(), String::new())
        );
    }
}
