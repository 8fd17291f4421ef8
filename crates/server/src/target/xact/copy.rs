//! `copy-listrange` and `copy-bck`: this target copies its objects of a selection (or of the
//! whole bucket) to the destination's owners. Small objects travel in bulk requests — up to 64
//! objects or 4 MiB per destination target, written there by one writer that fsyncs each
//! directory once — and large ones stream one by one; `num-workers` transfers are in flight.
use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use moss_getbatch::item::ItemSpec;
use moss_jobs::{Job, JobDesc, RegisterError, worker_fn};
use moss_types::Bck;
use moss_types::jobs::{COPY_BCK, COPY_OBJECTS, CopyMsg, Selection};
use moss_types::smap::Snode;
use tokio::sync::mpsc;

use super::{Scope, Selected, missing, selected_names, workers};
use crate::http::ApiError;
use crate::target::Target;
use crate::target::bulk::{self, BulkWriter, Outgoing, Stored};
use crate::target::objects::{CopyOpts, copy_object, item_error};

/// Objects up to this size are read whole and sent in bulk requests.
const BULK_OBJECT: u64 = 1 << 20;
/// A bulk request goes out when it holds this many objects…
const BULK_OBJECTS: usize = 64;
/// …or this many bytes.
const BULK_BYTES: u64 = 4 << 20;

/// A piece of copy work, produced on a blocking thread that reads the sources.
enum Unit {
    /// Small objects bound for one target (`None`: this one), read and verified.
    Bulk {
        owner: Option<Box<Snode>>,
        objects: Vec<Outgoing>,
        /// Source names, for error messages.
        sources: Vec<String>,
    },
    /// A large object, streamed by itself.
    Large { name: String, dst_name: String },
    /// A source object that could not be read.
    Failed { name: String, error: ApiError },
}

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
    let job_desc = JobDesc::new(id, kind)
        .src_dst(&src, &dst)
        .workers(shown_workers);
    let target = target.clone();
    target.jobs.clone().start(
        job_desc,
        worker_fn(move |job: Arc<Job>| async move {
            let names = selected_names(&target, &job, &src, selection, Scope::Owned);
            if copy.dry_run {
                return dry_run(&target, &job, &src, names, list_mode).await;
            }
            let ctx = Ctx {
                target,
                job,
                src,
                dst,
                copy,
                list_mode,
            };
            let units = produce(&ctx, names, parallel);
            let done = futures::stream::unfold(units, |mut rx| async move {
                rx.recv().await.map(|unit| (unit, rx))
            })
            .map(|unit| ctx.deliver(unit))
            .buffer_unordered(parallel);
            futures::pin_mut!(done);
            while let Some(outcome) = done.next().await {
                outcome?;
                if ctx.job.cancel_token().is_cancelled() {
                    anyhow::bail!("aborted");
                }
            }
            Ok(())
        }),
    )
}

/// A dry run visits and counts; it writes nothing.
async fn dry_run(
    target: &Target,
    job: &Job,
    src: &Bck,
    mut names: mpsc::Receiver<anyhow::Result<Vec<Selected>>>,
    list_mode: bool,
) -> anyhow::Result<()> {
    while let Some(batch) = names.recv().await {
        for selected in batch? {
            match target.store.stat_size(src, &selected.name) {
                Ok(size) => job.add_loc(1, size),
                Err(_) if list_mode => job.add_err(missing(src, &selected.name)),
                Err(_) => {}
            }
        }
    }
    Ok(())
}

/// What every unit of one copy needs.
struct Ctx {
    target: Arc<Target>,
    job: Arc<Job>,
    src: Bck,
    dst: Bck,
    copy: CopyMsg,
    list_mode: bool,
}

/// Reads the selected objects on a blocking thread and groups the small ones by destination
/// target. At most `ahead` units wait to be delivered, so memory stays within a few bulk
/// requests per destination.
fn produce(
    ctx: &Ctx,
    mut names: mpsc::Receiver<anyhow::Result<Vec<Selected>>>,
    ahead: usize,
) -> mpsc::Receiver<anyhow::Result<Unit>> {
    let (tx, rx) = mpsc::channel(ahead.max(1));
    let (target, job, src, dst, copy) = (
        ctx.target.clone(),
        ctx.job.clone(),
        ctx.src.clone(),
        ctx.dst.clone(),
        ctx.copy.clone(),
    );
    tokio::task::spawn_blocking(move || {
        let smap = target.shared.smap.load_full();
        let me = target.shared.id.clone();
        let mut groups: BTreeMap<String, Pending> = BTreeMap::new();
        let send = |unit: anyhow::Result<Unit>| -> bool {
            !job.cancel_token().is_cancelled() && tx.blocking_send(unit).is_ok()
        };
        while let Some(batch) = names.blocking_recv() {
            let batch = match batch {
                Ok(batch) => batch,
                Err(e) => {
                    send(Err(e));
                    return;
                }
            };
            for selected in batch {
                let dst_name = destination_name(&selected.name, &copy);
                let Some(owner) = moss_cluster::owner_of_object(&smap, &dst, &dst_name) else {
                    send(Err(anyhow::anyhow!("no targets in the cluster map")));
                    return;
                };
                let (custom, data) = match read_source(&target, &src, &selected.name) {
                    Ok(Source::Small { custom, data }) => (custom, data),
                    Ok(Source::Large) => {
                        let unit = Unit::Large {
                            name: selected.name,
                            dst_name,
                        };
                        if !send(Ok(unit)) {
                            return;
                        }
                        continue;
                    }
                    Err(error) => {
                        let unit = Unit::Failed {
                            name: selected.name,
                            error,
                        };
                        if !send(Ok(unit)) {
                            return;
                        }
                        continue;
                    }
                };
                let key = owner.daemon_id.clone();
                let group = groups.entry(key.clone()).or_insert_with(|| Pending {
                    owner: (owner.daemon_id != me).then(|| Box::new(owner.clone())),
                    objects: Vec::new(),
                    sources: Vec::new(),
                    bytes: 0,
                });
                group.bytes += data.len() as u64;
                group.objects.push(Outgoing {
                    name: dst_name,
                    custom,
                    data,
                });
                group.sources.push(selected.name);
                if group.objects.len() >= BULK_OBJECTS || group.bytes >= BULK_BYTES {
                    let full = groups.remove(&key).map(Pending::into_unit);
                    if let Some(unit) = full
                        && !send(Ok(unit))
                    {
                        return;
                    }
                }
            }
        }
        for (_, group) in std::mem::take(&mut groups) {
            if !send(Ok(group.into_unit())) {
                return;
            }
        }
    });
    rx
}

