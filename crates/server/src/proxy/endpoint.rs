//! The proxy's API, parsed from (method, path) into one enum that handlers match exhaustively.
use axum::http::Method;

use crate::http::{ApiError, decode_component, v1_segments};

/// Every call the proxy serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyEndpoint {
    Health,
    Metrics,
    /// `GET /v1/daemon?what=…`
    Daemon,
    /// `GET /v1/reverse/daemon?what=…` with `Ais-Node-Id`: that node's `/v1/daemon` answer.
    ReverseDaemon,
    /// `GET /v1/cluster?what=…`
    ClusterGet,
    /// `PUT /v1/cluster/set-config?k=v…`
    SetConfig,
    /// `PUT /v1/cluster` with an action message.
    ClusterAction,
    /// `POST /v1/cluster/autoreg`: a target joins.
    Register,
    /// `POST /v1/cluster/keepalive/<id>`
    Keepalive {
        id: String,
    },
    /// `GET /v1/buckets`
    ListBuckets,
    /// `GET /v1/buckets/<b>`: list objects (or buckets, for a null action value).
    BucketGet {
        bucket: String,
    },
    /// `HEAD /v1/buckets/<b>[/<prefix>]`: props, or (with `bsumm_remote`) bucket info.
    BucketHead {
        bucket: String,
        prefix: Option<String>,
    },
    /// `PUT /v1/buckets/<b>`: archive.
    BucketPut {
        bucket: String,
    },
    /// `POST /v1/buckets/<b>`: create-bck, copy and rename actions.
    BucketPost {
        bucket: String,
    },
    /// `DELETE /v1/buckets/<b>`: destroy-bck, delete-listrange.
    BucketDelete {
        bucket: String,
    },
    /// `PATCH /v1/buckets/<b>`: set-bprops.
    BucketPatch {
        bucket: String,
    },
    /// `POST /v1/objects/<b>`: promote files from a target's file system into the bucket.
    Promote {
        bucket: String,
    },
    /// Any object call: redirected to the owner.
    Object {
        bucket: String,
        objname: String,
    },
    /// `GET|POST /v1/ml/moss[/<bucket>]`
    Moss {
        bucket: Option<String>,
    },
    /// `DELETE /v1/tokens`: AuthN pushes revoked tokens.
    Tokens,
}

