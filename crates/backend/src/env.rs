//! Credentials and endpoints, taken the way each cloud's own tools take them, plus the names
//! AIStore reads (`S3_ENDPOINT`, `AIS_AZURE_URL`, `AZURE_STORAGE_ACCOUNT`/`AZURE_STORAGE_KEY`).
use std::collections::BTreeMap;

/// The cloud-related environment of a node, read once at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloudEnv {
    vars: BTreeMap<String, String>,
}

/// Every variable [`CloudEnv`] looks at.
const NAMES: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT",
    "S3_ENDPOINT",
    "AWS_PROFILE",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_SERVICE_ACCOUNT",
    "STORAGE_EMULATOR_HOST",
    "AZURE_STORAGE_ACCOUNT",
    "AZURE_STORAGE_ACCOUNT_NAME",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AIS_AZURE_URL",
    "AZURITE_BLOB_STORAGE_URL",
    "AZURE_STORAGE_USE_EMULATOR",
];

impl CloudEnv {
    pub fn from_process() -> CloudEnv {
        CloudEnv::from_vars(
            NAMES
                .iter()
                .filter_map(|name| std::env::var(name).ok().map(|v| (name.to_string(), v))),
        )
    }

    /// From explicit pairs (tests, embedded nodes); empty values count as unset.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> CloudEnv {
        CloudEnv {
            vars: vars.into_iter().filter(|(_, v)| !v.is_empty()).collect(),
        }
    }

    /// This environment with `name` set to `value`.
    pub fn with(mut self, name: &str, value: &str) -> CloudEnv {
        self.vars.insert(name.to_string(), value.to_string());
        self
    }

    /// This environment plus `other`'s variables (which win).
    pub fn merged(mut self, other: &CloudEnv) -> CloudEnv {
        self.vars
            .extend(other.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        self
    }

    /// The first of `names` that is set.
    pub fn get(&self, names: &[&str]) -> Option<&str> {
        names
            .iter()
            .find_map(|name| self.vars.get(*name).map(String::as_str))
    }

    pub fn aws_endpoint(&self) -> Option<&str> {
        self.get(&[
            "AWS_ENDPOINT_URL_S3",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT",
            "S3_ENDPOINT",
        ])
    }

    pub fn aws_region(&self) -> &str {
        self.get(&["AWS_REGION", "AWS_DEFAULT_REGION"])
            .unwrap_or("us-east-1")
    }

    /// Azure account and key: from the connection string, else the separate variables.
    pub fn azure_account(&self) -> Option<(String, Option<String>, Option<String>)> {
        if let Some(conn) = self.get(&["AZURE_STORAGE_CONNECTION_STRING"]) {
            let field = |key: &str| {
                conn.split(';').find_map(|part| {
                    let (k, v) = part.split_once('=')?;
                    (k.trim().eq_ignore_ascii_case(key)).then(|| v.trim().to_string())
                })
            };
            if let Some(account) = field("AccountName") {
                return Some((account, field("AccountKey"), field("BlobEndpoint")));
            }
        }
        let account = self.get(&["AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_ACCOUNT_NAME"])?;
        let key = self.get(&["AZURE_STORAGE_KEY", "AZURE_STORAGE_ACCOUNT_KEY"]);
        let emulator = self
            .get(&["AZURE_STORAGE_USE_EMULATOR"])
            .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        let url = match self.get(&["AIS_AZURE_URL"]) {
            Some(u) if u.starts_with("http") => Some(u.to_string()),
            Some(u) => Some(format!("https://{account}.{u}")),
            // Azurite's URL names the account in the path.
            None if emulator => Some(format!(
                "{}/{account}",
                self.get(&["AZURITE_BLOB_STORAGE_URL"])
                    .unwrap_or("http://127.0.0.1:10000")
                    .trim_end_matches('/')
            )),
            None => None,
        };
        Some((account.to_string(), key.map(str::to_string), url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> CloudEnv {
        CloudEnv::from_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn azure_connection_string_wins_over_separate_variables() {
        let e = env(&[
            (
                "AZURE_STORAGE_CONNECTION_STRING",
                "DefaultEndpointsProtocol=http;AccountName=dev;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/dev;",
            ),
            ("AZURE_STORAGE_ACCOUNT", "other"),
        ]);
        assert_eq!(
            e.azure_account(),
            Some((
                "dev".into(),
                Some("a2V5".into()),
                Some("http://127.0.0.1:10000/dev".into())
            ))
        );
    }

    #[test]
    fn ais_azure_url_without_scheme_is_a_host_suffix() {
        let e = env(&[
            ("AZURE_STORAGE_ACCOUNT", "acct"),
            ("AIS_AZURE_URL", "blob.core.example"),
        ]);
        assert_eq!(
            e.azure_account().and_then(|a| a.2),
            Some("https://acct.blob.core.example".into())
        );
    }

    #[test]
    fn endpoints_and_region_follow_the_aws_tools() {
        let e = env(&[
            ("S3_ENDPOINT", "http://a"),
            ("AWS_ENDPOINT_URL", "http://b"),
        ]);
        assert_eq!(e.aws_endpoint(), Some("http://b"));
        assert_eq!(e.aws_region(), "us-east-1");
        assert_eq!(
            env(&[("AWS_REGION", "eu-west-1")]).aws_region(),
            "eu-west-1"
        );
    }
}
