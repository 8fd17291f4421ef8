//! GetBatch request validation shared by the proxy (before redirecting) and the designated target.
use axum::http::StatusCode;
use moss_types::Bck;
use moss_types::moss::{self, Entry};

use crate::http::ApiError;

/// Largest GetBatch request body: 100k entries are ~10 MB of JSON, so this admits ~600k entries
/// while bounding what one request can make a node parse and hold (a parsed entry costs a few
/// times its JSON).
pub const MOSS_BODY_LIMIT: usize = 64 << 20;

/// Parses and validates a GetBatch body: JSON shape, every entry, `mime`.
pub fn validate(
    body: &[u8],
    default_bck: Option<&Bck>,
) -> Result<(moss::MossReq, Vec<Entry>), ApiError> {
    let mut req = moss::parse_request(body).map_err(ApiError::bad_request)?;
    moss_archive::Format::from_mime(&req.mime).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let entries =
        moss::resolve_entries(std::mem::take(&mut req.entries), default_bck).map_err(|e| {
            let status = if e.range {
                StatusCode::RANGE_NOT_SATISFIABLE
            } else {
                StatusCode::BAD_REQUEST
            };
            ApiError::new(status, e.message)
        })?;
    Ok((req, entries))
}

/// The distinct buckets a batch names, in order of first mention. Entries of one bucket usually
/// come in runs, so a run costs one comparison per entry instead of a set insert (hash + compare).
pub fn buckets_of<'a>(bcks: impl IntoIterator<Item = &'a Bck>) -> Vec<&'a Bck> {
    let mut seen = std::collections::HashSet::new();
    let mut distinct = Vec::new();
    let mut last: Option<&Bck> = None;
    for bck in bcks {
        if last == Some(bck) {
            continue;
        }
        last = Some(bck);
        if seen.insert(bck) {
            distinct.push(bck);
        }
    }
    distinct
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_of_lists_each_bucket_once_in_order_of_first_mention() {
        let (a, b, c) = (Bck::ais("a"), Bck::ais("b"), Bck::ais("c"));
        let named = [&b, &b, &a, &b, &c, &c, &a];
        let distinct: Vec<&str> = buckets_of(named)
            .into_iter()
            .map(|bck| bck.name.as_str())
            .collect();
        assert_eq!(distinct, ["b", "a", "c"]);
        assert!(buckets_of(std::iter::empty()).is_empty());
    }
}
