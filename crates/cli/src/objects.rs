//! `moss put`, `moss get`, `moss ls`.
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow, bail};
use futures::{StreamExt, TryStreamExt, stream};
use indicatif::ProgressBar;
use moss_client::{Client, GetOptions, ListOptions, SMALL_FILE_LIMIT};
use moss_types::names::validate_objname;
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

use crate::fmt::{emit, iec};
use crate::names::{bucket_and_object, bucket_and_path, join_object_name};
use crate::{GetArgs, LsArgs, PutArgs, progress};

/// Upload failures listed individually before the summary error.
const SHOWN_FAILURES: usize = 10;

/// One file to upload.
#[derive(Debug, Clone)]
struct Upload {
    path: PathBuf,
    objname: String,
    size: u64,
}

pub async fn put(client: &Client, args: PutArgs) -> Result<()> {
    let (bucket, prefix) = bucket_and_path(&args.destination)?;
    let parts = multipart(&args);
    let source = args.source;
    let meta = tokio::fs::metadata(&source)
        .await
        .with_context(|| format!("cannot read {}", source.display()))?;
    let started = Instant::now();
    if meta.is_file() {
        let file_name = source
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| anyhow!("{}: file name is not valid UTF-8", source.display()))?;
        let objname = if prefix.is_empty() || prefix.ends_with('/') {
            format!("{prefix}{file_name}")
        } else {
            prefix
        };
        validate_objname(&objname).map_err(anyhow::Error::msg)?;
        let upload = Upload {
            path: source.clone(),
            objname,
            size: meta.len(),
        };
        let bar = progress::bytes(upload.size);
        let result = put_one(client, &bucket, &upload, &bar, parts).await;
        bar.finish_and_clear();
        let sent = match result? {
            0 => String::new(),
            n => format!(" ({n} parts)"),
        };
        println!(
            "uploaded {} ({}) as {bucket}/{} in {:.1}s{sent}",
            source.display(),
            iec(upload.size),
            upload.objname,
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    if !meta.is_dir() {
        bail!("{}: not a file or directory", source.display());
    }
    let walk_root = source.clone();
    let files = tokio::task::spawn_blocking(move || walk(&walk_root))
        .await
        .context("directory walk failed")??;
    if files.is_empty() {
        println!("nothing to upload: {} has no files", source.display());
        return Ok(());
    }
    let uploads = files
        .into_iter()
        .map(|(path, relative, size)| {
            let objname = join_object_name(&prefix, &relative);
            validate_objname(&objname).map_err(anyhow::Error::msg)?;
            Ok(Upload {
                path,
                objname,
                size,
            })
        })
        .collect::<Result<Vec<Upload>>>()?;
    let total_bytes: u64 = uploads.iter().map(|u| u.size).sum();
    let count = uploads.len();
    let bar = progress::bytes(total_bytes);
    bar.set_message(format!("0/{count} files"));
    let mut done = 0usize;
    let mut failures: Vec<(String, anyhow::Error)> = Vec::new();
    let mut results = stream::iter(uploads)
        .map(|upload| {
            let bar = bar.clone();
            let bucket = bucket.clone();
            async move {
                let result = put_one(client, &bucket, &upload, &bar, parts).await;
                (upload, result)
            }
        })
        .buffer_unordered(usize::from(args.concurrency));
    while let Some((upload, result)) = results.next().await {
        done += 1;
        bar.set_message(format!("{done}/{count} files"));
        if let Err(err) = result {
            failures.push((upload.objname, err));
        }
    }
    bar.finish_and_clear();
    let target = if prefix.is_empty() {
        bucket.to_string()
    } else {
        format!("{bucket}/{prefix}")
    };
    let uploaded = count - failures.len();
    println!(
        "uploaded {uploaded} of {count} files ({}) to {target} in {:.1}s",
        iec(total_bytes),
        started.elapsed().as_secs_f64()
    );
    if failures.is_empty() {
        return Ok(());
    }
    for (objname, err) in failures.iter().take(SHOWN_FAILURES) {
        eprintln!("failed: {objname}: {err:#}");
    }
    if failures.len() > SHOWN_FAILURES {
        eprintln!("... and {} more", failures.len() - SHOWN_FAILURES);
    }
    bail!("{} of {count} uploads failed", failures.len())
}

/// Uploads one file, advancing `bar` by its bytes.
/// The multipart settings of `moss put`.
fn multipart(args: &PutArgs) -> moss_client::MultipartOptions {
    moss_client::MultipartOptions {
        part_size: args.part_size << 20,
        parallel: usize::from(args.parts_parallel),
    }
}

/// Uploads one file: in parts if it is bigger than a part, else in one PUT. Returns how many
/// parts went up (0 for a single PUT).
async fn put_one(
    client: &Client,
    bucket: &str,
    upload: &Upload,
    bar: &ProgressBar,
    parts: moss_client::MultipartOptions,
) -> Result<u32> {
    let shown = upload.path.display();
    if upload.size > parts.part_size {
        let counted = bar.clone();
        return client
            .put_file_multipart(
                bucket,
                &upload.objname,
                &upload.path,
                parts,
                std::sync::Arc::new(move |n| counted.inc(n)),
            )
            .await
            .with_context(|| format!("upload {shown} (multipart)"));
    }
    if upload.size <= SMALL_FILE_LIMIT {
        let data = tokio::fs::read(&upload.path)
            .await
            .with_context(|| format!("read {shown}"))?;
        client
            .put_bytes(bucket, &upload.objname, data)
            .await
            .with_context(|| format!("upload {shown}"))?;
        bar.inc(upload.size);
        return Ok(0);
    }
    let file = tokio::fs::File::open(&upload.path)
        .await
        .with_context(|| format!("open {shown}"))?;
    let counted = bar.clone();
    let body = ReaderStream::with_capacity(file, 256 << 10).inspect_ok(move |chunk| {
        counted.inc(chunk.len() as u64);
    });
    client
        .put_stream(bucket, &upload.objname, upload.size, body)
        .await
        .with_context(|| format!("upload {shown}"))?;
    Ok(0)
}

/// Regular files under `root` (symlinked files followed, symlinked directories skipped to
/// stay clear of cycles), as (path, `/`-separated relative name, size), sorted by name.
fn walk(root: &Path) -> Result<Vec<(PathBuf, String, u64)>> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("read directory {}", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("read directory {}", dir.display()))?;
            let path = entry.path();
            let file_type = entry
                .file_type()
                .with_context(|| format!("stat {}", path.display()))?;
            if file_type.is_dir() {
                pending.push(path);
                continue;
            }
            let meta = if file_type.is_symlink() {
                match std::fs::metadata(&path) {
                    Ok(meta) if meta.is_file() => meta,
                    _ => {
                        eprintln!("skipping {}: symlink to a non-file", path.display());
                        continue;
                    }
                }
            } else if file_type.is_file() {
                entry
                    .metadata()
                    .with_context(|| format!("stat {}", path.display()))?
            } else {
                eprintln!("skipping {}: not a regular file", path.display());
                continue;
            };
            let relative = relative_name(root, &path)?;
            files.push((path, relative, meta.len()));
        }
    }
    files.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(files)
}

