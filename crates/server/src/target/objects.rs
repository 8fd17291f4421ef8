//! Object calls on a target: GET (whole, range, archived file), HEAD, PUT, DELETE, the internal
//! listing, and get-from-neighbor when an object is not where HRW says it should be.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use moss_archive::Format;
use moss_getbatch::item::{CHUNK, Item, ItemError, ItemSpec, LocalReader};
use moss_getbatch::shard::list_members;
use moss_storage::{CKSUM_TYPE, ListedObject, ObjHandle, Store, StoreError};
use moss_types::lso::{ENTRY_IN_ARCH, ENTRY_IS_ARCHIVE, LsoEntry};
use moss_types::moss::ByteRange;
use moss_types::smap::Snode;
use moss_types::{Bck, headers, names};
use tokio::sync::mpsc;

use super::{ObjMethod, Target};
use crate::http::{
    ApiError, Query, bucket_query, encode_path, header_str, json_response, url_bucket,
};
use crate::metrics::inc;

/// Longest wait for another target's answer to a small control call (HEAD probe, DELETE).
const NEIGHBOR_TIMEOUT: Duration = Duration::from_secs(5);

/// Objects up to this size are read (and verified) in one go before the response starts.
const SMALL_OBJECT: u64 = 1 << 20;

/// Entry point for object calls (public or internal).
pub async fn object(
    target: &Arc<Target>,
    method: ObjMethod,
    bucket: &str,
    objname: &str,
    query: &Query,
    req: Request,
    internal: bool,
) -> Result<Response, ApiError> {
    let checked = url_bucket(bucket, query).and_then(|bck| {
        names::validate_objname(objname).map_err(ApiError::bad_request)?;
        if target.shared.bmd.load().get(&bck).is_none() {
            return Err(ApiError::no_bucket(&bck.cname()));
        }
        Ok(bck)
    });
    let bck = match checked {
        Ok(bck) => bck,
        Err(e) => {
            crate::http::drain_body(req.into_body(), crate::http::ERROR_DRAIN_LIMIT).await;
            return Err(e);
        }
    };
    match method {
        ObjMethod::Get => get(target, bck, objname, query, req.headers(), internal).await,
        ObjMethod::Head => head(target, bck, objname, query, internal).await,
        ObjMethod::Put => put(target, bck, objname, query, req, internal).await,
        ObjMethod::Delete if !query.str("uploadId").is_empty() => {
            super::upload::abort(target, bck, objname, query, req).await
        }
        ObjMethod::Delete => delete(target, bck, objname, query, internal).await,
        ObjMethod::Post => super::upload::post(target, bck, objname, query, req).await,
        ObjMethod::Patch => super::upload::patch(target, bck, objname, query, req).await,
    }
}

fn cname(bck: &Bck, objname: &str) -> String {
    format!("{}/{}", bck.cname(), objname)
}

/// The API error of an item that cannot be read.
pub(crate) fn item_error(err: ItemError) -> ApiError {
    match err {
        ItemError::NotFound(m) => ApiError::not_found(m),
        ItemError::Range(m) => ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, m),
        ItemError::Corrupt(m) => ApiError::new(StatusCode::GONE, m),
        ItemError::Invalid(m) => ApiError::bad_request(m),
        ItemError::Io(m) => ApiError::internal(m),
    }
}

/// Parses an HTTP `Range` header against a known size: `bytes=a-b`, `bytes=a-`, `bytes=-n`.
fn parse_range_header(value: &str, size: u64) -> Result<ByteRange, ApiError> {
    let unsatisfiable = || {
        ApiError::range_not_satisfiable(
            format!("range {value:?} not satisfiable (size {size})"),
            size,
        )
    };
    let spec = value
        .trim()
        .strip_prefix("bytes=")
        .ok_or_else(unsatisfiable)?;
    if spec.contains(',') {
        return Err(ApiError::range_not_satisfiable(
            "multiple ranges are not supported",
            size,
        ));
    }
    let (first, last) = spec.split_once('-').ok_or_else(unsatisfiable)?;
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        let suffix: u64 = last.parse().map_err(|_| unsatisfiable())?;
        if suffix == 0 || size == 0 {
            return Err(unsatisfiable());
        }
        let len = suffix.min(size);
        ByteRange {
            start: size - len,
            length: Some(len),
        }
    } else {
        let start: u64 = first.parse().map_err(|_| unsatisfiable())?;
        if start >= size {
            return Err(unsatisfiable());
        }
        let end = if last.is_empty() {
            size - 1
        } else {
            last.parse::<u64>()
                .map_err(|_| unsatisfiable())?
                .min(size - 1)
        };
        if end < start {
            return Err(unsatisfiable());
        }
        ByteRange {
            start,
            length: Some(end - start + 1),
        }
    };
    Ok(range)
}

