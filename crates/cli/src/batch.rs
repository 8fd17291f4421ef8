//! `moss batch`: build a GetBatch request from a spec, a list file and arguments; write the
//! archive as received (`-o`) or extract its entries (`--extract`).
use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow, bail};
use futures::StreamExt;
use moss_archive::Format;
use moss_client::{BatchItem, Client};
use moss_types::moss::{MossOut, MossReq, parse_request};
use tokio::io::{AsyncReadExt, BufWriter};

use crate::fmt::iec;
use crate::objects::partial_path;
use crate::{BatchArgs, names, progress};

/// Largest `--spec` file accepted.
const MAX_SPEC: u64 = 256 << 20;
/// Missing items listed individually.
const SHOWN_MISSING: usize = 20;

pub async fn run(client: &Client, args: BatchArgs) -> Result<()> {
    let default_bucket = args
        .default_bucket
        .as_deref()
        .map(names::bucket)
        .transpose()?;
    let req = build_request(&args, default_bucket.is_some()).await?;
    if let Some(output) = &args.output {
        return write_archive(client, req, default_bucket.as_deref(), output).await;
    }
    let Some(dir) = &args.extract else {
        bail!("give -o FILE or --extract DIR");
    };
    extract(client, req, default_bucket.as_deref(), dir).await
}

/// The request: `--spec` first, then `--list` entries, then positional entries; flags override
/// the spec's switches; the output format comes from `-o`'s extension or `--format`.
async fn build_request(args: &BatchArgs, has_default_bucket: bool) -> Result<MossReq> {
    let mut req = match &args.spec {
        Some(path) => {
            let text = read_input(path).await?;
            parse_request(&text).map_err(|e| anyhow!("spec {}: {e}", path.display()))?
        }
        None => MossReq {
            strm: true,
            ..MossReq::default()
        },
    };
    if let Some(path) = &args.list {
        let bytes = read_input(path).await?;
        let text = String::from_utf8(bytes)
            .map_err(|_| anyhow!("list {}: not UTF-8 text", path.display()))?;
        let entries = names::list_file_entries(&text, has_default_bucket)
            .with_context(|| format!("list {}", path.display()))?;
        req.entries.extend(entries);
    }
    for arg in &args.entries {
        req.entries
            .push(names::batch_entry(arg, has_default_bucket)?);
    }
    if req.entries.is_empty() {
        bail!("empty batch: give entries as arguments, with --list FILE, or with --spec FILE");
    }
    req.coer |= args.coer;
    req.onob |= args.onob;
    if args.streaming {
        req.strm = true;
    }
    if args.buffered {
        req.strm = false;
    }
    let format = match (&args.output, &args.format) {
        (Some(output), _) => format_of_output(output)?,
        (None, Some(name)) => Format::from_mime(name).map_err(|e| anyhow!("--format: {e}"))?,
        (None, None) => Format::from_mime(&req.mime).map_err(|e| anyhow!("spec: {e}"))?,
    };
    if !req.mime.is_empty() && Format::from_mime(&req.mime).ok() != Some(format) {
        eprintln!(
            "note: format {} overrides the spec's mime {:?}",
            format.ext(),
            req.mime
        );
    }
    req.mime = format.ext().to_string();
    Ok(req)
}

/// The format named by an output file's extension.
fn format_of_output(path: &Path) -> Result<Format> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow!("invalid output file name {}", path.display()))?;
    Format::from_name(name).ok_or_else(|| {
        anyhow!(
            "unknown filename extension of {name:?}: expecting .tar, .tgz, .tar.gz, .zip or .tar.lz4"
        )
    })
}

/// A file's bytes, or stdin for `-`.
async fn read_input(path: &Path) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    if path == Path::new("-") {
        tokio::io::stdin()
            .take(MAX_SPEC + 1)
            .read_to_end(&mut data)
            .await
            .context("read stdin")?;
    } else {
        let file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("open {}", path.display()))?;
        file.take(MAX_SPEC + 1)
            .read_to_end(&mut data)
            .await
            .with_context(|| format!("read {}", path.display()))?;
    }
    if data.len() as u64 > MAX_SPEC {
        bail!("{} is larger than {}", path.display(), iec(MAX_SPEC));
    }
    Ok(data)
}

