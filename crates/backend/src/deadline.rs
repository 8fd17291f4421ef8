//! A decorator that bounds every cloud call: a control call by [`Timeouts::call`], a GET by the
//! wait for its first byte and then by the longest gap between chunks, an upload by a time that
//! grows with its size. A cloud that stalls becomes [`BackendError::Unavailable`], never a hang.
use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use moss_types::Bck;

use crate::{
    Backend, BackendError, BucketInfo, ByteStream, ListPage, ListReq, PutBody, RemoteAttrs, Result,
    Timeouts,
};

pub struct Deadline {
    inner: Box<dyn Backend>,
    timeouts: Timeouts,
}

impl Deadline {
    pub fn new(inner: Box<dyn Backend>, timeouts: Timeouts) -> Deadline {
        Deadline { inner, timeouts }
    }

    async fn bounded<T>(
        &self,
        what: &str,
        limit: Duration,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(limit, call).await {
            Ok(result) => result,
            Err(_) => Err(BackendError::Unavailable(format!(
                "{what} {}: no answer from the cloud within {limit:?}",
                self.inner.bucket().cname()
            ))),
        }
    }
}

impl Backend for Deadline {
    fn bucket(&self) -> &Bck {
        self.inner.bucket()
    }

    fn head_bucket(&self) -> BoxFuture<'_, Result<BucketInfo>> {
        Box::pin(self.bounded("HEAD", self.timeouts.call, self.inner.head_bucket()))
    }

    fn list_page<'a>(&'a self, req: &'a ListReq) -> BoxFuture<'a, Result<ListPage>> {
        Box::pin(self.bounded("list", self.timeouts.call, self.inner.list_page(req)))
    }

    fn head<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<RemoteAttrs>> {
        Box::pin(self.bounded("HEAD", self.timeouts.call, self.inner.head(name)))
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(RemoteAttrs, ByteStream)>> {
        Box::pin(async move {
            let (attrs, body) = self
                .bounded("GET", self.timeouts.call, self.inner.get(name))
                .await?;
            let stall = self.timeouts.stall;
            let what = format!("GET {}/{name}", self.inner.bucket().cname());
            let body: ByteStream = Box::pin(futures::stream::unfold(Some(body), move |state| {
                let what = what.clone();
                async move {
                    let mut body = state?;
                    match tokio::time::timeout(stall, body.next()).await {
                        Ok(Some(item)) => Some((item, Some(body))),
                        Ok(None) => None,
                        Err(_) => Some((
                            Err(BackendError::Unavailable(format!(
                                "{what}: the cloud sent nothing for {stall:?}"
                            ))),
                            None,
                        )),
                    }
                }
            }));
            Ok((attrs, body))
        })
    }

    fn put<'a>(&'a self, name: &'a str, body: PutBody) -> BoxFuture<'a, Result<RemoteAttrs>> {
        let limit = self.timeouts.call + self.timeouts.stall * (1 + (body.size >> 20) as u32);
        Box::pin(self.bounded("PUT", limit, self.inner.put(name, body)))
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.bounded("DELETE", self.timeouts.call, self.inner.delete(name)))
    }
}