async fn get(
    target: &Arc<Target>,
    bck: Bck,
    objname: &str,
    query: &Query,
    req_headers: &HeaderMap,
    internal: bool,
) -> Result<Response, ApiError> {
    let archpath = query.str(headers::QP_ARCHPATH).to_string();
    let multi = query.has(headers::QP_ARCHMODE);
    if multi && !archpath.is_empty() {
        return Err(ApiError::bad_request(
            "archpath and archmode are mutually exclusive (archmode selects files by archregx)",
        ));
    }
    if multi && req_headers.contains_key(header::RANGE) {
        return Err(ApiError::bad_request(
            "a byte range cannot be combined with a multi-file read (archmode)",
        ));
    }
    if !archpath.is_empty() {
        names::validate_archpath(&archpath, objname).map_err(ApiError::bad_request)?;
    }
    let archmime = query.str(headers::QP_ARCHMIME).to_string();
    let range_header = header_str(req_headers, header::RANGE.as_str()).map(str::to_string);
    if bck.provider != moss_types::Provider::Ais
        && !internal
        && let Some(response) = super::remote::get(
            target,
            &bck,
            objname,
            query,
            !multi && archpath.is_empty() && range_header.is_none(),
        )
        .await?
    {
        return Ok(response);
    }
    if multi {
        return super::archsel::get_matching(
            target,
            &bck,
            objname,
            query.str(headers::QP_ARCHMODE),
            query.str(headers::QP_ARCHREGX),
            &archmime,
        )
        .await;
    }
    if archpath.is_empty()
        && range_header.is_none()
        && let Some(response) = get_cached(target, &bck, objname)
    {
        return Ok(response);
    }
    let reader = target.reader.clone();
    let name = objname.to_string();
    let b = bck.clone();
    let opened = tokio::task::spawn_blocking(move || -> Result<Opened, ApiError> {
        let open = || {
            open_for_get(
                &reader,
                &b,
                &name,
                &archpath,
                &archmime,
                range_header.as_deref(),
            )
        };
        match open() {
            // Bytes that fail their checksum: rebuilt from redundancy (if the bucket keeps any)
            // and read again; the client never sees the damaged ones.
            Err(e)
                if e.status == StatusCode::GONE
                    && reader.repair(&b, &name, &StoreError::Corrupt(e.message.clone())) =>
            {
                open()
            }
            opened => opened,
        }
    })
    .await
    .map_err(|e| ApiError::internal(format!("read task failed: {e}")))?;
    let (item, range, attrs) = match opened {
        Ok(found) => found,
        Err(e) if e.status == StatusCode::NOT_FOUND && !internal => {
            if let Some(Ok(response)) =
                get_from_neighbor(target, &bck, objname, query, req_headers).await
                && response.status() != StatusCode::NOT_FOUND
            {
                return Ok(response);
            }
            // A rebalance may have moved the object here while we looked elsewhere.
            return Box::pin(get(target, bck, objname, query, req_headers, true)).await;
        }
        Err(e) => {
            inc(&target.metrics.err_get_count, 1);
            return Err(e);
        }
    };
    inc(&target.metrics.get_count, 1);
    inc(&target.metrics.get_bytes, item.size());
    let size = item.size();
    let body = match item {
        Fetched::Whole(bytes) => Body::from(bytes),
        Fetched::Pending(item) => item_body(item).await?,
    };
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some((start, end, total)) = range {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{total}")) {
            response.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    } else if let Some(attrs) = attrs {
        attrs.apply(response.headers_mut(), &target.shared.id);
        if internal {
            set_header(
                response.headers_mut(),
                headers::OBJ_MTIME,
                &attrs.meta.mtime.to_string(),
            );
        }
    }
    Ok(response)
}

/// Opens an object (or its range, or a file inside it) for a GET: once without a range to learn
/// the size, then with the header's range; small items are read (and verified) right away.
fn open_for_get(
    reader: &LocalReader,
    b: &Bck,
    name: &str,
    archpath: &str,
    archmime: &str,
    range_header: Option<&str>,
) -> Result<Opened, ApiError> {
    let spec = ItemSpec {
        bck: b,
        objname: name,
        archpath,
        archmime,
        range: None,
    };
    let whole = reader.open(&spec).map_err(item_error)?;
    let attrs = whole
        .object()
        .map(|h| ObjHandleAttrs::from_handle(h, &reader.store, name));
    let Some(value) = range_header else {
        return Ok((prefetch(whole)?, None, attrs));
    };
    let total = whole.size;
    let range = parse_range_header(value, total)?;
    drop(whole);
    let ranged = reader
        .open(&ItemSpec {
            range: Some(range),
            ..spec
        })
        .map_err(item_error)?;
    let start = range.start;
    let end = start + ranged.size - 1;
    Ok((prefetch(ranged)?, Some((start, end, total)), attrs))
}

/// Objects up to this size are served straight from the page cache on the async thread.
const INLINE_GET: u64 = 64 << 10;

/// Serves a small, fully cached object without a blocking-pool hop (two context switches, the
/// dominant cost of a small GET). `None` means "take the regular path": the object is missing,
/// large, or not entirely in the page cache. Opening the file and reading its xattr stay on this
/// thread; for hot objects their inode and dentries are cached as well.
fn get_cached(target: &Target, bck: &Bck, objname: &str) -> Option<Response> {
    let handle = target.store.open_object(bck, objname).ok()?;
    if handle.meta.size > INLINE_GET {
        return None;
    }
    let bytes = match handle.read_cached_verified()? {
        Ok(bytes) => bytes,
        // A mismatch is reported by the regular path (same check, proper error response).
        Err(_) => return None,
    };
    inc(&target.metrics.get_count, 1);
    inc(&target.metrics.get_bytes, bytes.len() as u64);
    let attrs = ObjHandleAttrs::from_handle(&handle, &target.store, objname);
    let size = bytes.len() as u64;
    let mut response = Response::new(Body::from(bytes));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    attrs.apply(response.headers_mut(), &target.shared.id);
    Some(response)
}

/// An item ready to serve: the item, its `(first, last, total)` byte range, and object attributes.
type Opened = (Fetched, Option<(u64, u64, u64)>, Option<ObjHandleAttrs>);

/// An item ready to serve: small ones already read (and verified) on the same blocking hop that
/// opened them, large ones still to be streamed.
enum Fetched {
    Whole(Bytes),
    Pending(Item),
}

impl Fetched {
    fn size(&self) -> u64 {
        match self {
            Fetched::Whole(bytes) => bytes.len() as u64,
            Fetched::Pending(item) => item.size,
        }
    }
}

/// Reads a small item right away (called on the blocking thread that opened it).
fn prefetch(mut item: Item) -> Result<Fetched, ApiError> {
    if item.size <= SMALL_OBJECT {
        return item.read_all().map(Fetched::Whole).map_err(item_error);
    }
    Ok(Fetched::Pending(item))
}

/// Object attributes for response headers.
struct ObjHandleAttrs {
    meta: moss_storage::ObjMeta,
    atime_ns: u64,
    objname: String,
    mountpath: String,
    /// Mountpaths of its mirror copies (looked up only when a HEAD asks for `copies`).
    copies: Vec<String>,
    /// The bucket's EC settings, when EC is on and a HEAD asks for `ec`.
    ec: Option<moss_types::smap::EcConf>,
}

impl ObjHandleAttrs {
    fn from_handle(
        handle: &ObjHandle,
        store: &moss_storage::Store,
        objname: &str,
    ) -> ObjHandleAttrs {
        ObjHandleAttrs {
            meta: handle.meta.clone(),
            atime_ns: handle.atime_secs() * 1_000_000_000,
            objname: objname.to_string(),
            mountpath: store.mountpaths()[handle.mountpath].path.clone(),
            copies: Vec::new(),
            ec: None,
        }
    }

