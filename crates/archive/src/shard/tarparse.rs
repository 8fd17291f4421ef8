//! TAR header parsing shared by [`super::TarIndex`] (seekable input, payloads skipped by seeking)
//! and [`super::scan_tar`] (a stream, payloads skipped by reading): USTAR prefix, GNU long
//! names, PAX `path`/`size`, checksums, and truncation checks.
use std::io::{self, BufReader, Read, Seek};

use super::stream::{corrupt_io, into_archive_error};
use super::{Member, ScanLimits};
use crate::ArchiveError;
use crate::tarfmt::{BLOCK, padding};

/// Read-ahead of the seekable source: small payloads are skipped inside the buffer, large
/// ones by a real seek.
const SEEK_BUFFER: usize = 16 << 10;

/// Chunk used to read and discard skipped stream payloads.
const SKIP_CHUNK: usize = 32 << 10;

/// Header field ranges.
const NAME: std::ops::Range<usize> = 0..100;
const SIZE: std::ops::Range<usize> = 124..136;
const CHKSUM: std::ops::Range<usize> = 148..156;
const TYPEFLAG: usize = 156;
/// Old GNU sparse headers: "more sparse map blocks follow" flag in the member header, and in
/// each of those extension blocks.
const GNU_SPARSE_EXTENDED: usize = 482;
const GNU_SPARSE_EXT_EXTENDED: usize = 504;
const MAGIC: std::ops::Range<usize> = 257..263;
const PREFIX: std::ops::Range<usize> = 345..500;

/// Longest PAX key we need to recognize (`path`, `size`, `GNU.sparse.name`); longer keys are
/// only matched by their first `MAX_KEY` bytes.
const MAX_KEY: usize = 16;
/// Prefix of the PAX keys of GNU sparse members (formats 0.0, 0.1 and 1.0).
const GNU_SPARSE_KEY: &[u8] = b"GNU.sparse.";

/// A member header with its extensions applied; the source sits at the payload start.
pub(super) struct Header {
    name: String,
    pub(super) size: u64,
    data_offset: u64,
    sparse: bool,
}

impl Header {
    pub(super) fn into_member(self) -> Member {
        Member {
            name: self.name,
            size: self.size,
            data_offset: self.data_offset,
            sparse: self.sparse,
        }
    }
}

fn corrupt(msg: String) -> ArchiveError {
    ArchiveError::Corrupt(msg)
}

fn truncated(at: u64) -> ArchiveError {
    corrupt(format!("archive truncated at offset {at}"))
}

/// Payload size rounded up to whole blocks.
fn padded(size: u64) -> Result<u64, ArchiveError> {
    size.checked_add(padding(size) as u64)
        .ok_or_else(|| corrupt(format!("member size {size} overflows")))
}

/// Where the TAR bytes come from.
pub(super) trait Source {
    /// Fills `buf` completely. `Ok(false)`: the input ended before its first byte.
    fn fill(&mut self, buf: &mut [u8]) -> Result<bool, ArchiveError>;
    /// Skips `n` bytes, failing if the input ends first.
    fn skip(&mut self, n: u64) -> Result<(), ArchiveError>;
    /// Bytes consumed so far.
    fn pos(&self) -> u64;
    /// Bytes left, when the total is known up front.
    fn remaining(&self) -> Option<u64>;

    /// Skips a whole payload including its padding.
    fn skip_payload(&mut self, size: u64) -> Result<(), ArchiveError> {
        self.skip(padded(size)?)
    }
}

/// Fills `buf` or fails: the input must not end here.
fn read_exact(src: &mut impl Source, buf: &mut [u8]) -> Result<(), ArchiveError> {
    let at = src.pos();
    if buf.is_empty() || src.fill(buf)? {
        return Ok(());
    }
    Err(truncated(at))
}

/// A seekable TAR of known length.
pub(super) struct SeekSource<R> {
    r: BufReader<R>,
    pos: u64,
    total: u64,
}

