//! `summary-bck`: this target counts its objects of a bucket (under a prefix) once; the proxy
//! merges the parts.
use std::sync::Arc;

use moss_jobs::{Job, JobDesc, RegisterError, worker_fn};
use moss_types::Bck;
use moss_types::jobs::{SUMMARY, SummaryPart};

use crate::target::Target;

pub fn start(
    target: &Arc<Target>,
    id: String,
    bck: Bck,
    prefix: String,
) -> Result<Arc<Job>, RegisterError> {
    let target = target.clone();
    target.jobs.clone().start(
        JobDesc::new(id, SUMMARY).bck(&bck),
        worker_fn(move |job: Arc<Job>| async move {
            let store = target.store.clone();
            let walker = job.clone();
            let part = tokio::task::spawn_blocking(move || {
                let mut part = SummaryPart {
                    disks: store.capacity(),
                    ..Default::default()
                };
                store.walk_prefix(&bck, &prefix, |obj| {
                    part.merge(&SummaryPart {
                        objects: 1,
                        bytes: obj.size,
                        min: obj.size,
                        max: obj.size,
                        on_disk: obj.on_disk,
                        disks: 0,
                    });
                    !walker.cancel_token().is_cancelled()
                })?;
                anyhow::Ok(part)
            })
            .await??;
            job.add_loc(part.objects, part.bytes);
            job.set_result(serde_json::to_value(&part)?);
            Ok(())
        }),
    )
}