    /// Every attribute (GET, and a HEAD without `props`).
    fn apply(&self, h: &mut HeaderMap, node_id: &str) {
        self.apply_props(
            h,
            node_id,
            HeadProps {
                checksum: true,
                atime: true,
                version: true,
                custom: true,
                location: true,
                ..HeadProps::default()
            },
        );
        set_header(h, headers::NAME, &self.objname);
    }

    /// `Ais-Present` and what `props` names, in AIStore's headers and formats.
    fn apply_props(&self, h: &mut HeaderMap, node_id: &str, props: HeadProps) {
        let meta = &self.meta;
        set_header(h, headers::PRESENT, "true");
        if props.checksum && !meta.cksum.is_empty() {
            set_header(h, headers::CHECKSUM_TYPE, &meta.cksum_type);
            set_header(h, headers::CHECKSUM_VALUE, &meta.cksum);
        }
        if props.atime && self.atime_ns != 0 {
            set_header(h, headers::ATIME, &self.atime_ns.to_string());
        }
        if props.version {
            let version = match meta.custom.get(super::remote::MD_VERSION) {
                Some(remote) => remote.clone(),
                None if meta.version == 0 => String::new(),
                None => meta.version.to_string(),
            };
            if !version.is_empty() {
                set_header(h, headers::VERSION, &version);
            }
        }
        if props.custom {
            for (k, v) in moss_storage::user_custom(&meta.custom) {
                if let Ok(value) = HeaderValue::from_str(&format!("{k}={v}")) {
                    h.append(headers::CUSTOM_MD, value);
                }
            }
        }
        if props.copies {
            let mut paths = vec![self.mountpath.as_str()];
            paths.extend(
                self.copies
                    .iter()
                    .map(String::as_str)
                    .filter(|p| *p != self.mountpath),
            );
            set_header(h, headers::MIRROR_COPIES, &paths.len().to_string());
            set_header(h, headers::MIRROR_PATHS, &paths.join(","));
        }
        if props.ec
            && let Some(ec) = &self.ec
        {
            // AIStore's generation is when the pieces were made: here, the write that made them.
            let generation = u128::from(meta.mtime) * 1_000_000_000;
            set_header(h, headers::EC_GENERATION, &generation.to_string());
            set_header(h, headers::EC_DATA, &ec.data_slices.to_string());
            set_header(h, headers::EC_PARITY, &ec.parity_slices.to_string());
            let replicated = ec.replicates(meta.size);
            set_header(h, headers::EC_REPLICATED, &replicated.to_string());
        }
        if props.location {
            set_header(
                h,
                headers::LOCATION,
                &format!("t[{node_id}]:{}", self.mountpath),
            );
        }
        if props.chunked
            && let Some((count, largest)) = moss_storage::chunk_info(&meta.custom)
        {
            set_header(h, headers::CHUNKS_COUNT, &count.to_string());
            set_header(h, headers::CHUNKS_MAX_SIZE, &largest.to_string());
        }
        if props.last_modified {
            set_header(h, header::LAST_MODIFIED.as_str(), &last_modified(meta));
        }
        if props.etag
            && let Some(etag) = etag(meta)
        {
            set_header(h, header::ETAG.as_str(), &format!("\"{etag}\""));
        }
    }
}

fn set_header(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

/// Last-Modified as an HTTP date: the cloud's (a cached remote object) or the write time.
fn last_modified(meta: &moss_storage::ObjMeta) -> String {
    if let Some(cloud) = meta.custom.get(super::remote::MD_LAST_MODIFIED) {
        return cloud.clone();
    }
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(meta.mtime))
}

/// AIStore's ETag: the stored one (remote objects), else `v1-<checksum>-<mtime ns, base 36>`;
/// none without a checksum.
fn etag(meta: &moss_storage::ObjMeta) -> Option<String> {
    if let Some(stored) = meta.custom.get(super::remote::MD_ETAG) {
        return Some(stored.trim_matches('"').to_string());
    }
    if meta.cksum.is_empty() {
        return None;
    }
    let nanos = u128::from(meta.mtime) * 1_000_000_000;
    Some(format!("v1-{}-{}", meta.cksum, crate::proxy::base36(nanos)))
}

/// Turns an item into a response body: small items are read (and verified) before the response
/// starts; large ones stream from a blocking reader, and a checksum failure aborts the body.
async fn item_body(mut item: Item) -> Result<Body, ApiError> {
    if item.size <= SMALL_OBJECT {
        let bytes = tokio::task::spawn_blocking(move || item.read_all())
            .await
            .map_err(|e| ApiError::internal(format!("read task failed: {e}")))?
            .map_err(item_error)?;
        return Ok(Body::from(bytes));
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        loop {
            match item.read_chunk(CHUNK) {
                Ok(Some(chunk)) => {
                    if tx.blocking_send(Ok(chunk)).is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!("aborting object stream: {e}");
                    let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                    return;
                }
            }
        }
    });
    Ok(Body::from_stream(tokio_stream(rx)))
}

pub(crate) fn tokio_stream<T>(mut rx: mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn head(
    target: &Arc<Target>,
    bck: Bck,
    objname: &str,
    query: &Query,
    internal: bool,
) -> Result<Response, ApiError> {
    let props = match query.get("props").filter(|p| !p.trim().is_empty()) {
        Some(text) => Some(HeadProps::parse(text)?),
        None => None,
    };
    let reader = target.reader.clone();
    let (b, name) = (bck.clone(), objname.to_string());
    let copies = props.is_some_and(|p| p.copies);
    let ec = props
        .filter(|p| p.ec)
        .and_then(|_| super::ec::conf(target, &bck));
    let found = tokio::task::spawn_blocking(move || {
        reader.open_repaired(&b, &name).map(|h| {
            let mut attrs = ObjHandleAttrs::from_handle(&h, &reader.store, &name);
            attrs.ec = ec;
            if copies {
                let store = &reader.store;
                attrs.copies = store
                    .copies_of(&b, &name)
                    .into_iter()
                    .map(|i| store.mountpaths()[i].path.clone())
                    .collect();
            }
            attrs
        })
    })
    .await
    .map_err(|e| ApiError::internal(format!("head task failed: {e}")))?;
    match found {
        Ok(attrs) => {
            let mut response = StatusCode::OK.into_response();
            let h = response.headers_mut();
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(attrs.meta.size));
            match props {
                Some(props) => attrs.apply_props(h, &target.shared.id, props),
                None => attrs.apply(h, &target.shared.id),
            }
            Ok(response)
        }
        Err(StoreError::NotFound) if !internal => {
            match find_neighbor(target, &bck, objname).await {
                Some(neighbor) => {
                    let extra = query
                        .get("props")
                        .map(|p| format!("&props={}", encode_path(p)))
                        .unwrap_or_default();
                    forward(
                        target,
                        &neighbor,
                        reqwest::Method::HEAD,
                        &bck,
                        objname,
                        &extra,
                        None,
                    )
                    .await
                }
                None if bck.provider != moss_types::Provider::Ais => {
                    super::remote::head_absent(target, &bck, objname).await
                }
                None => Err(ApiError::from_store(
                    StoreError::NotFound,
                    &cname(&bck, objname),
                )),
            }
        }
        Err(e) => Err(ApiError::from_store(e, &cname(&bck, objname))),
    }
}