impl<R: Read + Seek> SeekSource<R> {
    pub(super) fn new(r: R, total: u64) -> Self {
        SeekSource {
            r: BufReader::with_capacity(SEEK_BUFFER, r),
            pos: 0,
            total,
        }
    }
}

impl<R: Read + Seek> Source for SeekSource<R> {
    fn fill(&mut self, buf: &mut [u8]) -> Result<bool, ArchiveError> {
        if self.pos == self.total && !buf.is_empty() {
            return Ok(false);
        }
        if self.total - self.pos < buf.len() as u64 {
            return Err(truncated(self.total));
        }
        self.r.read_exact(buf).map_err(|err| match err.kind() {
            io::ErrorKind::UnexpectedEof => corrupt(format!(
                "archive is shorter than its declared {} bytes",
                self.total
            )),
            _ => ArchiveError::Io(err),
        })?;
        self.pos += buf.len() as u64;
        Ok(true)
    }

    fn skip(&mut self, n: u64) -> Result<(), ArchiveError> {
        if n > self.total - self.pos {
            return Err(truncated(self.total));
        }
        let step = i64::try_from(n).map_err(|_| truncated(self.total))?;
        self.r.seek_relative(step)?;
        self.pos += n;
        Ok(())
    }

    fn pos(&self) -> u64 {
        self.pos
    }

    fn remaining(&self) -> Option<u64> {
        Some(self.total - self.pos)
    }
}

/// A TAR stream read once from the start.
pub(super) struct StreamSource<R> {
    r: R,
    pos: u64,
    /// Discard buffer for skipped payloads, allocated on first use.
    scratch: Vec<u8>,
}

/// One `read` that retries on `Interrupted` and counts what it got.
fn read_counted(r: &mut impl Read, pos: &mut u64, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Ok(n) => {
                *pos += n as u64;
                return Ok(n);
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
}

impl<R: Read> StreamSource<R> {
    pub(super) fn new(r: R) -> Self {
        StreamSource {
            r,
            pos: 0,
            scratch: Vec::new(),
        }
    }

    /// A reader over the next `size` payload bytes.
    pub(super) fn payload(&mut self, size: u64) -> Payload<'_, R> {
        Payload {
            src: self,
            left: size,
        }
    }

    /// Skips what a visitor left of a `size`-byte payload, plus the padding.
    pub(super) fn skip_payload_rest(&mut self, size: u64, unread: u64) -> Result<(), ArchiveError> {
        self.skip(unread + padding(size) as u64)
    }
}

impl<R: Read> Source for StreamSource<R> {
    fn fill(&mut self, buf: &mut [u8]) -> Result<bool, ArchiveError> {
        let mut filled = 0;
        while filled < buf.len() {
            let n = read_counted(&mut self.r, &mut self.pos, &mut buf[filled..])
                .map_err(into_archive_error)?;
            if n == 0 {
                return if filled == 0 {
                    Ok(false)
                } else {
                    Err(truncated(self.pos))
                };
            }
            filled += n;
        }
        Ok(true)
    }

    fn skip(&mut self, n: u64) -> Result<(), ArchiveError> {
        if self.scratch.is_empty() && n > 0 {
            self.scratch = vec![0; SKIP_CHUNK];
        }
        let mut left = n;
        while left > 0 {
            let want = self
                .scratch
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            let got = read_counted(&mut self.r, &mut self.pos, &mut self.scratch[..want])
                .map_err(into_archive_error)?;
            if got == 0 {
                return Err(truncated(self.pos));
            }
            left -= got as u64;
        }
        Ok(())
    }

    fn pos(&self) -> u64 {
        self.pos
    }

    fn remaining(&self) -> Option<u64> {
        None
    }
}

/// The payload of one member handed to a [`super::scan_tar`] visitor.
pub(super) struct Payload<'s, R> {
    src: &'s mut StreamSource<R>,
    left: u64,
}

impl<R> Payload<'_, R> {
    /// Payload bytes the visitor did not read.
    pub(super) fn unread(&self) -> u64 {
        self.left
    }
}

