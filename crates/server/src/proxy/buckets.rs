//! Bucket calls on the proxy: create, destroy, head, list buckets, and list objects (merged from
//! every target, JSON or msgpack).
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::future::join_all;
use moss_types::lso::{
    ActMsg, ENTRY_CACHED, LS_ARCH_DIR, LS_CACHED, LS_NO_RECURSION, LsoEntry, LsoMsg, LsoRes,
    MAX_PAGE_SIZE,
};
use moss_types::smap::{BucketProps, EcConf};
use moss_types::{Bck, ErrorBody, Provider, headers};

use super::membership::{FANOUT_TIMEOUT, while_member};
use super::{Proxy, new_bid, now_nanos, require_bucket, unsupported, url_bucket};
use crate::http::{ApiError, Query, encode_path, header_str, json_response, read_body};

/// Largest bucket action message: a multi-object operation may list many names.
pub const ACTION_BODY_LIMIT: usize = 64 << 20;

/// Parses an optional action-message body (empty body → default message).
pub async fn action_message(req: Request) -> Result<ActMsg, ApiError> {
    let body = read_body(req.into_body(), ACTION_BODY_LIMIT).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(ActMsg::default());
    }
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid action message: {e}")))
}

/// `GET /v1/buckets`: every bucket (optionally of one provider).
pub fn list_buckets(proxy: &Proxy, query: &Query) -> Result<Response, ApiError> {
    let wanted = match query.str(headers::QP_PROVIDER) {
        "" => None,
        p => Some(Provider::parse(p).map_err(ApiError::bad_request)?),
    };
    let bmd = proxy.shared.bmd.load();
    let list: Vec<serde_json::Value> = bmd
        .buckets
        .values()
        .filter(|p| wanted.is_none_or(|w| p.bck.provider == w))
        .map(|p| {
            serde_json::json!({
                "name": p.bck.name,
                "provider": p.bck.provider.as_str(),
                "namespace": {"uuid": p.bck.namespace.uuid, "name": p.bck.namespace.name},
            })
        })
        .collect();
    Ok(json_response(&list))
}

/// `HEAD /v1/buckets/<b>`: 200 with the props in `Ais-Bucket-Props`, or 404.
pub async fn bucket_head(proxy: &Proxy, bucket: &str, query: &Query) -> Result<Response, ApiError> {
    let bck = url_bucket(bucket, query)?;
    require_bucket(proxy, &bck).await?;
    let mut response = StatusCode::OK.into_response();
    set_props_header(proxy, &bck, &mut response)?;
    Ok(response)
}

/// Puts the bucket's props (AIStore's JSON) in `Ais-Bucket-Props`; 404 for a missing bucket.
pub fn set_props_header(proxy: &Proxy, bck: &Bck, response: &mut Response) -> Result<(), ApiError> {
    let bmd = proxy.shared.bmd.load();
    let props = bmd
        .get(bck)
        .ok_or_else(|| ApiError::no_bucket(&bck.cname()))?;
    let json = serde_json::json!({
        "provider": props.bck.provider.as_str(),
        "created": props.created.to_string(),
        "bid": props.bid.to_string(),
        "checksum": {"type": "xxhash2"},
        "versioning": props.versioning,
        "extra": props.extra,
        "features": props.features,
        "ec": props.ec,
        "mirror": props.mirror,
    });
    if let Ok(value) = HeaderValue::from_str(&json.to_string()) {
        response.headers_mut().insert(headers::BUCKET_PROPS, value);
    }
    Ok(())
}

/// `POST /v1/buckets/<b>`: `create-bck`, and the copy, rename and prefetch actions.
pub async fn bucket_post(
    proxy: &Arc<Proxy>,
    bucket: &str,
    query: &Query,
    req: Request,
) -> Result<Response, ApiError> {
    let bck = url_bucket(bucket, query)?;
    let msg = action_message(req).await?;
    if msg.action != "create-bck" {
        return super::bucket_ops::post_action(proxy, &bck, query, msg).await;
    }
    if bck.provider != Provider::Ais {
        return Err(ApiError::bad_request(format!(
            "cannot create {}: only ais:// buckets can be created (remote backends are not supported)",
            bck.cname()
        )));
    }
    proxy
        .modify(|meta| {
            let key = bck.uname_prefix();
            if meta.bmd.buckets.contains_key(&key) {
                return Err(ApiError::conflict(format!(
                    "bucket \"{}\" already exists",
                    bck.cname()
                )));
            }
            super::bucket_ops::reuse_renamed_name(&mut meta.bmd, &bck)?;
            let created = now_nanos();
            let bid = new_bid(&meta.bmd);
            meta.bmd
                .buckets
                .insert(key, BucketProps::new(bck.clone(), created, bid));
            Ok(())
        })
        .await?;
    tracing::info!(bucket = %bck, "bucket created");
    Ok(StatusCode::OK.into_response())
}

