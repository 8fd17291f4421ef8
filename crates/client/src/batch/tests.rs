//! Decoding tests over in-memory responses: every format, both response modes, and the ways a
//! response can go wrong (short archive, broken-off body, wrong names, truncated multipart).
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{StreamExt, stream};
use moss_archive::Format;
use moss_archive::writer::new_writer;
use moss_types::moss::{MossIn, MossOut, MossReq, MossResp};

use super::multipart::MultipartEvent;
use super::plan::{BatchPlan, STREAMED_MISSING};
use super::{BatchArchive, BatchItem, ByteStream, MultipartReader, decode};
use crate::error::{Error, Result};

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn archive(format: Format, entries: &[(&str, &[u8])]) -> Vec<u8> {
    let sink = Shared::default();
    let mut w = new_writer(format, sink.clone());
    for (name, data) in entries {
        w.start_entry(name, data.len() as u64, 0).unwrap();
        w.write_data(data).unwrap();
        w.finish_entry().unwrap();
    }
    w.finish().unwrap();
    sink.0.lock().unwrap().clone()
}

fn request(format: Format) -> MossReq {
    let e = |objname: &str, archpath: &str| MossIn {
        objname: objname.into(),
        archpath: archpath.into(),
        ..Default::default()
    };
    MossReq {
        mime: format.ext().into(),
        entries: vec![
            e("a.txt", ""),
            e("gone", ""),
            e("s.tar", "x/1.bin"),
            e("empty", ""),
        ],
        coer: true,
        strm: true,
        ..Default::default()
    }
}

fn big() -> Vec<u8> {
    (0..300_000u32).map(|i| (i % 251) as u8).collect()
}

fn good_entries(big: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("b/a.txt", b"hello".to_vec()),
        ("__404__/b/gone", Vec::new()),
        ("b/s.tar/x/1.bin", big.to_vec()),
        ("b/empty", Vec::new()),
    ]
}

