//! `GET /v1/objects/<b>/<shard>?archmode=M&archregx=R`: the members of one shard that match,
//! in archive order, as one plain TAR (AIStore's multi-file read). Streamed from a blocking
//! reader through a bounded channel; the response starts only once the first member matched, so
//! "nothing matches" is a clean 404.
use std::io;
use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use moss_archive::select::{Matcher, ShardInfo, copy_matching};
use moss_archive::{ArchiveError, Format};
use moss_getbatch::item::ItemSpec;
use moss_types::Bck;
use tokio::sync::oneshot;

use super::Target;
use super::objects::item_error;
use crate::daemon::{ChannelSink, channel_body};
use crate::http::ApiError;

/// The status of a shard that cannot be read as asked: the shard's fault is the client's to see
/// (400), never a 5xx the SDK would retry.
fn archive_error(err: ArchiveError, what: &str) -> ApiError {
    match err {
        ArchiveError::Io(e) => ApiError::internal(format!("{what}: {e}")),
        other => ApiError::bad_request(format!("{what}: {other}")),
    }
}

pub async fn get_matching(
    target: &Arc<Target>,
    bck: &Bck,
    objname: &str,
    mode: &str,
    pattern: &str,
    archmime: &str,
) -> Result<Response, ApiError> {
    let matcher = Matcher::parse(mode, pattern).map_err(ApiError::bad_request)?;
    let what = format!("{}/{objname}", bck.cname());
    let not_found = ApiError::not_found(format!(
        "no file matching (archregx={pattern}, archmode={mode}) in {what}: does not exist"
    ));
    let store = target.store.clone();
    let (b, name, mime) = (bck.clone(), objname.to_string(), archmime.to_string());
    let (first_tx, first_rx) = oneshot::channel::<Result<(), ApiError>>();
    let (sink, rx) = ChannelSink::new();
    let tx = sink.sender();
    tokio::task::spawn_blocking(move || {
        let opened = store
            .open_object(&b, &name)
            .map_err(|e| ApiError::from_store(e, &what))
            .and_then(|handle| {
                let spec = ItemSpec {
                    bck: &b,
                    objname: &name,
                    archpath: "",
                    archmime: &mime,
                    range: None,
                };
                let format =
                    moss_getbatch::shard::detect(&handle, &spec, &what).map_err(item_error)?;
                Ok((handle, format))
            });
        let (handle, format) = match opened {
            Ok(found) => found,
            Err(e) => {
                let _ = first_tx.send(Err(e));
                return;
            }
        };
        let size = handle.meta.size;
        let limits = moss_getbatch::shard::limits_for(size);
        let mut out = moss_archive::writer::new_writer(Format::Tar, sink);
        let mut first = Some(first_tx);
        let info = ShardInfo {
            format,
            len: size,
            mtime_secs: handle.meta.mtime,
        };
        let copied = copy_matching(info, &handle.file, &matcher, &limits, out.as_mut(), || {
            if let Some(started) = first.take() {
                let _ = started.send(Ok(()));
            }
        });
        let result = match copied {
            Ok(0) => Err(not_found),
            Ok(_) => out
                .finish()
                .map_err(|e| ApiError::internal(format!("{what}: {e}"))),
            Err(e) => Err(archive_error(e, &what)),
        };
        if let Err(e) = result {
            match first.take() {
                Some(started) => {
                    let _ = started.send(Err(e));
                }
                None => {
                    // After the first byte an error can only end the stream (the client sees a
                    // truncated TAR, as from AIStore).
                    tracing::warn!("multi-file read aborted: {}", e.message);
                    let _ = tx.blocking_send(Err(io::Error::other(e.message)));
                }
            }
        }
    });
    match first_rx.await {
        Ok(Ok(())) => {
            let mut response = Response::new(channel_body(rx));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-tar"),
            );
            Ok(response)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "multi-file read task ended early",
        )),
    }
}