impl ProxyEndpoint {
    pub fn parse(method: &Method, path: &str) -> Result<ProxyEndpoint, ApiError> {
        if path == "/metrics" {
            return expect(method, &[Method::GET], ProxyEndpoint::Metrics);
        }
        let segments = v1_segments(path).ok_or_else(|| invalid(path))?;
        let endpoint = match segments.as_slice() {
            ["health"] => expect(method, &[Method::GET, Method::HEAD], ProxyEndpoint::Health)?,
            ["daemon"] => expect(method, &[Method::GET], ProxyEndpoint::Daemon)?,
            ["reverse", "daemon"] => expect(method, &[Method::GET], ProxyEndpoint::ReverseDaemon)?,
            ["cluster"] if *method == Method::GET => ProxyEndpoint::ClusterGet,
            ["cluster"] => match expect(method, &[Method::PUT], ProxyEndpoint::ClusterAction) {
                Ok(endpoint) => endpoint,
                Err(_) => {
                    return Err(ApiError::method_not_allowed(
                        method,
                        &[Method::GET, Method::PUT],
                    ));
                }
            },
            ["cluster", "set-config"] => expect(method, &[Method::PUT], ProxyEndpoint::SetConfig)?,
            ["cluster", "autoreg"] => expect(method, &[Method::POST], ProxyEndpoint::Register)?,
            ["cluster", "keepalive", id] => expect(
                method,
                &[Method::POST],
                ProxyEndpoint::Keepalive { id: id.to_string() },
            )?,
            ["buckets"] | ["buckets", ""] => {
                expect(method, &[Method::GET], ProxyEndpoint::ListBuckets)?
            }
            ["buckets", bucket] => {
                let bucket = decode_component(bucket)?;
                match *method {
                    Method::GET => ProxyEndpoint::BucketGet { bucket },
                    Method::HEAD => ProxyEndpoint::BucketHead {
                        bucket,
                        prefix: None,
                    },
                    Method::POST => ProxyEndpoint::BucketPost { bucket },
                    Method::PUT => ProxyEndpoint::BucketPut { bucket },
                    Method::DELETE => ProxyEndpoint::BucketDelete { bucket },
                    Method::PATCH => ProxyEndpoint::BucketPatch { bucket },
                    _ => {
                        return Err(ApiError::method_not_allowed(
                            method,
                            &[
                                Method::GET,
                                Method::HEAD,
                                Method::POST,
                                Method::PUT,
                                Method::DELETE,
                                Method::PATCH,
                            ],
                        ));
                    }
                }
            }
            ["buckets", bucket, rest @ ..] if *method == Method::HEAD => {
                ProxyEndpoint::BucketHead {
                    bucket: decode_component(bucket)?,
                    prefix: Some(decode_component(&rest.join("/"))?),
                }
            }
            ["objects", bucket] if !bucket.is_empty() => expect(
                method,
                &[Method::POST],
                ProxyEndpoint::Promote {
                    bucket: decode_component(bucket)?,
                },
            )?,
            ["objects", bucket, rest @ ..] if !rest.is_empty() => ProxyEndpoint::Object {
                bucket: decode_component(bucket)?,
                objname: decode_component(&rest.join("/"))?,
            },
            ["tokens"] => expect(method, &[Method::DELETE], ProxyEndpoint::Tokens)?,
            ["ml", "moss"] => expect(
                method,
                &[Method::GET, Method::POST],
                ProxyEndpoint::Moss { bucket: None },
            )?,
            ["ml", "moss", bucket] => expect(
                method,
                &[Method::GET, Method::POST],
                ProxyEndpoint::Moss {
                    bucket: Some(decode_component(bucket)?),
                },
            )?,
            _ => return Err(invalid(path)),
        };
        Ok(endpoint)
    }
}

fn invalid(path: &str) -> ApiError {
    ApiError::bad_request(format!("invalid request URI {path:?}"))
}

fn expect(
    method: &Method,
    allowed: &[Method],
    endpoint: ProxyEndpoint,
) -> Result<ProxyEndpoint, ApiError> {
    if allowed.contains(method) {
        Ok(endpoint)
    } else {
        Err(ApiError::method_not_allowed(method, allowed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse() {
        let p = |m: Method, path: &str| ProxyEndpoint::parse(&m, path);
        assert_eq!(
            p(Method::GET, "/v1/objects/b/dir/a%20b.txt").unwrap(),
            ProxyEndpoint::Object {
                bucket: "b".into(),
                objname: "dir/a b.txt".into()
            }
        );
        assert_eq!(
            p(Method::POST, "/v1/ml/moss").unwrap(),
            ProxyEndpoint::Moss { bucket: None }
        );
        assert_eq!(
            p(Method::GET, "/v1/ml/moss/b").unwrap(),
            ProxyEndpoint::Moss {
                bucket: Some("b".into())
            }
        );
        let refused = p(Method::PUT, "/v1/ml/moss/b").unwrap_err();
        assert_eq!(refused.status, 405);
        assert_eq!(
            refused.headers,
            [(
                axum::http::header::ALLOW,
                axum::http::HeaderValue::from_static("GET, POST")
            )]
        );
        assert_eq!(p(Method::GET, "/v1/ml/moss/a/b").unwrap_err().status, 400);
        // The bucket alone: only promote (POST).
        assert_eq!(p(Method::GET, "/v1/objects/b").unwrap_err().status, 405);
        assert_eq!(
            p(Method::POST, "/v1/objects/b").unwrap(),
            ProxyEndpoint::Promote { bucket: "b".into() }
        );
        assert_eq!(p(Method::POST, "/v1/objects/").unwrap_err().status, 400);
        assert_eq!(p(Method::GET, "/nope").unwrap_err().status, 400);
        assert_eq!(
            p(Method::HEAD, "/v1/buckets/b").unwrap(),
            ProxyEndpoint::BucketHead {
                bucket: "b".into(),
                prefix: None
            }
        );
    }
}