/// `PATCH /v1/buckets/<b> {"action":"set-bprops","value":{…}}`: changes the props moss keeps —
/// `versioning.validate_warm_get`, `versioning.synchronize`, `extra.aws.endpoint`,
/// `extra.aws.cloud_region`, `extra.aws.profile`, `features`, `ec.*`, `mirror.*` — and refuses
/// the others by name.
pub async fn set_props(
    proxy: &Proxy,
    bucket: &str,
    query: &Query,
    req: Request,
) -> Result<Response, ApiError> {
    let bck = url_bucket(bucket, query)?;
    let msg = action_message(req).await?;
    if msg.action != "set-bprops" {
        return Err(unsupported(&msg.action));
    }
    require_bucket(proxy, &bck).await?;
    let changes = PropsChange::parse(&msg.value)?;
    let (ec_on, copies_changed) = proxy
        .modify(|meta| {
            let props = meta
                .bmd
                .get_mut(&bck)
                .ok_or_else(|| ApiError::no_bucket(&bck.cname()))?;
            let before = props.clone();
            let mut after = props.clone();
            changes.apply(&mut after);
            changes.check_ec(&before.ec, &after.ec, meta.smap.active_targets().count())?;
            check_mirror(&after)?;
            let ec_on = after.ec.enabled && !before.ec.enabled;
            let copies_changed = after.mirror.wanted() != before.mirror.wanted();
            *props = after;
            Ok((ec_on, copies_changed))
        })
        .await?;
    // Objects already in the bucket get their pieces and copies from jobs; the answer is the
    // id of one (the mirror's if both started), as AIStore answers a change of props that
    // starts one.
    let mut started = None;
    if ec_on {
        started = Some(super::jobs::start_ec_encode(proxy, &bck).await?);
    }
    if copies_changed {
        started = Some(super::jobs::start_make_n_copies(proxy, &bck).await?);
    }
    Ok(match started {
        Some(id) => id.into_response(),
        None => StatusCode::OK.into_response(),
    })
}

/// Most copies of one object (AIStore's limit).
pub const MAX_COPIES: u32 = 32;

/// Refuses mirror settings moss cannot honor (AIStore's range; `ais://` buckets only).
pub fn check_mirror(props: &BucketProps) -> Result<(), ApiError> {
    let mirror = &props.mirror;
    if !mirror.enabled {
        return Ok(());
    }
    if !(2..=MAX_COPIES).contains(&mirror.copies) {
        return Err(ApiError::bad_request(format!(
            "set-bprops: invalid mirror.copies: {} (expected value in range [2, {MAX_COPIES}])",
            mirror.copies
        )));
    }
    if props.bck.provider != Provider::Ais {
        return Err(ApiError::bad_request(format!(
            "set-bprops: mirror.enabled: moss keeps mirror copies of ais:// buckets only, not of {}",
            props.bck.cname()
        )));
    }
    Ok(())
}

/// The bucket props a `set-bprops` message may change.
#[derive(Debug, Default)]
struct PropsChange {
    validate_warm_get: Option<bool>,
    synchronize: Option<bool>,
    endpoint: Option<String>,
    cloud_region: Option<String>,
    profile: Option<String>,
    features: Option<String>,
    ec_enabled: Option<bool>,
    data_slices: Option<u32>,
    parity_slices: Option<u32>,
    objsize_limit: Option<u64>,
    mirror_enabled: Option<bool>,
    copies: Option<u32>,
    burst_buffer: Option<u32>,
}

/// Most data or parity slices of one object (AIStore's limit).
const MAX_SLICES: u32 = 32;

