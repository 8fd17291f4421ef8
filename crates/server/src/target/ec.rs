//! Redundancy across targets (`ec.*`, RFC 0008): after an object of an EC bucket is written,
//! its owner stores `parity_slices` full replicas (objects under `objsize_limit`) or
//! `data_slices + parity_slices` Reed-Solomon slices on the next targets in HRW order, and the
//! write is acknowledged only once every piece is durable. A target that misses an object, or
//! finds it damaged, rebuilds it from the pieces (the reader's rebuild hook), so reads go on
//! while up to `parity_slices` targets are down.
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use moss_getbatch::item::ItemError;
use moss_storage::erasure::{self, Layout};
use moss_storage::{PieceMeta, StoreError};
use moss_types::smap::{EcConf, Snode};
use moss_types::{Bck, Provider};

use super::Target;
use super::endpoint::ObjMethod;
use crate::http::{ApiError, Query, bucket_query, encode_path, header_str, url_bucket};

/// Header with a piece's [`PieceMeta`] (JSON) on the piece endpoint.
pub const PIECE_META: &str = "moss-ec-piece";
/// How long a survey of the other targets waits for each answer.
const SURVEY_TIMEOUT: Duration = Duration::from_secs(3);
/// Time a piece transfer may take beyond one second per MiB.
const TRANSFER_BASE: Duration = Duration::from_secs(30);
/// Bytes per read when streaming a file to a peer.
const READ_CHUNK: usize = 1 << 20;

/// The bucket's EC settings, if EC is on.
pub fn conf(target: &Target, bck: &Bck) -> Option<EcConf> {
    if bck.provider != Provider::Ais {
        return None;
    }
    let bmd = target.shared.bmd.load();
    bmd.get(bck).map(|p| p.ec.clone()).filter(|ec| ec.enabled)
}

fn transfer_timeout(len: u64) -> Duration {
    TRANSFER_BASE + Duration::from_secs(len >> 20)
}

fn piece_url(to: &Snode, bck: &Bck, objname: &str) -> String {
    format!(
        "{}/v1/internal/ec/{}/{}?{}",
        to.url(),
        bck.name,
        encode_path(objname),
        bucket_query(bck)
    )
}

/// A call to `to`'s piece endpoint for the object, as this cluster member.
fn piece_call(
    target: &Target,
    method: reqwest::Method,
    to: &Snode,
    bck: &Bck,
    objname: &str,
) -> reqwest::RequestBuilder {
    let request = target
        .shared
        .client
        .request(method, piece_url(to, bck, objname));
    target.shared.intra(request)
}

/// The other active targets in HRW order for the object (piece holders first).
fn others_ranked(target: &Target, bck: &Bck, objname: &str) -> Vec<Snode> {
    let smap = target.shared.smap.load();
    moss_cluster::ranked_targets(&smap, bck, objname)
        .into_iter()
        .filter(|t| t.daemon_id != target.shared.id)
        .cloned()
        .collect()
}

/// `len` bytes of a file as a stream of positioned reads (several streams may share one file).
fn file_stream(
    file: Arc<File>,
    len: u64,
) -> impl futures::Stream<Item = io::Result<Bytes>> + Send + 'static {
    futures::stream::try_unfold(0u64, move |offset| {
        let file = file.clone();
        async move {
            if offset >= len {
                return Ok(None);
            }
            let n = (len - offset).min(READ_CHUNK as u64) as usize;
            let buf = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; n];
                file.read_exact_at(&mut buf, offset).map(|()| buf)
            })
            .await
            .map_err(io::Error::other)??;
            Ok(Some((Bytes::from(buf), offset + n as u64)))
        }
    })
}

