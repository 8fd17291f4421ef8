//! [`Backend`] on the `object_store` clients.
use std::io::Read;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use moss_types::{Bck, Provider};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path;
use object_store::{
    ClientOptions, ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};

use crate::{
    Backend, BackendError, BucketInfo, ByteStream, CloudEnv, ListPage, ListReq, Overrides, PutBody,
    RemoteAttrs, Result, Timeouts, error_tag, no_bucket_text, no_object_text,
};

/// Objects up to this size are uploaded in one request; larger ones in parts of this size.
const PART: u64 = 8 << 20;
/// Parts of one upload in flight at once (memory per upload: this many parts).
const PARTS_IN_FLIGHT: usize = 4;

/// The client of one cloud bucket.
struct Cloud {
    bck: Bck,
    store: Arc<dyn ObjectStore>,
    lister: Arc<dyn PaginatedListStore>,
    /// The provider's largest list page.
    max_page: usize,
}

fn install_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only when a provider is already installed, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

pub(crate) fn build(
    env: &CloudEnv,
    bck: &Bck,
    overrides: &Overrides,
    timeouts: Timeouts,
) -> Result<Box<dyn Backend>> {
    install_crypto();
    let not_configured = |what: &str| {
        BackendError::NotConfigured(format!(
            "failed to lookup bucket {}, err: {} backend is missing in the cluster configuration ({what})",
            bck.cname(),
            provider_title(bck.provider)
        ))
    };
    let invalid = |e: object_store::Error| {
        BackendError::NotConfigured(format!(
            "{} client for {}: {e}",
            bck.provider.as_str(),
            bck.cname()
        ))
    };
    let mut client = ClientOptions::new().with_connect_timeout(timeouts.call);
    let retry = RetryConfig {
        max_retries: 3,
        retry_timeout: timeouts.call,
        ..Default::default()
    };
    let (store, lister, max_page): (Arc<dyn ObjectStore>, Arc<dyn PaginatedListStore>, usize) =
        match bck.provider {
            Provider::Aws => {
                use object_store::aws::AmazonS3Builder;
                let (Some(key), Some(secret)) = (
                    env.get(&["AWS_ACCESS_KEY_ID"]),
                    env.get(&["AWS_SECRET_ACCESS_KEY"]),
                ) else {
                    return Err(not_configured(
                        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                    ));
                };
                let endpoint = Some(overrides.endpoint.as_str())
                    .filter(|e| !e.is_empty())
                    .or(env.aws_endpoint());
                let region = Some(overrides.region.as_str())
                    .filter(|r| !r.is_empty())
                    .unwrap_or(env.aws_region());
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(&bck.name)
                    .with_access_key_id(key)
                    .with_secret_access_key(secret)
                    .with_region(region)
                    .with_retry(retry);
                if let Some(token) = env.get(&["AWS_SESSION_TOKEN"]) {
                    builder = builder.with_token(token);
                }
                if let Some(endpoint) = endpoint {
                    client = client.with_allow_http(endpoint.starts_with("http://"));
                    builder = builder.with_endpoint(endpoint);
                }
                let s3 = Arc::new(
                    builder
                        .with_client_options(client)
                        .build()
                        .map_err(invalid)?,
                );
                (s3.clone(), s3, 1000)
            }
            Provider::Gcp => {
                use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
                let mut builder = GoogleCloudStorageBuilder::new()
                    .with_bucket_name(&bck.name)
                    .with_retry(retry);
                if let Some(host) = env.get(&["STORAGE_EMULATOR_HOST"]) {
                    let base = if host.starts_with("http") {
                        host.to_string()
                    } else {
                        format!("http://{host}")
                    };
                    client = client.with_allow_http(base.starts_with("http://"));
                    // Emulators take any bearer token (and some fail on an empty one).
                    let token = object_store::gcp::GcpCredential {
                        bearer: "emulator".into(),
                    };
                    builder = builder
                        .with_config(GoogleConfigKey::BaseUrl, base)
                        .with_credentials(Arc::new(object_store::StaticCredentialProvider::new(
                            token,
                        )));
                } else if let Some(path) =
                    env.get(&["GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_SERVICE_ACCOUNT"])
                {
                    builder = builder.with_application_credentials(path);
                } else {
                    return Err(not_configured(
                        "set GOOGLE_APPLICATION_CREDENTIALS, or STORAGE_EMULATOR_HOST for an emulator",
                    ));
                }
                let gcs = Arc::new(
                    builder
                        .with_client_options(client)
                        .build()
                        .map_err(invalid)?,
                );
                (gcs.clone(), gcs, 1000)
            }
            Provider::Azure => {
                use object_store::azure::MicrosoftAzureBuilder;
                let Some((account, key, url)) = env.azure_account() else {
                    return Err(not_configured(
                        "set AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY, or AZURE_STORAGE_CONNECTION_STRING",
                    ));
                };
                let mut builder = MicrosoftAzureBuilder::new()
                    .with_account(&account)
                    .with_container_name(&bck.name)
                    .with_retry(retry);
                if let Some(key) = key {
                    builder = builder.with_access_key(key);
                }
                if let Some(url) = url {
                    client = client.with_allow_http(url.starts_with("http://"));
                    builder = builder.with_endpoint(url);
                }
                let az = Arc::new(
                    builder
                        .with_client_options(client)
                        .build()
                        .map_err(invalid)?,
                );
                (az.clone(), az, 5000)
            }
            Provider::Oci | Provider::Ais => {
                return Err(not_configured("this provider is not supported by moss"));
            }
        };
    Ok(Box::new(Cloud {
        bck: bck.clone(),
        store,
        lister,
        max_page,
    }))
}