impl<R: Read> Read for Payload<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = read_counted(&mut self.src.r, &mut self.src.pos, &mut buf[..want])?;
        if n == 0 {
            return Err(corrupt_io(format!(
                "archive truncated: member payload misses {} bytes",
                self.left
            )));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Names and sizes carried by extension headers to the next member header.
#[derive(Default)]
struct Extensions {
    long_name: Option<String>,
    pax_path: Option<String>,
    pax_size: Option<u64>,
    /// `GNU.sparse.name`: the real name of a PAX sparse member (its header name is made up).
    sparse_name: Option<String>,
    /// Some `GNU.sparse.*` record was seen.
    sparse: bool,
}

/// Reads headers up to the next member, applying GNU long-name and PAX headers on the way.
/// `Ok(None)` at the end of the archive: a zero block, or the input ending on a block boundary.
pub(super) fn next_member(
    src: &mut impl Source,
    limits: &ScanLimits,
) -> Result<Option<Header>, ArchiveError> {
    let mut ext = Extensions::default();
    let mut block = [0u8; BLOCK];
    loop {
        let at = src.pos();
        if !src.fill(&mut block)? {
            return Ok(None);
        }
        // One zero block ends the archive (the second one of the trailer is never needed).
        if block.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        verify_checksum(&block, at)?;
        match block[TYPEFLAG] {
            b'L' => ext.long_name = Some(read_long_name(src, &block, at, limits)?),
            b'x' | b'X' => {
                let size = meta_size(src, &block, at)?;
                read_pax(src, size, limits, &mut ext)?;
            }
            // Long link names and global PAX headers do not affect names or sizes.
            b'K' | b'g' => {
                let size = meta_size(src, &block, at)?;
                src.skip_payload(size)?;
            }
            typeflag => return member_header(src, &block, at, typeflag, ext).map(Some),
        }
    }
}

/// Completes a member header: effective name and size, payload presence checked.
fn member_header(
    src: &mut impl Source,
    block: &[u8; BLOCK],
    at: u64,
    typeflag: u8,
    ext: Extensions,
) -> Result<Header, ArchiveError> {
    let size = match ext.pax_size {
        Some(size) => size,
        None => parse_size(block, at)?,
    };
    // Links, devices, directories and FIFOs have no payload whatever the size field says
    // (POSIX; Python's tarfile and GNU tar agree).
    let size = if matches!(typeflag, b'1'..=b'6') {
        0
    } else {
        size
    };
    // Old GNU sparse members: the sparse map may continue in extension blocks that precede
    // the payload and are not counted in its size.
    let gnu_sparse = typeflag == b'S';
    if gnu_sparse && block[GNU_SPARSE_EXTENDED] != 0 {
        skip_sparse_extensions(src)?;
    }
    check_present(src, size, at)?;
    let name = match (ext.sparse_name, ext.pax_path, ext.long_name) {
        (Some(real), _, _) => real,
        (None, Some(path), _) => path,
        (None, None, Some(long)) => long,
        (None, None, None) => ustar_name(block),
    };
    Ok(Header {
        name,
        size,
        data_offset: src.pos(),
        sparse: gnu_sparse || ext.sparse,
    })
}

/// Skips the sparse map extension blocks of an old GNU sparse header (each names whether
/// another follows); every block read consumes input, so this ends with the input.
fn skip_sparse_extensions(src: &mut impl Source) -> Result<(), ArchiveError> {
    let mut block = [0u8; BLOCK];
    loop {
        read_exact(src, &mut block)?;
        if block[GNU_SPARSE_EXT_EXTENDED] == 0 {
            return Ok(());
        }
    }
}

/// Fails when the padded payload of the header at `at` overflows or runs past the known end
/// of input. Every size handed on has passed here, so later padding arithmetic cannot overflow.
fn check_present(src: &impl Source, size: u64, at: u64) -> Result<(), ArchiveError> {
    let padded = padded(size)?;
    match src.remaining() {
        Some(left) if padded > left => Err(corrupt(format!(
            "member at offset {at} ({size} bytes) extends past the end of the archive"
        ))),
        _ => Ok(()),
    }
}

/// Payload size of an extension header, checked against the input.
fn meta_size(src: &impl Source, block: &[u8; BLOCK], at: u64) -> Result<u64, ArchiveError> {
    let size = parse_size(block, at)?;
    check_present(src, size, at)?;
    Ok(size)
}

fn parse_size(block: &[u8; BLOCK], at: u64) -> Result<u64, ArchiveError> {
    parse_numeric(&block[SIZE])
        .ok_or_else(|| corrupt(format!("bad size field in header at offset {at}")))
}

/// `name`, or `prefix/name` for POSIX ustar headers (old GNU headers reuse the prefix area).
fn ustar_name(block: &[u8; BLOCK]) -> String {
    let name = c_str(&block[NAME]);
    let prefix = c_str(&block[PREFIX]);
    if &block[MAGIC] != b"ustar\0" || prefix.is_empty() {
        return lossy(name.to_vec());
    }
    let mut full = Vec::with_capacity(prefix.len() + 1 + name.len());
    full.extend_from_slice(prefix);
    full.push(b'/');
    full.extend_from_slice(name);
    lossy(full)
}

/// The bytes before the first NUL.
fn c_str(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

/// Bytes → `String`, replacing invalid UTF-8 (names are matched as strings).
fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
}

/// Checks the header checksum; both the standard unsigned and the historical signed sums
/// are accepted.
fn verify_checksum(block: &[u8; BLOCK], at: u64) -> Result<(), ArchiveError> {
    let stored = parse_octal(&block[CHKSUM])
        .ok_or_else(|| corrupt(format!("bad checksum field in header at offset {at}")))?;
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if CHKSUM.contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    if stored == unsigned || i64::try_from(stored) == Ok(signed) {
        return Ok(());
    }
    Err(corrupt(format!("header checksum mismatch at offset {at}")))
}

/// Numeric field: octal text, or GNU base-256 when the high bit of the first byte is set.
fn parse_numeric(field: &[u8]) -> Option<u64> {
    let (&first, rest) = field.split_first()?;
    if first & 0x80 == 0 {
        return parse_octal(field);
    }
    if first == 0xff {
        return None; // negative
    }
    rest.iter().try_fold(u64::from(first & 0x7f), |acc, &b| {
        acc.checked_mul(256)?.checked_add(u64::from(b))
    })
}

/// Octal text, optionally space-padded in front, ended by NUL, space or the field end.
fn parse_octal(field: &[u8]) -> Option<u64> {
    let start = field.iter().position(|&b| b != b' ').unwrap_or(field.len());
    let mut value = 0u64;
    for &b in &field[start..] {
        match b {
            b'0'..=b'7' => value = value.checked_mul(8)?.checked_add(u64::from(b - b'0'))?,
            b' ' | 0 => break,
            _ => return None,
        }
    }
    Some(value)
}

/// Reads a GNU `L` record: the name of the next member.
fn read_long_name(
    src: &mut impl Source,
    block: &[u8; BLOCK],
    at: u64,
    limits: &ScanLimits,
) -> Result<String, ArchiveError> {
    let size = meta_size(src, block, at)?;
    let len = usize::try_from(size)
        .ok()
        .filter(|&len| len <= limits.max_name_len)
        .ok_or_else(|| {
            ArchiveError::Limit(format!(
                "long name of {size} bytes at offset {at} exceeds the limit of {}",
                limits.max_name_len
            ))
        })?;
    let mut name = vec![0u8; len];
    read_exact(src, &mut name)?;
    src.skip(padding(size) as u64)?;
    let end = c_str(&name).len();
    name.truncate(end);
    Ok(lossy(name))
}

/// Serves the bytes of an extension payload, reading it a block at a time so that nothing
/// is allocated in proportion to its size.
struct PaxReader<'s, S> {
    src: &'s mut S,
    block: [u8; BLOCK],
    /// Next unread byte in `block`; `BLOCK` when it is used up.
    idx: usize,
    /// Payload bytes not yet served.
    left: u64,
    /// Blocks of the padded payload not yet read from `src`.
    blocks_left: u64,
}

