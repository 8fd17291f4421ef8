//! ZIP central directory parsing (zip64 aware) and member reading with size and CRC checks.
//! Parsed by hand so that every offset, size and count is checked against the file before it
//! is used, and allocations stay bounded by the 64 KiB limits of the format's length fields.
use std::io::{self, BufReader, Read, Seek, SeekFrom};

use flate2::Crc;
use flate2::read::DeflateDecoder;

use super::stream::{CodecTag, SourceTag, corrupt_io};
use super::{ScanLimits, ZipEntry};
use crate::ArchiveError;

const EOCD_SIG: u32 = 0x0605_4b50;
const EOCD_LEN: usize = 22;
const MAX_COMMENT: usize = 0xffff;
const LOCATOR_SIG: u32 = 0x0706_4b50;
const LOCATOR_LEN: u64 = 20;
const EOCD64_SIG: u32 = 0x0606_4b50;
const EOCD64_LEN: usize = 56;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const CENTRAL_LEN: usize = 46;
const LOCAL_SIG: u32 = 0x0403_4b50;
const LOCAL_LEN: usize = 30;
const ZIP64_EXTRA_ID: u16 = 0x0001;
/// General-purpose flag bits.
const FLAG_ENCRYPTED: u16 = 1;
const FLAG_UTF8: u16 = 1 << 11;
/// 32-bit fields holding this defer to the zip64 extra field.
const SATURATED: u64 = 0xffff_ffff;
const CD_BUFFER: usize = 64 << 10;

fn corrupt(msg: String) -> ArchiveError {
    ArchiveError::Corrupt(msg)
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from(le32(b, at)) | u64::from(le32(b, at + 4)) << 32
}

/// `read_exact`, with a short read reported as a truncated `what`.
fn read_exact(r: &mut impl Read, buf: &mut [u8], what: &str) -> Result<(), ArchiveError> {
    r.read_exact(buf).map_err(|err| match err.kind() {
        io::ErrorKind::UnexpectedEof => corrupt(format!("{what} truncated")),
        _ => ArchiveError::Io(err),
    })
}

/// Reads `len` bytes at `pos`.
fn read_at<R: Read + Seek>(
    r: &mut R,
    pos: u64,
    buf: &mut [u8],
    what: &str,
) -> Result<(), ArchiveError> {
    r.seek(SeekFrom::Start(pos))?;
    read_exact(r, buf, what)
}

/// Where the central directory is and what it claims.
#[derive(Debug)]
struct Directory {
    offset: u64,
    size: u64,
    entries: u64,
    /// The directory must end at or before this offset (the start of the end records).
    end: u64,
    /// Bytes in front of the archive proper (a self-extractor stub): every offset the archive
    /// states is this much too small.
    prefix: u64,
}

/// See [`super::ZipIndex::build`].
pub(super) fn read_central_directory<R: Read + Seek>(
    mut r: R,
    total_len: u64,
    limits: &ScanLimits,
) -> Result<Vec<ZipEntry>, ArchiveError> {
    let dir = locate_directory(&mut r, total_len)?;
    // Every entry takes at least its fixed part, so the count is bounded by the file size.
    if dir.entries > dir.size / CENTRAL_LEN as u64 {
        return Err(corrupt(format!(
            "central directory claims {} entries in {} bytes",
            dir.entries, dir.size
        )));
    }
    if dir.entries > limits.max_members {
        let max = limits.max_members;
        return Err(ArchiveError::Limit(format!(
            "{} entries exceed the limit of {max}",
            dir.entries
        )));
    }
    r.seek(SeekFrom::Start(dir.offset))?;
    let mut cd = BufReader::with_capacity(CD_BUFFER, r.take(dir.size));
    let mut entries = Vec::with_capacity(usize::try_from(dir.entries.min(1 << 16)).unwrap_or(0));
    for _ in 0..dir.entries {
        entries.push(read_entry(&mut cd, &dir, limits)?);
    }
    Ok(entries)
}

