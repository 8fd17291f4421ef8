//! The one HTTP client every cell uses: hyper's HTTP/1.1 connection API, one keep-alive
//! connection per (worker, server), TCP_NODELAY, no pool lookups, redirects followed by hand
//! (re-sending the body, as 307 requires).
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue, LOCATION, RANGE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::delay::Delay;

/// Upper bound for one operation (a GET, or a whole batch) before it counts as failed.
pub const OP_TIMEOUT: Duration = Duration::from_secs(120);

/// A request to send (the body is re-sent on redirects and retries).
#[derive(Debug, Clone)]
pub struct Req<'a> {
    pub method: Method,
    pub path: &'a str,
    pub body: Bytes,
    pub json: bool,
    /// Byte range `(offset, length)`.
    pub range: Option<(u64, u64)>,
}

impl<'a> Req<'a> {
    pub fn get(path: &'a str) -> Req<'a> {
        Req {
            method: Method::GET,
            path,
            body: Bytes::new(),
            json: false,
            range: None,
        }
    }

    /// A GET with a JSON body (GetBatch).
    pub fn get_json(path: &'a str, body: Bytes) -> Req<'a> {
        Req {
            method: Method::GET,
            path,
            body,
            json: true,
            range: None,
        }
    }

    pub fn post(path: &'a str, body: Bytes) -> Req<'a> {
        Req {
            method: Method::POST,
            path,
            body,
            json: false,
            range: None,
        }
    }

    pub fn put(path: &'a str, body: Bytes) -> Req<'a> {
        Req {
            method: Method::PUT,
            path,
            body,
            json: false,
            range: None,
        }
    }

    pub fn json(mut self) -> Self {
        self.json = true;
        self
    }

    pub fn range(mut self, offset: u64, len: u64) -> Self {
        self.range = Some((offset, len));
        self
    }

    fn build(&self, path: &str, host: &HeaderValue) -> Result<Request<Full<Bytes>>> {
        let mut b = Request::builder()
            .method(self.method.clone())
            .uri(path)
            .header(HOST, host);
        if self.json {
            b = b.header(CONTENT_TYPE, "application/json");
        }
        if let Some((off, len)) = self.range {
            b = b.header(RANGE, format!("bytes={}-{}", off, off + len.max(1) - 1));
        }
        b.body(Full::new(self.body.clone()))
            .context("build request")
    }
}

struct Conn {
    addr: SocketAddr,
    host: HeaderValue,
    tx: Option<http1::SendRequest<Full<Bytes>>>,
}

/// One client worker's keep-alive connections (one per server it talks to).
#[derive(Default)]
pub struct Peer {
    conns: Vec<Conn>,
}

/// One keep-alive HTTP/1.1 connection to `addr` (its driver spawned).
pub async fn connect<B>(addr: SocketAddr) -> Result<http1::SendRequest<B>>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    stream.set_nodelay(true)?;
    let (tx, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .context("http handshake")?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(tx)
}

impl Peer {
    pub fn new() -> Peer {
        Peer::default()
    }

    fn conn(&mut self, addr: SocketAddr) -> Result<&mut Conn> {
        let pos = match self.conns.iter().position(|c| c.addr == addr) {
            Some(p) => p,
            None => {
                let host = HeaderValue::from_str(&addr.to_string())?;
                self.conns.push(Conn {
                    addr,
                    host,
                    tx: None,
                });
                self.conns.len() - 1
            }
        };
        Ok(&mut self.conns[pos])
    }

    /// Opens the connection to `addr` now (so a timed cell does not pay the handshake).
    pub async fn warm(&mut self, addr: SocketAddr) -> Result<()> {
        let conn = self.conn(addr)?;
        if conn.tx.as_ref().is_none_or(|t| t.is_closed()) {
            conn.tx = Some(connect(addr).await?);
        }
        Ok(())
    }

    /// One HTTP exchange on the keep-alive connection to `addr` (reconnecting once if the
    /// server closed an idle connection). `delay` is injected right before the request goes out.
    pub async fn send(
        &mut self,
        addr: SocketAddr,
        req: &Req<'_>,
        path: &str,
        delay: Option<&Delay>,
    ) -> Result<Response<Incoming>> {
        let conn = self.conn(addr)?;
        let mut last_err = None;
        for _attempt in 0..2 {
            let mut fresh = false;
            if conn.tx.as_ref().is_none_or(|t| t.is_closed()) {
                conn.tx = Some(connect(addr).await?);
                fresh = true;
            }
            let Some(tx) = conn.tx.as_mut() else {
                bail!("no connection to {addr}");
            };
            if tx.ready().await.is_err() {
                conn.tx = None;
                continue;
            }
            let request = req.build(path, &conn.host)?;
            if let Some(d) = delay {
                d.inject();
            }
            match tx.send_request(request).await {
                Ok(resp) => return Ok(resp),
                Err(e) => {
                    conn.tx = None;
                    if fresh {
                        return Err(anyhow!(e).context(format!("{} {path}", req.method)));
                    }
                    last_err = Some(e);
                }
            }
        }
        Err(match last_err {
            Some(e) => anyhow!(e),
            None => anyhow!("connection to {addr} keeps closing"),
        })
        .with_context(|| format!("{} {path}", req.method))
    }

    /// Sends `req` to `addr`, following up to 3 redirects (307/308 keep method and body).
    pub async fn send_follow(
        &mut self,
        addr: SocketAddr,
        req: &Req<'_>,
        delay: Option<&Delay>,
    ) -> Result<Response<Incoming>> {
        let mut resp = self.send(addr, req, req.path, delay).await?;
        for _hop in 0..3 {
            if !matches!(
                resp.status(),
                StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT
            ) {
                return Ok(resp);
            }
            let location = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .context("redirect without Location")?
                .to_string();
            drain(resp.into_body()).await?;
            let (next, path) = parse_location(&location)?;
            resp = self.send(next, req, &path, delay).await?;
        }
        bail!("too many redirects for {}", req.path)
    }
}

/// Splits `http://host:port/path?query` into the address and the path.
pub fn parse_location(location: &str) -> Result<(SocketAddr, String)> {
    let rest = location
        .strip_prefix("http://")
        .with_context(|| format!("unsupported redirect {location:?}"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = match host.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => host
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .with_context(|| format!("resolve {host}"))?,
    };
    Ok((addr, path.to_string()))
}

/// Calls `f` with every body chunk.
pub async fn for_each_chunk(
    mut body: Incoming,
    mut f: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    while let Some(frame) = body.frame().await {
        let frame = frame.context("read body")?;
        if let Ok(data) = frame.into_data() {
            f(&data)?;
        }
    }
    Ok(())
}

/// Reads and drops a body, returning its length.
pub async fn drain(body: Incoming) -> Result<u64> {
    let mut n = 0u64;
    for_each_chunk(body, |c| {
        n += c.len() as u64;
        Ok(())
    })
    .await?;
    Ok(n)
}

/// The body as text (for error messages), at most 2 KiB.
pub async fn read_text(resp: Response<Incoming>) -> String {
    match resp.into_body().collect().await {
        Ok(c) => {
            let b = c.to_bytes();
            String::from_utf8_lossy(&b[..b.len().min(2048)]).into_owned()
        }
        Err(e) => format!("(body unreadable: {e})"),
    }
}

/// The body parsed as JSON.
pub async fn read_json(resp: Response<Incoming>) -> Result<serde_json::Value> {
    let bytes = resp
        .into_body()
        .collect()
        .await
        .context("read body")?
        .to_bytes();
    serde_json::from_slice(&bytes).context("parse JSON body")
}

/// Fails with the status and error body unless `resp` has status `want`.
pub async fn expect_status(resp: Response<Incoming>, want: StatusCode) -> Result<Incoming> {
    if resp.status() == want {
        return Ok(resp.into_body());
    }
    let status = resp.status();
    let text = read_text(resp).await;
    bail!("status {status} (expected {want}): {}", text.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_parsing() {
        let (a, p) =
            parse_location("http://127.0.0.1:8081/v1/objects/b/o?provider=ais&pid=x").unwrap();
        assert_eq!(a, "127.0.0.1:8081".parse().unwrap());
        assert_eq!(p, "/v1/objects/b/o?provider=ais&pid=x");
        let (_, p) = parse_location("http://127.0.0.1:1").unwrap();
        assert_eq!(p, "/");
        assert!(parse_location("https://x/").is_err());
    }
}