/// What a `HEAD ?props=` asks for (AIStore's "HEAD v2": only what is named is answered).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct HeadProps {
    checksum: bool,
    atime: bool,
    version: bool,
    custom: bool,
    copies: bool,
    ec: bool,
    location: bool,
    chunked: bool,
    last_modified: bool,
    etag: bool,
}

impl HeadProps {
    fn parse(text: &str) -> Result<HeadProps, ApiError> {
        let mut p = HeadProps::default();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item {
                "name" | "size" => {}
                "ec" => p.ec = true,
                "checksum" => p.checksum = true,
                "atime" => p.atime = true,
                "version" => p.version = true,
                "custom" => p.custom = true,
                "copies" => p.copies = true,
                "location" => p.location = true,
                "chunked" => p.chunked = true,
                "last-modified" => p.last_modified = true,
                "etag" => p.etag = true,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "invalid property {other:?} in props list"
                    )));
                }
            }
        }
        Ok(p)
    }
}

async fn put(
    target: &Arc<Target>,
    bck: Bck,
    objname: &str,
    query: &Query,
    req: Request,
    internal: bool,
) -> Result<Response, ApiError> {
    if !internal && !query.has(headers::QP_PROXY_ID) {
        crate::http::drain_body(req.into_body(), crate::http::ERROR_DRAIN_LIMIT).await;
        return Err(ApiError::bad_request(format!(
            "PUT {}: expected to be redirected by a proxy (send object writes to the cluster endpoint)",
            cname(&bck, objname)
        )));
    }
    // PUT variants with other meanings must never turn into an upload of their (empty) body.
    if let Some(to) = query.get("object_to") {
        let to = to.to_string();
        crate::http::drain_body(req.into_body(), crate::http::ERROR_DRAIN_LIMIT).await;
        return copy(target, &bck, objname, &to).await;
    }
    // AIStore's order: a part upload whatever else the query holds, then archive appends, then
    // appends.
    if !query.str("uploadId").is_empty() {
        return super::upload::put_part(target, bck, objname, query, req).await;
    }
    if query.has(headers::QP_ARCHPATH) {
        crate::http::drain_body(req.into_body(), crate::http::ERROR_DRAIN_LIMIT).await;
        return Err(ApiError::bad_request(format!(
            "PUT {} with archpath=: appending to a file inside a shard is not supported",
            cname(&bck, objname)
        )));
    }
    if query.has("append_type") {
        return super::upload::append(target, bck, objname, query, req).await;
    }
    // A PUT that reached a non-owner (the proxy's map was older than ours) is still written here:
    // get-from-neighbor serves it and the rebalancer moves it to its owner.
    let only_if_absent = internal && query.str("rebalance") == "true";
    let declared = header_str(req.headers(), header::CONTENT_LENGTH.as_str())
        .and_then(|v| v.parse::<u64>().ok());
    let custom = custom_metadata(req.headers());
    if bck.provider != moss_types::Provider::Ais && !only_if_absent {
        let body = req
            .into_body()
            .into_data_stream()
            .map(|chunk| chunk.map_err(|e| format!("request body failed: {e}")));
        let written = async {
            let txn = spool(target.store.clone(), bck.clone(), objname.to_string(), body).await?;
            super::remote::write_through(target, &bck, objname, txn, custom).await
        }
        .await;
        return match written {
            Ok(meta) => Ok(put_done(target, query, internal, &meta)),
            Err(e) => {
                inc(&target.metrics.err_put_count, 1);
                Err(e)
            }
        };
    }
    let store = target.store.clone();
    let (b, name) = (bck.clone(), objname.to_string());
    let result = if declared.is_some_and(|n| n <= SMALL_OBJECT) {
        let body = crate::http::read_body(req.into_body(), SMALL_OBJECT as usize).await?;
        tokio::task::spawn_blocking(move || {
            if only_if_absent && store.stat_size(&b, &name).is_ok() {
                return Ok(None);
            }
            let mut txn = store.begin_put(&b, &name)?;
            txn.write(&body)?;
            txn.commit(custom).map(Some)
        })
        .await
    } else {
        stream_put(store, b, name, req.into_body(), custom, only_if_absent).await
    }
    .map_err(|e| ApiError::internal(format!("write task failed: {e}")))?;
    match result {
        Ok(Some(meta)) => {
            // Acknowledged only once its redundancy is durable too.
            if let Err(e) = super::protect(target, &bck, objname).await {
                inc(&target.metrics.err_put_count, 1);
                return Err(e);
            }
            Ok(put_done(target, query, internal, &meta))
        }
        Ok(None) => Ok(StatusCode::OK.into_response()),
        Err(e) => {
            inc(&target.metrics.err_put_count, 1);
            Err(ApiError::from_store(e, &cname(&bck, objname)))
        }
    }
}