impl<'s, S: Source> PaxReader<'s, S> {
    fn new(src: &'s mut S, size: u64) -> Result<Self, ArchiveError> {
        let blocks_left = padded(size)? / BLOCK as u64;
        Ok(PaxReader {
            src,
            block: [0; BLOCK],
            idx: BLOCK,
            left: size,
            blocks_left,
        })
    }

    fn load(&mut self) -> Result<(), ArchiveError> {
        read_exact(self.src, &mut self.block)?;
        self.blocks_left -= 1;
        self.idx = 0;
        Ok(())
    }

    fn byte(&mut self) -> Result<u8, ArchiveError> {
        if self.left == 0 {
            return Err(corrupt(
                "pax record runs past the end of its header".to_string(),
            ));
        }
        if self.idx == BLOCK {
            self.load()?;
        }
        let b = self.block[self.idx];
        self.idx += 1;
        self.left -= 1;
        Ok(b)
    }

    fn skip(&mut self, n: u64) -> Result<(), ArchiveError> {
        if n > self.left {
            return Err(corrupt(
                "pax record runs past the end of its header".to_string(),
            ));
        }
        let buffered = n.min((BLOCK - self.idx) as u64);
        self.idx += buffered as usize;
        let n = n - buffered;
        let whole = n / BLOCK as u64;
        self.src.skip(whole * BLOCK as u64)?;
        self.blocks_left -= whole;
        let part = (n % BLOCK as u64) as usize;
        if part > 0 {
            self.load()?;
            self.idx = part;
        }
        self.left -= buffered + n;
        Ok(())
    }

