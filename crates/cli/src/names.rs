//! Parsing of the names users type: `BUCKET`, `BUCKET/OBJECT`, batch entries such as
//! `bucket/shard.tar/member`, and the safety check for names extracted to disk.
use std::path::{Component, Path, PathBuf};

use anyhow::{Result, bail};
use moss_client::split_archpath;
use moss_types::moss::MossIn;
use moss_types::names;

/// The `ais://` scheme, optional everywhere a bucket is named.
const AIS_SCHEME: &str = "ais://";

/// Splits off the scheme: `ais://b` and `b` → (`ais://`, `b`); `s3://b/x` → (`s3://`, `b/x`).
/// Remote schemes (`s3`, `gs`, `az` and their long forms) are kept for the client, which sends
/// them as the bucket's provider; anything else is refused here.
fn split_scheme(text: &str) -> Result<(String, &str)> {
    if let Some(rest) = text.strip_prefix(AIS_SCHEME) {
        return Ok((AIS_SCHEME.to_string(), rest));
    }
    let Some((scheme, rest)) = text.split_once("://") else {
        return Ok((AIS_SCHEME.to_string(), text));
    };
    match moss_types::Provider::parse(scheme) {
        Ok(p) if p != moss_types::Provider::Oci => Ok((format!("{}://", p.scheme()), rest)),
        _ => bail!(
            "unsupported bucket scheme {scheme:?} in {text:?}: expected ais://, s3://, gs:// or az://"
        ),
    }
}

/// A bucket name argument (`b`, `ais://b`, or a remote bucket `s3://b`, `gs://b`, `az://b`), as
/// the bucket's display name with its scheme (`ais://b`), which is also what the client takes.
pub fn bucket(text: &str) -> Result<String> {
    let (scheme, rest) = split_scheme(text)?;
    let name = rest.trim_end_matches('/');
    names::validate_bucket_name(name).map_err(anyhow::Error::msg)?;
    Ok(format!("{scheme}{name}"))
}

/// `BUCKET[/PATH]` → bucket and the (possibly empty) rest.
pub fn bucket_and_path(text: &str) -> Result<(String, String)> {
    let (scheme, bare) = split_scheme(text)?;
    let (bck, path) = bare.split_once('/').unwrap_or((bare, ""));
    Ok((bucket(&format!("{scheme}{bck}"))?, path.to_string()))
}

/// `BUCKET/OBJECT` with a non-empty, valid object name.
pub fn bucket_and_object(text: &str) -> Result<(String, String)> {
    let (bck, objname) = bucket_and_path(text)?;
    if objname.is_empty() {
        bail!("{text:?} names no object: expected BUCKET/OBJECT");
    }
    names::validate_objname(&objname).map_err(anyhow::Error::msg)?;
    Ok((bck, objname))
}

/// One batch entry as typed on the command line or in a `--list` file.
///
/// - `ais://bucket/object[/member]` always names its bucket;
/// - otherwise, with a default bucket, the whole text is `object[/member]` in that bucket;
/// - without one, the first component is the bucket: `bucket/object[/member]`.
///
/// The object ends at the first component with a shard extension (`.tar`, `.tgz`, `.tar.gz`,
/// `.zip`, `.tar.lz4`) that is followed by `/`; the rest is the archived file's path.
pub fn batch_entry(text: &str, has_default_bucket: bool) -> Result<MossIn> {
    let text = text.trim();
    let explicit = text.contains("://");
    let (scheme, bare) = split_scheme(text)?;
    let (bck, path) = if explicit || !has_default_bucket {
        let Some((bck, path)) = bare.split_once('/') else {
            bail!("entry {text:?}: expected BUCKET/OBJECT (or give --default-bucket)");
        };
        (bucket(bck)?, path)
    } else {
        (String::new(), bare)
    };
    let provider = if explicit {
        let name = scheme.trim_end_matches("://");
        let provider = moss_types::Provider::parse(name).map_err(anyhow::Error::msg)?;
        provider.as_str().to_string()
    } else {
        String::new()
    };
    let bck = match bck.split_once("://") {
        Some((_, name)) => name.to_string(),
        None => bck,
    };
    if path.is_empty() {
        bail!("entry {text:?} names no object");
    }
    let (objname, archpath) = split_archpath(path);
    Ok(MossIn {
        objname: objname.to_string(),
        bucket: bck,
        provider,
        archpath: archpath.unwrap_or_default().to_string(),
        ..MossIn::default()
    })
}

/// Entries of a `--list` file: one per line; blank lines and `#` comments are skipped.
pub fn list_file_entries(text: &str, has_default_bucket: bool) -> Result<Vec<MossIn>> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let line = line.trim();
            !line.is_empty() && !line.starts_with('#')
        })
        .map(|(i, line)| {
            batch_entry(line, has_default_bucket).map_err(|e| e.context(format!("line {}", i + 1)))
        })
        .collect()
}