async fn write_archive(
    client: &Client,
    req: MossReq,
    default_bucket: Option<&str>,
    output: &Path,
) -> Result<()> {
    let started = Instant::now();
    let count = req.entries.len();
    let archive = client
        .batch_archive(req, default_bucket)
        .await
        .context("get batch")?;
    let partial = partial_path(output);
    let file = tokio::fs::File::create(&partial)
        .await
        .with_context(|| format!("create {}", partial.display()))?;
    let bar = progress::count(count as u64, "entries");
    let mut payload = 0u64;
    let written = archive
        .write_to(BufWriter::with_capacity(256 << 10, file), |item| {
            payload += item.out.size;
            bar.inc(1);
            bar.set_message(iec(payload));
        })
        .await;
    bar.finish_and_clear();
    let summary = match written {
        Ok(summary) => summary,
        Err(err) => {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(anyhow::Error::new(err).context("get batch"));
        }
    };
    if let Err(err) = tokio::fs::rename(&partial, output).await {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(anyhow::Error::new(err).context(format!("rename to {}", output.display())));
    }
    println!(
        "wrote {} entries ({} of data, {} archive) to {} in {:.1}s",
        summary.entries,
        iec(summary.payload_bytes),
        iec(summary.archive_bytes),
        output.display(),
        started.elapsed().as_secs_f64()
    );
    report_missing(&summary.missing);
    Ok(())
}

async fn extract(
    client: &Client,
    req: MossReq,
    default_bucket: Option<&str>,
    dir: &Path,
) -> Result<()> {
    let started = Instant::now();
    let created = !dir.exists();
    tokio::fs::create_dir_all(dir)
        .await
        .with_context(|| format!("create {}", dir.display()))?;
    let bar = progress::count(req.entries.len() as u64, "entries");
    let mut items = client.batch(req, default_bucket);
    let mut written = 0usize;
    let mut bytes = 0u64;
    let mut missing: Vec<MossOut> = Vec::new();
    let outcome = async {
        while let Some(item) = items.next().await {
            let item: BatchItem = item.context("get batch")?;
            bar.inc(1);
            if item.is_missing() {
                missing.push(item.out);
                continue;
            }
            let path = names::extraction_path(dir, &item.name)?;
            if let Some(parent) = path.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .with_context(|| format!("create {}", parent.display()))?;
            }
            tokio::fs::write(&path, &item.data)
                .await
                .with_context(|| format!("write {}", path.display()))?;
            written += 1;
            bytes += item.data.len() as u64;
            bar.set_message(iec(bytes));
        }
        Ok::<(), anyhow::Error>(())
    }
    .await;
    bar.finish_and_clear();
    if outcome.is_err() && created && written == 0 {
        // A batch that failed before its first entry leaves nothing behind, not an empty directory.
        let _ = tokio::fs::remove_dir_all(dir).await;
    }
    outcome?;
    println!(
        "extracted {written} entries ({}) to {} in {:.1}s",
        iec(bytes),
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    report_missing(&missing);
    Ok(())
}

/// Lists placeholders on stderr (they are expected with `--coer`, so not an error).
fn report_missing(missing: &[MossOut]) {
    if missing.is_empty() {
        return;
    }
    eprintln!("{} missing:", missing.len());
    for out in missing.iter().take(SHOWN_MISSING) {
        let mut name = format!("{}/{}", out.bucket, out.objname);
        if !out.archpath.is_empty() {
            name.push('/');
            name.push_str(out.archpath.trim_start_matches('/'));
        }
        let why = out.err_msg.as_deref().unwrap_or("missing");
        eprintln!("  {name}: {why}");
    }
    if missing.len() > SHOWN_MISSING {
        eprintln!("  ... and {} more", missing.len() - SHOWN_MISSING);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_extensions_pick_formats() {
        let f = |name: &str| format_of_output(Path::new(name));
        assert_eq!(f("out.tar").unwrap(), Format::Tar);
        assert_eq!(f("dir/out.tgz").unwrap(), Format::Tgz);
        assert_eq!(f("out.tar.gz").unwrap(), Format::Tgz);
        assert_eq!(f("out.zip").unwrap(), Format::Zip);
        assert_eq!(f("out.tar.lz4").unwrap(), Format::TarLz4);
        let err = f("out.rar").unwrap_err().to_string();
        assert!(err.starts_with("unknown filename extension"), "{err}");
    }
}
