//! The client against a scripted HTTP server on a loopback socket: redirects re-send the body,
//! error answers become typed errors, and a response that breaks off mid-archive is an error —
//! as seen through a real TCP connection and reqwest, not an in-memory stream.
#![allow(clippy::unwrap_used)]
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use moss_archive::Format;
use moss_archive::writer::new_writer;
use moss_client::{BatchItem, Client, Error};
use moss_types::moss::{MossIn, MossOut, MossReq, MossResp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One received request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    body: Vec<u8>,
}

/// What the script answers: raw response bytes, after which the connection is closed (so a
/// chunked body without its last-chunk marker is an aborted response).
struct Reply {
    bytes: Vec<u8>,
}

type Script = Arc<dyn Fn(&Seen, &str) -> Reply + Send + Sync>;

/// Serves every connection with `script`; returns the base URL and the log of requests.
async fn server(script: Script) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let log = Arc::new(Mutex::new(Vec::new()));
    let (seen, url) = (log.clone(), base.clone());
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let (script, seen, url) = (script.clone(), seen.clone(), url.clone());
            tokio::spawn(async move {
                if let Some(request) = read_request(socket).await {
                    let (mut socket, req) = request;
                    seen.lock().unwrap().push(req.clone());
                    let reply = script(&req, &url);
                    let _ = socket.write_all(&reply.bytes).await;
                    let _ = socket.flush().await;
                    // Closing without finishing a chunked body is how the server aborts.
                    let _ = socket.shutdown().await;
                }
            });
        }
    });
    (base, log)
}

async fn read_request(mut socket: TcpStream) -> Option<(TcpStream, Seen)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let length: usize = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buf[header_end..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((
        socket,
        Seen {
            method,
            target,
            body,
        },
    ))
}

