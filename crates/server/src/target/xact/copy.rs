//! `copy-listrange` and `copy-bck`: this target copies its objects of a selection (or of the
//! whole bucket) to the destination's owners, `num-workers` transfers at a time.
use std::sync::Arc;

use futures::StreamExt;
use moss_jobs::{Job, RegisterError, worker_fn};
use moss_types::Bck;
use moss_types::jobs::{COPY_BCK, COPY_OBJECTS, CopyMsg, Selection};

use super::{Scope, Selected, desc, missing, selected_names, workers};
use crate::http::ApiError;
use crate::target::Target;
use crate::target::objects::{CopyOpts, copy_object};

/// Starts a copy: of `selection` (copy-listrange), or of every object under `copy.prefix`
/// (copy-bck, when `selection` is `None`).
pub fn start(
    target: &Arc<Target>,
    id: String,
    src: Bck,
    dst: Bck,
    selection: Option<Selection>,
    copy: CopyMsg,
) -> Result<Arc<Job>, RegisterError> {
    let kind = if selection.is_some() {
        COPY_OBJECTS
    } else {
        COPY_BCK
    };
    let list_mode = matches!(selection, Some(Selection::List(_)));
    let selection = selection.unwrap_or_else(|| {
        Selection::Prefix(
            copy.prefix
                .strip_suffix('*')
                .unwrap_or(&copy.prefix)
                .to_string(),
        )
    });
    let parallel = workers(copy.num_workers);
    let shown_workers = if copy.dry_run { 0 } else { parallel as u64 };
    let job_desc = desc(id, kind).src_dst(&src, &dst).workers(shown_workers);
    let target = target.clone();
    target.jobs.clone().start(
        job_desc,
        worker_fn(move |job: Arc<Job>| async move {
            let batches = selected_names(&target, &job, &src, selection, Scope::Owned);
            let names = futures::stream::unfold(batches, |mut rx| async move {
                rx.recv().await.map(|batch| (batch, rx))
            })
            .flat_map(|batch| match batch {
                Ok(names) => futures::stream::iter(names.into_iter().map(Ok).collect::<Vec<_>>()),
                Err(e) => futures::stream::iter(vec![Err(e)]),
            });
            let copies = names
                .map(|selected| {
                    let (target, job, src, dst, copy) = (
                        target.clone(),
                        job.clone(),
                        src.clone(),
                        dst.clone(),
                        copy.clone(),
                    );
                    async move {
                        let selected = selected?;
                        copy_one(&target, &job, &src, &dst, &copy, &selected, list_mode).await
                    }
                })
                .buffer_unordered(parallel);
            futures::pin_mut!(copies);
            while let Some(outcome) = copies.next().await {
                outcome?;
                if job.cancel_token().is_cancelled() {
                    anyhow::bail!("aborted");
                }
            }
            Ok(())
        }),
    )
}

/// Copies (or, in a dry run, only visits) one object. A failure aborts the job unless `coer`;
/// a missing object only matters in list mode.
async fn copy_one(
    target: &Arc<Target>,
    job: &Arc<Job>,
    src: &Bck,
    dst: &Bck,
    copy: &CopyMsg,
    selected: &Selected,
    list_mode: bool,
) -> anyhow::Result<()> {
    let name = &selected.name;
    let dst_name = destination_name(name, copy);
    if copy.dry_run {
        match target.store.stat_size(src, name) {
            Ok(size) => job.add_loc(1, size),
            Err(_) if list_mode => job.add_err(missing(src, name)),
            Err(_) => {}
        }
        return Ok(());
    }
    let opts = CopyOpts {
        xid: Some(job.id.clone()),
        only_if_absent: false,
    };
    // An abort cuts the transfer in flight too (its connection is dropped), not only the next.
    let copied = tokio::select! {
        copied = copy_object(target, src, name, dst, &dst_name, &opts) => copied,
        () = job.cancelled() => anyhow::bail!("aborted"),
    };
    match copied {
        Ok(copied) => {
            job.add_loc(1, copied.bytes);
            if copied.sent {
                job.add_out(1, copied.bytes);
            }
            Ok(())
        }
        Err(e) if e.status == http::StatusCode::NOT_FOUND && !list_mode => Ok(()),
        Err(e) => fail(job, copy.coer, src, name, e),
    }
}

fn fail(job: &Job, coer: bool, src: &Bck, name: &str, e: ApiError) -> anyhow::Result<()> {
    let msg = if e.status == http::StatusCode::NOT_FOUND {
        missing(src, name)
    } else {
        format!("copy {}/{name}: {}", src.cname(), e.message)
    };
    if coer {
        job.add_err(msg);
        return Ok(());
    }
    anyhow::bail!(msg)
}

/// `prepend` + the name, with its extension mapped through `ext` (the text after the last `.`).
pub fn destination_name(name: &str, copy: &CopyMsg) -> String {
    let mapped = match name.rsplit_once('.') {
        Some((stem, ext)) if !ext.contains('/') => match copy.ext.get(ext) {
            Some(new_ext) => format!("{stem}.{new_ext}"),
            None => name.to_string(),
        },
        _ => name.to_string(),
    };
    format!("{}{mapped}", copy.prepend)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_names_follow_aistores_rule() {
        let copy = CopyMsg {
            prepend: "new-".into(),
            ext: [("old-ext".to_string(), "new-ext".to_string())].into(),
            ..Default::default()
        };
        assert_eq!(
            destination_name("prefix--obj.old-ext", &copy),
            "new-prefix--obj.new-ext"
        );
        assert_eq!(destination_name("a.jpg", &copy), "new-a.jpg");
        assert_eq!(destination_name("dir.x/noext", &copy), "new-dir.x/noext");
        assert_eq!(destination_name("plain", &CopyMsg::default()), "plain");
    }
}
