//! Wire types of moss: everything that crosses the network between the SDK, the proxy and the
//! targets, plus the validation rules for names. No I/O and no async here.

pub mod bucket;
pub mod config;
pub mod error;
pub mod fsio;
pub mod headers;
pub mod jobs;
pub mod lso;
pub mod moss;
pub mod names;
pub mod smap;
pub mod template;
pub mod units;

pub use bucket::{Bck, Namespace, Provider};
pub use error::ErrorBody;
