//! Object writes in more than one request, and metadata edits: multipart upload (create, parts,
//! complete, abort), append + flush, and PATCH of custom properties. Storage is in
//! `moss_storage` (RFC 0005); this module speaks AIStore's wire format.
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use moss_storage::{ObjMeta, PutTxn, Store, StoreError};
use moss_types::lso::ActMsg;
use moss_types::{Bck, Provider, headers};

use super::Target;
use super::objects::{Sink, put_done, spool_into};
use crate::http::{ApiError, Query, header_str, read_body};

/// Largest action message of an object call (a complete lists up to 9999 parts).
const ACTION_BODY_LIMIT: usize = 4 << 20;
/// Total size of the custom pairs one PATCH may set (AIStore's limit).
const CUSTOM_LIMIT: usize = 2048;

fn cname(bck: &Bck, objname: &str) -> String {
    format!("{}/{objname}", bck.cname())
}

async fn action(req: Request) -> Result<ActMsg, ApiError> {
    let body = read_body(req.into_body(), ACTION_BODY_LIMIT).await?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid action message: {e}")))
}

/// Runs storage work on a blocking thread, mapping its error for `bck/objname`.
async fn blocking<T: Send + 'static>(
    bck: &Bck,
    objname: &str,
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(format!("storage task failed: {e}")))?
        .map_err(|e| ApiError::from_store(e, &cname(bck, objname)))
}

/// `POST /v1/objects/<b>/<o>`: `mpt-upload` (create) and `mpt-complete`.
pub async fn post(
    target: &Arc<Target>,
    bck: Bck,
    objname: &str,
    query: &Query,
    req: Request,
) -> Result<Response, ApiError> {
    let msg = action(req).await?;
    match msg.action.as_str() {
        "mpt-upload" => {
            let (store, b, name) = (target.store.clone(), bck.clone(), objname.to_string());
            let id = blocking(&bck, objname, move || store.mpu_create(&b, &name)).await?;
            tracing::debug!(object = %cname(&bck, objname), upload = %id, "multipart upload created");
            Ok((
                [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
                id,
            )
                .into_response())
        }
        "mpt-complete" => {
            let id = query.str("uploadId").to_string();
            let requested = part_list(&msg.value)?;
            let (store, b, name) = (target.store.clone(), bck.clone(), objname.to_string());
            let (txn, custom) = blocking(&bck, objname, move || {
                store.mpu_complete(&b, &name, &id, requested.as_deref())
            })
            .await?;
            let meta = commit(target, &bck, objname, txn, custom).await?;
            Ok(put_done(target, query, false, &meta))
        }
        other => Err(ApiError::bad_request(format!(
            "invalid object action {other:?} (expecting mpt-upload or mpt-complete)"
        ))),
    }
}

/// The part numbers of a complete's `value` (`[{"part-number": n, "etag": ""}, …]`); `None` for
/// null.
fn part_list(value: &serde_json::Value) -> Result<Option<Vec<u32>>, ApiError> {
    let bad = || ApiError::bad_request("invalid parts list: expecting [{\"part-number\": n}, …]");
    match value {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Array(parts) => parts
            .iter()
            .map(|p| {
                p.get("part-number")
                    .and_then(serde_json::Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(bad)
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        _ => Err(bad()),
    }
}

/// Makes an assembled object durable: committed here (with its EC pieces on other targets), or
/// written through to the cloud first for a remote bucket (acknowledged only when both hold it).
async fn commit(
    target: &Arc<Target>,
    bck: &Bck,
    objname: &str,
    txn: PutTxn,
    custom: BTreeMap<String, String>,
) -> Result<ObjMeta, ApiError> {
    if bck.provider != Provider::Ais {
        return super::remote::write_through(target, bck, objname, txn, custom).await;
    }
    let meta = blocking(bck, objname, move || txn.commit(custom)).await?;
    // Acknowledged only once its redundancy is durable too (mirror copies, EC pieces).
    super::protect(target, bck, objname).await?;
    Ok(meta)
}

/// `PUT …?uploadId=&partNumber=`: one part (whatever else the query holds, as AIStore).
pub async fn put_part(
    target: &Arc<Target>,
    bck: Bck,
    objname: &str,
    query: &Query,
    req: Request,
) -> Result<Response, ApiError> {
    let id = query.str("uploadId").to_string();
    let text = query.str("partNumber");
    let n: u32 = text.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "{objname}: invalid part number {text:?} for uploadID {id:?}"
        ))
    })?;
    let declared: i64 = header_str(req.headers(), header::CONTENT_LENGTH.as_str())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1);
    if declared <= 0 {
        return Err(ApiError::bad_request(format!(
            "{}: put-part invalid size ({declared})",
            cname(&bck, objname)
        )));
    }
    let (store, b, name) = (target.store.clone(), bck.clone(), objname.to_string());
    let part = spool_into(move || store.mpu_part(&b, &name, &id, n), req.into_body()).await;
    let part = part.map_err(|e| ApiError::from_store(e, &cname(&bck, objname)))?;
    // The object's bytes are counted once, as a PUT, when the upload completes.
    blocking(&bck, objname, move || part.commit()).await?;
    Ok(StatusCode::OK.into_response())
}