fn as_refs<'a>(entries: &'a [(&'static str, Vec<u8>)]) -> Vec<(&'static str, &'a [u8])> {
    entries.iter().map(|(n, d)| (*n, d.as_slice())).collect()
}

/// The bytes as a body arriving in `chunk`-sized pieces, optionally failing at the end.
fn body(bytes: Vec<u8>, chunk: usize, fail_at_end: bool) -> ByteStream {
    let mut pieces: Vec<Result<Bytes>> = bytes
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    if fail_at_end {
        pieces.push(Err(Error::Body {
            context: "test body".into(),
            error: io::Error::new(io::ErrorKind::ConnectionAborted, "connection reset"),
        }));
    }
    stream::iter(pieces).boxed()
}

async fn decode_all(
    req: &MossReq,
    metadata: Option<Vec<MossOut>>,
    body: ByteStream,
) -> Vec<Result<BatchItem>> {
    let plan = Arc::new(BatchPlan::new(req, Some("b")).unwrap());
    decode::decode(plan, metadata.map(Arc::new), body, true)
        .collect()
        .await
}

#[tokio::test]
async fn streamed_archives_decode_in_every_format() {
    let payload = big();
    let entries = good_entries(&payload);
    for format in [Format::Tar, Format::Tgz, Format::TarLz4, Format::Zip] {
        let bytes = archive(format, &as_refs(&entries));
        for chunk in [1000, 7, 1 << 20] {
            let req = request(format);
            let items: Vec<BatchItem> = decode_all(&req, None, body(bytes.clone(), chunk, false))
                .await
                .into_iter()
                .collect::<Result<_>>()
                .unwrap();
            assert_eq!(items.len(), 4, "{format:?}");
            assert_eq!(items[0].data, Bytes::from_static(b"hello"));
            assert_eq!(items[0].out.objname, "a.txt");
            assert_eq!(items[0].out.size, 5);
            assert!(items[1].is_missing());
            assert_eq!(items[1].out.err_msg.as_deref(), Some(STREAMED_MISSING));
            assert_eq!(items[2].data.len(), payload.len());
            assert_eq!(&items[2].data[..], &payload[..]);
            assert_eq!(items[2].out.archpath, "x/1.bin");
            assert!(!items[3].is_missing());
            assert_eq!(items[3].name, "b/empty");
        }
    }
}

#[tokio::test]
async fn a_short_well_formed_archive_is_an_error() {
    let payload = big();
    let entries = good_entries(&payload);
    for format in [Format::Tar, Format::Tgz, Format::TarLz4, Format::Zip] {
        let bytes = archive(format, &as_refs(&entries[..3]));
        let items = decode_all(&request(format), None, body(bytes, 4096, false)).await;
        assert_eq!(items.len(), 4, "{format:?}: 3 items, then the error");
        let err = items[3].as_ref().unwrap_err().to_string();
        assert!(
            err.contains("ended after 3 of 4 entries"),
            "{format:?}: {err}"
        );
    }
}

#[tokio::test]
async fn a_body_that_breaks_off_is_an_error_wherever_it_breaks() {
    let payload = big();
    let entries = good_entries(&payload);
    for format in [Format::Tar, Format::Tgz, Format::TarLz4, Format::Zip] {
        let bytes = archive(format, &as_refs(&entries));
        let len = bytes.len();
        for cut in [0, 1, 100, 512, 700, len / 2, len - 1, len] {
            let items = decode_all(
                &request(format),
                None,
                body(bytes[..cut].to_vec(), 333, true),
            )
            .await;
            let last = items.last().unwrap();
            assert!(last.is_err(), "{format:?} cut at {cut} of {len}");
            assert!(
                items[..items.len() - 1].iter().all(Result::is_ok),
                "one error, at the end"
            );
        }
    }
}

#[tokio::test]
async fn a_truncated_archive_without_transport_error_is_an_error() {
    let payload = big();
    let entries = good_entries(&payload);
    for format in [Format::Tar, Format::Tgz, Format::TarLz4, Format::Zip] {
        let bytes = archive(format, &as_refs(&entries));
        let cut = bytes.len() / 2;
        let items = decode_all(
            &request(format),
            None,
            body(bytes[..cut].to_vec(), 999, false),
        )
        .await;
        assert!(items.last().unwrap().is_err(), "{format:?}");
    }
}

#[tokio::test]
async fn unexpected_names_and_extra_entries_are_errors() {
    let wrong = archive(Format::Tar, &[("b/a.txt", b"hello"), ("b/zzz", b"")]);
    let items = decode_all(&request(Format::Tar), None, body(wrong, 4096, false)).await;
    assert_eq!(items.len(), 2);
    let err = items[1].as_ref().unwrap_err().to_string();
    assert!(
        err.contains("expected \"__404__/b/gone\"") || err.contains("expected \"b/gone\""),
        "{err}"
    );

    let mut req = request(Format::Tar);
    req.entries.truncate(1);
    let extra = archive(Format::Tar, &[("b/a.txt", b"hello"), ("b/more", b"x")]);
    let items = decode_all(&req, None, body(extra, 4096, false)).await;
    assert!(items[0].is_ok());
    assert!(
        items[1]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("more than the 1")
    );
}

#[tokio::test]
async fn dropping_the_stream_stops_the_decoder() {
    let payload = big();
    let many: Vec<(String, Vec<u8>)> = (0..64)
        .map(|i| (format!("b/o{i}"), payload.clone()))
        .collect();
    let refs: Vec<(&str, &[u8])> = many
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let bytes = archive(Format::Tar, &refs);
    let req = MossReq {
        entries: (0..64)
            .map(|i| MossIn {
                objname: format!("o{i}"),
                ..Default::default()
            })
            .collect(),
        strm: true,
        ..Default::default()
    };
    let plan = Arc::new(BatchPlan::new(&req, Some("b")).unwrap());
    let mut items = decode::decode(plan, None, body(bytes, 65536, false), true);
    let first = items.next().await.unwrap().unwrap();
    assert_eq!(first.name, "b/o0");
    drop(items);
}

fn multipart(boundary: &str, metadata: &MossResp, archive: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n")
            .as_bytes(),
    );
    b.extend_from_slice(&serde_json::to_vec(metadata).unwrap());
    b.extend_from_slice(format!("\n\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"archive\"; filename=\"get-batch[gbt-x]\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
    b.extend_from_slice(archive);
    b.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    b
}

fn metadata_for(entries: &[(&'static str, Vec<u8>)]) -> MossResp {
    let out = entries
        .iter()
        .map(|(name, data)| {
            let missing = name.starts_with("__404__/");
            MossOut {
                objname: name.rsplit('/').next().unwrap().into(),
                bucket: "b".into(),
                provider: "ais".into(),
                err_msg: missing.then(|| format!("ais://{name} does not exist")),
                size: data.len() as u64,
                ..Default::default()
            }
        })
        .collect();
    MossResp {
        uuid: "gbt-x".into(),
        out,
    }
}

async fn buffered(bytes: Vec<u8>, chunk: usize, req: MossReq) -> Result<Vec<Result<BatchItem>>> {
    let mut reader = MultipartReader::new(body(bytes, chunk, false), "BOUNDARY");
    let metadata = reader.read_metadata().await?;
    let archive = BatchArchive {
        content_type: "application/x-tar".into(),
        metadata: Some(metadata),
        plan: Arc::new(BatchPlan::new(&req, Some("b")).unwrap()),
        body: reader.into_part_stream(),
    };
    Ok(archive.into_items().collect().await)
}

#[tokio::test]
async fn buffered_responses_pair_metadata_by_index() {
    let payload = big();
    let entries = good_entries(&payload);
    for format in [Format::Tar, Format::Zip] {
        let meta = metadata_for(&entries);
        let bytes = multipart("BOUNDARY", &meta, &archive(format, &as_refs(&entries)));
        let mut req = request(format);
        req.strm = false;
        for chunk in [5, 4096] {
            let items: Vec<BatchItem> = buffered(bytes.clone(), chunk, req.clone())
                .await
                .unwrap()
                .into_iter()
                .collect::<Result<_>>()
                .unwrap();
            assert_eq!(items.len(), 4);
            assert_eq!(
                items[1].out.err_msg.as_deref(),
                Some("ais://__404__/b/gone does not exist")
            );
            assert_eq!(&items[2].data[..], &payload[..]);
        }
    }
}

#[tokio::test]
async fn truncated_multipart_is_an_error() {
    let payload = big();
    let entries = good_entries(&payload);
    let meta = metadata_for(&entries);
    let whole = multipart("BOUNDARY", &meta, &archive(Format::Tar, &as_refs(&entries)));
    // Cut inside the closing boundary: the archive itself is complete.
    let cut = whole.len() - 5;
    let items = buffered(whole[..cut].to_vec(), 1000, request(Format::Tar))
        .await
        .unwrap();
    let err = items.last().unwrap().as_ref().unwrap_err().to_string();
    assert!(err.contains("closing boundary"), "{err}");
    // Cut inside the metadata.
    let early = buffered(whole[..80].to_vec(), 1000, request(Format::Tar)).await;
    assert!(early.is_err());
}

#[tokio::test]
async fn multipart_reader_reports_events_in_order() {
    let meta = MossResp::default();
    let bytes = multipart("BOUNDARY", &meta, b"ARCHIVE");
    let mut reader = MultipartReader::new(body(bytes, 3, false), "BOUNDARY");
    let mut kinds = Vec::new();
    while let Some(event) = reader.next_event().await.unwrap() {
        kinds.push(match event {
            MultipartEvent::Part(h) => format!("part:{}", h.name.unwrap_or_default()),
            MultipartEvent::Data(_) => "data".to_string(),
            MultipartEvent::End => "end".to_string(),
        });
    }
    kinds.dedup();
    assert_eq!(
        kinds,
        ["part:metadata", "data", "part:archive", "data", "end"]
    );
}

#[tokio::test]
async fn write_to_tees_and_verifies() {
    let payload = big();
    let entries = good_entries(&payload);
    let bytes = archive(Format::Tgz, &as_refs(&entries));
    let req = request(Format::Tgz);
    let archive_of = |body: ByteStream| BatchArchive {
        content_type: "application/gzip".into(),
        metadata: None,
        plan: Arc::new(BatchPlan::new(&req, Some("b")).unwrap()),
        body,
    };
    let mut out = Vec::new();
    let mut seen = Vec::new();
    let summary = archive_of(body(bytes.clone(), 1000, false))
        .write_to(&mut out, |item| seen.push(item.name.clone()))
        .await
        .unwrap();
    assert_eq!(out, bytes, "written as received");
    assert_eq!(seen.len(), 4);
    assert_eq!(summary.entries, 4);
    assert_eq!(summary.archive_bytes, bytes.len() as u64);
    assert_eq!(summary.payload_bytes, 5 + payload.len() as u64);
    assert_eq!(summary.missing.len(), 1);

    let short = archive(Format::Tgz, &as_refs(&entries[..2]));
    let err = archive_of(body(short, 1000, false))
        .write_to(Vec::new(), |_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ended after 2 of 4"), "{err}");

    let broken = archive_of(body(bytes[..bytes.len() / 2].to_vec(), 1000, true))
        .write_to(Vec::new(), |_| {})
        .await
        .unwrap_err();
    assert!(broken.to_string().contains("connection reset"), "{broken}");
}

#[test]
fn streamed_content_types_are_checked() {
    use super::check_streamed_type;
    assert!(check_streamed_type("application/x-tar", Format::Tar).is_ok());
    assert!(check_streamed_type("application/gzip", Format::Tgz).is_ok());
    assert!(check_streamed_type("application/octet-stream", Format::Zip).is_ok());
    assert!(check_streamed_type("application/zip", Format::Tar).is_err());
    assert!(check_streamed_type("text/html", Format::Tar).is_err());
    assert!(check_streamed_type("", Format::Tar).is_err());
}

#[tokio::test]
async fn buffered_parts_must_be_named_right() {
    let mut reader = MultipartReader::new(
        body(
            b"--B\r\nContent-Disposition: form-data; name=\"archive\"\r\n\r\nx\r\n--B--".to_vec(),
            4,
            false,
        ),
        "B",
    );
    let err = reader.read_metadata().await.unwrap_err().to_string();
    assert!(err.contains("expected \"metadata\""), "{err}");
}

#[tokio::test]
async fn repeated_objects_keep_their_own_entries_in_every_format() {
    // The same object requested whole, ranged and again: three entries with one name.
    let e = |start: i64, length: i64| MossIn {
        objname: "obj".into(),
        start,
        length,
        ..Default::default()
    };
    for format in [Format::Tar, Format::Tgz, Format::TarLz4, Format::Zip] {
        let req = MossReq {
            mime: format.ext().into(),
            entries: vec![e(0, 0), e(1, 2), e(0, 0)],
            strm: true,
            ..Default::default()
        };
        let bytes = archive(
            format,
            &[("b/obj", b"abcd"), ("b/obj", b"bc"), ("b/obj", b"abcd")],
        );
        let items: Vec<BatchItem> = decode_all(&req, None, body(bytes, 64, false))
            .await
            .into_iter()
            .collect::<Result<_>>()
            .unwrap();
        let data: Vec<&[u8]> = items.iter().map(|i| &i.data[..]).collect();
        assert_eq!(data, [&b"abcd"[..], b"bc", b"abcd"], "{format:?}");
    }
}
