//! Validation of bucket names, object names and archive paths. Everything a client sends is
//! checked here before it gets near a file system path.

/// Characters escaped in object names placed in URL paths (everything but unreserved and `/`).
const PATH_ESCAPES: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes an object name for a URL path, keeping `/`.
pub fn encode_path(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, PATH_ESCAPES).to_string()
}

/// Percent-encodes a query-parameter value (`/` included).
pub fn encode_query_value(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Longest accepted object name, in bytes.
pub const MAX_OBJNAME_LEN: usize = 1024;
/// Longest accepted path component (a file-system limit on every common Linux FS).
pub const MAX_COMPONENT_LEN: usize = 255;
/// Longest accepted bucket name.
pub const MAX_BUCKET_LEN: usize = 64;

/// Bucket names: 1–64 of `[A-Za-z0-9._-]`, not starting with `.` (reserved for system buckets).
pub fn validate_bucket_name(name: &str) -> Result<(), String> {
    let charset_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if name.is_empty() || name.len() > MAX_BUCKET_LEN || !charset_ok || name.starts_with('.') {
        return Err(format!(
            "bucket name {name:?} is invalid: must be 1 to {MAX_BUCKET_LEN} characters of letters, \
             digits, '-', '_' and '.', not starting with '.'"
        ));
    }
    Ok(())
}

/// Object names: non-empty UTF-8 relative paths that cannot escape the bucket directory.
pub fn validate_objname(name: &str) -> Result<(), String> {
    check_path(name, false).map_err(|why| format!("invalid object name {name:?}: {why}"))
}

/// Archive paths (`archpath`): like object names, but one leading `/` is allowed.
pub fn validate_archpath(archpath: &str, objname: &str) -> Result<(), String> {
    check_path(archpath, true)
        .map_err(|why| format!("invalid archpath {archpath:?} (oname: {objname:?}): {why}"))
}

fn check_path(name: &str, allow_leading_slash: bool) -> Result<(), &'static str> {
    let relative = if allow_leading_slash {
        name.strip_prefix('/').unwrap_or(name)
    } else {
        name
    };
    if relative.is_empty() {
        return Err("empty");
    }
    if name.len() > MAX_OBJNAME_LEN {
        return Err("too long");
    }
    if name.contains('\0') {
        return Err("contains NUL");
    }
    if relative.starts_with('/') {
        return Err("absolute path");
    }
    if relative.starts_with("~/") {
        return Err("starts with '~/'");
    }
    if relative.ends_with('/') {
        return Err("trailing '/'");
    }
    for component in relative.split('/') {
        match component {
            "" => return Err("empty path component"),
            "." | ".." => return Err("'.' or '..' path component"),
            c if c.len() > MAX_COMPONENT_LEN => return Err("path component too long"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names() {
        for ok in [
            "a",
            "dir/a b.txt",
            "ünï/cödé",
            "a.b/c..d",
            "...",
            "x/.hidden",
        ] {
            assert!(validate_objname(ok).is_ok(), "{ok}");
        }
        let long = "x".repeat(256);
        for bad in [
            "", "/abs", "a/../b", "..", "./x", "a/.", "a//b", "a/", "~/x", "a\0b", &long,
        ] {
            assert!(validate_objname(bad).is_err(), "{bad:?}");
        }
        assert!(validate_objname(&"a/".repeat(600)).is_err());
    }

    #[test]
    fn archpaths_allow_one_leading_slash() {
        assert!(validate_archpath("/a/b.jpg", "s.tar").is_ok());
        assert!(validate_archpath("//a", "s.tar").is_err());
        let err = validate_archpath("../x", "s.tar").unwrap_err();
        assert!(
            err.starts_with("invalid archpath \"../x\" (oname: \"s.tar\")"),
            "{err}"
        );
    }

    #[test]
    fn bucket_names() {
        assert!(validate_bucket_name("my-bucket_1.x").is_ok());
        for bad in ["", ".sys", "a/b", "a b", &"b".repeat(65)] {
            assert!(validate_bucket_name(bad).is_err(), "{bad:?}");
        }
    }
}