impl PropsChange {
    fn parse(value: &serde_json::Value) -> Result<PropsChange, ApiError> {
        let invalid = |key: &str, why: &str| {
            ApiError::bad_request(format!("set-bprops: invalid {key:?}: {why}"))
        };
        let obj = value
            .as_object()
            .ok_or_else(|| invalid("value", "expecting an object of props"))?;
        let mut change = PropsChange::default();
        let text = |key: &str, v: &serde_json::Value| -> Result<String, ApiError> {
            match v {
                serde_json::Value::String(s) => Ok(s.clone()),
                serde_json::Value::Number(n) => Ok(n.to_string()),
                _ => Err(invalid(key, "expecting a string")),
            }
        };
        let flag = |key: &str, v: &serde_json::Value| match v {
            serde_json::Value::Bool(b) => Ok(*b),
            serde_json::Value::String(s) => Ok(crate::http::parse_bool(s)),
            _ => Err(invalid(key, "expecting true or false")),
        };
        let section = |key: &str, v: &'_ serde_json::Value| {
            v.as_object()
                .cloned()
                .ok_or_else(|| invalid(key, "expecting an object"))
        };
        for (key, v) in obj {
            match key.as_str() {
                "versioning" => {
                    for (k, v) in section(key, v)? {
                        match k.as_str() {
                            "validate_warm_get" => change.validate_warm_get = Some(flag(&k, &v)?),
                            "synchronize" => change.synchronize = Some(flag(&k, &v)?),
                            "enabled" => {}
                            _ => {
                                return Err(invalid(
                                    &format!("versioning.{k}"),
                                    "not supported by moss",
                                ));
                            }
                        }
                    }
                }
                "extra" => {
                    for (provider, v) in section(key, v)? {
                        if provider != "aws" {
                            return Err(invalid(
                                &format!("extra.{provider}"),
                                "not supported by moss",
                            ));
                        }
                        for (k, v) in section("extra.aws", &v)? {
                            let value = Some(text(&k, &v)?);
                            match k.as_str() {
                                "endpoint" => change.endpoint = value,
                                "cloud_region" => change.cloud_region = value,
                                "profile" => change.profile = value,
                                _ => {
                                    return Err(invalid(
                                        &format!("extra.aws.{k}"),
                                        "not supported by moss",
                                    ));
                                }
                            }
                        }
                    }
                }
                "ec" => {
                    for (k, v) in section(key, v)? {
                        let name = format!("ec.{k}");
                        let number = |max: u64| -> Result<u64, ApiError> {
                            let n = text(&name, &v)?
                                .parse::<u64>()
                                .map_err(|_| invalid(&name, "expecting a whole number"))?;
                            if n > max {
                                return Err(invalid(&name, &format!("at most {max}")));
                            }
                            Ok(n)
                        };
                        match k.as_str() {
                            "enabled" => change.ec_enabled = Some(flag(&name, &v)?),
                            "data_slices" | "parity_slices" => {
                                let n = number(MAX_SLICES as u64)? as u32;
                                if n == 0 {
                                    return Err(invalid(&name, "at least 1"));
                                }
                                if k == "data_slices" {
                                    change.data_slices = Some(n);
                                } else {
                                    change.parity_slices = Some(n);
                                }
                            }
                            "objsize_limit" => change.objsize_limit = Some(number(u64::MAX)?),
                            // AIStore knobs with one meaning in moss.
                            "compression" | "bundle_multiplier" | "disk_only" | "burst_buffer" => {}
                            _ => return Err(invalid(&name, "not supported by moss")),
                        }
                    }
                }
                "mirror" => {
                    for (k, v) in section(key, v)? {
                        let name = format!("mirror.{k}");
                        let number = || -> Result<u32, ApiError> {
                            text(&name, &v)?
                                .parse::<u32>()
                                .map_err(|_| invalid(&name, "expecting a whole number"))
                        };
                        match k.as_str() {
                            "enabled" => change.mirror_enabled = Some(flag(&name, &v)?),
                            "copies" => change.copies = Some(number()?),
                            "burst_buffer" => change.burst_buffer = Some(number()?),
                            _ => return Err(invalid(&name, "not supported by moss")),
                        }
                    }
                }
                "features" => {
                    let features = text(key, v)?;
                    features
                        .parse::<u64>()
                        .map_err(|_| invalid(key, "expecting a decimal number"))?;
                    change.features = Some(features);
                }
                other => return Err(invalid(other, "not supported by moss")),
            }
        }
        Ok(change)
    }

    fn apply(&self, props: &mut BucketProps) {
        if let Some(v) = self.validate_warm_get {
            props.versioning.validate_warm_get = v;
        }
        if let Some(v) = self.synchronize {
            props.versioning.synchronize = v;
        }
        if let Some(v) = &self.endpoint {
            props.extra.aws.endpoint = v.clone();
        }
        if let Some(v) = &self.cloud_region {
            props.extra.aws.cloud_region = v.clone();
        }
        if let Some(v) = &self.profile {
            props.extra.aws.profile = v.clone();
        }
        if let Some(v) = &self.features {
            props.features = v.clone();
        }
        let ec = &mut props.ec;
        ec.enabled = self.ec_enabled.unwrap_or(ec.enabled);
        ec.data_slices = self.data_slices.unwrap_or(ec.data_slices);
        ec.parity_slices = self.parity_slices.unwrap_or(ec.parity_slices);
        ec.objsize_limit = self.objsize_limit.unwrap_or(ec.objsize_limit);
        let mirror = &mut props.mirror;
        mirror.enabled = self.mirror_enabled.unwrap_or(mirror.enabled);
        mirror.copies = self.copies.unwrap_or(mirror.copies);
        mirror.burst_buffer = self.burst_buffer.unwrap_or(mirror.burst_buffer);
    }

    /// Refuses EC settings this cluster cannot honor or that would strand stored pieces.
    fn check_ec(&self, before: &EcConf, after: &EcConf, targets: usize) -> Result<(), ApiError> {
        if !after.enabled {
            return Ok(());
        }
        if before.enabled
            && (before.data_slices != after.data_slices
                || before.parity_slices != after.parity_slices
                || before.objsize_limit != after.objsize_limit)
        {
            return Err(ApiError::bad_request(
                "set-bprops: EC is enabled: data_slices, parity_slices and objsize_limit cannot change (disable EC first)",
            ));
        }
        let needed = (after.data_slices + after.parity_slices + 1) as usize;
        if targets < needed {
            return Err(ApiError::bad_request(format!(
                "set-bprops: EC with {} data and {} parity slices needs at least {needed} targets, the cluster has {targets}",
                after.data_slices, after.parity_slices
            )));
        }
        Ok(())
    }
}