/// Object name for a file uploaded under `prefix`: the prefix is a virtual directory, so
/// `pre` + `a/b.txt` → `pre/a/b.txt`.
pub fn join_object_name(prefix: &str, relative: &str) -> String {
    if prefix.is_empty() {
        relative.to_string()
    } else if prefix.ends_with('/') {
        format!("{prefix}{relative}")
    } else {
        format!("{prefix}/{relative}")
    }
}

/// Where an archive entry named `name` goes under `root`, or an error for any name that could
/// land elsewhere (absolute, `..`, `.`, empty components, NUL, backslashes).
pub fn extraction_path(root: &Path, name: &str) -> Result<PathBuf> {
    let unsafe_name = name.is_empty()
        || name.starts_with('/')
        || name.contains('\0')
        || name.contains('\\')
        || name
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if unsafe_name {
        bail!("refusing to extract entry {name:?}: unsafe path");
    }
    let relative = Path::new(name);
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        bail!("refusing to extract entry {name:?}: unsafe path");
    }
    Ok(root.join(relative))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(text: &str, default: bool) -> (String, String, String) {
        let e = batch_entry(text, default).unwrap();
        (e.bucket, e.objname, e.archpath)
    }

    fn t(b: &str, o: &str, a: &str) -> (String, String, String) {
        (b.into(), o.into(), a.into())
    }

    #[test]
    fn list_lines_split_into_bucket_object_and_archpath() {
        assert_eq!(entry("b/o.txt", false), t("b", "o.txt", ""));
        assert_eq!(entry("b/dir/o.txt", false), t("b", "dir/o.txt", ""));
        assert_eq!(
            entry("b/shards/s-1.tar/img/1.jpg", false),
            t("b", "shards/s-1.tar", "img/1.jpg")
        );
        assert_eq!(entry("b/s.tgz/x", false), t("b", "s.tgz", "x"));
        assert_eq!(entry("b/s.tar.gz/x/y", false), t("b", "s.tar.gz", "x/y"));
        assert_eq!(entry("b/s.zip/x", false), t("b", "s.zip", "x"));
        assert_eq!(entry("b/s.tar.lz4/x", false), t("b", "s.tar.lz4", "x"));
        assert_eq!(entry("b/s.tar", false), t("b", "s.tar", ""));
        assert_eq!(entry("  ais://b/o  ", false), t("b", "o", ""));
        // With a default bucket the text is the object, unless a scheme names the bucket.
        assert_eq!(entry("dir/o.txt", true), t("", "dir/o.txt", ""));
        assert_eq!(entry("s.tar/m", true), t("", "s.tar", "m"));
        assert_eq!(entry("ais://other/o", true), t("other", "o", ""));
    }

    #[test]
    fn bad_entries_are_rejected() {
        assert!(batch_entry("justobject", false).is_err());
        assert!(batch_entry("b/", false).is_err());
        assert!(batch_entry("ftp://b/o", false).is_err());
        assert!(batch_entry("bad bucket/o", false).is_err());
    }

    #[test]
    fn list_files_skip_blanks_and_comments() {
        let text = "# header\nb/a\n\n  b/s.tar/m  \r\n";
        let entries = list_file_entries(text, false).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].archpath, "m");
        let err = list_file_entries("b/a\nnoslash\n", false).unwrap_err();
        assert!(
            format!("{err:#}").starts_with("line 2: entry \"noslash\""),
            "{err:#}"
        );
    }

    #[test]
    fn bucket_arguments() {
        assert_eq!(bucket("ais://b").unwrap(), "ais://b");
        assert_eq!(bucket("b/").unwrap(), "ais://b");
        assert_eq!(bucket("gs://b").unwrap(), "gs://b");
        assert_eq!(bucket("aws://b/").unwrap(), "s3://b");
        assert!(bucket("oc://b").is_err());
        assert!(bucket("ftp://b").is_err());
        assert_eq!(
            bucket_and_path("s3://b/pre/x").unwrap(),
            ("s3://b".to_string(), "pre/x".to_string())
        );
        assert!(bucket("").is_err());
        assert_eq!(
            bucket_and_path("b/pre/x").unwrap(),
            ("ais://b".to_string(), "pre/x".to_string())
        );
        assert_eq!(
            bucket_and_path("ais://b").unwrap(),
            ("ais://b".to_string(), String::new())
        );
        assert!(bucket_and_object("b").is_err());
        assert!(bucket_and_object("b/../x").is_err());
    }

    #[test]
    fn object_names_under_prefixes() {
        assert_eq!(join_object_name("", "a/b"), "a/b");
        assert_eq!(join_object_name("pre", "a/b"), "pre/a/b");
        assert_eq!(join_object_name("pre/", "a"), "pre/a");
    }

    #[test]
    fn extraction_paths_stay_inside() {
        let root = Path::new("/out");
        assert_eq!(
            extraction_path(root, "b/dir/o.txt").unwrap(),
            Path::new("/out/b/dir/o.txt")
        );
        for bad in [
            "",
            "/etc/passwd",
            "b/../../x",
            "..",
            "./a",
            "a//b",
            "a/",
            "a\0b",
            "a\\b",
        ] {
            assert!(extraction_path(root, bad).is_err(), "{bad:?}");
        }
    }
}