/// Counts a finished write and answers it with the new object's checksum and version.
pub(crate) fn put_done(
    target: &Target,
    query: &Query,
    internal: bool,
    meta: &moss_storage::ObjMeta,
) -> Response {
    inc(&target.metrics.put_count, 1);
    inc(&target.metrics.put_bytes, meta.size);
    if internal && let Some(job) = query.get("xid").and_then(|id| target.jobs.get(id)) {
        job.add_in(1, meta.size);
    }
    let mut response = StatusCode::OK.into_response();
    let h = response.headers_mut();
    h.insert(headers::CHECKSUM_TYPE, HeaderValue::from_static(CKSUM_TYPE));
    if let Ok(v) = HeaderValue::from_str(&meta.cksum) {
        h.insert(headers::CHECKSUM_VALUE, v);
    }
    let version = meta
        .custom
        .get(super::remote::MD_VERSION)
        .cloned()
        .unwrap_or_else(|| meta.version.to_string());
    if let Ok(v) = HeaderValue::from_str(&version) {
        h.insert(headers::VERSION, v);
    }
    response
}

/// Time a copy to another target may take beyond one second per MiB.
const COPY_BASE_TIME: Duration = Duration::from_secs(60);

/// `PUT …?object_to=<uname>`: copies this object to another name (possibly another bucket).
async fn copy(
    target: &Arc<Target>,
    src: &Bck,
    objname: &str,
    to: &str,
) -> Result<Response, ApiError> {
    let (dst, dst_name) = parse_object_uname(to)?;
    if target.shared.bmd.load().get(&dst).is_none() {
        return Err(ApiError::no_bucket(&dst.cname()));
    }
    copy_object(target, src, objname, &dst, &dst_name, &CopyOpts::default()).await?;
    Ok(StatusCode::OK.into_response())
}

/// How [`copy_object`] writes.
#[derive(Debug, Clone, Default)]
pub struct CopyOpts {
    /// The job the receiver counts the copy under.
    pub xid: Option<String>,
    /// Keep the destination's copy if it has one (a rebalance moving an object must not
    /// overwrite a newer write at the owner).
    pub only_if_absent: bool,
}

/// What one object copy did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    pub bytes: u64,
    /// The destination is another target (else this one).
    pub sent: bool,
}

/// Copies one local object to `dst/dst_name` on the destination's owner — streamed and
/// checksum-verified, never held whole in memory, with its custom metadata.
pub async fn copy_object(
    target: &Arc<Target>,
    src: &Bck,
    objname: &str,
    dst: &Bck,
    dst_name: &str,
    opts: &CopyOpts,
) -> Result<Copied, ApiError> {
    let reader = target.reader.clone();
    let (b, name) = (src.clone(), objname.to_string());
    let item = tokio::task::spawn_blocking(move || {
        let spec = ItemSpec {
            bck: &b,
            objname: &name,
            archpath: "",
            archmime: "",
            range: None,
        };
        reader.open(&spec)
    })
    .await
    .map_err(|e| ApiError::internal(format!("copy task failed: {e}")))?
    .map_err(item_error)?;
    let size = item.size;
    let custom: BTreeMap<String, String> = item
        .object()
        .map(|h| {
            moss_storage::user_custom(&h.meta.custom)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let body = item_body(item).await?;
    let put = OwnerPut {
        custom,
        xid: opts.xid.as_deref(),
        only_if_absent: opts.only_if_absent,
    };
    let sent = put_at_owner(target, dst, dst_name, size, body, put).await?;
    inc(&target.metrics.put_count, 1);
    Ok(Copied { bytes: size, sent })
}

/// Whether `bck/name` exists at its HRW owner (this target or another).
pub(crate) async fn exists_at_owner(
    target: &Arc<Target>,
    bck: &Bck,
    name: &str,
) -> anyhow::Result<bool> {
    let smap = target.shared.smap.load_full();
    let owner = moss_cluster::owner_of_object(&smap, bck, name)
        .ok_or_else(|| anyhow::anyhow!("no targets in the cluster"))?;
    if owner.daemon_id == target.shared.id {
        return Ok(target.store.stat_size(bck, name).is_ok());
    }
    let answer = forward_request(target, owner, reqwest::Method::HEAD, bck, name, "")
        .timeout(NEIGHBOR_TIMEOUT)
        .send()
        .await?;
    match answer.status() {
        StatusCode::OK => Ok(true),
        StatusCode::NOT_FOUND => Ok(false),
        other => anyhow::bail!("HEAD at {}: {other}", owner.display()),
    }
}

/// How [`put_at_owner`] writes: the object's custom metadata, the job it counts for, and
/// whether an existing object wins (rebalance).
pub(crate) struct OwnerPut<'a> {
    pub custom: BTreeMap<String, String>,
    pub xid: Option<&'a str>,
    pub only_if_absent: bool,
}

/// Writes `size` bytes from `body` as `bck/name` at its HRW owner — streamed, never held whole
/// in memory; true if it went to another target.
pub(crate) async fn put_at_owner(
    target: &Arc<Target>,
    bck: &Bck,
    name: &str,
    size: u64,
    body: Body,
    put: OwnerPut<'_>,
) -> Result<bool, ApiError> {
    let smap = target.shared.smap.load_full();
    let owner = moss_cluster::owner_of_object(&smap, bck, name)
        .ok_or_else(|| ApiError::unavailable("no targets in the cluster"))?;
    if owner.daemon_id == target.shared.id {
        stream_put(
            target.store.clone(),
            bck.clone(),
            name.to_string(),
            body,
            put.custom,
            put.only_if_absent,
        )
        .await
        .map_err(|e| ApiError::internal(format!("copy task failed: {e}")))?
        .map_err(|e| ApiError::from_store(e, &cname(bck, name)))?;
        return Ok(false);
    }
    let mut extra = put.xid.map(|id| format!("&xid={id}")).unwrap_or_default();
    if put.only_if_absent {
        extra.push_str("&rebalance=true");
    }
    let mut request = forward_request(target, owner, reqwest::Method::PUT, bck, name, &extra)
        .header(header::CONTENT_LENGTH, size);
    if !put.custom.is_empty() {
        let text: Vec<String> = put.custom.iter().map(|(k, v)| format!("{k}={v}")).collect();
        request = request.header(headers::CUSTOM_MD, text.join(","));
    }
    let response = request
        .body(reqwest::Body::wrap_stream(body.into_data_stream()))
        // A hang guard, not a speed limit: a peer that stopped answering must not hold the
        // copy (and the job or rebalance waiting on it) forever.
        .timeout(COPY_BASE_TIME + Duration::from_secs(size >> 20))
        .send()
        .await
        .map_err(|e| ApiError::unavailable(format!("copy to {}: {e}", owner.display())))?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response
            .json::<moss_types::ErrorBody>()
            .await
            .unwrap_or_default();
        return Err(ApiError::new(
            status,
            format!("copy to {} failed: {}", cname(bck, name), body.message),
        ));
    }
    Ok(true)
}