/// `PUT|GET|HEAD|DELETE /v1/internal/ec/<b>/<o>`: this target's piece of an object.
pub async fn piece(
    target: &Arc<Target>,
    method: ObjMethod,
    bucket: &str,
    objname: &str,
    query: &Query,
    req: Request,
) -> Result<Response, ApiError> {
    let bck = url_bucket(bucket, query)?;
    moss_types::names::validate_objname(objname).map_err(ApiError::bad_request)?;
    let what = format!("{}/{objname}", bck.cname());
    let store = target.store.clone();
    let name = objname.to_string();
    let blocking =
        |e: tokio::task::JoinError| ApiError::internal(format!("piece task failed: {e}"));
    match method {
        ObjMethod::Put => {
            let meta: PieceMeta = header_str(req.headers(), PIECE_META)
                .ok_or_else(|| ApiError::bad_request(format!("missing {PIECE_META} header")))
                .and_then(|v| {
                    serde_json::from_str(v).map_err(|e| {
                        ApiError::bad_request(format!("invalid {PIECE_META} header: {e}"))
                    })
                })?;
            let (b, n) = (bck.clone(), name.clone());
            let txn =
                super::objects::spool_into(move || store.begin_piece(&b, &n), req.into_body())
                    .await
                    .map_err(|e| ApiError::from_store(e, &what))?;
            tokio::task::spawn_blocking(move || txn.commit(&meta))
                .await
                .map_err(blocking)?
                .map_err(|e| ApiError::from_store(e, &what))?;
            Ok(StatusCode::OK.into_response())
        }
        ObjMethod::Get | ObjMethod::Head => {
            let (file, meta) = tokio::task::spawn_blocking(move || store.open_piece(&bck, &name))
                .await
                .map_err(blocking)?
                .map_err(|e| match e {
                    StoreError::NotFound => ApiError::not_found(format!("no piece of {what}")),
                    e => ApiError::from_store(e, &what),
                })?;
            let len = file
                .metadata()
                .map_err(|e| ApiError::internal(e.to_string()))?
                .len();
            let body = if method == ObjMethod::Get {
                Body::from_stream(file_stream(Arc::new(file), len))
            } else {
                Body::empty()
            };
            let mut response = Response::new(body);
            let json = serde_json::to_string(&meta).unwrap_or_default();
            if let Ok(v) = HeaderValue::from_str(&json) {
                response.headers_mut().insert(PIECE_META, v);
            }
            response
                .headers_mut()
                .insert(axum::http::header::CONTENT_LENGTH, HeaderValue::from(len));
            Ok(response)
        }
        ObjMethod::Delete => {
            tokio::task::spawn_blocking(move || store.delete_piece(&bck, &name))
                .await
                .map_err(blocking)?
                .map_err(|e| ApiError::from_store(e, &what))?;
            Ok(StatusCode::OK.into_response())
        }
        ObjMethod::Post | ObjMethod::Patch => Err(ApiError::method_not_allowed(
            &axum::http::Method::POST,
            &[
                axum::http::Method::GET,
                axum::http::Method::HEAD,
                axum::http::Method::PUT,
                axum::http::Method::DELETE,
            ],
        )),
    }
}

impl super::objects::Sink for moss_storage::PieceTxn {
    fn put(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.write(data)
    }
}

/// Times [`protect`] starts over when the object is overwritten while its pieces are stored.
const PROTECT_ATTEMPTS: usize = 3;

/// Stores the pieces of an object just written here on other targets; returns once each is
/// durable on its holder. A holder that fails is replaced by the next target in HRW order; if
/// too few targets take a piece, the write fails (503) — the object itself stays written, and a
/// retried PUT protects it again. If the object is deleted meanwhile, the pieces are removed
/// again (the delete's own clean-up may have reached a holder before the piece did, and a
/// leftover piece would bring the object back); if it is overwritten, the pieces are made again
/// from the newer version, so older ones never outlive it.
pub async fn protect(target: &Arc<Target>, bck: &Bck, objname: &str) -> Result<(), ApiError> {
    let Some(ec) = conf(target, bck) else {
        return Ok(());
    };
    for _ in 0..PROTECT_ATTEMPTS {
        let stamp = target.store.change_stamp(bck, objname);
        let found = protect_once(target, bck, objname, &ec).await?;
        if found && target.store.change_stamp(bck, objname) == stamp {
            return Ok(());
        }
        if !stored_here(target, bck, objname).await {
            unprotect(target, bck, objname).await;
            return Ok(());
        }
    }
    Ok(())
}