/// Finds the end-of-central-directory record (and its zip64 successor) and checks that the
/// directory it points to lies inside the file.
fn locate_directory<R: Read + Seek>(r: &mut R, total_len: u64) -> Result<Directory, ArchiveError> {
    if total_len < EOCD_LEN as u64 {
        return Err(corrupt("too short to be a zip archive".to_string()));
    }
    let tail_len = total_len.min((EOCD_LEN + MAX_COMMENT) as u64) as usize;
    let tail_start = total_len - tail_len as u64;
    let mut tail = vec![0u8; tail_len];
    read_at(r, tail_start, &mut tail, "zip archive")?;
    let at = find_eocd(&tail)
        .ok_or_else(|| corrupt("end of central directory record not found".to_string()))?;
    let eocd = &tail[at..at + EOCD_LEN];
    let eocd_pos = tail_start + at as u64;
    let dir = match read_zip64(r, eocd_pos)? {
        Some(dir) => dir,
        None => {
            if le16(eocd, 4) != 0 || le16(eocd, 6) != 0 {
                return Err(corrupt(
                    "multi-disk zip archives are not supported".to_string(),
                ));
            }
            Directory {
                entries: u64::from(le16(eocd, 10)),
                size: u64::from(le32(eocd, 12)),
                offset: u64::from(le32(eocd, 16)),
                end: eocd_pos,
                prefix: 0,
            }
        }
    };
    let dir = with_prefix(r, dir)?;
    let inside = dir
        .offset
        .checked_add(dir.size)
        .is_some_and(|end| end <= dir.end);
    if !inside {
        return Err(corrupt(format!(
            "central directory ({} bytes at offset {}) lies outside the archive",
            dir.size, dir.offset
        )));
    }
    Ok(dir)
}

/// Detects bytes prepended to the archive (self-extracting stubs, `cat stub a.zip`): when the
/// directory, which normally ends where the end records start, does not begin with an entry
/// signature at its stated offset but does at `end - size`, the difference is the prefix that
/// every stated offset misses (Python's zipfile and Info-ZIP unzip correct for it the same way).
fn with_prefix<R: Read + Seek>(r: &mut R, dir: Directory) -> Result<Directory, ArchiveError> {
    let Some(actual) = dir.end.checked_sub(dir.size) else {
        return Ok(dir);
    };
    if dir.entries == 0 || actual <= dir.offset {
        return Ok(dir);
    }
    let mut sig = [0u8; 4];
    read_at(r, dir.offset, &mut sig, "central directory")?;
    if le32(&sig, 0) == CENTRAL_SIG {
        return Ok(dir);
    }
    read_at(r, actual, &mut sig, "central directory")?;
    if le32(&sig, 0) != CENTRAL_SIG {
        return Ok(dir);
    }
    Ok(Directory {
        prefix: actual - dir.offset,
        offset: actual,
        ..dir
    })
}

/// Offset of the EOCD record in `tail`: preferably one whose comment ends exactly at the end
/// of the file, else the last one whose comment fits (some writers append junk).
fn find_eocd(tail: &[u8]) -> Option<usize> {
    let last = tail.len().checked_sub(EOCD_LEN)?;
    let mut fallback = None;
    for at in (0..=last).rev() {
        if le32(tail, at) != EOCD_SIG {
            continue;
        }
        let end = at + EOCD_LEN + usize::from(le16(tail, at + 20));
        if end == tail.len() {
            return Some(at);
        }
        if end < tail.len() && fallback.is_none() {
            fallback = Some(at);
        }
    }
    fallback
}

