//! GetBatch on the proxy: validate everything that can be validated without reading data, pick
//! the designated target, redirect.
use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::Request;
use axum::response::Response;
use moss_types::headers;
use rand::seq::IteratorRandom;

use super::{Proxy, require_bucket, url_bucket};
use crate::batch::{MOSS_BODY_LIMIT, validate};
use crate::http::{ApiError, Query, read_body, redirect};

/// `GET|POST /v1/ml/moss[/<bucket>]`
pub async fn getbatch(
    proxy: &Arc<Proxy>,
    bucket: Option<&str>,
    query: &Query,
    req: Request,
) -> Result<Response, ApiError> {
    let default_bck = match bucket {
        Some(name) => {
            let bck = url_bucket(name, query)?;
            require_bucket(proxy, &bck).await?;
            Some(bck)
        }
        None => None,
    };
    let coloc = parse_coloc(query)?;
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let caller = req.extensions().get::<crate::auth::Caller>().cloned();
    let body = read_body(req.into_body(), MOSS_BODY_LIMIT).await?;
    let (_, entries) = validate(&body, default_bck.as_ref())?;
    let referenced = crate::batch::buckets_of(entries.iter().map(|e| &e.bck));
    if let Some(crate::auth::Caller(claims)) = &caller {
        // A token for bucket A must not read bucket B through a cross-bucket batch.
        let needs: Vec<crate::auth::Need> = referenced
            .iter()
            .map(|bck| crate::auth::Need::Bucket((*bck).clone(), moss_authn::Access::GET))
            .collect();
        crate::auth::check(claims, &proxy.shared.smap.load().uuid, &needs)?;
    }
    for bck in referenced {
        require_bucket(proxy, bck).await?;
    }
    let smap = proxy.shared.smap.load();
    let dt = if coloc >= 1 {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        let mut best: Option<(&str, usize)> = None;
        for entry in &entries {
            if let Some(owner) = moss_cluster::owner_of_object(&smap, &entry.bck, &entry.objname) {
                let n = counts.entry(&owner.daemon_id).or_default();
                *n += 1;
                if best.is_none_or(|(_, max)| *n > max) {
                    best = Some((&owner.daemon_id, *n));
                }
            }
        }
        best.and_then(|(id, _)| smap.tmap.get(id))
            .filter(|t| !proxy.silent(t))
    } else {
        None
    };
    // Not a target that went silent (it may be dead but still in the map): its batch would fail.
    let dt = dt.or_else(|| {
        let live = smap.active_targets().filter(|t| !proxy.silent(t));
        live.choose(&mut rand::rng())
            .or_else(|| smap.active_targets().choose(&mut rand::rng()))
    });
    let dt = dt.ok_or_else(|| ApiError::unavailable("no targets in the cluster"))?;
    // The DT gets the same body from the client: the signature binds its digest, so a client
    // cannot swap in entries the proxy never checked.
    let digest = crate::intra::body_digest(&body);
    redirect(&super::signed_location(
        &proxy.shared,
        dt,
        &method,
        &path,
        query,
        &digest,
    ))
}

/// `?coloc=0|1|2`
fn parse_coloc(query: &Query) -> Result<u8, ApiError> {
    match query.get(headers::QP_COLOC) {
        None | Some("") => Ok(0),
        Some(text) => match text.parse::<u8>() {
            Ok(n) if n <= 2 => Ok(n),
            _ => Err(ApiError::bad_request(format!(
                "invalid 'coloc={text}' (expecting 0, 1, or 2)"
            ))),
        },
    }
}
