//! A small push parser for `multipart/mixed` bodies (RFC 2046), as GetBatch's buffered mode
//! sends them: feed chunks as they arrive, take events out. Part data is handed out as soon as
//! it cannot be the start of a boundary, so a part of any size passes through in pieces.
use bytes::{Buf, Bytes, BytesMut};

/// Longest accepted header block of one part.
const MAX_HEADER_BLOCK: usize = 64 << 10;
/// Longest accepted boundary line tail (transport padding after the boundary).
const MAX_BOUNDARY_TAIL: usize = 1024;

/// Headers of one part; names are matched case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartHeaders {
    /// `name` parameter of `Content-Disposition`.
    pub name: Option<String>,
    /// `filename` parameter of `Content-Disposition`.
    pub filename: Option<String>,
    /// `Content-Type` of the part.
    pub content_type: Option<String>,
}

/// What the splitter found next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultipartEvent {
    /// A new part starts (its data follows as `Data` events).
    Part(PartHeaders),
    /// A piece of the current part's data.
    Data(Bytes),
    /// The closing boundary: no more parts.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Preamble,
    AfterDelimiter,
    Headers,
    Body,
    Epilogue,
}

/// Splits a `multipart/*` body into parts.
#[derive(Debug)]
pub struct MultipartSplitter {
    /// `\r\n--<boundary>`: every delimiter, the first one included thanks to the CRLF the
    /// splitter pretends precedes the body.
    delimiter: Vec<u8>,
    buf: BytesMut,
    state: State,
}

impl MultipartSplitter {
    /// A splitter for parts separated by `boundary` (without the leading `--`).
    pub fn new(boundary: &str) -> MultipartSplitter {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        let mut buf = BytesMut::with_capacity(64 << 10);
        buf.extend_from_slice(b"\r\n");
        MultipartSplitter {
            delimiter,
            buf,
            state: State::Preamble,
        }
    }

    /// Appends received bytes.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.state != State::Epilogue {
            self.buf.extend_from_slice(chunk);
        }
    }

    /// The next event, or `None` when more input is needed.
    pub fn next_event(&mut self) -> Result<Option<MultipartEvent>, String> {
        loop {
            match self.state {
                State::Preamble => match find(&self.buf, &self.delimiter) {
                    Some(at) => {
                        self.buf.advance(at + self.delimiter.len());
                        self.state = State::AfterDelimiter;
                    }
                    None => {
                        let keep = self.delimiter.len() - 1;
                        if self.buf.len() > keep {
                            self.buf.advance(self.buf.len() - keep);
                        }
                        return Ok(None);
                    }
                },
                State::AfterDelimiter => {
                    if self.buf.len() < 2 {
                        return Ok(None);
                    }
                    if self.buf.starts_with(b"--") {
                        self.buf.clear();
                        self.state = State::Epilogue;
                        return Ok(Some(MultipartEvent::End));
                    }
                    let Some(eol) = find(&self.buf, b"\r\n") else {
                        if self.buf.len() > MAX_BOUNDARY_TAIL {
                            return Err("malformed multipart boundary line".to_string());
                        }
                        return Ok(None);
                    };
                    if !self.buf[..eol].iter().all(|&b| b == b' ' || b == b'\t') {
                        return Err("malformed multipart boundary line".to_string());
                    }
                    self.buf.advance(eol + 2);
                    self.state = State::Headers;
                }
                State::Headers => {
                    // An empty header block: the blank line follows the boundary line directly.
                    if self.buf.len() < 2 {
                        return Ok(None);
                    }
                    if self.buf.starts_with(b"\r\n") {
                        self.buf.advance(2);
                        self.state = State::Body;
                        return Ok(Some(MultipartEvent::Part(PartHeaders::default())));
                    }
                    let Some(end) = find(&self.buf, b"\r\n\r\n") else {
                        if self.buf.len() > MAX_HEADER_BLOCK {
                            return Err("multipart part headers too long".to_string());
                        }
                        return Ok(None);
                    };
                    let headers = parse_headers(&self.buf[..end])?;
                    self.buf.advance(end + 4);
                    self.state = State::Body;
                    return Ok(Some(MultipartEvent::Part(headers)));
                }
                State::Body => {
                    if let Some(at) = find(&self.buf, &self.delimiter) {
                        let data = self.buf.split_to(at).freeze();
                        self.buf.advance(self.delimiter.len());
                        self.state = State::AfterDelimiter;
                        if !data.is_empty() {
                            return Ok(Some(MultipartEvent::Data(data)));
                        }
                        continue;
                    }
                    // The tail may be the start of a delimiter: keep it until more input comes.
                    let keep = self.delimiter.len() - 1;
                    if self.buf.len() <= keep {
                        return Ok(None);
                    }
                    let data = self.buf.split_to(self.buf.len() - keep).freeze();
                    return Ok(Some(MultipartEvent::Data(data)));
                }
                State::Epilogue => return Ok(None),
            }
        }
    }

    /// Call at the end of input: fails unless the closing boundary was seen.
    pub fn finish(&self) -> Result<(), String> {
        if self.state == State::Epilogue {
            return Ok(());
        }
        Err("multipart body ended before its closing boundary (truncated response)".to_string())
    }
}