fn provider_title(provider: Provider) -> &'static str {
    match provider {
        Provider::Aws => "AWS",
        Provider::Gcp => "GCP",
        Provider::Azure => "Azure",
        Provider::Oci => "OCI",
        Provider::Ais => "AIS",
    }
}

impl Cloud {
    fn path(&self, name: &str) -> Result<Path> {
        Path::parse(name).map_err(|e| {
            BackendError::Invalid(format!(
                "object name {name:?} cannot be stored in {}: {e}",
                self.bck.cname()
            ))
        })
    }

    /// Classifies an object_store error; `name` is the object (empty for bucket calls).
    fn error(&self, name: &str, e: object_store::Error) -> BackendError {
        let tag = error_tag(self.bck.provider);
        let cname = if name.is_empty() {
            self.bck.cname()
        } else {
            format!("{}/{name}", self.bck.cname())
        };
        let status = http_status(&e);
        let text = || format!("{tag}[{}: {cname}]", short(&e));
        match (&e, status) {
            (object_store::Error::NotFound { .. }, _) | (_, Some(404)) => {
                if name.is_empty() || bucket_missing(&e) {
                    BackendError::BucketNotFound(no_bucket_text(&self.bck))
                } else {
                    BackendError::NotFound(no_object_text(&self.bck, name))
                }
            }
            (object_store::Error::PermissionDenied { .. }, _)
            | (object_store::Error::Unauthenticated { .. }, _)
            | (_, Some(401 | 403)) => BackendError::Denied(text()),
            (_, Some(429 | 503)) => BackendError::Throttled(text()),
            (object_store::Error::InvalidPath { .. }, _) | (_, Some(400)) => {
                BackendError::Invalid(text())
            }
            _ => BackendError::Unavailable(text()),
        }
    }
}

/// The HTTP status the cloud answered with, if it answered. object_store keeps its retry error
/// private, so the status is read from the error's description (`… status code: 403 Forbidden`,
/// or `status: 403` in its debug form).
fn http_status(e: &object_store::Error) -> Option<u16> {
    let text = format!("{e} {e:?}");
    ["status code: ", "status: "].iter().find_map(|marker| {
        text.match_indices(marker).find_map(|(at, _)| {
            let digits: String = text[at + marker.len()..].chars().take(3).collect();
            digits
                .parse::<u16>()
                .ok()
                .filter(|code| (100..600).contains(code))
        })
    })
}

/// The cloud said the bucket, not the object, is missing.
fn bucket_missing(e: &object_store::Error) -> bool {
    let text = format!("{e:?}");
    [
        "NoSuchBucket",
        "ContainerNotFound",
        "bucket does not exist",
        "Bucket not found",
    ]
    .iter()
    .any(|marker| text.contains(marker))
}

/// The innermost message of an error chain, on one line.
fn short(e: &object_store::Error) -> String {
    let mut source: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = source.source() {
        source = next;
    }
    let text = source.to_string();
    let line = text.lines().next().unwrap_or_default();
    line.chars().take(300).collect()
}

fn attrs_of(meta: &ObjectMeta) -> RemoteAttrs {
    RemoteAttrs {
        size: meta.size,
        etag: meta
            .e_tag
            .as_deref()
            .unwrap_or_default()
            .trim_matches('"')
            .to_string(),
        version: meta
            .version
            .clone()
            .filter(|v| v != "null")
            .unwrap_or_default(),
        last_modified_ns: meta.last_modified.timestamp_nanos_opt().unwrap_or(0).max(0) as u64,
    }
}

impl Backend for Cloud {
    fn bucket(&self) -> &Bck {
        &self.bck
    }