fn response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A chunked response whose body is `body`, finished with the last-chunk marker only if
/// `complete`.
fn chunked(content_type: &str, body: &[u8], complete: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for piece in body.chunks(1000) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    if complete {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    out
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let sink = Shared::default();
    let mut w = new_writer(Format::Tar, sink.clone());
    for (name, data) in entries {
        w.start_entry(name, data.len() as u64, 0).unwrap();
        w.write_data(data).unwrap();
        w.finish_entry().unwrap();
    }
    w.finish().unwrap();
    sink.0.lock().unwrap().clone()
}

fn request(names: &[&str], strm: bool) -> MossReq {
    MossReq {
        entries: names
            .iter()
            .map(|n| MossIn {
                objname: n.to_string(),
                ..Default::default()
            })
            .collect(),
        coer: true,
        strm,
        ..Default::default()
    }
}

async fn collect(client: &Client, req: MossReq) -> Vec<Result<BatchItem, Error>> {
    tokio::time::timeout(
        Duration::from_secs(20),
        client.batch(req, Some("b")).collect(),
    )
    .await
    .expect("batch hung")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_resend_the_body_and_the_archive_decodes() {
    let payload = vec![7u8; 50_000];
    let archive = tar_of(&[
        ("b/a", b"hello"),
        ("__404__/b/gone", b""),
        ("b/c", &payload),
    ]);
    let script: Script = Arc::new(move |req, base| {
        if req.target.starts_with("/v1/ml/moss/b") {
            let location = format!("{base}/dt{}&pid=p1", req.target);
            return Reply {
                bytes: response("307 Temporary Redirect", &[("location", &location)], b""),
            };
        }
        Reply {
            bytes: chunked("application/x-tar", &archive, true),
        }
    });
    let (base, log) = server(script).await;
    let client = Client::new(&base).unwrap();
    let items = collect(&client, request(&["a", "gone", "c"], true)).await;
    let items: Vec<BatchItem> = items.into_iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(&items[0].data[..], b"hello");
    assert!(items[1].is_missing());
    assert_eq!(items[2].data.len(), payload.len());

    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].target, "/v1/ml/moss/b?provider=ais");
    assert!(
        seen[1]
            .target
            .starts_with("/dt/v1/ml/moss/b?provider=ais&pid=p1")
    );
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[1].method, "GET");
    assert_eq!(
        seen[0].body, seen[1].body,
        "the body is re-sent on redirect"
    );
    let sent: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(sent["in"].as_array().unwrap().len(), 3);
    assert_eq!(sent["mime"], ".tar");
    assert_eq!(sent["strm"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_stream_is_an_error_not_a_short_batch() {
    let payload = vec![9u8; 20_000];
    let archive = tar_of(&[("b/a", b"hello"), ("b/c", &payload), ("b/d", b"x")]);
    // Break off in the middle of entry 2, and exactly at the end of entry 1 (a point where a
    // well-formed but short archive could be mistaken for success).
    for cut in [5_000, 1024] {
        let body = archive[..cut].to_vec();
        let script: Script = Arc::new(move |_, _| Reply {
            bytes: chunked("application/x-tar", &body, false),
        });
        let (base, _) = server(script).await;
        let client = Client::new(&base).unwrap();
        let items = collect(&client, request(&["a", "c", "d"], true)).await;
        assert!(items[0].is_ok(), "cut {cut}: {:?}", items[0]);
        let last = items.last().unwrap();
        let err = last.as_ref().unwrap_err();
        assert!(matches!(err, Error::Body { .. }), "cut {cut}: {err}");
        assert_eq!(items.len(), 2, "cut {cut}: one good entry, then the error");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complete_but_short_archive_is_an_error() {
    let archive = tar_of(&[("b/a", b"hello")]);
    let script: Script = Arc::new(move |_, _| Reply {
        bytes: chunked("application/x-tar", &archive, true),
    });
    let (base, _) = server(script).await;
    let client = Client::new(&base).unwrap();
    let items = collect(&client, request(&["a", "c"], true)).await;
    assert_eq!(items.len(), 2);
    let err = items[1].as_ref().unwrap_err().to_string();
    assert!(err.contains("ended after 1 of 2 entries"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_answers_are_typed() {
    let script: Script = Arc::new(|req, _| {
        if req.target.starts_with("/v1/ml/moss") {
            let body = br#"{"message":"too many requests, try later","status":429}"#;
            return Reply {
                bytes: response(
                    "429 Too Many Requests",
                    &[("retry-after", "3"), ("content-type", "application/json")],
                    body,
                ),
            };
        }
        let hdr = r#"{"message":"bucket \"ais://nob\" does not exist","status":404}"#;
        Reply {
            bytes: response("404 Not Found", &[("hdr-error", hdr)], b""),
        }
    });
    let (base, _) = server(script).await;
    let client = Client::new(&base).unwrap();
    let items = collect(&client, request(&["a"], true)).await;
    match &items[..] {
        [
            Err(Error::Http {
                status: 429,
                message,
                retry_after,
            }),
        ] => {
            assert_eq!(message, "too many requests, try later");
            assert_eq!(*retry_after, Some(Duration::from_secs(3)));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!client.bucket_exists("nob").await.unwrap());
    let err = client.head_object("nob", "x").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "bucket \"ais://nob\" does not exist (status 404)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_responses_carry_metadata() {
    let archive = tar_of(&[("b/a", b"hello"), ("__404__/b/gone", b"")]);
    let metadata = MossResp {
        uuid: "gbt-1".into(),
        out: vec![
            MossOut {
                objname: "a".into(),
                bucket: "b".into(),
                provider: "ais".into(),
                size: 5,
                ..Default::default()
            },
            MossOut {
                objname: "gone".into(),
                bucket: "b".into(),
                provider: "ais".into(),
                err_msg: Some("t[x]: ais://b/gone does not exist".into()),
                ..Default::default()
            },
        ],
    };
    let mut body = b"--BND\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n".to_vec();
    body.extend_from_slice(&serde_json::to_vec(&metadata).unwrap());
    body.extend_from_slice(b"\n\r\n--BND\r\nContent-Disposition: form-data; name=\"archive\"; filename=\"get-batch[gbt-1]\"\r\nContent-Type: application/octet-stream\r\n\r\n");
    body.extend_from_slice(&archive);
    body.extend_from_slice(b"\r\n--BND--\r\n");
    let script: Script = Arc::new(move |_, _| Reply {
        bytes: chunked("multipart/mixed; boundary=BND", &body, true),
    });
    let (base, _) = server(script).await;
    let client = Client::new(&base).unwrap();
    let items: Vec<BatchItem> = collect(&client, request(&["a", "gone"], false))
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(&items[0].data[..], b"hello");
    assert_eq!(
        items[1].out.err_msg.as_deref(),
        Some("t[x]: ais://b/gone does not exist")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_bodies_shorter_than_their_length_fail() {
    let script: Script = Arc::new(|_, _| {
        let mut bytes =
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 100\r\n\r\n".to_vec();
        bytes.extend_from_slice(&[1u8; 40]);
        Reply { bytes }
    });
    let (base, _) = server(script).await;
    let client = Client::new(&base).unwrap();
    let err = client.get("b", "o").await.unwrap_err();
    assert!(matches!(err, Error::Body { .. }), "{err}");
}