    /// Skips the rest of the payload and its padding.
    fn finish(self) -> Result<(), ArchiveError> {
        self.src.skip(self.blocks_left * BLOCK as u64)
    }
}

/// Parses PAX records (`"<len> <key>=<value>\n"`), keeping `path` and `size`.
fn read_pax(
    src: &mut impl Source,
    size: u64,
    limits: &ScanLimits,
    ext: &mut Extensions,
) -> Result<(), ArchiveError> {
    let mut rd = PaxReader::new(src, size)?;
    while rd.left > 0 {
        let first = rd.byte()?;
        if first == 0 {
            break; // NUL fill inside the declared size: no more records
        }
        read_pax_record(&mut rd, first, limits, ext)?;
    }
    rd.finish()
}

fn bad_pax(what: &str) -> ArchiveError {
    corrupt(format!("malformed pax record: {what}"))
}

/// One PAX record whose first byte was already read.
fn read_pax_record<S: Source>(
    rd: &mut PaxReader<'_, S>,
    first: u8,
    limits: &ScanLimits,
    ext: &mut Extensions,
) -> Result<(), ArchiveError> {
    // Length field, counting the whole record including itself.
    let mut len = 0u64;
    let mut used = 0u64;
    let mut b = first;
    while b != b' ' {
        if !b.is_ascii_digit() {
            return Err(bad_pax("bad length"));
        }
        len = len
            .checked_mul(10)
            .and_then(|l| l.checked_add(u64::from(b - b'0')))
            .ok_or_else(|| bad_pax("bad length"))?;
        used += 1;
        b = rd.byte()?;
    }
    used += 1;
    let mut rest = len.checked_sub(used).ok_or_else(|| bad_pax("bad length"))?;

    // Key, up to '='.
    let mut key = [0u8; MAX_KEY];
    let mut key_len = 0;
    loop {
        rest = rest.checked_sub(1).ok_or_else(|| bad_pax("no '='"))?;
        let b = rd.byte()?;
        if b == b'=' {
            break;
        }
        // Overlong keys are recorded as too long to match anything we keep.
        key_len += 1;
        if let Some(slot) = key.get_mut(key_len - 1) {
            *slot = b;
        }
    }
    let value_len = rest.checked_sub(1).ok_or_else(|| bad_pax("bad length"))?;
    let stored = key.get(..key_len.min(MAX_KEY)).unwrap_or_default();
    if stored.starts_with(GNU_SPARSE_KEY) {
        ext.sparse = true;
    }
    let key = key.get(..key_len).unwrap_or_default();
    match key {
        b"path" => ext.pax_path = read_pax_path(rd, value_len, limits)?,
        b"size" => ext.pax_size = read_pax_size(rd, value_len)?,
        b"GNU.sparse.name" => ext.sparse_name = read_pax_path(rd, value_len, limits)?,
        _ => rd.skip(value_len)?,
    }
    if rd.byte()? != b'\n' {
        return Err(bad_pax("missing newline"));
    }
    Ok(())
}