fn relative_name(root: &Path, path: &Path) -> Result<String> {
    let relative = path
        .strip_prefix(root)
        .with_context(|| format!("{} is outside {}", path.display(), root.display()))?;
    let parts = relative
        .components()
        .map(|c| {
            c.as_os_str()
                .to_str()
                .ok_or_else(|| anyhow!("{}: file name is not valid UTF-8", path.display()))
        })
        .collect::<Result<Vec<&str>>>()?;
    Ok(parts.join("/"))
}

pub async fn get(client: &Client, args: GetArgs) -> Result<()> {
    let (bucket, objname) = bucket_and_object(&args.object)?;
    let options = GetOptions {
        range: None,
        archpath: args.archpath.clone(),
    };
    let source = match &args.archpath {
        Some(archpath) => format!("{archpath} in {bucket}/{objname}"),
        None => format!("{bucket}/{objname}"),
    };
    let to_stdout = args.destination.as_deref() == Some("-");
    let base_name = args
        .archpath
        .as_deref()
        .unwrap_or(&objname)
        .rsplit('/')
        .next()
        .unwrap_or(&objname)
        .to_string();
    // Checked before downloading anything.
    let dest = if to_stdout {
        PathBuf::new()
    } else {
        destination_path(args.destination.as_deref(), &base_name)?
    };
    let mut body = client
        .get_stream(&bucket, &objname, &options)
        .await
        .with_context(|| format!("get {source}"))?;

    if to_stdout {
        let mut stdout = tokio::io::stdout();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.with_context(|| format!("get {source}"))?;
            stdout.write_all(&chunk).await.context("write to stdout")?;
        }
        stdout.flush().await.context("write to stdout")?;
        return Ok(());
    }

    // Write next to the destination and rename at the end: no half-written file under the
    // final name if the download fails.
    let partial = partial_path(&dest);
    let bar = progress::bytes(body.content_length.unwrap_or(0));
    let written = async {
        let mut file = tokio::fs::File::create(&partial)
            .await
            .with_context(|| format!("create {}", partial.display()))?;
        let mut total = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.with_context(|| format!("get {source}"))?;
            file.write_all(&chunk)
                .await
                .with_context(|| format!("write {}", partial.display()))?;
            total += chunk.len() as u64;
            bar.inc(chunk.len() as u64);
        }
        file.flush()
            .await
            .with_context(|| format!("write {}", partial.display()))?;
        tokio::fs::rename(&partial, &dest)
            .await
            .with_context(|| format!("rename {} to {}", partial.display(), dest.display()))?;
        Ok::<u64, anyhow::Error>(total)
    }
    .await;
    bar.finish_and_clear();
    match written {
        Ok(total) => {
            println!("downloaded {source} ({}) to {}", iec(total), dest.display());
            Ok(())
        }
        Err(err) => {
            let _ = tokio::fs::remove_file(&partial).await;
            Err(err)
        }
    }
}