/// The zip64 end record, when a locator precedes the EOCD.
fn read_zip64<R: Read + Seek>(r: &mut R, eocd_pos: u64) -> Result<Option<Directory>, ArchiveError> {
    let Some(locator_pos) = eocd_pos.checked_sub(LOCATOR_LEN) else {
        return Ok(None);
    };
    let mut locator = [0u8; LOCATOR_LEN as usize];
    read_at(r, locator_pos, &mut locator, "zip64 locator")?;
    if le32(&locator, 0) != LOCATOR_SIG {
        return Ok(None);
    }
    if le32(&locator, 16) > 1 {
        return Err(corrupt(
            "multi-disk zip archives are not supported".to_string(),
        ));
    }
    let stated_pos = le64(&locator, 8);
    // With bytes prepended to the archive the stated position is off; the record (without
    // extensible data) then sits right before the locator.
    let record_pos = match locator_pos.checked_sub(EOCD64_LEN as u64) {
        Some(adjacent) if adjacent > stated_pos && zip64_sig_at(r, adjacent)? => adjacent,
        _ => stated_pos,
    };
    let fits = record_pos
        .checked_add(EOCD64_LEN as u64)
        .is_some_and(|end| end <= locator_pos);
    if !fits {
        return Err(corrupt(format!(
            "zip64 end record offset {record_pos} out of range"
        )));
    }
    let mut record = [0u8; EOCD64_LEN];
    read_at(r, record_pos, &mut record, "zip64 end record")?;
    if le32(&record, 0) != EOCD64_SIG {
        return Err(corrupt("bad zip64 end record signature".to_string()));
    }
    if le32(&record, 16) != 0 || le32(&record, 20) != 0 {
        return Err(corrupt(
            "multi-disk zip archives are not supported".to_string(),
        ));
    }
    Ok(Some(Directory {
        entries: le64(&record, 32),
        size: le64(&record, 40),
        offset: le64(&record, 48),
        end: record_pos,
        prefix: 0,
    }))
}

/// True when a zip64 end record signature sits at `pos`.
fn zip64_sig_at<R: Read + Seek>(r: &mut R, pos: u64) -> Result<bool, ArchiveError> {
    let mut sig = [0u8; 4];
    read_at(r, pos, &mut sig, "zip64 end record")?;
    Ok(le32(&sig, 0) == EOCD64_SIG)
}

/// One central directory entry.
fn read_entry(
    cd: &mut impl Read,
    dir: &Directory,
    limits: &ScanLimits,
) -> Result<ZipEntry, ArchiveError> {
    let mut fixed = [0u8; CENTRAL_LEN];
    read_exact(cd, &mut fixed, "central directory")?;
    if le32(&fixed, 0) != CENTRAL_SIG {
        return Err(corrupt("bad central directory entry signature".to_string()));
    }
    let flags = le16(&fixed, 8);
    let name_len = usize::from(le16(&fixed, 28));
    if name_len > limits.max_name_len {
        let max = limits.max_name_len;
        return Err(ArchiveError::Limit(format!(
            "name of {name_len} bytes exceeds the limit of {max}"
        )));
    }
    let mut name = vec![0u8; name_len];
    read_exact(cd, &mut name, "central directory")?;
    let mut extra = vec![0u8; usize::from(le16(&fixed, 30))];
    read_exact(cd, &mut extra, "central directory")?;
    let comment_len = u64::from(le16(&fixed, 32));
    if io::copy(&mut cd.take(comment_len), &mut io::sink())? != comment_len {
        return Err(corrupt("central directory truncated".to_string()));
    }

    // Order of the zip64 fields: uncompressed size, compressed size, local header offset.
    let mut sizes = [
        u64::from(le32(&fixed, 24)),
        u64::from(le32(&fixed, 20)),
        u64::from(le32(&fixed, 42)),
    ];
    apply_zip64_extra(&extra, &mut sizes)?;
    let [size, compressed_size, stated_offset] = sizes;
    let name = decode_name(name, flags);

    // The local header and data precede the central directory.
    let header_offset = stated_offset.checked_add(dir.prefix);
    let data_end = header_offset
        .and_then(|o| o.checked_add(LOCAL_LEN as u64))
        .and_then(|e| e.checked_add(compressed_size));
    let (Some(header_offset), Some(data_end)) = (header_offset, data_end) else {
        return Err(corrupt(format!("entry {name:?} lies outside the archive")));
    };
    if data_end > dir.offset {
        return Err(corrupt(format!("entry {name:?} lies outside the archive")));
    }
    Ok(ZipEntry {
        is_dir: name.ends_with('/'),
        name,
        size,
        compressed_size,
        method: le16(&fixed, 10),
        crc32: le32(&fixed, 16),
        header_offset,
        encrypted: flags & FLAG_ENCRYPTED != 0,
    })
}