/// A `path` value; empty means "no override" (POSIX: the keyword is deleted).
fn read_pax_path<S: Source>(
    rd: &mut PaxReader<'_, S>,
    len: u64,
    limits: &ScanLimits,
) -> Result<Option<String>, ArchiveError> {
    let len = usize::try_from(len)
        .ok()
        .filter(|&len| len <= limits.max_name_len)
        .ok_or_else(|| {
            ArchiveError::Limit(format!(
                "pax path of {len} bytes exceeds the limit of {}",
                limits.max_name_len
            ))
        })?;
    if len as u64 > rd.left {
        return Err(bad_pax("path runs past the end of its header"));
    }
    let mut value = Vec::with_capacity(len);
    for _ in 0..len {
        value.push(rd.byte()?);
    }
    Ok((!value.is_empty()).then(|| lossy(value)))
}

/// A `size` value in decimal; empty means "no override".
fn read_pax_size<S: Source>(
    rd: &mut PaxReader<'_, S>,
    len: u64,
) -> Result<Option<u64>, ArchiveError> {
    if len > 20 {
        return Err(bad_pax("size value too long"));
    }
    let mut value: Option<u64> = None;
    for _ in 0..len {
        let b = rd.byte()?;
        if !b.is_ascii_digit() {
            return Err(bad_pax("bad size value"));
        }
        let acc = value
            .unwrap_or(0)
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')));
        value = Some(acc.ok_or_else(|| bad_pax("size value overflows"))?);
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_fields() {
        assert_eq!(parse_numeric(b"00000001750\0"), Some(0o1750));
        assert_eq!(parse_numeric(b"     1750 \0\0"), Some(0o1750));
        assert_eq!(parse_numeric(b"\0\0\0\0\0\0\0\0\0\0\0\0"), Some(0));
        assert_eq!(parse_numeric(b"0000000175x\0"), None);
        assert_eq!(parse_numeric(b"00000008\0"), None);
        let mut b256 = [0u8; 12];
        b256[0] = 0x80;
        b256[4..].copy_from_slice(&(10u64 << 30).to_be_bytes());
        assert_eq!(parse_numeric(&b256), Some(10 << 30));
        b256[1] = 1; // needs more than 64 bits
        assert_eq!(parse_numeric(&b256), None);
        assert_eq!(parse_numeric(&[0xff; 12]), None);
        assert_eq!(parse_octal(b"77777777777777777777777"), None);
    }

    #[test]
    fn signed_checksum_accepted() {
        let mut block = [0u8; BLOCK];
        block[..4].copy_from_slice(&[0xe9, 0xe9, b'a', b'b']);
        block[TYPEFLAG] = b'0';
        let signed: i64 = block
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if CHKSUM.contains(&i) {
                    32
                } else {
                    i64::from(b as i8)
                }
            })
            .sum();
        let field = format!("{signed:06o}\0 ");
        block[CHKSUM].copy_from_slice(field.as_bytes());
        assert!(verify_checksum(&block, 0).is_ok());
        block[0] = 0xea;
        assert!(matches!(
            verify_checksum(&block, 0),
            Err(ArchiveError::Corrupt(_))
        ));
    }
}