/// Whether this target's store holds the object (an error reading it counts as yes).
async fn stored_here(target: &Target, bck: &Bck, objname: &str) -> bool {
    let (store, b, n) = (target.store.clone(), bck.clone(), objname.to_string());
    tokio::task::spawn_blocking(move || {
        !matches!(store.stat_size(&b, &n), Err(StoreError::NotFound))
    })
    .await
    .unwrap_or(true)
}

/// One attempt of [`protect`]; `false` if the object was not there (deleted meanwhile).
async fn protect_once(
    target: &Arc<Target>,
    bck: &Bck,
    objname: &str,
    ec: &EcConf,
) -> Result<bool, ApiError> {
    let what = format!("{}/{objname}", bck.cname());
    let store = target.store.clone();
    let (b, name) = (bck.clone(), objname.to_string());
    let conf = ec.clone();
    // Pieces: replicas share the object's open file (a concurrent overwrite does not change
    // it); slices are encoded into scratch files first.
    let pieces = tokio::task::spawn_blocking(
        move || -> Result<Vec<(PieceMeta, Arc<File>, u64)>, StoreError> {
            let handle = store.open_object(&b, &name)?;
            let size = handle.meta.size;
            let piece = |slice| PieceMeta {
                obj: handle.meta.clone(),
                slice,
                data: conf.data_slices,
                parity: conf.parity_slices,
            };
            if conf.replicates(size) {
                let file = Arc::new(handle.file.try_clone()?);
                return Ok((0..conf.parity_slices)
                    .map(|_| (piece(None), file.clone(), size))
                    .collect());
            }
            let layout = Layout {
                data: conf.data_slices as usize,
                parity: conf.parity_slices as usize,
                size,
            };
            let mut files = (0..layout.data + layout.parity)
                .map(|_| store.scratch_file().map(io::BufWriter::new))
                .collect::<Result<Vec<_>, _>>()?;
            let mut src = io::BufReader::new(&handle.file);
            let mut outs: Vec<&mut dyn Write> =
                files.iter_mut().map(|f| f as &mut dyn Write).collect();
            erasure::encode(&mut src, layout, &mut outs)?;
            drop(outs);
            let len = layout.slice_len();
            files
                .into_iter()
                .enumerate()
                .map(|(k, f)| {
                    let file = f.into_inner().map_err(|e| StoreError::Io(e.into_error()))?;
                    Ok((piece(Some(k as u32)), Arc::new(file), len))
                })
                .collect()
        },
    )
    .await
    .map_err(|e| ApiError::internal(format!("ec encode task failed: {e}")))?;
    let pieces = match pieces {
        Ok(pieces) => pieces,
        Err(StoreError::NotFound) => return Ok(false),
        Err(e) => return Err(ApiError::from_store(e, &what)),
    };
    let holders = others_ranked(target, bck, objname);
    if holders.len() < pieces.len() {
        return Err(ApiError::unavailable(format!(
            "{what}: EC needs {} other targets for its pieces, the cluster has {}",
            pieces.len(),
            holders.len()
        )));
    }
    // Round one: piece k to holder k; each failure moves its piece to the next spare holder.
    let mut spare = pieces.len();
    let mut round: Vec<(usize, usize)> = (0..pieces.len()).map(|k| (k, k)).collect();
    while !round.is_empty() {
        let sends = round.iter().map(|&(k, h)| {
            let (meta, file, len) = &pieces[k];
            send_piece(target, &holders[h], bck, objname, meta, file.clone(), *len)
        });
        let results = futures::future::join_all(sends).await;
        let mut again = Vec::new();
        for ((k, h), result) in round.into_iter().zip(results) {
            let Err(why) = result else { continue };
            tracing::warn!(object = %what, holder = %holders[h].display(), "EC piece not stored: {why}");
            if spare == holders.len() {
                return Err(ApiError::unavailable(format!(
                    "{what}: EC piece {k} could not be stored on any target (last: {}: {why})",
                    holders[h].display()
                )));
            }
            again.push((k, spare));
            spare += 1;
        }
        round = again;
    }
    Ok(true)
}