/// `PUT …?append_type=append|flush&append_handle=H`.
pub async fn append(
    target: &Arc<Target>,
    bck: Bck,
    objname: &str,
    query: &Query,
    req: Request,
) -> Result<Response, ApiError> {
    let kind = query.str("append_type");
    let handle = query.str("append_handle");
    let work = if handle.is_empty() {
        None
    } else {
        Some(parse_handle(handle, &target.shared.id)?)
    };
    match (kind, work) {
        ("append", work) => {
            let store = target.store.clone();
            let (b, name) = (bck.clone(), objname.to_string());
            let work = match work {
                Some(work) => work,
                None => {
                    let (s, b, name) = (store.clone(), b.clone(), name.clone());
                    blocking(&bck, objname, move || s.append_begin(&b, &name))
                        .await?
                        .0
                }
            };
            let w = work.clone();
            let txn = spool_into(move || store.append(&b, &name, &w), req.into_body()).await;
            let txn = txn.map_err(|e| ApiError::from_store(e, &cname(&bck, objname)))?;
            let size = blocking(&bck, objname, move || txn.finish()).await?;
            let handle = format!(
                "{}|{work}|{}|{size}",
                target.shared.id,
                moss_storage::CKSUM_TYPE
            );
            let mut response = StatusCode::OK.into_response();
            if let Ok(v) = HeaderValue::from_str(&handle) {
                response.headers_mut().insert(headers::APPEND_HANDLE, v);
            }
            Ok(response)
        }
        ("flush", None) => Err(ApiError::bad_request(format!(
            "{}: failed to finalize append-file operation: empty source handle",
            cname(&bck, objname)
        ))),
        ("flush", Some(work)) => {
            crate::http::drain_body(req.into_body(), crate::http::ERROR_DRAIN_LIMIT).await;
            let (store, b, name) = (target.store.clone(), bck.clone(), objname.to_string());
            let txn = blocking(&bck, objname, move || store.append_flush(&b, &name, &work)).await?;
            let meta = commit(target, &bck, objname, txn, BTreeMap::new()).await?;
            Ok(put_done(target, query, false, &meta))
        }
        (other, _) => Err(ApiError::bad_request(format!(
            "invalid operation {other:?} (expecting either \"append\" or \"flush\")"
        ))),
    }
}

/// The work id of an append handle `<target id>|<work id>|<checksum type>|<size>` made here.
fn parse_handle(handle: &str, own_id: &str) -> Result<String, ApiError> {
    let fields: Vec<&str> = handle.splitn(4, '|').collect();
    match fields.as_slice() {
        [tid, work, _, _] if *tid == own_id => Ok(work.to_string()),
        [tid, _, _, _] => Err(ApiError::bad_request(format!(
            "invalid APPEND handle {handle:?}: made by target {tid}, not this one ({own_id})"
        ))),
        _ => Err(ApiError::bad_request(format!(
            "invalid APPEND handle {handle:?}"
        ))),
    }
}

