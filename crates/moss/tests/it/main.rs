//! Integration tests: real clusters (in-process and multi-process) over loopback HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod authn;
mod batch;
mod cluster;
mod faults;
mod hardening;
mod jobs;
mod mirror;
mod object_api;
mod objects;
mod redundancy;
mod remote;
mod shards;
mod tls;