    fn head_bucket(&self) -> BoxFuture<'_, Result<BucketInfo>> {
        Box::pin(async move {
            let opts = PaginatedListOptions {
                max_keys: Some(1),
                ..Default::default()
            };
            self.lister
                .list_paginated(None, opts)
                .await
                .map_err(|e| self.error("", e))?;
            Ok(BucketInfo {
                // S3 keeps buckets unversioned unless told otherwise; GCS generations and Azure
                // ETags always identify a version (AIStore reports the same).
                versioning: self.bck.provider != Provider::Aws,
            })
        })
    }

    fn list_page<'a>(&'a self, req: &'a ListReq) -> BoxFuture<'a, Result<ListPage>> {
        Box::pin(async move {
            let max = match req.max {
                0 => self.max_page,
                n => n.min(self.max_page),
            };
            let opts = PaginatedListOptions {
                max_keys: Some(max),
                page_token: Some(req.token.clone()).filter(|t| !t.is_empty()),
                delimiter: req.no_recursion.then_some("/".into()),
                ..Default::default()
            };
            let prefix = Some(req.prefix.as_str()).filter(|p| !p.is_empty());
            let page = self
                .lister
                .list_paginated(prefix, opts)
                .await
                .map_err(|e| self.error("", e))?;
            let entries = page
                .result
                .objects
                .iter()
                .map(|meta| crate::RemoteEntry {
                    name: meta.location.as_ref().to_string(),
                    attrs: attrs_of(meta),
                })
                .collect();
            let dirs = page
                .result
                .common_prefixes
                .iter()
                .map(|p| format!("{}/", p.as_ref()))
                .collect();
            Ok(ListPage {
                entries,
                dirs,
                next_token: page.page_token.unwrap_or_default(),
            })
        })
    }

    fn head<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<RemoteAttrs>> {
        Box::pin(async move {
            let path = self.path(name)?;
            let meta = self
                .store
                .head(&path)
                .await
                .map_err(|e| self.error(name, e))?;
            Ok(attrs_of(&meta))
        })
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(RemoteAttrs, ByteStream)>> {
        Box::pin(async move {
            let path = self.path(name)?;
            let result = self
                .store
                .get(&path)
                .await
                .map_err(|e| self.error(name, e))?;
            let attrs = attrs_of(&result.meta);
            let tag = error_tag(self.bck.provider);
            let cname = format!("{}/{name}", self.bck.cname());
            let body: ByteStream = result
                .into_stream()
                .map_err(move |e| {
                    BackendError::Unavailable(format!("{tag}[reading {cname}: {}]", short(&e)))
                })
                .boxed();
            Ok((attrs, body))
        })
    }

    fn put<'a>(&'a self, name: &'a str, body: PutBody) -> BoxFuture<'a, Result<RemoteAttrs>> {
        Box::pin(async move {
            let path = self.path(name)?;
            let PutBody { file, size } = body;
            let file = Arc::new(std::sync::Mutex::new(file));
            let read_part = |len: u64| {
                let file = file.clone();
                async move {
                    tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
                        let mut buf = vec![0u8; len as usize];
                        let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
                        file.read_exact(&mut buf)?;
                        Ok(buf)
                    })
                    .await
                    .map_err(std::io::Error::other)
                    .and_then(|r| r)
                    .map_err(|e| BackendError::Unavailable(format!("reading the upload: {e}")))
                }
            };
            if size <= PART {
                let bytes = read_part(size).await?;
                self.store
                    .put(&path, PutPayload::from(bytes))
                    .await
                    .map_err(|e| self.error(name, e))?;
            } else {
                let upload = self
                    .store
                    .put_multipart(&path)
                    .await
                    .map_err(|e| self.error(name, e))?;
                let mut writer =
                    object_store::WriteMultipart::new_with_chunk_size(upload, PART as usize);
                let mut left = size;
                while left > 0 {
                    let len = left.min(PART);
                    writer
                        .wait_for_capacity(PARTS_IN_FLIGHT)
                        .await
                        .map_err(|e| self.error(name, e))?;
                    match read_part(len).await {
                        Ok(bytes) => writer.write(&bytes),
                        Err(e) => {
                            let _ = writer.abort().await;
                            return Err(e);
                        }
                    }
                    left -= len;
                }
                writer.finish().await.map_err(|e| self.error(name, e))?;
            }
            // The upload's own answer lacks size and modification time on some clouds.
            let meta = self
                .store
                .head(&path)
                .await
                .map_err(|e| self.error(name, e))?;
            Ok(attrs_of(&meta))
        })
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let path = self.path(name)?;
            self.store
                .delete(&path)
                .await
                .map_err(|e| self.error(name, e))
        })
    }
}