/// A bulk request being filled.
struct Pending {
    owner: Option<Box<Snode>>,
    objects: Vec<Outgoing>,
    sources: Vec<String>,
    bytes: u64,
}

impl Pending {
    fn into_unit(self) -> Unit {
        Unit::Bulk {
            owner: self.owner,
            objects: self.objects,
            sources: self.sources,
        }
    }
}

/// A source object, read whole and verified when it is small enough for a bulk request.
enum Source {
    Small {
        custom: BTreeMap<String, String>,
        data: bytes::Bytes,
    },
    Large,
}

fn read_source(target: &Target, src: &Bck, name: &str) -> Result<Source, ApiError> {
    let spec = ItemSpec {
        bck: src,
        objname: name,
        archpath: "",
        archmime: "",
        range: None,
    };
    let mut item = target.reader.open(&spec).map_err(item_error)?;
    if item.size > BULK_OBJECT {
        return Ok(Source::Large);
    }
    let custom = item
        .object()
        .map(|h| h.meta.custom.clone())
        .unwrap_or_default();
    let data = item.read_all().map_err(item_error)?;
    Ok(Source::Small { custom, data })
}

impl Ctx {
    /// Delivers one unit; a failure aborts the job unless `coer` (a missing object only
    /// matters in list mode). An abort cuts the transfer in flight too.
    async fn deliver(&self, unit: anyhow::Result<Unit>) -> anyhow::Result<()> {
        let unit = unit?;
        tokio::select! {
            outcome = self.deliver_unit(unit) => outcome,
            () = self.job.cancelled() => anyhow::bail!("aborted"),
        }
    }

    async fn deliver_unit(&self, unit: Unit) -> anyhow::Result<()> {
        match unit {
            Unit::Failed { name, error } => self.failed(&name, error),
            Unit::Large { name, dst_name } => {
                let opts = CopyOpts {
                    xid: Some(self.job.id.clone()),
                    only_if_absent: false,
                };
                match copy_object(&self.target, &self.src, &name, &self.dst, &dst_name, &opts).await
                {
                    Ok(copied) => {
                        self.job.add_loc(1, copied.bytes);
                        if copied.sent {
                            self.job.add_out(1, copied.bytes);
                        }
                        Ok(())
                    }
                    Err(e) => self.failed(&name, e),
                }
            }
            Unit::Bulk {
                owner,
                objects,
                sources,
            } => {
                let stored = match &owner {
                    Some(owner) => {
                        bulk::send(&self.target, owner, &self.dst, objects, &self.job.id).await
                    }
                    None => self.write_here(objects).await,
                };
                match stored {
                    Ok(stored) => {
                        self.job.add_loc(stored.objects, stored.bytes);
                        if owner.is_some() {
                            self.job.add_out(stored.objects, stored.bytes);
                        }
                        Ok(())
                    }
                    Err(e) => {
                        let names = sources.join(", ");
                        self.failed(&names, e)
                    }
                }
            }
        }
    }

    /// Writes objects whose destination is this target.
    async fn write_here(&self, objects: Vec<Outgoing>) -> Result<Stored, ApiError> {
        let store = self.target.store.clone();
        let dst = self.dst.clone();
        tokio::task::spawn_blocking(move || {
            let mut writer = BulkWriter::new(&store, &dst, false);
            for o in objects {
                let size = o.data.len() as u64;
                writer
                    .write(&o.name, o.custom, size, &mut &o.data[..])
                    .map_err(|e| ApiError::from_store(e, &format!("{}/{}", dst.cname(), o.name)))?;
            }
            writer
                .finish()
                .map_err(|e| ApiError::from_store(e, &dst.cname()))
        })
        .await
        .map_err(|e| ApiError::internal(format!("copy task failed: {e}")))?
    }

    fn failed(&self, name: &str, e: ApiError) -> anyhow::Result<()> {
        let not_found = e.status == http::StatusCode::NOT_FOUND;
        if not_found && !self.list_mode {
            return Ok(());
        }
        let msg = if not_found {
            missing(&self.src, name)
        } else {
            format!("copy {}/{name}: {}", self.src.cname(), e.message)
        };
        if self.copy.coer {
            self.job.add_err(msg);
            return Ok(());
        }
        anyhow::bail!(msg)
    }
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
