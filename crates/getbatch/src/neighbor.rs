//! Get-from-neighbor in the stat phase: after the set of targets changed, an object may still sit
//! on its previous owner until the rebalance moves it. Items missing here are then looked up on
//! the other targets' local storage and streamed from there.
use std::io::{self, Read};

use bytes::{Buf, Bytes};
use futures::StreamExt;
use futures::stream::BoxStream;
use moss_types::names::{encode_path, encode_query_value};
use moss_types::smap::Snode;
use tokio::runtime::Handle;

use crate::Engine;
use crate::item::{Item, ItemError, ItemSpec, Prepared, Source};

/// Lookups run concurrently across missing items.
const PARALLEL_PROBES: usize = 16;
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn local_url(base: &str, spec: &ItemSpec) -> String {
    object_url(
        base,
        "internal/objects",
        spec.bck,
        spec.objname,
        spec.archpath,
    )
}

/// `{base}/v1/{route}/{bucket}/{object}?provider=…[&archpath=…]`: an item on another target.
pub(crate) fn object_url(
    base: &str,
    route: &str,
    bck: &moss_types::Bck,
    objname: &str,
    archpath: &str,
) -> String {
    let mut url = format!(
        "{base}/v1/{route}/{}/{}?{}",
        bck.name,
        encode_path(objname),
        bck.query()
    );
    if !archpath.is_empty() {
        url.push_str("&archpath=");
        url.push_str(&encode_query_value(archpath));
    }
    url
}

impl Engine {
    /// Replaces "does not exist" results with a neighbor's copy where one exists (only while
    /// objects may be in transit between owners).
    pub(crate) fn find_misses(
        &self,
        specs: &[ItemSpec],
        prepared: &mut [Result<Prepared, ItemError>],
        handle: &Handle,
    ) {
        let misses: Vec<usize> = prepared
            .iter()
            .enumerate()
            .filter(|(i, p)| {
                let spec = &specs[*i];
                // Cheapest first: most entries are found, and the stat runs only for misses.
                let shard_is_here = || {
                    !spec.archpath.is_empty()
                        && self.reader.store.stat_size(spec.bck, spec.objname).is_ok()
                };
                matches!(p, Err(ItemError::NotFound(_)))
                    && self.view.neighbors_may_hold(spec.bck)
                    && !shard_is_here()
            })
            .map(|(i, _)| i)
            .collect();
        if misses.is_empty() {
            return;
        }
        let me = self.view.node_id().to_string();
        let others: Vec<Snode> = self
            .view
            .smap()
            .tmap
            .values()
            .filter(|t| t.daemon_id != me)
            .cloned()
            .collect();
        let probes = futures::stream::iter(misses.into_iter().map(|i| {
            let others = &others;
            async move { (i, self.probe(others, &specs[i]).await) }
        }))
        .buffer_unordered(PARALLEL_PROBES)
        .collect::<Vec<_>>();
        for (i, found) in handle.block_on(probes) {
            match found {
                Some(found) => prepared[i] = found,
                // A move (copy to the owner, then delete) may have completed while we looked
                // elsewhere: the object is then here now.
                None => {
                    prepared[i] = self
                        .reader
                        .prepare(std::slice::from_ref(&specs[i]))
                        .remove(0)
                }
            }
        }
    }