/// Splits an object uname (`ais/@#/bucket/object`) into bucket and object name.
fn parse_object_uname(uname: &str) -> Result<(Bck, String), ApiError> {
    let mut parts = uname.splitn(4, '/');
    let (Some(provider), Some(ns), Some(bucket), Some(objname)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ApiError::bad_request(format!(
            "invalid object_to {uname:?} (expecting provider/@ns/bucket/object)"
        )));
    };
    let bck =
        Bck::parse_uname(&format!("{provider}/{ns}/{bucket}/")).map_err(ApiError::bad_request)?;
    names::validate_objname(objname).map_err(ApiError::bad_request)?;
    Ok((bck, objname.to_string()))
}

/// Streams a large body into a write transaction on a blocking thread; the object is committed only
/// if the whole body arrived.
async fn stream_put(
    store: Arc<moss_storage::Store>,
    bck: Bck,
    objname: String,
    body: Body,
    custom: BTreeMap<String, String>,
    only_if_absent: bool,
) -> Result<Result<Option<moss_storage::ObjMeta>, StoreError>, tokio::task::JoinError> {
    if only_if_absent {
        let (s, b, n) = (store.clone(), bck.clone(), objname.clone());
        if tokio::task::spawn_blocking(move || s.stat_size(&b, &n).is_ok()).await? {
            return Ok(Ok(None));
        }
    }
    let txn = match spool_into(move || store.begin_put(&bck, &objname), body).await {
        Ok(txn) => txn,
        Err(e) => return Ok(Err(e)),
    };
    tokio::task::spawn_blocking(move || txn.commit(custom).map(Some)).await
}

/// Writes a stream into an uncommitted write transaction (a work file) on a blocking thread; the
/// caller commits it (or drops it, which removes the work file). Fails if the stream fails.
pub(crate) async fn spool<S>(
    store: Arc<moss_storage::Store>,
    bck: Bck,
    objname: String,
    body: S,
) -> Result<moss_storage::PutTxn, ApiError>
where
    S: futures::Stream<Item = Result<Bytes, String>> + Send,
{
    let cname = format!("{}/{objname}", bck.cname());
    match spool_stream(move || store.begin_put(&bck, &objname), body).await {
        Ok(txn) => Ok(txn),
        Err(Spooled::Store(e)) => Err(ApiError::from_store(e, &cname)),
        Err(Spooled::Body(e)) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("{cname}: {e}"),
        )),
    }
}

/// Where a streamed request body goes, on a blocking thread.
pub(crate) trait Sink: Send + 'static {
    fn put(&mut self, data: &[u8]) -> Result<(), StoreError>;
}

impl Sink for moss_storage::PutTxn {
    fn put(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.write(data)
    }
}

/// Streams a request body into the sink `open` makes, on a blocking thread, and hands the sink
/// back for the caller to finish; a body that fails midway drops it (and what it wrote).
pub(crate) async fn spool_into<W: Sink>(
    open: impl FnOnce() -> Result<W, StoreError> + Send + 'static,
    body: Body,
) -> Result<W, StoreError> {
    let stream = body
        .into_data_stream()
        .map(|chunk| chunk.map_err(|e| format!("request body failed: {e}")));
    match spool_stream(open, stream).await {
        Ok(sink) => Ok(sink),
        Err(Spooled::Store(e)) => Err(e),
        Err(Spooled::Body(e)) => Err(StoreError::Io(std::io::Error::other(e))),
    }
}

/// Why a spool failed: the store, or the stream that fed it.
pub(crate) enum Spooled {
    Store(StoreError),
    Body(String),
}

/// [`spool_into`] for any stream of chunks.
pub(crate) async fn spool_stream<W, S>(
    open: impl FnOnce() -> Result<W, StoreError> + Send + 'static,
    body: S,
) -> Result<W, Spooled>
where
    W: Sink,
    S: futures::Stream<Item = Result<Bytes, String>> + Send,
{
    let (tx, mut rx) = mpsc::channel::<Bytes>(8);
    let writer = tokio::task::spawn_blocking(move || {
        let mut sink = open()?;
        while let Some(data) = rx.blocking_recv() {
            sink.put(&data)?;
        }
        Ok::<_, StoreError>(sink)
    });
    let mut body = std::pin::pin!(body);
    let mut failed = None;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(data) => {
                if tx.send(data).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    drop(tx);
    let sink = writer
        .await
        .map_err(|e| Spooled::Store(StoreError::Io(std::io::Error::other(e))))?
        .map_err(Spooled::Store)?;
    match failed {
        Some(e) => Err(Spooled::Body(e)),
        None => Ok(sink),
    }
}

fn custom_metadata(h: &HeaderMap) -> BTreeMap<String, String> {
    h.get_all(headers::CUSTOM_MD)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty() && !k.starts_with(moss_storage::RESERVED_KEY))
        .collect()
}

async fn delete(
    target: &Arc<Target>,
    bck: Bck,
    objname: &str,
    query: &Query,
    internal: bool,
) -> Result<Response, ApiError> {
    if !internal && !query.has(headers::QP_PROXY_ID) {
        return Err(ApiError::bad_request(format!(
            "DELETE {}: expected to be redirected by a proxy",
            cname(&bck, objname)
        )));
    }
    // As AIStore: the cloud first, then the cached copy whatever the cloud said; an eviction
    // (`evict=true`) leaves the cloud alone.
    let in_cloud = if bck.provider != moss_types::Provider::Ais
        && !internal
        && !crate::http::parse_bool(query.str("evict"))
    {
        Some(super::remote::delete(target, &bck, objname).await)
    } else {
        None
    };
    let store = target.store.clone();
    let (b, name) = (bck.clone(), objname.to_string());
    let local = tokio::task::spawn_blocking(move || store.delete(&b, &name))
        .await
        .map_err(|e| ApiError::internal(format!("delete task failed: {e}")))?;
    let mut deleted = match local {
        Ok(_) => true,
        Err(StoreError::NotFound) => false,
        Err(e) => return Err(ApiError::from_store(e, &cname(&bck, objname))),
    };
    if !internal {
        // Copies not yet moved by a rebalance must go too, or they would come back.
        deleted |= delete_on_neighbors(target, &bck, objname).await;
        if super::ec::conf(target, &bck).is_some() {
            super::ec::unprotect_deleted(target, &bck, objname).await;
        }
    }
    match in_cloud {
        Some(Err(e)) => return Err(e),
        Some(Ok(())) => return Ok(StatusCode::OK.into_response()),
        None => {}
    }
    if deleted {
        Ok(StatusCode::OK.into_response())
    } else {
        Err(ApiError::from_store(
            StoreError::NotFound,
            &cname(&bck, objname),
        ))
    }
}