async fn send_piece(
    target: &Target,
    to: &Snode,
    bck: &Bck,
    objname: &str,
    meta: &PieceMeta,
    file: Arc<File>,
    len: u64,
) -> Result<(), String> {
    let json = serde_json::to_string(meta).map_err(|e| e.to_string())?;
    let request = piece_call(target, reqwest::Method::PUT, to, bck, objname)
        .header(PIECE_META, json)
        .header(reqwest::header::CONTENT_LENGTH, len)
        .timeout(transfer_timeout(len))
        .body(reqwest::Body::wrap_stream(file_stream(file, len)));
    let response = request.send().await.map_err(|e| e.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        let status = response.status();
        Err(format!(
            "{status}: {}",
            response.text().await.unwrap_or_default()
        ))
    }
}

/// Removes the pieces other targets hold of a deleted object (best effort: a target that is
/// down keeps its piece; RFC 0008 says what that means).
pub async fn unprotect(target: &Target, bck: &Bck, objname: &str) {
    let calls = others_ranked(target, bck, objname).into_iter().map(|t| {
        let request =
            piece_call(target, reqwest::Method::DELETE, &t, bck, objname).timeout(SURVEY_TIMEOUT);
        async move {
            if let Err(e) = request.send().await.and_then(|r| r.error_for_status()) {
                tracing::warn!(holder = %t.display(), object = objname, "EC piece not removed: {e}");
            }
        }
    });
    futures::future::join_all(calls).await;
}

/// Removes the pieces of an object this target has just deleted (or found missing). If the
/// object is back by the time that is done — a PUT committed after the delete, whose pieces the
/// clean-up may have hit — its pieces are stored again.
pub async fn unprotect_deleted(target: &Arc<Target>, bck: &Bck, objname: &str) {
    unprotect(target, bck, objname).await;
    if stored_here(target, bck, objname).await
        && let Err(e) = protect(target, bck, objname).await
    {
        tracing::warn!(bucket = %bck, object = objname, "EC pieces not restored after a racing delete: {}", e.message);
    }
}

/// Where a piece is: here (`None`) or on another target.
type Found = (Option<Snode>, PieceMeta);

/// Every piece of the object this and the other targets hold, as far as they answer in time.
async fn survey(target: &Arc<Target>, bck: &Bck, objname: &str) -> Vec<Found> {
    let store = target.store.clone();
    let (b, name) = (bck.clone(), objname.to_string());
    let local = tokio::task::spawn_blocking(move || store.open_piece(&b, &name).map(|(_, m)| m));
    let probes = others_ranked(target, bck, objname).into_iter().map(|t| {
        let request =
            piece_call(target, reqwest::Method::HEAD, &t, bck, objname).timeout(SURVEY_TIMEOUT);
        async move {
            let response = request.send().await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            let meta = response.headers().get(PIECE_META)?.to_str().ok()?;
            Some((Some(t), serde_json::from_str::<PieceMeta>(meta).ok()?))
        }
    });
    let (local, remote) = futures::join!(local, futures::future::join_all(probes));
    let mut found: Vec<Found> = Vec::new();
    if let Ok(Ok(meta)) = local {
        found.push((None, meta));
    }
    found.extend(remote.into_iter().flatten());
    found
}

