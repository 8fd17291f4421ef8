//! Listing a remote bucket (AIStore's "R-flow"): one page of the cloud's own listing, under the
//! cloud's own continuation token, marked with what the cluster holds when the request wants
//! local properties.
//!
//! As in AIStore, a listing that asks only for names and sizes (the SDK's default) is the cloud's
//! page as is, without cached flags; asking for any other property (`props=name,cached`, say) or
//! for `NOT_CACHED` asks every target which of the page's names it holds.
use std::collections::HashMap;

use futures::future::join_all;
use moss_backend::ListReq;
use moss_types::lso::{
    ENTRY_CACHED, ENTRY_IS_DIR, LS_NAME_ONLY, LS_NAME_SIZE, LS_NO_DIRS, LS_NO_RECURSION,
    LS_NOT_CACHED, LsoEntry, LsoMsg, LsoRes,
};
use moss_types::{Bck, ErrorBody};

use super::Proxy;
use super::membership::{FANOUT_TIMEOUT, while_member};
use crate::http::{ApiError, encode_path};

/// Whether the request wants anything the cloud's page does not carry.
fn wants_local(lso: &LsoMsg) -> bool {
    if lso.flags & LS_NOT_CACHED != 0 {
        return true;
    }
    if lso.flags & (LS_NAME_ONLY | LS_NAME_SIZE) != 0 {
        return false;
    }
    lso.props
        .split(',')
        .map(str::trim)
        .any(|p| !p.is_empty() && p != "name" && p != "size")
}

pub async fn list(proxy: &Proxy, bck: &Bck, lso: &LsoMsg) -> Result<LsoRes, ApiError> {
    if !lso.start_after.is_empty() {
        return Err(ApiError::bad_request(format!(
            "start_after is not supported when listing remote bucket {}",
            bck.cname()
        )));
    }
    let backend = proxy.shared.backend(bck)?;
    let req = ListReq {
        prefix: lso.prefix.clone(),
        token: lso.continuation_token.clone(),
        max: lso.pagesize as usize,
        no_recursion: lso.flags & LS_NO_RECURSION != 0,
    };
    let page = backend.list_page(&req).await?;
    let with_checksum = lso.props.split(',').any(|p| p.trim() == "checksum");
    let mut entries: Vec<LsoEntry> = page
        .entries
        .into_iter()
        .map(|e| LsoEntry {
            name: e.name,
            size: e.attrs.size,
            // A multipart ETag is not an MD5 of the content.
            checksum: if with_checksum && !e.attrs.etag.contains('-') {
                e.attrs.etag
            } else {
                String::new()
            },
            version: e.attrs.version,
            ..Default::default()
        })
        .collect();
    if wants_local(lso) {
        mark_cached(proxy, bck, &mut entries).await?;
    }
    if lso.flags & LS_NOT_CACHED != 0 {
        entries.retain(|e| e.flags & ENTRY_CACHED == 0);
    }
    if lso.flags & LS_NO_DIRS == 0 {
        entries.extend(page.dirs.into_iter().map(|name| LsoEntry {
            name,
            flags: ENTRY_IS_DIR,
            ..Default::default()
        }));
    }
    // Directories first, then names, as AIStore sorts a page.
    entries.sort_by(|a, b| {
        let dir = |e: &LsoEntry| e.flags & ENTRY_IS_DIR == 0;
        (dir(a), &a.name).cmp(&(dir(b), &b.name))
    });
    Ok(LsoRes {
        uuid: if lso.uuid.is_empty() {
            crate::node::random_id()
        } else {
            lso.uuid.clone()
        },
        continuation_token: page.next_token,
        entries,
        flags: 0,
    })
}

/// Asks each target about the names it owns and overlays what it holds (local size, checksum,
/// atime, location, the cached flag) on the cloud's entries.
async fn mark_cached(proxy: &Proxy, bck: &Bck, entries: &mut [LsoEntry]) -> Result<(), ApiError> {
    let smap = proxy.shared.smap.load_full();
    let mut by_owner: HashMap<String, Vec<String>> = HashMap::new();
    for e in entries.iter() {
        if let Some(owner) = moss_cluster::owner_of_object(&smap, bck, &e.name) {
            by_owner
                .entry(owner.daemon_id.clone())
                .or_default()
                .push(e.name.clone());
        }
    }
    let calls = by_owner.into_iter().filter_map(|(id, names)| {
        let t = smap.tmap.get(&id)?.clone();
        let url = format!(
            "{}/v1/internal/list/{}?{}",
            t.url(),
            encode_path(&bck.name),
            crate::http::bucket_query(bck)
        );
        let request = proxy
            .shared
            .intra(proxy.shared.client.post(url))
            .json(&names)
            .timeout(FANOUT_TIMEOUT);
        Some(async move {
            let call = async {
                let response = request.send().await.map_err(|e| e.to_string())?;
                if !response.status().is_success() {
                    let status = response.status();
                    let body = response.json::<ErrorBody>().await.unwrap_or_default();
                    return Err(format!("{status} {}", body.message));
                }
                response
                    .json::<Vec<LsoEntry>>()
                    .await
                    .map_err(|e| e.to_string())
            };
            match while_member(proxy, &t, FANOUT_TIMEOUT, call).await {
                Ok(Ok(found)) => Ok(found),
                Ok(Err(e)) => Err(ApiError::unavailable(format!(
                    "list objects of {}: target {} is unavailable: {e}; retry",
                    bck.cname(),
                    t.display()
                ))),
                Err(abandoned) => Err(ApiError::unavailable(format!(
                    "list objects of {}: target {} {abandoned}; retry",
                    bck.cname(),
                    t.display()
                ))),
            }
        })
    });
    let mut held: HashMap<String, LsoEntry> = HashMap::new();
    for answer in join_all(calls).await {
        for e in answer? {
            held.insert(e.name.clone(), e);
        }
    }
    for e in entries.iter_mut() {
        if let Some(local) = held.remove(&e.name) {
            let remote_version = std::mem::take(&mut e.version);
            *e = LsoEntry {
                version: if remote_version.is_empty() {
                    local.version.clone()
                } else {
                    remote_version
                },
                ..local
            };
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(props: &str, flags: u64) -> LsoMsg {
        LsoMsg {
            props: props.into(),
            flags,
            ..Default::default()
        }
    }

    #[test]
    fn only_names_and_sizes_need_no_targets() {
        assert!(!wants_local(&msg("", 0)));
        assert!(!wants_local(&msg("name,size", 0)));
        assert!(!wants_local(&msg("name,cached", LS_NAME_SIZE)));
        assert!(wants_local(&msg("name,cached", 0)));
        assert!(wants_local(&msg("checksum", 0)));
        assert!(wants_local(&msg("", LS_NOT_CACHED)));
    }
}