    /// Asks every other target for its local copy; the first that has it wins.
    async fn probe(
        &self,
        others: &[Snode],
        spec: &ItemSpec<'_>,
    ) -> Option<Result<Prepared, ItemError>> {
        let asks = others.iter().map(|t| {
            let request = self
                .view
                .intra(self.view.client().get(local_url(t.url(), spec)))
                .header("range", "bytes=0-0")
                .timeout(PROBE_TIMEOUT);
            async move {
                let response = request.send().await.ok()?;
                let total = match response.status().as_u16() {
                    206 => response
                        .headers()
                        .get("content-range")?
                        .to_str()
                        .ok()?
                        .rsplit('/')
                        .next()?
                        .parse::<u64>()
                        .ok()?,
                    // The only unsatisfiable 1-byte range is that of an empty item.
                    416 => 0,
                    _ => return None,
                };
                Some((t.url().to_string(), total))
            }
        });
        let mut pending: futures::stream::FuturesUnordered<_> = asks.collect();
        while let Some(answer) = pending.next().await {
            let Some((url, total)) = answer else { continue };
            let size = match spec.range {
                None => total,
                Some(range) => match range.resolve(total) {
                    Ok((_, len)) => len,
                    Err(e) => return Some(Err(ItemError::Range(e))),
                },
            };
            let prepared = Prepared {
                opened: None,
                member_offset: None,
                compressed: None,
                size,
                mtime: 0,
                archived: !spec.archpath.is_empty(),
                memory: None,
                neighbor: Some(url),
            };
            return Some(Ok(prepared));
        }
        None
    }

    /// Opens an item for the data phase: from local storage, or from the neighbor found earlier.
    pub(crate) fn open_item(
        &self,
        spec: &ItemSpec,
        prepared: &Prepared,
        handle: &Handle,
    ) -> Result<Item, ItemError> {
        let Some(base) = &prepared.neighbor else {
            return self.reader.open_prepared(spec, prepared);
        };
        match self.open_from(base, spec, prepared, handle) {
            Err(ItemError::NotFound(_)) => {
                // The rebalance moved it on since the stat phase: it is here now, or elsewhere.
                let local = self.reader.open_prepared(
                    spec,
                    &Prepared {
                        neighbor: None,
                        ..prepared.clone()
                    },
                );
                if !matches!(local, Err(ItemError::NotFound(_))) {
                    return local;
                }
                let me = self.view.node_id().to_string();
                let others: Vec<Snode> = self
                    .view
                    .smap()
                    .tmap
                    .values()
                    .filter(|t| t.daemon_id != me && t.url() != base)
                    .cloned()
                    .collect();
                match handle.block_on(self.probe(&others, spec)) {
                    Some(Ok(found)) if found.size == prepared.size => self.open_from(
                        found.neighbor.as_deref().unwrap_or(base),
                        spec,
                        prepared,
                        handle,
                    ),
                    _ => local,
                }
            }
            other => other,
        }
    }

    fn open_from(
        &self,
        base: &str,
        spec: &ItemSpec,
        prepared: &Prepared,
        handle: &Handle,
    ) -> Result<Item, ItemError> {
        let what = format!("{}/{}", spec.bck.cname(), spec.objname);
        let mut request = self
            .view
            .intra(self.view.client().get(local_url(base, spec)));
        if let (Some(range), true) = (spec.range, prepared.size > 0) {
            request = request.header(
                "range",
                format!("bytes={}-{}", range.start, range.start + prepared.size - 1),
            );
        }
        let response = handle
            .block_on(request.send())
            .map_err(|e| ItemError::Io(format!("{what}: neighbor {base} unreachable: {e}")))?;
        if !response.status().is_success() {
            return Err(ItemError::NotFound(format!(
                "{what} does not exist (neighbor answered {})",
                response.status()
            )));
        }
        if prepared.size == 0 {
            return Ok(Item::new(
                0,
                0,
                prepared.archived,
                Source::Memory(Bytes::new()),
                None,
            ));
        }
        let reader = NeighborReader {
            stream: response.bytes_stream().boxed(),
            handle: handle.clone(),
            current: Bytes::new(),
        };
        Ok(Item::new(
            prepared.size,
            0,
            prepared.archived,
            Source::Stream(Box::new(reader)),
            None,
        ))
    }
}

/// Blocking `Read` over a response body (used on the blocking source threads).
struct NeighborReader {
    stream: BoxStream<'static, reqwest::Result<Bytes>>,
    handle: Handle,
    current: Bytes,
}

impl Read for NeighborReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.handle.block_on(self.stream.next()) {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}