/// Replaces saturated 32-bit values by those of the zip64 extra field, in field order.
fn apply_zip64_extra(extra: &[u8], values: &mut [u64; 3]) -> Result<(), ArchiveError> {
    let mut rest = extra;
    while rest.len() >= 4 {
        let id = le16(rest, 0);
        let len = usize::from(le16(rest, 2));
        // A malformed trailing field is ignored, as other readers do.
        let Some(data) = rest.get(4..4 + len) else {
            break;
        };
        if id == ZIP64_EXTRA_ID {
            let mut fields = data.chunks_exact(8);
            for value in values.iter_mut().filter(|v| **v == SATURATED) {
                let chunk = fields
                    .next()
                    .ok_or_else(|| corrupt("zip64 extra field too short".to_string()))?;
                *value = le64(chunk, 0);
            }
            return Ok(());
        }
        rest = &rest[4 + len..];
    }
    Ok(())
}

/// Entry name: UTF-8 when flagged or valid, else CP437 (the format's historical default).
fn decode_name(bytes: Vec<u8>, flags: u16) -> String {
    match String::from_utf8(bytes) {
        Ok(name) => name,
        Err(err) if flags & FLAG_UTF8 != 0 => String::from_utf8_lossy(err.as_bytes()).into_owned(),
        Err(err) => err.as_bytes().iter().map(|&b| cp437(b)).collect(),
    }
}

/// Upper half of code page 437.
const CP437_HIGH: &str = "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u{a0}";

fn cp437(b: u8) -> char {
    match b.checked_sub(0x80) {
        None => char::from(b),
        Some(i) => CP437_HIGH
            .chars()
            .nth(usize::from(i))
            .unwrap_or(char::REPLACEMENT_CHARACTER),
    }
}

/// See [`super::open_zip_member`].
pub(super) fn open_member<'a, R: Read + Seek + Send + 'a>(
    mut r: R,
    entry: &ZipEntry,
) -> Result<Box<dyn Read + Send + 'a>, ArchiveError> {
    check_supported(entry)?;
    let mut local = [0u8; LOCAL_LEN];
    read_at(&mut r, entry.header_offset, &mut local, "local header")?;
    if le32(&local, 0) != LOCAL_SIG {
        return Err(corrupt(format!(
            "bad local header signature for {:?}",
            entry.name
        )));
    }
    if le16(&local, 6) & FLAG_ENCRYPTED != 0 {
        return Err(corrupt(format!(
            "entry {:?} is encrypted, which is not supported",
            entry.name
        )));
    }
    let skip = i64::from(le16(&local, 26)) + i64::from(le16(&local, 28));
    r.seek(SeekFrom::Current(skip))?;
    let raw = SourceTag(r).take(entry.compressed_size);
    let inner: Box<dyn Read + Send + 'a> = match entry.method {
        0 => Box::new(raw),
        _ => Box::new(CodecTag {
            inner: DeflateDecoder::new(raw),
            codec: "deflate",
        }),
    };
    Ok(Box::new(MemberReader {
        inner,
        crc: Crc::new(),
        left: entry.size,
        want_crc: entry.crc32,
        verified: false,
    }))
}