/// The `boundary` parameter of a `multipart/*` Content-Type.
pub fn parse_boundary(content_type: &str) -> Option<String> {
    let mut pieces = split_params(content_type).into_iter();
    let media = pieces.next()?;
    if !media.trim().to_ascii_lowercase().starts_with("multipart/") {
        return None;
    }
    pieces
        .filter_map(|p| param(&p))
        .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

fn parse_headers(block: &[u8]) -> Result<PartHeaders, String> {
    let text = std::str::from_utf8(block)
        .map_err(|_| "multipart part headers are not UTF-8".to_string())?;
    let mut headers = PartHeaders::default();
    for line in text.split("\r\n") {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("malformed multipart part header {line:?}"));
        };
        let value = value.trim();
        if name.trim().eq_ignore_ascii_case("content-disposition") {
            for (key, val) in split_params(value).iter().skip(1).filter_map(|p| param(p)) {
                match key.to_ascii_lowercase().as_str() {
                    "name" => headers.name = Some(val),
                    "filename" => headers.filename = Some(val),
                    _ => {}
                }
            }
        } else if name.trim().eq_ignore_ascii_case("content-type") {
            headers.content_type = Some(value.to_string());
        }
    }
    Ok(headers)
}

/// Splits `a; b="x;y"; c` at semicolons outside quotes.
fn split_params(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in value.chars() {
        match c {
            _ if escaped => {
                current.push(c);
                escaped = false;
            }
            '\\' if quoted => {
                current.push(c);
                escaped = true;
            }
            '"' => {
                current.push(c);
                quoted = !quoted;
            }
            ';' if !quoted => out.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    out.push(current);
    out
}

/// `key=value` or `key="quoted value"` (backslash escapes undone).
fn param(piece: &str) -> Option<(String, String)> {
    let (key, value) = piece.split_once('=')?;
    let value = value.trim();
    let unquoted = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut escaped = false;
            for c in inner.chars() {
                if escaped || c != '\\' {
                    out.push(c);
                    escaped = false;
                } else {
                    escaped = true;
                }
            }
            out
        }
        None => value.to_string(),
    };
    Some((key.trim().to_string(), unquoted))
}

