//! The cloud emulators remote-bucket tests run against: started by `scripts/test.sh` (through
//! `scripts/emulators.sh`), which exports where they listen. A test that needs one and finds no
//! emulator fails with instructions; it never skips.
use moss_backend::{Backend, Backends, CloudEnv, PutBody};
use moss_types::{Bck, Provider};

/// One provider's emulator: what the nodes need to reach it and a bucket that exists there.
#[derive(Debug, Clone)]
pub struct Cloud {
    pub provider: Provider,
    pub env: CloudEnv,
    /// A bucket (container) the emulator holds; tests keep to their own prefixes in it.
    pub bucket: String,
}

/// Azurite's fixed development account (public, documented by Microsoft).
const AZURITE_ACCOUNT: &str = "devstoreaccount1";

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: remote-bucket tests need the cloud emulators. Run the suite with \
             scripts/test.sh, or: scripts/setup-emulators.sh && scripts/emulators.sh start /tmp/emu \
             && source /tmp/emu/env.sh"
        )
    })
}

fn first(list: &str) -> String {
    list.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn pairs(list: &[(&str, String)]) -> CloudEnv {
    CloudEnv::from_vars(list.iter().map(|(k, v)| (k.to_string(), v.clone())))
}

impl Cloud {
    /// The emulator of `provider`: moto for S3, moto's XML API for GCS, Azurite for Azure.
    pub fn of(provider: Provider) -> Cloud {
        let s3 = var("MOSS_S3_ENDPOINT");
        let (env, bucket) = match provider {
            Provider::Aws => (
                pairs(&[
                    ("AWS_ACCESS_KEY_ID", "testing".into()),
                    ("AWS_SECRET_ACCESS_KEY", "testing".into()),
                    ("AWS_REGION", "us-east-1".into()),
                    ("AWS_ENDPOINT_URL", s3),
                ]),
                first(&var("MOSS_EMU_BUCKETS")),
            ),
            Provider::Gcp => (
                pairs(&[("STORAGE_EMULATOR_HOST", s3)]),
                first(&var("MOSS_EMU_GCS_BUCKETS")),
            ),
            Provider::Azure => (
                pairs(&[
                    ("AZURE_STORAGE_ACCOUNT", AZURITE_ACCOUNT.into()),
                    ("AZURE_STORAGE_KEY", var("AZURE_STORAGE_ACCOUNT_KEY")),
                    (
                        "AIS_AZURE_URL",
                        format!("{}/{AZURITE_ACCOUNT}", var("MOSS_AZURE_BLOB_URL")),
                    ),
                ]),
                first(&var("MOSS_EMU_BUCKETS")),
            ),
            other => panic!("no emulator for provider {other:?}"),
        };
        Cloud {
            provider,
            env,
            bucket,
        }
    }

    /// The same cloud reached through `url` (a [`Relay`] in front of the emulator).
    pub fn via(&self, url: &str) -> Cloud {
        let env = match self.provider {
            Provider::Aws => self.env.clone().with("AWS_ENDPOINT_URL", url),
            Provider::Gcp => self.env.clone().with("STORAGE_EMULATOR_HOST", url),
            _ => self
                .env
                .clone()
                .with("AIS_AZURE_URL", &format!("{url}/{AZURITE_ACCOUNT}")),
        };
        Cloud {
            env,
            ..self.clone()
        }
    }

    /// Where the emulator listens (what a [`Relay`] forwards to).
    pub fn upstream(&self) -> String {
        match self.provider {
            Provider::Azure => var("MOSS_AZURE_BLOB_URL"),
            _ => var("MOSS_S3_ENDPOINT"),
        }
    }

    pub fn bck(&self) -> Bck {
        Bck {
            name: self.bucket.clone(),
            provider: self.provider,
            namespace: Default::default(),
        }
    }

    /// A client of the emulator's bucket that bypasses the cluster ("out of band" writes).
    pub fn direct(&self) -> std::sync::Arc<dyn Backend> {
        Backends::new(self.env.clone(), Default::default())
            .for_bucket(&self.bck(), &Default::default())
            .unwrap()
    }

    /// Reads an object straight from the emulator.
    pub async fn get(&self, name: &str) -> Result<Vec<u8>, moss_backend::BackendError> {
        use futures::TryStreamExt;
        let (_, body) = self.direct().get(name).await?;
        let chunks: Vec<bytes::Bytes> = body.try_collect().await?;
        Ok(chunks.concat())
    }

    /// Writes an object straight into the emulator.
    pub async fn put(&self, name: &str, data: &[u8]) {
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, data).unwrap();
        std::io::Seek::rewind(&mut file).unwrap();
        let body = PutBody {
            file,
            size: data.len() as u64,
        };
        self.direct().put(name, body).await.unwrap();
    }
}

/// Every provider with an emulator.
pub const PROVIDERS: [Provider; 3] = [Provider::Aws, Provider::Gcp, Provider::Azure];

/// A TCP relay in front of an emulator that counts the GET requests passing through and can
/// cut responses short or stop answering: what a test needs to see one fetch for many readers,
/// a connection dying mid-object, or an unreachable cloud.
pub struct Relay {
    pub url: String,
    /// GET requests seen (request lines starting with `GET `).
    pub gets: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// When non-zero: every connection is closed after relaying this many response bytes.
    pub cut_after: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: tokio_util::sync::CancellationToken,
}

impl Relay {
    /// Relays to `upstream` (`http://host:port`) from a free loopback port.
    pub async fn start(upstream: &str) -> Relay {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let target = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let gets = Arc::new(AtomicUsize::new(0));
        let cut_after = Arc::new(AtomicU64::new(0));
        let stop = tokio_util::sync::CancellationToken::new();
        let (g, c, s) = (gets.clone(), cut_after.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = s.cancelled() => return,
                    a = listener.accept() => a,
                };
                let Ok((client, _)) = accepted else { continue };
                let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                    continue;
                };
                let (g, c, s) = (g.clone(), c.clone(), s.clone());
                tokio::spawn(async move {
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = async {
                        let mut buf = vec![0u8; 64 << 10];
                        let mut at_line_start = true;
                        loop {
                            let n = match cr.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            let chunk = &buf[..n];
                            if at_line_start && chunk.starts_with(b"GET ") {
                                g.fetch_add(1, Ordering::SeqCst);
                            }
                            g.fetch_add(
                                chunk.windows(6).filter(|w| w == b"\r\nGET ").count(),
                                Ordering::SeqCst,
                            );
                            at_line_start = chunk.ends_with(b"\n");
                            if sw.write_all(chunk).await.is_err() {
                                return;
                            }
                        }
                    };
                    let down = async {
                        let mut buf = vec![0u8; 64 << 10];
                        let mut sent = 0u64;
                        loop {
                            let n = match sr.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            let cut = c.load(Ordering::SeqCst);
                            let n = if cut > 0 {
                                (n as u64).min(cut.saturating_sub(sent)) as usize
                            } else {
                                n
                            };
                            if n == 0 || cw.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                            sent += n as u64;
                        }
                    };
                    tokio::select! {
                        _ = s.cancelled() => {}
                        _ = up => {}
                        _ = down => {}
                    }
                });
            }
        });
        Relay {
            url,
            gets,
            cut_after,
            stop,
        }
    }

    /// Closes every connection and the listener: the cloud is unreachable from now on.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}