/// Deletes the copies other targets hold of an object (not yet moved by a rebalance);
/// concurrently and bounded, so one hung neighbor cannot stall a delete. True if any had one.
pub async fn delete_on_neighbors(target: &Target, bck: &Bck, objname: &str) -> bool {
    let calls = other_targets(target).into_iter().map(|neighbor| {
        forward_request(target, &neighbor, reqwest::Method::DELETE, bck, objname, "")
            .timeout(NEIGHBOR_TIMEOUT)
            .send()
    });
    futures::future::join_all(calls)
        .await
        .into_iter()
        .any(|answer| answer.is_ok_and(|r| r.status().is_success()))
}

/// `GET /v1/internal/list/<b>`: this target's objects, sorted.
pub async fn list(target: &Arc<Target>, bucket: &str, query: &Query) -> Result<Response, ApiError> {
    let bck = url_bucket(bucket, query)?;
    let prefix = query.str("prefix").to_string();
    let after = query.str("after").to_string();
    let limit: usize = query
        .str("limit")
        .parse()
        .unwrap_or(moss_types::lso::MAX_PAGE_SIZE as usize);
    let with_meta = query.str("meta") == "true";
    let arch_dir = query.str("archdir") == "true";
    let no_recursion = query.str("norecurse") == "true";
    let with_custom = query.str("custom") == "true";
    let store = target.store.clone();
    let reader = target.reader.clone();
    let id = target.shared.id.clone();
    tokio::task::spawn_blocking(move || {
        let listed = store
            .list(
                &bck,
                &prefix,
                &after,
                limit,
                with_meta || with_custom,
                no_recursion,
            )
            .map_err(|e| ApiError::internal(format!("list failed: {e}")))?;
        let mut entries = listed_entries(&store, &id, listed, with_meta, with_custom);
        if arch_dir {
            entries = with_shard_files(&reader, &bck, entries, &prefix, &after, limit)?;
        }
        Ok(json_response(&entries))
    })
    .await
    .map_err(|e| ApiError::internal(format!("list task failed: {e}")))?
}

/// `POST /v1/internal/list/<b>`: the entries of the named objects this target holds, with local
/// metadata and the cached flag.
pub async fn present(
    target: &Arc<Target>,
    bucket: &str,
    query: &Query,
    body: &[u8],
) -> Result<Response, ApiError> {
    let bck = url_bucket(bucket, query)?;
    let names: Vec<String> = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid list of names: {e}")))?;
    let store = target.store.clone();
    let id = target.shared.id.clone();
    tokio::task::spawn_blocking(move || {
        let listed: Vec<ListedObject> = names
            .into_iter()
            .filter_map(|name| {
                let handle = store.open_object(&bck, &name).ok()?;
                Some(ListedObject {
                    size: handle.meta.size,
                    atime_ns: Some(handle.atime_secs() * 1_000_000_000),
                    mountpath: handle.mountpath,
                    meta: Some(handle.meta),
                    name,
                    is_dir: false,
                })
            })
            .collect();
        let mut entries = listed_entries(&store, &id, listed, true, true);
        for e in &mut entries {
            e.flags |= moss_types::lso::ENTRY_CACHED;
        }
        json_response(&entries)
    })
    .await
    .map_err(|e| ApiError::internal(format!("list task failed: {e}")))
}

fn listed_entries(
    store: &Store,
    id: &str,
    listed: Vec<ListedObject>,
    with_meta: bool,
    with_custom: bool,
) -> Vec<LsoEntry> {
    listed
        .into_iter()
        .map(|o| {
            if o.is_dir {
                return LsoEntry {
                    name: o.name,
                    flags: moss_types::lso::ENTRY_IS_DIR,
                    ..LsoEntry::default()
                };
            }
            let meta = o.meta.unwrap_or_default();
            let chunked = moss_storage::chunk_info(&meta.custom).is_some();
            LsoEntry {
                name: o.name,
                size: o.size,
                checksum: meta.cksum.clone(),
                // A cached remote object shows the cloud's version.
                version: match meta.custom.get(super::remote::MD_VERSION) {
                    Some(remote) => remote.clone(),
                    None if meta.version == 0 => String::new(),
                    None => meta.version.to_string(),
                },
                atime: o.atime_ns.map(rfc822_utc).unwrap_or_default(),
                location: if with_meta {
                    format!("t[{id}]:{}", store.mountpaths()[o.mountpath].path)
                } else {
                    String::new()
                },
                custom: if with_custom {
                    listed_custom(&meta.custom)
                } else {
                    String::new()
                },
                flags: if chunked {
                    moss_types::lso::ENTRY_IS_CHUNKED
                } else {
                    0
                },
            }
        })
        .collect()
}

/// Custom metadata as AIStore lists it: `[k1:v1 k2:v2]`, keys in order; empty without any.
fn listed_custom(custom: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = moss_storage::user_custom(custom)
        .map(|(k, v)| format!("{k}:{v}"))
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("[{}]", pairs.join(" "))
    }
}

