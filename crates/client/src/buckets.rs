//! Bucket calls and object listing.
use futures::{Stream, TryStreamExt, stream};
use moss_types::Bck;
use moss_types::lso::{ActMsg, LS_ARCH_DIR, LsoEntry, LsoMsg, LsoRes};
use reqwest::{Method, StatusCode};

use crate::Client;
use crate::error::{Error, Result};
use crate::http::{Call, error_from_response};

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Only names starting with this.
    pub prefix: String,
    /// Entries per page; 0 = the server's maximum.
    pub page_size: u64,
    /// Properties to return (`name,size` when empty).
    pub props: String,
    /// Also list the files inside shards, as `<shard>/<file>` (list flag `arch_dir`).
    pub archive: bool,
}

impl Client {
    /// Creates an `ais://` bucket (409 if it exists).
    pub async fn create_bucket(&self, bucket: &str) -> Result<()> {
        let call =
            Call::new(Method::POST, self.bucket_url(bucket, &[])).json(&action("create-bck"))?;
        self.unit(call).await
    }

    /// Destroys a bucket and everything in it (404 if it does not exist).
    pub async fn destroy_bucket(&self, bucket: &str) -> Result<()> {
        let call =
            Call::new(Method::DELETE, self.bucket_url(bucket, &[])).json(&action("destroy-bck"))?;
        self.unit(call).await
    }

    /// All `ais://` buckets.
    pub async fn list_buckets(&self) -> Result<Vec<Bck>> {
        let call = Call::new(Method::GET, self.url("buckets", &[("provider", "ais")]))
            .json(&action("list"))?;
        self.json(call).await
    }

    /// True if the bucket exists (`HEAD /v1/buckets/<b>`).
    pub async fn bucket_exists(&self, bucket: &str) -> Result<bool> {
        let call = Call::new(Method::HEAD, self.bucket_url(bucket, &[]));
        let response = self.send_following(call).await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(error_from_response(response).await),
        }
    }

    /// The bucket's properties (`HEAD /v1/buckets/<b>`, header `Ais-Bucket-Props`).
    pub async fn bucket_props(&self, bucket: &str) -> Result<serde_json::Value> {
        let call = Call::new(Method::HEAD, self.bucket_url(bucket, &[]));
        let what = call.describe();
        let response = self.execute(call).await?;
        let props = response
            .headers()
            .get(moss_types::headers::BUCKET_PROPS)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::decode(what.clone(), "no bucket props in the answer"))?;
        serde_json::from_str(props).map_err(|e| Error::decode(what, e))
    }

    /// Changes bucket properties (`set-bprops`): `value` holds the sections and keys to change,
    /// e.g. `{"ec": {"enabled": true}}`. Returns the id of the job the change started, if any
    /// (turning EC on for a bucket with data encodes it).
    pub async fn set_bucket_props(&self, bucket: &str, value: serde_json::Value) -> Result<String> {
        let msg = ActMsg {
            action: "set-bprops".to_string(),
            name: String::new(),
            value,
        };
        let call = Call::new(Method::PATCH, self.bucket_url(bucket, &[])).json(&msg)?;
        let what = call.describe();
        let response = self.execute(call).await?;
        response.text().await.map_err(|e| Error::transport(what, e))
    }

    /// One page of a listing. Pass back `uuid` and `continuation_token` of the previous page.
    pub async fn list_objects_page(&self, bucket: &str, msg: &LsoMsg) -> Result<LsoRes> {
        let value = serde_json::to_value(msg).map_err(|e| Error::InvalidRequest(e.to_string()))?;
        let body = ActMsg {
            action: "list".to_string(),
            name: String::new(),
            value,
        };
        let call = Call::new(Method::GET, self.bucket_url(bucket, &[])).json(&body)?;
        self.json(call).await
    }

    /// Every page of a listing, in order, until the server's continuation token is empty.
    pub fn list_pages(
        &self,
        bucket: &str,
        options: ListOptions,
    ) -> impl Stream<Item = Result<LsoRes>> + Send + 'static {
        let client = self.clone();
        let bucket = bucket.to_string();
        let first = LsoMsg {
            prefix: options.prefix,
            pagesize: options.page_size,
            props: if options.props.is_empty() {
                "name,size".to_string()
            } else {
                options.props
            },
            flags: if options.archive { LS_ARCH_DIR } else { 0 },
            ..LsoMsg::default()
        };
        stream::try_unfold(Some(first), move |next| {
            let client = client.clone();
            let bucket = bucket.clone();
            async move {
                let Some(mut msg) = next else {
                    return Ok(None);
                };
                let page = client.list_objects_page(&bucket, &msg).await?;
                let following = if page.continuation_token.is_empty() {
                    None
                } else if page.continuation_token == msg.continuation_token {
                    return Err(Error::decode(
                        format!("list objects in ais://{bucket}"),
                        "server repeated the continuation token",
                    ));
                } else {
                    msg.uuid = page.uuid.clone();
                    msg.continuation_token = page.continuation_token.clone();
                    Some(msg)
                };
                Ok(Some((page, following)))
            }
        })
    }

    /// Every object of a listing, page after page.
    pub fn list_objects(
        &self,
        bucket: &str,
        options: ListOptions,
    ) -> impl Stream<Item = Result<LsoEntry>> + Send + 'static {
        self.list_pages(bucket, options)
            .map_ok(|page| stream::iter(page.entries.into_iter().map(Ok)))
            .try_flatten()
    }

    /// Collects a whole listing.
    pub async fn list_all_objects(&self, bucket: &str, prefix: &str) -> Result<Vec<LsoEntry>> {
        let options = ListOptions {
            prefix: prefix.to_string(),
            ..ListOptions::default()
        };
        self.list_objects(bucket, options).try_collect().await
    }
}

fn action(name: &str) -> ActMsg {
    ActMsg {
        action: name.to_string(),
        name: String::new(),
        value: serde_json::Value::Null,
    }
}