/// `DELETE …?uploadId=` with `{"action":"mpt-abort"}`.
pub async fn abort(
    target: &Arc<Target>,
    bck: Bck,
    objname: &str,
    query: &Query,
    req: Request,
) -> Result<Response, ApiError> {
    crate::http::drain_body(req.into_body(), ACTION_BODY_LIMIT).await;
    let id = query.str("uploadId").to_string();
    let (store, b, name) = (target.store.clone(), bck.clone(), objname.to_string());
    blocking(&bck, objname, move || store.mpu_abort(&b, &name, &id)).await?;
    Ok(StatusCode::OK.into_response())
}

/// `PATCH /v1/objects/<b>/<o>[?set-new-custom=true]`: merges (or replaces) custom metadata.
pub async fn patch(
    target: &Arc<Target>,
    bck: Bck,
    objname: &str,
    query: &Query,
    req: Request,
) -> Result<Response, ApiError> {
    let msg = action(req).await?;
    let pairs: BTreeMap<String, String> = serde_json::from_value(msg.value).map_err(|e| {
        ApiError::bad_request(format!(
            "failed to unmarshal set-custom value (expecting a map of strings): {e}"
        ))
    })?;
    validate_custom(&pairs)?;
    let replace = crate::http::parse_bool(query.str("set-new-custom"));
    let store: Arc<Store> = target.store.clone();
    let (b, name) = (bck.clone(), objname.to_string());
    blocking(&bck, objname, move || {
        store.update_custom(&b, &name, |custom| {
            if replace {
                custom.retain(|k, _| k.starts_with(moss_storage::RESERVED_KEY));
            }
            custom.extend(pairs);
        })
    })
    .await?;
    Ok(StatusCode::OK.into_response())
}

/// AIStore's rules for custom pairs: non-empty keys, no reserved bytes, 2 KiB in all.
fn validate_custom(pairs: &BTreeMap<String, String>) -> Result<(), ApiError> {
    let mut total = 0;
    for (k, v) in pairs {
        if k.is_empty() {
            return Err(ApiError::bad_request("custom metadata: empty key"));
        }
        for text in [k, v] {
            // 0x01 marks moss's own keys; AIStore's other reserved sequence is not UTF-8, and
            // line breaks could not travel in a header.
            if text.contains(['\u{1}', '\r', '\n']) {
                return Err(ApiError::bad_request(format!(
                    "custom metadata: {text:?} holds a reserved character"
                )));
            }
        }
        total += k.len() + v.len();
    }
    if total > CUSTOM_LIMIT {
        return Err(ApiError::bad_request(format!(
            "custom metadata too large: {total} bytes (at most {CUSTOM_LIMIT})"
        )));
    }
    Ok(())
}

impl Sink for moss_storage::PartTxn {
    fn put(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.write(data)
    }
}

impl Sink for moss_storage::AppendTxn {
    fn put(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.write(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_and_part_lists() {
        assert_eq!(
            parse_handle("t1|00ff|xxhash2|12", "t1").unwrap(),
            "00ff".to_string()
        );
        assert_eq!(
            parse_handle("t2|00ff|xxhash2|12", "t1").unwrap_err().status,
            400
        );
        assert_eq!(parse_handle("garbage", "t1").unwrap_err().status, 400);
        let list = serde_json::json!([{"part-number": 3, "etag": ""}, {"part-number": 1}]);
        assert_eq!(part_list(&list).unwrap(), Some(vec![3, 1]));
        assert_eq!(part_list(&serde_json::Value::Null).unwrap(), None);
        assert!(part_list(&serde_json::json!({"x": 1})).is_err());
        let too_big: BTreeMap<String, String> = [("k".to_string(), "v".repeat(3000))].into();
        assert!(validate_custom(&too_big).is_err());
        assert!(validate_custom(&[(String::new(), "v".to_string())].into()).is_err());
    }
}