/// See [`super::ZipEntry::check_supported`].
pub(super) fn check_supported(entry: &ZipEntry) -> Result<(), ArchiveError> {
    if entry.method != 0 && entry.method != 8 {
        return Err(corrupt(format!(
            "unsupported compression method {}",
            entry.method
        )));
    }
    if entry.encrypted {
        return Err(corrupt(format!(
            "entry {:?} is encrypted, which is not supported",
            entry.name
        )));
    }
    if entry.method == 0 && entry.compressed_size != entry.size {
        return Err(corrupt(format!(
            "stored entry {:?} has mismatched sizes",
            entry.name
        )));
    }
    Ok(())
}

/// Yields exactly the declared number of bytes, then checks that no more follow and that the
/// CRC matches. The checks run as the last byte is delivered, so even a reader that stops
/// after exactly `size` bytes sees them fail.
struct MemberReader<'a> {
    inner: Box<dyn Read + Send + 'a>,
    crc: Crc,
    left: u64,
    want_crc: u32,
    verified: bool,
}

impl MemberReader<'_> {
    fn verify(&mut self) -> io::Result<()> {
        let mut probe = [0u8; 1];
        loop {
            match self.inner.read(&mut probe) {
                Ok(0) => break,
                Ok(_) => {
                    return Err(corrupt_io(
                        "member data is longer than its declared size".to_string(),
                    ));
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            }
        }
        let got = self.crc.sum();
        if got != self.want_crc {
            let want = self.want_crc;
            return Err(corrupt_io(format!(
                "crc32 mismatch: expected {want:08x}, got {got:08x}"
            )));
        }
        self.verified = true;
        Ok(())
    }
}

impl Read for MemberReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            if !self.verified {
                self.verify()?;
            }
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            let left = self.left;
            return Err(corrupt_io(format!(
                "member data ends {left} bytes short of its declared size"
            )));
        }
        self.crc.update(&buf[..n]);
        self.left -= n as u64;
        if self.left == 0 {
            self.verify()?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp437_table_is_complete() {
        assert_eq!(CP437_HIGH.chars().count(), 128);
        assert_eq!(cp437(b'a'), 'a');
        assert_eq!(cp437(0x80), 'Ç');
        assert_eq!(cp437(0xff), '\u{a0}');
        assert_eq!(decode_name(vec![0x82, b'x'], 0), "éx");
        assert_eq!(decode_name("é".as_bytes().to_vec(), 0), "é");
        assert_eq!(decode_name(vec![0xff], FLAG_UTF8), "\u{fffd}");
    }

    #[test]
    fn zip64_extra_fills_saturated_fields_in_order() {
        let mut extra = vec![0x99, 0x99, 2, 0, 1, 2]; // unrelated field first
        extra.extend_from_slice(&[1, 0, 16, 0]);
        extra.extend_from_slice(&(5u64 << 32).to_le_bytes());
        extra.extend_from_slice(&(7u64 << 32).to_le_bytes());
        let mut values = [10, SATURATED, SATURATED];
        apply_zip64_extra(&extra, &mut values).unwrap();
        assert_eq!(values, [10, 5 << 32, 7 << 32]);
        let mut values = [SATURATED; 3];
        assert!(matches!(
            apply_zip64_extra(&extra, &mut values),
            Err(ArchiveError::Corrupt(_))
        ));
    }

    #[test]
    fn eocd_search_prefers_exact_fit() {
        let mut tail = vec![0u8; 10];
        let mut eocd = [0u8; EOCD_LEN];
        eocd[..4].copy_from_slice(&EOCD_SIG.to_le_bytes());
        eocd[20] = 30; // comment of 30 bytes follows
        tail.extend_from_slice(&eocd);
        let mut fake = eocd;
        fake[20] = 0; // inside the comment, fits but does not end the file exactly
        tail.extend_from_slice(&fake);
        tail.extend_from_slice(&[0u8; 8]);
        assert_eq!(find_eocd(&tail), Some(10));
        assert_eq!(find_eocd(&tail[..21]), None);
    }
}
