//! `promote`: this target ingests a file, or the files of a directory, from its own file system
//! into a bucket; each file is stored at its HRW owner (here or on another target) as a new
//! object version. The source must resolve (symlinks followed once, at the top) under the
//! promote root; inside it, symbolic links and other non-regular files are skipped, never
//! followed.
use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use moss_jobs::{Job, JobDesc, RegisterError, worker_fn};
use moss_types::jobs::{PROMOTE, PromoteArgs, promoted_name};
use moss_types::{Bck, names};
use tokio::sync::mpsc;

use crate::http::ApiError;
use crate::target::Target;
use crate::target::objects::{OwnerPut, exists_at_owner, put_at_owner};

/// Files promoted at once.
const CONCURRENCY: usize = 4;

/// What the checks made of the source: its canonical path and whether it is a directory.
pub struct Source {
    path: PathBuf,
    is_dir: bool,
}

/// Checks the source before the job is registered, so a mistake is the client's 4xx: the
/// canonical source (symlinks resolved) must stay under the canonical root, exist, and — for a
/// directory — hold a regular file within reach.
pub fn check(args: &PromoteArgs) -> Result<Source, ApiError> {
    let root = crate::node::promote_root();
    moss_types::jobs::check_promote_source(&args.src, &root).map_err(ApiError::bad_request)?;
    let root = fs::canonicalize(&root)
        .map_err(|_| ApiError::bad_request(format!("promote root {root:?} does not exist")))?;
    let path = fs::canonicalize(&args.src)
        .map_err(|e| ApiError::not_found(format!("stat {}: {e}", args.src)))?;
    if !path.starts_with(&root) {
        return Err(ApiError::bad_request(format!(
            "invalid promote source {:?}: resolves to {} outside {}",
            args.src,
            path.display(),
            root.display()
        )));
    }
    let md =
        fs::metadata(&path).map_err(|e| ApiError::not_found(format!("stat {}: {e}", args.src)))?;
    if md.is_file() {
        return Ok(Source {
            path,
            is_dir: false,
        });
    }
    if !md.is_dir() {
        return Err(ApiError::bad_request(format!(
            "promote source {:?} is neither a file nor a directory",
            args.src
        )));
    }
    let mut found = false;
    walk(&path, args.rcr, &mut |_| {
        found = true;
        false
    });
    if !found {
        return Err(ApiError::bad_request(format!(
            "directory {:?} is empty",
            args.src
        )));
    }
    Ok(Source { path, is_dir: true })
}

/// Visits the regular files below `dir` (recursively with `recursive`), never following a
/// symbolic link; `visit` returns false to stop. Returns false if stopped.
fn walk(dir: &Path, recursive: bool, visit: &mut dyn FnMut(PathBuf) -> bool) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return true;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_file() {
            if !visit(entry.path()) {
                return false;
            }
        } else if kind.is_dir() && recursive && !walk(&entry.path(), true, visit) {
            return false;
        }
    }
    true
}

pub fn start(
    target: &Arc<Target>,
    id: String,
    bck: Bck,
    args: PromoteArgs,
    source: Source,
) -> Result<Arc<Job>, RegisterError> {
    let target = target.clone();
    target.jobs.clone().start(
        JobDesc::new(id, PROMOTE).bck(&bck),
        worker_fn(move |job: Arc<Job>| async move {
            let (tx, mut rx) = mpsc::channel::<(PathBuf, String)>(256);
            let (root, is_dir, recursive) = (source.path.clone(), source.is_dir, args.rcr);
            let walker = job.clone();
            tokio::task::spawn_blocking(move || {
                if !is_dir {
                    let rel = root
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let _ = tx.blocking_send((root, rel));
                    return;
                }
                walk(&root, recursive, &mut |path| {
                    let rel = path
                        .strip_prefix(&root)
                        .map(|r| r.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    !walker.cancel_token().is_cancelled() && tx.blocking_send((path, rel)).is_ok()
                });
            });
            let files = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
            files
                .for_each_concurrent(CONCURRENCY, |(path, rel)| {
                    let (target, job, bck, args) = (&target, &job, &bck, &args);
                    async move {
                        let name = promoted_name(&args.obj, &rel, is_dir);
                        if let Err(e) = promote_file(target, job, bck, args, &path, &name).await {
                            tracing::warn!(file = %path.display(), "promote failed: {e}");
                            job.add_err(format!("{}: {e}", path.display()));
                        }
                    }
                })
                .await;
            Ok(())
        }),
    )
}

/// Stores one file as `bck/name` at its owner, unless it exists and `ovw` is off; then removes
/// the file with `dls` (AIStore removes it even when the object was skipped).
async fn promote_file(
    target: &Arc<Target>,
    job: &Arc<Job>,
    bck: &Bck,
    args: &PromoteArgs,
    path: &Path,
    name: &str,
) -> anyhow::Result<()> {
    names::validate_objname(name).map_err(anyhow::Error::msg)?;
    let exists = exists_at_owner(target, bck, name).await?;
    if !exists || args.ovw {
        // O_NOFOLLOW: a file swapped for a symbolic link after the walk is refused, not read.
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path)?;
        let md = file.metadata()?;
        anyhow::ensure!(md.is_file(), "not a regular file");
        let size = md.len();
        let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(
            tokio::fs::File::from_std(file),
        ));
        let put = OwnerPut {
            custom: Default::default(),
            xid: Some(&job.id),
            only_if_absent: false,
        };
        let sent = put_at_owner(target, bck, name, size, body, put)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        if sent {
            job.add_out(1, size);
        } else {
            crate::metrics::inc(&target.metrics.put_count, 1);
            crate::metrics::inc(&target.metrics.put_bytes, size);
            job.add_loc(1, size);
        }
    }
    if args.dls {
        fs::remove_file(path)?;
    }
    Ok(())
}