/// Fetches a piece into a scratch file (a local one is opened in place).
fn fetch(target: &Target, from: &Option<Snode>, bck: &Bck, objname: &str) -> Result<File, String> {
    let Some(peer) = from else {
        return target
            .store
            .open_piece(bck, objname)
            .map(|(file, _)| file)
            .map_err(|e| e.to_string());
    };
    let handle = tokio::runtime::Handle::current();
    let mut file = target.store.scratch_file().map_err(|e| e.to_string())?;
    handle.block_on(async {
        let response = piece_call(target, reqwest::Method::GET, peer, bck, objname)
            .timeout(TRANSFER_BASE)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| e.to_string())?;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            file.write_all(&chunk).map_err(|e| e.to_string())?;
        }
        Ok::<_, String>(())
    })?;
    file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    Ok(file)
}

/// Which of two versions of an object was written later: by write time (targets' clocks), then
/// by version number. Write time first because versions are counted per holder: a target that
/// took writes while the owner was away starts again from 1.
fn newness(meta: &moss_storage::ObjMeta) -> (u64, u64) {
    (meta.mtime, meta.version)
}

/// Rebuilds a missing or damaged object of an EC bucket into this target's store from the
/// newest version its pieces hold (blocking; called by the reader's rebuild hook).
pub fn rebuild(target: &Arc<Target>, bck: &Bck, objname: &str) -> Result<(), ItemError> {
    let what = format!("{}/{objname}", bck.cname());
    let handle = tokio::runtime::Handle::current();
    let found = handle.block_on(survey(target, bck, objname));
    let Some(newest) = found
        .iter()
        .map(|(_, m)| m)
        .max_by_key(|m| newness(&m.obj))
        .cloned()
    else {
        return Err(ItemError::NotFound(format!("{what} does not exist")));
    };
    let mut same: Vec<&Found> = found
        .iter()
        .filter(|(_, m)| m.same_version(&newest))
        .collect();
    let store = &target.store;
    if newest.slice.is_none() {
        // Any one intact replica will do (a damaged one fails the checksum and the next is tried).
        let mut last = String::new();
        for (from, _) in same.iter().filter(|(_, m)| m.slice.is_none()) {
            let restored = fetch(target, from, bck, objname).and_then(|mut file| {
                store
                    .restore_object(bck, objname, &newest.obj, &mut |w| {
                        io::copy(&mut file, w).map(|_| ())
                    })
                    .map_err(|e| e.to_string())
            });
            match restored {
                Ok(()) => {
                    tracing::info!(object = %what, from = %from.as_ref().map_or("local".into(), |t| t.display()), "object rebuilt from a replica");
                    return Ok(());
                }
                Err(e) => last = e,
            }
        }
        return Err(ItemError::Io(format!(
            "{what}: no replica could be used ({last})"
        )));
    }
    let layout = Layout {
        data: newest.data as usize,
        parity: newest.parity as usize,
        size: newest.obj.size,
    };
    // Local slice first, then data slices (no decoding needed if all of them are there).
    same.sort_by_key(|(from, m)| (from.is_some(), m.slice));
    let mut slices: Vec<Option<File>> = (0..layout.data + layout.parity).map(|_| None).collect();
    let mut have = 0;
    for (from, meta) in same {
        let Some(k) = meta.slice.map(|k| k as usize).filter(|&k| k < slices.len()) else {
            continue;
        };
        if have == layout.data || slices[k].is_some() {
            continue;
        }
        match fetch(target, from, bck, objname) {
            Ok(file) if file.metadata().is_ok_and(|m| m.len() == layout.slice_len()) => {
                slices[k] = Some(file);
                have += 1;
            }
            Ok(_) => tracing::warn!(object = %what, "EC slice {k} has the wrong length; skipped"),
            Err(e) => tracing::warn!(object = %what, "EC slice {k} unavailable: {e}"),
        }
    }
    if have < layout.data {
        return Err(ItemError::Io(format!(
            "{what}: only {have} of the {} slices needed to rebuild it are reachable",
            layout.data
        )));
    }
    store
        .restore_object(bck, objname, &newest.obj, &mut |w| {
            let mut out = io::BufWriter::with_capacity(READ_CHUNK, w);
            erasure::decode(&slices, layout, &mut out)?;
            out.flush()
        })
        .map_err(|e| ItemError::Io(format!("{what}: rebuild from slices failed: {e}")))?;
    tracing::info!(object = %what, slices = have, "object rebuilt from EC slices");
    Ok(())
}