/// List flag `arch_dir`: every listed shard (known by its name's extension) is followed by its
/// files, named `<shard>/<file>`; the page is then cut back to `limit` names. A page that ended
/// at or inside a shard continues there: `after` then names the shard or one of its files, and
/// the shard's files are listed again from there on. A prefix may reach into a shard.
fn with_shard_files(
    reader: &LocalReader,
    bck: &Bck,
    listed: Vec<LsoEntry>,
    prefix: &str,
    after: &str,
    limit: usize,
) -> Result<Vec<LsoEntry>, ApiError> {
    let mut shards: Vec<String> = listed
        .iter()
        .filter(|e| Format::from_name(&e.name).is_some())
        .map(|e| e.name.clone())
        .collect();
    // Shards the object walk skips but whose files belong here: the one a previous page ended at
    // or inside (its name is not after `after`), and one the prefix reaches into
    // (`shard.tar/images/`; its name does not start with the prefix).
    for text in [after, prefix] {
        let inside = text
            .match_indices('/')
            .map(|(at, _)| &text[..at])
            .chain(std::iter::once(text))
            .find(|name| {
                Format::from_name(name).is_some() && reader.store.open_file(bck, name).is_some()
            });
        if let Some(name) = inside
            && !shards.iter().any(|s| s == name)
        {
            shards.push(name.to_string());
        }
    }
    let mut entries = listed;
    for shard in shards {
        let format = Format::from_name(&shard).unwrap_or(Format::Tar);
        let handle = match reader.store.open_object(bck, &shard) {
            Ok(handle) => handle,
            // Deleted since it was listed.
            Err(StoreError::NotFound) => continue,
            Err(e) => return Err(ApiError::from_store(e, &cname(bck, &shard))),
        };
        let files = list_members(reader, &handle, format).map_err(item_error)?;
        if let Some(entry) = entries.iter_mut().find(|e| e.name == shard) {
            entry.flags |= ENTRY_IS_ARCHIVE;
        }
        entries.extend(
            files
                .into_iter()
                .map(|(file, size)| LsoEntry {
                    name: format!("{shard}/{file}"),
                    size,
                    flags: ENTRY_IN_ARCH,
                    ..LsoEntry::default()
                })
                .filter(|e| e.name.starts_with(prefix) && e.name.as_str() > after),
        );
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    entries.dedup_by(|later, first| later.name == first.name);
    entries.truncate(limit);
    Ok(entries)
}

/// A listing's atime as AIStore formats it by default (Go's `time.RFC822`, `02 Jan 06 15:04 MST`),
/// in UTC.
fn rfc822_utc(unix_ns: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = unix_ns / 1_000_000_000;
    let of_day = secs % 86_400;
    let (year, month, day) = moss_archive::writer::civil_from_days((secs / 86_400) as i64);
    format!(
        "{day:02} {} {:02} {:02}:{:02} UTC",
        MONTHS[(month - 1) as usize],
        year % 100,
        of_day / 3600,
        of_day / 60 % 60
    )
}

fn other_targets(target: &Target) -> Vec<Snode> {
    target
        .shared
        .smap
        .load()
        .tmap
        .values()
        .filter(|t| t.daemon_id != target.shared.id)
        .cloned()
        .collect()
}

/// Asks every other target whether it holds the object locally; returns the first that does.
pub async fn find_neighbor(target: &Target, bck: &Bck, objname: &str) -> Option<Snode> {
    let probes = other_targets(target).into_iter().map(|t| {
        let request = forward_request(target, &t, reqwest::Method::HEAD, bck, objname, "");
        async move {
            match request.timeout(NEIGHBOR_TIMEOUT).send().await {
                Ok(r) if r.status().is_success() => Some(t),
                _ => None,
            }
        }
    });
    let mut pending: futures::stream::FuturesUnordered<_> = probes.collect();
    while let Some(answer) = pending.next().await {
        if answer.is_some() {
            return answer;
        }
    }
    None
}

fn forward_request(
    target: &Target,
    to: &Snode,
    method: reqwest::Method,
    bck: &Bck,
    objname: &str,
    extra_query: &str,
) -> reqwest::RequestBuilder {
    let url = format!(
        "{}/v1/internal/objects/{}/{}?{}{}",
        to.url(),
        bck.name,
        encode_path(objname),
        bucket_query(bck),
        extra_query
    );
    target
        .shared
        .intra(target.shared.client.request(method, url))
}

/// Relays a call to a neighbor's local copy and streams its answer back.
async fn forward(
    target: &Target,
    to: &Snode,
    method: reqwest::Method,
    bck: &Bck,
    objname: &str,
    extra_query: &str,
    range: Option<&str>,
) -> Result<Response, ApiError> {
    let mut request = forward_request(target, to, method, bck, objname, extra_query);
    if let Some(range) = range {
        request = request.header(header::RANGE, range);
    }
    let upstream = request
        .send()
        .await
        .map_err(|e| ApiError::unavailable(format!("{} unreachable: {e}", to.display())))?;
    let status = upstream.status();
    let mut relayed = HeaderMap::new();
    for (name, value) in upstream.headers() {
        if name != header::TRANSFER_ENCODING && name != header::CONNECTION {
            relayed.append(name.clone(), value.clone());
        }
    }
    let mut response = Response::new(Body::from_stream(upstream.bytes_stream()));
    *response.status_mut() = status;
    *response.headers_mut() = relayed;
    Ok(response)
}

/// A miss at the owner: fetch the object from whichever target still holds it (after a cluster
/// change, before rebalance moved it). `None` when no neighbor has it.
async fn get_from_neighbor(
    target: &Arc<Target>,
    bck: &Bck,
    objname: &str,
    query: &Query,
    req_headers: &HeaderMap,
) -> Option<Result<Response, ApiError>> {
    let neighbor = find_neighbor(target, bck, objname).await?;
    inc(&target.metrics.gfn_count, 1);
    let mut extra = String::new();
    for key in [headers::QP_ARCHPATH, headers::QP_ARCHMIME] {
        if let Some(value) = query.get(key).filter(|v| !v.is_empty()) {
            extra.push_str(&format!(
                "&{key}={}",
                encode_path(value).replace('/', "%2F")
            ));
        }
    }
    let range = header_str(req_headers, header::RANGE.as_str());
    Some(
        forward(
            target,
            &neighbor,
            reqwest::Method::GET,
            bck,
            objname,
            &extra,
            range,
        )
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_atimes_use_aistores_default_rfc822_format() {
        assert_eq!(rfc822_utc(0), "01 Jan 70 00:00 UTC");
        // 2024-02-29 13:07:59 UTC
        assert_eq!(rfc822_utc(1_709_212_079_123_456_789), "29 Feb 24 13:07 UTC");
        // 2026-12-31 23:59:00 UTC
        assert_eq!(rfc822_utc(1_798_761_540_000_000_000), "31 Dec 26 23:59 UTC");
    }
}