/// Where `moss get` writes: `base_name` in the current directory, in an existing directory
/// `destination`, or the file `destination`. A destination in a directory that does not exist
/// (including `newdir/`) is an error rather than a failed rename at the end of the download.
fn destination_path(destination: Option<&str>, base_name: &str) -> Result<PathBuf> {
    let is_dir = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_dir());
    let Some(destination) = destination else {
        return Ok(PathBuf::from(base_name));
    };
    let path = Path::new(destination);
    if is_dir(path) {
        return Ok(path.join(base_name));
    }
    if destination.ends_with('/') {
        bail!("directory {destination} does not exist");
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !is_dir(parent)
    {
        bail!("directory {}/ does not exist", parent.display());
    }
    Ok(path.to_path_buf())
}

/// `dir/.name.part` next to `dest`.
pub fn partial_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "download".to_string());
    dest.with_file_name(format!(".{name}.part"))
}

pub async fn ls(client: &Client, args: LsArgs) -> Result<()> {
    let (bucket, prefix) = bucket_and_path(&args.target)?;
    let options = ListOptions {
        prefix,
        page_size: args.page_size,
        archive: args.archive,
        ..ListOptions::default()
    };
    let mut pages = std::pin::pin!(client.list_pages(&bucket, options));
    let mut width = 4;
    let mut printed_header = false;
    while let Some(page) = pages.next().await {
        let page = page.with_context(|| format!("list {bucket}"))?;
        // Pages print as they arrive; a later, longer name widens the column from there on.
        for entry in &page.entries {
            width = width.max(entry.name.chars().count());
        }
        let mut text = String::new();
        if !printed_header {
            text.push_str(&format!("{:<width$}  SIZE\n", "NAME"));
            printed_header = true;
        }
        for entry in page.entries {
            let size = if args.bytes {
                entry.size.to_string()
            } else {
                iec(entry.size)
            };
            text.push_str(&format!("{:<width$}  {size}\n", entry.name));
        }
        if !emit(&text)? {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_directories_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("b/c")).unwrap();
        std::fs::write(dir.path().join("z.txt"), b"zz").unwrap();
        std::fs::write(dir.path().join("b/c/x.bin"), b"x").unwrap();
        std::fs::write(dir.path().join("a b.txt"), b"").unwrap();
        let files = walk(dir.path()).unwrap();
        let names: Vec<(&str, u64)> = files.iter().map(|(_, n, s)| (n.as_str(), *s)).collect();
        assert_eq!(names, [("a b.txt", 0), ("b/c/x.bin", 1), ("z.txt", 2)]);
    }

    #[test]
    fn download_destinations_must_be_in_existing_directories() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        assert_eq!(destination_path(None, "x").unwrap(), Path::new("x"));
        assert_eq!(
            destination_path(Some(root), "x").unwrap(),
            dir.path().join("x")
        );
        assert_eq!(
            destination_path(Some(&format!("{root}/y.bin")), "x").unwrap(),
            dir.path().join("y.bin")
        );
        let missing = format!("{root}/newdir/");
        let err = destination_path(Some(&missing), "x").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("directory {missing} does not exist")
        );
        let err = destination_path(Some(&format!("{root}/newdir/y.bin")), "x").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("directory {root}/newdir/ does not exist")
        );
    }

    #[test]
    fn partial_files_are_hidden_siblings() {
        assert_eq!(
            partial_path(Path::new("/x/out.tar")),
            Path::new("/x/.out.tar.part")
        );
    }
}
