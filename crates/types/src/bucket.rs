//! Buckets, providers and namespaces, and the `uname` strings HRW placement hashes.
use std::fmt;

use serde::{Deserialize, Serialize};

/// Storage provider of a bucket (normalized AIStore names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Ais,
    Aws,
    Gcp,
    Azure,
    Oci,
}

impl Provider {
    /// Parses a provider or its URL-scheme alias (`s3`, `gs`, `az`, `oc`); empty means `ais`.
    pub fn parse(value: &str) -> Result<Provider, String> {
        match value.to_ascii_lowercase().as_str() {
            "" | "ais" => Ok(Provider::Ais),
            "aws" | "s3" => Ok(Provider::Aws),
            "gcp" | "gs" => Ok(Provider::Gcp),
            "azure" | "az" => Ok(Provider::Azure),
            "oci" | "oc" => Ok(Provider::Oci),
            _ => Err(format!("invalid provider {value:?}")),
        }
    }

    /// Normalized name, as used in unames and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Ais => "ais",
            Provider::Aws => "aws",
            Provider::Gcp => "gcp",
            Provider::Azure => "azure",
            Provider::Oci => "oci",
        }
    }

    /// URL scheme used in display names (`ais://`, `s3://`, ...).
    pub fn scheme(self) -> &'static str {
        match self {
            Provider::Ais => "ais",
            Provider::Aws => "s3",
            Provider::Gcp => "gs",
            Provider::Azure => "az",
            Provider::Oci => "oc",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A bucket namespace; the default (global) namespace has empty uuid and name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Namespace {
    #[serde(default)]
    pub uuid: String,
    #[serde(default)]
    pub name: String,
}

impl Namespace {
    /// True for the global namespace.
    pub fn is_global(&self) -> bool {
        self.uuid.is_empty() && self.name.is_empty()
    }

    /// Uname form: `@#` for global, else `@<uuid>#<name>`.
    pub fn uname(&self) -> String {
        format!("@{}#{}", self.uuid, self.name)
    }

    /// Parses the uname form (`@uuid#name`); empty means global.
    pub fn parse(value: &str) -> Result<Namespace, String> {
        if value.is_empty() {
            return Ok(Namespace::default());
        }
        let Some(rest) = value.strip_prefix('@') else {
            return Err(format!(
                "invalid namespace {value:?} (expecting @uuid#name)"
            ));
        };
        let Some((uuid, name)) = rest.split_once('#') else {
            return Err(format!(
                "invalid namespace {value:?} (expecting @uuid#name)"
            ));
        };
        let valid = |s: &str| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        if !valid(uuid) || !valid(name) {
            return Err(format!("invalid namespace {value:?}"));
        }
        Ok(Namespace {
            uuid: uuid.to_string(),
            name: name.to_string(),
        })
    }
}

/// A fully specified bucket.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Bck {
    pub name: String,
    pub provider: Provider,
    #[serde(default)]
    pub namespace: Namespace,
}

impl Bck {
    /// An `ais://` bucket in the global namespace.
    pub fn ais(name: &str) -> Bck {
        Bck {
            name: name.to_string(),
            provider: Provider::Ais,
            namespace: Namespace::default(),
        }
    }

    /// `<provider>/<ns>/<bucket>/` — the bucket uname (object unames append the object name).
    pub fn uname_prefix(&self) -> String {
        format!(
            "{}/{}/{}/",
            self.provider.as_str(),
            self.namespace.uname(),
            self.name
        )
    }

    /// Object uname hashed by HRW placement.
    pub fn object_uname(&self, objname: &str) -> String {
        let mut uname = self.uname_prefix();
        uname.push_str(objname);
        uname
    }

    /// Query string naming this bucket's provider and namespace (`provider=ais[&namespace=…]`).
    pub fn query(&self) -> String {
        let mut q = format!("provider={}", self.provider.as_str());
        if !self.namespace.is_global() {
            q.push_str("&namespace=");
            q.push_str(&crate::names::encode_query_value(&self.namespace.uname()));
        }
        q
    }

    /// Display name: `ais://b`, or `ais://@uuid#ns/b` in a named namespace.
    pub fn cname(&self) -> String {
        if self.namespace.is_global() {
            format!("{}://{}", self.provider.scheme(), self.name)
        } else {
            format!(
                "{}://{}/{}",
                self.provider.scheme(),
                self.namespace.uname(),
                self.name
            )
        }
    }

    /// Parses a bucket uname (`ais/@#/b/`, as in `MossIn.uname`).
    pub fn parse_uname(value: &str) -> Result<Bck, String> {
        let mut parts = value.splitn(3, '/');
        let (Some(provider), Some(ns), Some(rest)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("parse-uname {value:?}: invalid format"));
        };
        let Some((name, objname)) = rest.split_once('/') else {
            return Err(format!("parse-uname {value:?}: missing trailing '/'"));
        };
        if !objname.is_empty() {
            return Err(format!("parse-uname {value:?}: not expecting object name"));
        }
        let bck = Bck {
            name: name.to_string(),
            provider: Provider::parse(provider)?,
            namespace: Namespace::parse(ns)?,
        };
        crate::names::validate_bucket_name(&bck.name)?;
        Ok(bck)
    }
}

impl fmt::Display for Bck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.cname())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unames_match_aistore() {
        assert_eq!(
            Bck::ais("bck").object_uname("a/b.jpg"),
            "ais/@#/bck/a/b.jpg"
        );
        let ns = Bck {
            namespace: Namespace::parse("@#ns1").unwrap(),
            ..Bck::ais("bck1")
        };
        assert_eq!(ns.object_uname("obj-0"), "ais/@#ns1/bck1/obj-0");
        assert_eq!(ns.cname(), "ais://@#ns1/bck1");
    }

    #[test]
    fn providers_normalize_aliases() {
        assert_eq!(Provider::parse("s3").unwrap(), Provider::Aws);
        assert_eq!(Provider::parse("gs").unwrap(), Provider::Gcp);
        assert_eq!(Provider::parse("").unwrap(), Provider::Ais);
        assert!(Provider::parse("ftp").is_err());
        assert_eq!(
            Bck {
                provider: Provider::Aws,
                ..Bck::ais("x")
            }
            .cname(),
            "s3://x"
        );
    }

    #[test]
    fn bucket_unames_parse() {
        assert_eq!(
            Bck::parse_uname("ais/@#/mybucket/").unwrap(),
            Bck::ais("mybucket")
        );
        assert!(
            Bck::parse_uname("ais/@#/mybucket/obj")
                .unwrap_err()
                .contains("not expecting")
        );
        assert!(Bck::parse_uname("ais/@#/mybucket").is_err());
        assert!(Bck::parse_uname("ais/@#/bad name/").is_err());
    }
}