/// `DELETE /v1/buckets/<b>`: `destroy-bck`. Targets drop the data when the new BMD arrives.
pub async fn bucket_delete(
    proxy: &Arc<Proxy>,
    bucket: &str,
    query: &Query,
    req: Request,
) -> Result<Response, ApiError> {
    let bck = url_bucket(bucket, query)?;
    let msg = action_message(req).await?;
    // As in AIStore, destroying needs the explicit action: a bare DELETE (a stray curl, a client
    // that meant an object) must never wipe a bucket.
    if msg.action.is_empty() {
        return Err(ApiError::bad_request(format!(
            "DELETE {}: missing action message; to destroy the bucket send {{\"action\":\"destroy-bck\"}}",
            bck.cname()
        )));
    }
    if msg.action != "destroy-bck" {
        return super::bucket_ops::delete_action(proxy, &bck, query, msg).await;
    }
    proxy
        .modify(|meta| {
            if meta.bmd.buckets.remove(&bck.uname_prefix()).is_none() {
                return Err(ApiError::no_bucket(&bck.cname()));
            }
            Ok(())
        })
        .await?;
    tracing::info!(bucket = %bck, "bucket destroyed");
    Ok(StatusCode::OK.into_response())
}

/// `GET /v1/buckets/<b>` with `{"action":"list","value":LsoMsg}`: one page of objects.
pub async fn bucket_get(
    proxy: &Proxy,
    bucket: &str,
    query: &Query,
    req: Request,
) -> Result<Response, ApiError> {
    let wants_msgpack = header_str(req.headers(), header::ACCEPT.as_str())
        .is_some_and(|a| a.contains("application/msgpack"));
    let bck = url_bucket(bucket, query)?;
    let msg = action_message(req).await?;
    if msg.action == "summary-bck" {
        return super::bucket_ops::summary(proxy, &bck, &msg.value).await;
    }
    if msg.action != "list" && !msg.action.is_empty() {
        return Err(unsupported(&msg.action));
    }
    if msg.value.is_null() && bucket.is_empty() {
        return list_buckets(proxy, query);
    }
    require_bucket(proxy, &bck).await?;
    let lso: LsoMsg = if msg.value.is_null() {
        LsoMsg::default()
    } else {
        serde_json::from_value(msg.value)
            .map_err(|e| ApiError::bad_request(format!("invalid list-objects message: {e}")))?
    };
    let page = list_objects(proxy, &bck, &lso).await?;
    if wants_msgpack {
        let bytes = rmp_serde::to_vec_named(&page.to_msgpack_view())
            .map_err(|e| ApiError::internal(format!("failed to encode listing: {e}")))?;
        return Ok(([(header::CONTENT_TYPE, "application/msgpack")], bytes).into_response());
    }
    Ok(json_response(&page))
}