/// Objects checked (and, where needed, rebuilt or protected) concurrently by an encode pass.
const PARALLEL_ENCODES: usize = 4;
/// Names handed from the disk walk to the encoders at a time.
const ENCODE_BATCH: usize = 256;

/// `ec-encode`: this target's share of protecting a bucket (see [`encode_bucket`]).
pub fn start_encode(
    target: &Arc<Target>,
    id: String,
    bck: Bck,
) -> Result<Arc<moss_jobs::Job>, moss_jobs::RegisterError> {
    let target = target.clone();
    let desc = moss_jobs::JobDesc::new(id, moss_types::jobs::EC_ENCODE)
        .bck(&bck)
        .workers(PARALLEL_ENCODES as u64);
    target.jobs.clone().start(
        desc,
        moss_jobs::worker_fn(move |job: Arc<moss_jobs::Job>| async move {
            encode_bucket(&target, &job, &bck).await
        }),
    )
}

/// Brings a bucket's redundancy up to its EC settings on this target's share: objects this
/// target now owns but holds only pieces of (their owner was lost) are rebuilt, and every object
/// it owns whose pieces are missing or stale on the other targets is protected again. The disk
/// walk streams names through a small channel, so memory stays bounded; each object counts on
/// the job (`loc` objects and bytes brought up to date), each failure is one of its errors.
pub async fn encode_bucket(
    target: &Arc<Target>,
    job: &Arc<moss_jobs::Job>,
    bck: &Bck,
) -> anyhow::Result<()> {
    if conf(target, bck).is_none() {
        return Ok(());
    }
    let (store, b) = (target.store.clone(), bck.clone());
    let smap = target.shared.smap.load_full();
    let me = target.shared.id.clone();
    let (names, walker) =
        super::walk::batched(job.cancel_token().clone(), ENCODE_BATCH, move |out| {
            let owns = |name: &str| {
                moss_cluster::owner_of_object(&smap, &b, name).is_some_and(|t| t.daemon_id == me)
            };
            // Pieces of objects this target owns now but does not hold (its owner is gone).
            store.walk_pieces(&b, |name| {
                if out.is_open() && owns(name) && store.open_file(&b, name).is_none() {
                    out.push(name.to_string());
                }
            })?;
            if out.is_open() {
                store.walk_prefix(&b, "", |obj| {
                    if owns(obj.name) {
                        out.push(obj.name.to_string())
                    } else {
                        out.is_open()
                    }
                })?;
            }
            Ok(())
        });
    let checks = names
        .map(|name| {
            let target = target.clone();
            async move { (ensure(&target, bck, &name).await, name) }
        })
        .buffer_unordered(PARALLEL_ENCODES);
    futures::pin_mut!(checks);
    while let Some((outcome, name)) = checks.next().await {
        if job.cancel_token().is_cancelled() {
            anyhow::bail!("aborted");
        }
        match outcome {
            Ok(Some(size)) => job.add_loc(1, size),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(bucket = %bck, object = %name, "ec-encode: {e}");
                job.add_err(format!("{}/{name}: {e}", bck.cname()));
            }
        }
    }
    walker.await??;
    Ok(())
}