/// First position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let last_start = haystack.len().checked_sub(needle.len())?;
    let mut from = 0;
    while from <= last_start {
        let at = from
            + haystack[from..=last_start]
                .iter()
                .position(|&b| b == first)?;
        if &haystack[at..at + needle.len()] == needle {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDARY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab";

    /// A body laid out exactly as the server (and Go's `mime/multipart`) writes it.
    fn body(metadata: &[u8], archive: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        b.extend_from_slice(b"Content-Disposition: form-data; name=\"metadata\"\r\n\r\n");
        b.extend_from_slice(metadata);
        b.extend_from_slice(format!("\r\n--{BOUNDARY}\r\n").as_bytes());
        b.extend_from_slice(
            b"Content-Disposition: form-data; name=\"archive\"; filename=\"get-batch[gbt-1]\"\r\n",
        );
        b.extend_from_slice(b"Content-Type: application/octet-stream\r\n\r\n");
        b.extend_from_slice(archive);
        b.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        b
    }

    #[derive(Debug, Default, PartialEq)]
    struct Parsed {
        parts: Vec<(PartHeaders, Vec<u8>)>,
        ended: bool,
    }

    fn drain(s: &mut MultipartSplitter, parsed: &mut Parsed) {
        while let Some(event) = s.next_event().unwrap() {
            match event {
                MultipartEvent::Part(h) => parsed.parts.push((h, Vec::new())),
                MultipartEvent::Data(d) => {
                    assert!(!d.is_empty());
                    parsed.parts.last_mut().unwrap().1.extend_from_slice(&d);
                }
                MultipartEvent::End => parsed.ended = true,
            }
        }
    }

    fn parse_chunks(chunks: &[&[u8]]) -> Parsed {
        let mut s = MultipartSplitter::new(BOUNDARY);
        let mut parsed = Parsed::default();
        for chunk in chunks {
            s.feed(chunk);
            drain(&mut s, &mut parsed);
        }
        s.finish().unwrap();
        parsed
    }

    fn check(parsed: &Parsed, metadata: &[u8], archive: &[u8]) {
        assert!(parsed.ended);
        assert_eq!(parsed.parts.len(), 2);
        assert_eq!(parsed.parts[0].0.name.as_deref(), Some("metadata"));
        assert_eq!(parsed.parts[0].1, metadata);
        assert_eq!(parsed.parts[1].0.name.as_deref(), Some("archive"));
        assert_eq!(
            parsed.parts[1].0.filename.as_deref(),
            Some("get-batch[gbt-1]")
        );
        assert_eq!(
            parsed.parts[1].0.content_type.as_deref(),
            Some("application/octet-stream")
        );
        assert_eq!(parsed.parts[1].1, archive);
    }

    /// Archive bytes full of near-misses: CRLFs, dashes, and a boundary prefix.
    fn tricky_archive() -> Vec<u8> {
        let mut a = b"\r\n--\r\n-".to_vec();
        a.extend_from_slice(format!("\r\n--{}", &BOUNDARY[..40]).as_bytes());
        a.extend_from_slice(b"\r\r\n\n--x");
        a.extend((0..=255u8).cycle().take(700));
        a.extend_from_slice(b"\r\n-");
        a
    }

    #[test]
    fn every_single_split_point() {
        let metadata = b"{\"uuid\":\"gbt-1\",\"out\":[]}\n";
        let archive = tricky_archive();
        let whole = body(metadata, &archive);
        for at in 0..=whole.len() {
            let parsed = parse_chunks(&[&whole[..at], &whole[at..]]);
            check(&parsed, metadata, &archive);
        }
    }

    #[test]
    fn every_pair_of_split_points_on_a_small_body() {
        let whole = body(b"{}\n", b"\r\n--ab");
        for i in 0..=whole.len() {
            for j in i..=whole.len() {
                let parsed = parse_chunks(&[&whole[..i], &whole[i..j], &whole[j..]]);
                check(&parsed, b"{}\n", b"\r\n--ab");
            }
        }
    }

    #[test]
    fn byte_by_byte() {
        let archive = tricky_archive();
        let whole = body(b"{}\n", &archive);
        let chunks: Vec<&[u8]> = whole.chunks(1).collect();
        check(&parse_chunks(&chunks), b"{}\n", &archive);
    }

    #[test]
    fn empty_parts_preamble_and_epilogue() {
        let text = format!(
            "preamble\r\n--{BOUNDARY}\r\n\r\n\r\n--{BOUNDARY}  \r\nContent-Disposition: form-data; name=\"a;b\"\r\n\r\nx\r\n--{BOUNDARY}--epilogue"
        );
        let parsed = parse_chunks(&[text.as_bytes()]);
        assert!(parsed.ended);
        assert_eq!(parsed.parts.len(), 2);
        assert_eq!(parsed.parts[0], (PartHeaders::default(), Vec::new()));
        assert_eq!(parsed.parts[1].0.name.as_deref(), Some("a;b"));
        assert_eq!(parsed.parts[1].1, b"x");
    }

    #[test]
    fn truncated_bodies_fail_at_finish() {
        let whole = body(b"{}\n", b"archive-bytes");
        // Every cut short of the closing boundary's "--" is a truncation.
        let closing = whole.len() - 4;
        for cut in 0..closing {
            let mut s = MultipartSplitter::new(BOUNDARY);
            s.feed(&whole[..cut]);
            while let Ok(Some(_)) = s.next_event() {}
            assert!(s.finish().is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn malformed_input_is_rejected() {
        let mut s = MultipartSplitter::new("B");
        s.feed(b"--Bxx\r\n");
        assert!(s.next_event().is_err());
        let mut s = MultipartSplitter::new("B");
        s.feed(b"--B\r\nno colon here\r\n\r\n");
        assert!(s.next_event().is_err());
        let mut s = MultipartSplitter::new("B");
        s.feed(b"--B\r\n");
        s.feed(&vec![b'a'; MAX_HEADER_BLOCK + 10]);
        assert!(s.next_event().is_err());
    }

    #[test]
    fn boundaries_from_content_type() {
        assert_eq!(
            parse_boundary("multipart/mixed; boundary=abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            parse_boundary("Multipart/Mixed; charset=x; Boundary=\"a b;c\"").as_deref(),
            Some("a b;c")
        );
        assert_eq!(parse_boundary("application/x-tar"), None);
        assert_eq!(parse_boundary("multipart/mixed"), None);
        assert_eq!(parse_boundary("multipart/mixed; boundary="), None);
    }
}