/// Merges one page from every target: names are unique and sorted; the continuation token is the
/// last name of a full page.
async fn list_objects(proxy: &Proxy, bck: &Bck, lso: &LsoMsg) -> Result<LsoRes, ApiError> {
    let remote = bck.provider != Provider::Ais;
    if remote && lso.flags & (LS_CACHED | LS_ARCH_DIR) == 0 {
        return super::remote_list::list(proxy, bck, lso).await;
    }
    let page_size = match lso.pagesize {
        0 => MAX_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    };
    let after = if lso.continuation_token.is_empty() {
        &lso.start_after
    } else {
        &lso.continuation_token
    };
    let with_meta = ["checksum", "version", "atime", "location"]
        .iter()
        .any(|p| lso.props.contains(p));
    let smap = proxy.shared.smap.load_full();
    let calls = smap.tmap.values().map(|t| {
        let params = [
            ("provider", bck.provider.as_str().to_string()),
            (
                "namespace",
                if bck.namespace.is_global() {
                    String::new()
                } else {
                    bck.namespace.uname()
                },
            ),
            ("prefix", lso.prefix.clone()),
            ("after", after.clone()),
            ("limit", page_size.to_string()),
            ("meta", with_meta.to_string()),
            ("archdir", (lso.flags & LS_ARCH_DIR != 0).to_string()),
            // NO_DIRS is not looked at for ais buckets, as in AIStore (its walk ignores it).
            ("norecurse", (lso.flags & LS_NO_RECURSION != 0).to_string()),
            ("custom", lso.props.contains("custom").to_string()),
        ];
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", encode_path(v).replace('/', "%2F")))
            .collect();
        let url = format!(
            "{}/v1/internal/list/{}?{}",
            t.url(),
            bck.name,
            query.join("&")
        );
        let request = proxy
            .shared
            .intra(proxy.shared.client.get(url))
            .timeout(FANOUT_TIMEOUT);
        let name = t.display();
        let call = async move {
            let response = request.send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            if matches!(status, StatusCode::BAD_REQUEST | StatusCode::GONE) {
                // Deterministic (a damaged shard under `arch_dir`): the client's to see. Other
                // answers (a target that does not know the bucket yet, say) are worth a retry.
                let body = response.json::<ErrorBody>().await.unwrap_or_default();
                return Ok(Err(ApiError::new(status, body.message)));
            }
            if !status.is_success() {
                return Err(format!("status {status}"));
            }
            response
                .json::<Vec<LsoEntry>>()
                .await
                .map(Ok)
                .map_err(|e| e.to_string())
        };
        async move {
            let unavailable = |why: String| {
                ApiError::unavailable(format!("list objects of {}: {why}; retry", bck.cname()))
            };
            match while_member(proxy, t, FANOUT_TIMEOUT, call).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(e)) => Err(unavailable(format!("target {name} is unavailable: {e}"))),
                Err(abandoned) => Err(unavailable(format!("target {name} {abandoned}"))),
            }
        }
    });
    let mut entries = Vec::new();
    // Every target's page is needed: a listing without one target's objects would look complete
    // but silently miss objects. A 503 makes the SDK retry against the updated map.
    for result in join_all(calls).await {
        entries.extend(result?);
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    entries.dedup_by(|a, b| a.name == b.name);
    if remote {
        // Everything a walk of the cluster's disks finds is, by definition, cached.
        for e in &mut entries {
            e.flags |= ENTRY_CACHED;
        }
    }
    entries.truncate(page_size as usize);
    let continuation_token = if entries.len() as u64 == page_size {
        entries.last().map(|e| e.name.clone()).unwrap_or_default()
    } else {
        String::new()
    };
    let uuid = if lso.uuid.is_empty() {
        crate::node::random_id()
    } else {
        lso.uuid.clone()
    };
    Ok(LsoRes {
        uuid,
        continuation_token,
        entries,
        flags: 0,
    })
}
