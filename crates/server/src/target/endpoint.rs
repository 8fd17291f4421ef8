//! The target's API, parsed from (method, path) into one enum that handlers match exhaustively.
use axum::http::Method;

use crate::http::{ApiError, decode_component, v1_segments};

/// Every call a target serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetEndpoint {
    Health,
    Metrics,
    /// `GET /v1/daemon?what=…`
    Daemon,
    /// `PUT /v1/metasync`: new cluster metadata from the proxy.
    Metasync,
    /// Object GET/PUT/HEAD/DELETE (redirected by the proxy, or direct reads).
    Object {
        method: ObjMethod,
        bucket: String,
        objname: String,
    },
    /// `GET|POST /v1/ml/moss[/<bucket>]`: this target is the designated target.
    Moss {
        bucket: Option<String>,
    },
    /// `POST /v1/internal/moss/send`: stream this target's share of a batch to the DT.
    MossSend,
    /// `GET /v1/internal/getbatch`: GetBatch statistics of this node.
    GetBatchStats,
    /// `GET /v1/internal/jobs`: job snapshots.
    JobQuery,
    /// `POST /v1/internal/jobs`: start this target's share of a job.
    JobStart,
    /// `POST /v1/internal/jobs/stop`
    JobStop,
    /// `GET /v1/internal/list/<b>`: this target's objects of a bucket.
    List {
        bucket: String,
    },
    /// `POST /v1/internal/list/<b>` with a JSON list of names: which of them this target holds,
    /// with their local metadata (remote listings mark cached objects with it).
    Present {
        bucket: String,
    },
    /// `PUT /v1/internal/bulk/<b>`: many objects in one body (copy jobs).
    BulkPut {
        bucket: String,
    },
    /// `PUT|GET|HEAD|DELETE /v1/internal/ec/<b>/<o>`: this target's redundancy piece of an
    /// object (`ec.*`).
    Piece {
        method: ObjMethod,
        bucket: String,
        objname: String,
    },
    /// `HEAD|GET|PUT /v1/internal/objects/<b>/<o>`: local-only access between targets (GFN, rebalance).
    Internal {
        method: ObjMethod,
        bucket: String,
        objname: String,
    },
}

/// The object verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjMethod {
    Get,
    Head,
    Put,
    Delete,
    /// Multipart create and complete.
    Post,
    /// Custom properties.
    Patch,
}

impl TargetEndpoint {
    pub fn parse(method: &Method, path: &str) -> Result<TargetEndpoint, ApiError> {
        if path == "/metrics" {
            return only(method, Method::GET, TargetEndpoint::Metrics);
        }
        let segments = v1_segments(path).ok_or_else(|| invalid(path))?;
        match segments.as_slice() {
            ["health"] => Ok(TargetEndpoint::Health),
            ["daemon"] => only(method, Method::GET, TargetEndpoint::Daemon),
            ["metasync"] => only(method, Method::PUT, TargetEndpoint::Metasync),
            ["objects", bucket, rest @ ..] if !rest.is_empty() => Ok(TargetEndpoint::Object {
                method: obj_method(method)?,
                bucket: decode_component(bucket)?,
                objname: decode_component(&rest.join("/"))?,
            }),
            ["ml", "moss"] => moss(method, None),
            ["ml", "moss", bucket] => moss(method, Some(decode_component(bucket)?)),
            ["internal", "moss", "send"] => only(method, Method::POST, TargetEndpoint::MossSend),
            ["internal", "getbatch"] => only(method, Method::GET, TargetEndpoint::GetBatchStats),
            ["internal", "jobs"] => match *method {
                Method::GET => Ok(TargetEndpoint::JobQuery),
                Method::POST => Ok(TargetEndpoint::JobStart),
                _ => Err(ApiError::method_not_allowed(
                    method,
                    &[Method::GET, Method::POST],
                )),
            },
            ["internal", "jobs", "stop"] => only(method, Method::POST, TargetEndpoint::JobStop),
            ["internal", "bulk", bucket] => only(
                method,
                Method::PUT,
                TargetEndpoint::BulkPut {
                    bucket: decode_component(bucket)?,
                },
            ),
            ["internal", "list", bucket] if *method == Method::POST => {
                Ok(TargetEndpoint::Present {
                    bucket: decode_component(bucket)?,
                })
            }
            ["internal", "list", bucket] => only(
                method,
                Method::GET,
                TargetEndpoint::List {
                    bucket: decode_component(bucket)?,
                },
            ),
            ["internal", "ec", bucket, rest @ ..] if !rest.is_empty() => {
                Ok(TargetEndpoint::Piece {
                    method: obj_method(method)?,
                    bucket: decode_component(bucket)?,
                    objname: decode_component(&rest.join("/"))?,
                })
            }
            ["internal", "objects", bucket, rest @ ..] if !rest.is_empty() => {
                Ok(TargetEndpoint::Internal {
                    method: obj_method(method)?,
                    bucket: decode_component(bucket)?,
                    objname: decode_component(&rest.join("/"))?,
                })
            }
            _ => Err(invalid(path)),
        }
    }
}

fn moss(method: &Method, bucket: Option<String>) -> Result<TargetEndpoint, ApiError> {
    if *method == Method::GET || *method == Method::POST {
        Ok(TargetEndpoint::Moss { bucket })
    } else {
        Err(ApiError::method_not_allowed(
            method,
            &[Method::GET, Method::POST],
        ))
    }
}

fn obj_method(method: &Method) -> Result<ObjMethod, ApiError> {
    match *method {
        Method::GET => Ok(ObjMethod::Get),
        Method::HEAD => Ok(ObjMethod::Head),
        Method::PUT => Ok(ObjMethod::Put),
        Method::DELETE => Ok(ObjMethod::Delete),
        Method::POST => Ok(ObjMethod::Post),
        Method::PATCH => Ok(ObjMethod::Patch),
        _ => Err(ApiError::method_not_allowed(
            method,
            &[
                Method::GET,
                Method::HEAD,
                Method::PUT,
                Method::DELETE,
                Method::POST,
                Method::PATCH,
            ],
        )),
    }
}

fn only(
    method: &Method,
    allowed: Method,
    endpoint: TargetEndpoint,
) -> Result<TargetEndpoint, ApiError> {
    if *method == allowed {
        Ok(endpoint)
    } else {
        Err(ApiError::method_not_allowed(method, &[allowed]))
    }
}

fn invalid(path: &str) -> ApiError {
    ApiError::bad_request(format!("invalid request URI {path:?}"))
}