/// Makes sure an object this target owns is here and has its pieces on other targets; the
/// object's size if anything had to be done.
async fn ensure(target: &Arc<Target>, bck: &Bck, objname: &str) -> Result<Option<u64>, String> {
    let Some(ec) = conf(target, bck) else {
        return Ok(None);
    };
    let (store, b, name) = (target.store.clone(), bck.clone(), objname.to_string());
    let here = tokio::task::spawn_blocking(move || match store.open_object(&b, &name) {
        Ok(handle) => Ok(Some(handle.meta)),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e.to_string()),
    })
    .await
    .map_err(|e| e.to_string())??;
    let mut rebuilt = here.is_none();
    let meta = match here {
        Some(meta) => meta,
        None => rebuild_here(target, bck, objname).await?,
    };
    let mut found = survey(target, bck, objname).await;
    // A newer version written elsewhere while this target was away (its copy is stale): the
    // pieces have it.
    let stale = found
        .iter()
        .any(|(from, m)| from.is_some() && newness(&m.obj) > newness(&meta));
    let meta = if stale {
        let meta = rebuild_here(target, bck, objname).await?;
        tracing::info!(bucket = %bck, object = objname, "stale copy replaced by the newer version its pieces hold");
        rebuilt = true;
        found = survey(target, bck, objname).await;
        meta
    } else {
        meta
    };
    let current = PieceMeta {
        obj: meta.clone(),
        slice: None,
        data: ec.data_slices,
        parity: ec.parity_slices,
    };
    let mut held: Vec<Option<u32>> = found
        .iter()
        .filter(|(from, m)| from.is_some() && m.same_version(&current))
        .map(|(_, m)| m.slice)
        .collect();
    held.sort_unstable();
    held.dedup_by(|a, b| a.is_some() && a == b);
    let complete = if ec.replicates(meta.size) {
        held.iter().filter(|s| s.is_none()).count() >= ec.parity_slices as usize
    } else {
        held.iter().filter(|s| s.is_some()).count() >= ec.pieces(meta.size)
    };
    if complete && !rebuilt {
        return Ok(None);
    }
    if !complete {
        protect(target, bck, objname).await.map_err(|e| e.message)?;
    }
    // A piece this target kept of an object it now owns whole is of no more use.
    if found.iter().any(|(from, _)| from.is_none()) {
        let (store, b, name) = (target.store.clone(), bck.clone(), objname.to_string());
        let removed = tokio::task::spawn_blocking(move || store.delete_piece(&b, &name)).await;
        if let Ok(Err(e)) = removed {
            tracing::warn!(object = objname, "local EC piece not removed: {e}");
        }
    }
    Ok(Some(meta.size))
}

/// Rebuilds an object here from its pieces (the newest version they hold); its new metadata.
async fn rebuild_here(
    target: &Arc<Target>,
    bck: &Bck,
    objname: &str,
) -> Result<moss_storage::ObjMeta, String> {
    let (t, b, name) = (target.clone(), bck.clone(), objname.to_string());
    tokio::task::spawn_blocking(move || {
        rebuild(&t, &b, &name).map_err(|e| e.to_string())?;
        t.store
            .open_object(&b, &name)
            .map(|h| h.meta)
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// After a change of the cluster map: every EC bucket's redundancy brought up to date on this
/// target's share, counted on the rebalance job that runs it.
pub async fn repair_all(target: &Arc<Target>, job: &Arc<moss_jobs::Job>) {
    let buckets: Vec<Bck> = {
        let bmd = target.shared.bmd.load();
        target
            .store
            .buckets_on_disk()
            .into_iter()
            .filter(|b| bmd.get(b).is_some_and(|p| p.ec.enabled) && b.provider == Provider::Ais)
            .collect()
    };
    for bck in buckets {
        if let Err(e) = encode_bucket(target, job, &bck).await {
            tracing::warn!(bucket = %bck, "EC repair incomplete: {e:#}");
            job.add_err(format!("EC repair of {}: {e:#}", bck.cname()));
        }
    }
}
