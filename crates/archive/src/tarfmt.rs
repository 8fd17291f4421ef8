//! Raw TAR framing for writers that pass payload buffers through without copying: USTAR
//! headers (with a PAX extended header when a name or size does not fit), padding and trailer.

/// Size of a TAR block.
pub const BLOCK: usize = 512;

/// The end-of-archive marker: two zero blocks.
pub const TRAILER: [u8; 2 * BLOCK] = [0; 2 * BLOCK];

/// Largest value an 11-digit octal field can hold (8 GiB - 1).
const MAX_OCTAL_11: u64 = 0o777_7777_7777;

/// Prefix of the name of PAX extended headers (readers ignore it; GNU tar uses a similar one).
const PAX_DIR: &str = "PaxHeaders/";

/// Header field offsets and lengths (POSIX ustar layout).
const NAME: (usize, usize) = (0, 100);
const MODE: (usize, usize) = (100, 8);
const UID: (usize, usize) = (108, 8);
const GID: (usize, usize) = (116, 8);
const SIZE: (usize, usize) = (124, 12);
const MTIME: (usize, usize) = (136, 12);
const CHKSUM: (usize, usize) = (148, 8);
const TYPEFLAG: usize = 156;
const MAGIC: (usize, usize) = (257, 8);
const DEVMAJOR: (usize, usize) = (329, 8);
const DEVMINOR: (usize, usize) = (337, 8);
const PREFIX: (usize, usize) = (345, 155);

/// Header bytes for one regular file (typeflag `0`, mode 0644, uid/gid 0, empty user/group
/// names). Emits a plain USTAR header when the name is ASCII and fits (≤ 100 bytes, or splits
/// at a `/` into a ≤ 155-byte prefix and ≤ 100-byte name) and the size is < 8 GiB; otherwise a
/// PAX `x` extended header (records `path` and/or `size`) followed by the USTAR header.
/// Appends to `out`; the result is always a multiple of 512 bytes.
pub fn push_file_header(out: &mut Vec<u8>, name: &str, size: u64, mtime_secs: u64) {
    let split = if name.is_ascii() {
        split_ustar_name(name)
    } else {
        None
    };
    let pax_path = split.is_none();
    let pax_size = size > MAX_OCTAL_11;
    if pax_path || pax_size {
        push_pax_header(out, name, pax_path, pax_size, size, mtime_secs);
    }
    let start = out.len();
    out.resize(start + BLOCK, 0);
    let hdr = &mut out[start..];
    match split {
        Some((prefix, base)) => {
            put_bytes(hdr, PREFIX, prefix.as_bytes());
            put_bytes(hdr, NAME, base.as_bytes());
        }
        // The PAX `path` record carries the real name; this is only a hint for old readers.
        None => put_sanitized(hdr, NAME, name, ""),
    }
    fill_common(hdr, b'0', mtime_secs);
    put_size(hdr, size);
    put_checksum(hdr);
}

/// Zero bytes needed after `size` payload bytes to reach the next 512-byte boundary.
pub fn padding(size: u64) -> usize {
    // The remainder is < 512, so the cast is lossless.
    ((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64) as usize
}

/// Splits `name` into a USTAR (prefix, name) pair, or `None` when it cannot be represented.
fn split_ustar_name(name: &str) -> Option<(&str, &str)> {
    if name.len() <= NAME.1 {
        return Some(("", name));
    }
    // Prefer the longest prefix that fits, so the name part is as short as possible.
    let max_prefix = PREFIX.1.min(name.len() - 1);
    let at = name.as_bytes()[..=max_prefix]
        .iter()
        .rposition(|&b| b == b'/')?;
    let (prefix, base) = (&name[..at], &name[at + 1..]);
    let fits = !prefix.is_empty() && !base.is_empty() && base.len() <= NAME.1;
    fits.then_some((prefix, base))
}

/// Appends a PAX `x` header and its records (padded) for `name` and/or `size`.
fn push_pax_header(
    out: &mut Vec<u8>,
    name: &str,
    path: bool,
    big: bool,
    size: u64,
    mtime_secs: u64,
) {
    let mut size_buf = [0u8; 20];
    let size_str = format_decimal(size, &mut size_buf);
    let records_len = (if path {
        record_len("path", name.len())
    } else {
        0
    }) + (if big {
        record_len("size", size_str.len())
    } else {
        0
    });

    let start = out.len();
    out.resize(start + BLOCK, 0);
    let hdr = &mut out[start..];
    let base = name.rsplit('/').find(|s| !s.is_empty()).unwrap_or("");
    put_sanitized(hdr, NAME, base, PAX_DIR);
    fill_common(hdr, b'x', mtime_secs);
    put_octal(hdr, SIZE, records_len as u64);
    put_checksum(hdr);

    if path {
        push_record(out, "path", name.as_bytes());
    }
    if big {
        push_record(out, "size", size_str);
    }
    out.resize(out.len() + padding(records_len as u64), 0);
}

/// Length of the PAX record `"<len> <key>=<value>\n"`, whose length field counts itself.
fn record_len(key: &str, value_len: usize) -> usize {
    let body = 1 + key.len() + 1 + value_len + 1;
    let mut digits = decimal_digits(body as u64);
    // Adding the length field may carry it into one more digit (e.g. 9x → 10x).
    if decimal_digits((body + digits) as u64) > digits {
        digits += 1;
    }
    body + digits
}

/// Appends one PAX record.
fn push_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let mut len_buf = [0u8; 20];
    let len = format_decimal(record_len(key, value.len()) as u64, &mut len_buf);
    out.extend_from_slice(len);
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Number of decimal digits of `v`.
fn decimal_digits(v: u64) -> usize {
    v.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// Formats `v` in decimal into the tail of `buf`, returning the digits.
fn format_decimal(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[at..];
        }
    }
}

/// Fields shared by the PAX and the file header: mode, owner, mtime, type, magic, devices.
fn fill_common(hdr: &mut [u8], typeflag: u8, mtime_secs: u64) {
    put_bytes(hdr, MODE, b"0000644\0");
    put_bytes(hdr, UID, b"0000000\0");
    put_bytes(hdr, GID, b"0000000\0");
    // Times past year 2242 do not fit 11 octal digits; clamping beats failing the request.
    put_octal(hdr, MTIME, mtime_secs.min(MAX_OCTAL_11));
    hdr[TYPEFLAG] = typeflag;
    put_bytes(hdr, MAGIC, b"ustar\x0000");
    put_bytes(hdr, DEVMAJOR, b"0000000\0");
    put_bytes(hdr, DEVMINOR, b"0000000\0");
}

/// Size field: octal when it fits, else GNU base-256 (the PAX `size` record is authoritative).
fn put_size(hdr: &mut [u8], size: u64) {
    if size <= MAX_OCTAL_11 {
        put_octal(hdr, SIZE, size);
        return;
    }
    let field = &mut hdr[SIZE.0..SIZE.0 + SIZE.1];
    field.fill(0);
    field[SIZE.1 - 8..].copy_from_slice(&size.to_be_bytes());
    field[0] = 0x80;
}

/// Writes `v` as zero-padded octal filling the field but its last byte, which stays NUL.
fn put_octal(hdr: &mut [u8], (off, len): (usize, usize), mut v: u64) {
    let field = &mut hdr[off..off + len];
    field[len - 1] = 0;
    for b in field[..len - 1].iter_mut().rev() {
        *b = b'0' + (v & 7) as u8;
        v >>= 3;
    }
}

/// Copies `src` into a field; callers guarantee it fits.
fn put_bytes(hdr: &mut [u8], (off, len): (usize, usize), src: &[u8]) {
    let n = src.len().min(len);
    hdr[off..off + n].copy_from_slice(&src[..n]);
}

/// Writes `prefix` + `name` with non-ASCII bytes replaced, truncated to the field.
fn put_sanitized(hdr: &mut [u8], (off, len): (usize, usize), name: &str, prefix: &str) {
    let bytes = prefix.bytes().chain(
        name.bytes()
            .map(|b| if b.is_ascii() && b != 0 { b } else { b'_' }),
    );
    for (dst, b) in hdr[off..off + len].iter_mut().zip(bytes) {
        *dst = b;
    }
}

/// Computes the header checksum (with the checksum field counted as spaces) and stores it as
/// six octal digits, NUL, space.
fn put_checksum(hdr: &mut [u8]) {
    hdr[CHKSUM.0..CHKSUM.0 + CHKSUM.1].fill(b' ');
    let sum: u64 = hdr[..BLOCK].iter().map(|&b| u64::from(b)).sum();
    put_octal(hdr, (CHKSUM.0, 7), sum);
    hdr[CHKSUM.0 + 7] = b' ';
}

#[cfg(test)]
mod tests {
    use super::*;

    fn octal(field: &[u8]) -> u64 {
        let s = std::str::from_utf8(field)
            .unwrap()
            .trim_matches(|c| c == '\0' || c == ' ');
        u64::from_str_radix(s, 8).unwrap()
    }

    fn checksum_ok(hdr: &[u8]) -> bool {
        let stored = octal(&hdr[148..156]);
        let sum: u64 = hdr
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(b)
                }
            })
            .sum();
        stored == sum
    }

    #[test]
    fn padding_values() {
        assert_eq!(padding(0), 0);
        assert_eq!(padding(1), 511);
        assert_eq!(padding(511), 1);
        assert_eq!(padding(512), 0);
        assert_eq!(padding(513), 511);
        assert_eq!(padding(u64::MAX), 1);
    }

    #[test]
    fn plain_header_fields() {
        let mut out = Vec::new();
        push_file_header(&mut out, "dir/file.bin", 1234, 1_700_000_000);
        assert_eq!(out.len(), 512);
        assert_eq!(&out[..12], b"dir/file.bin");
        assert_eq!(out[12], 0);
        assert_eq!(&out[100..108], b"0000644\0");
        assert_eq!(&out[108..116], b"0000000\0");
        assert_eq!(&out[124..136], b"00000002322\0");
        assert_eq!(octal(&out[136..148]), 1_700_000_000);
        assert_eq!(out[156], b'0');
        assert_eq!(&out[257..265], b"ustar\x0000");
        assert!(out[265..329].iter().all(|&b| b == 0), "empty uname/gname");
        assert_eq!(out[154], 0);
        assert_eq!(out[155], b' ');
        assert!(checksum_ok(&out));
    }

    #[test]
    fn appends_after_existing_bytes() {
        let mut out = vec![7u8; 3];
        push_file_header(&mut out, "a", 0, 0);
        assert_eq!(out.len(), 515);
        assert_eq!(&out[..3], &[7, 7, 7]);
        assert!(checksum_ok(&out[3..]));
    }

    #[test]
    fn ustar_prefix_split() {
        let name = format!("{}/{}", "p".repeat(120), "n".repeat(90));
        let mut out = Vec::new();
        push_file_header(&mut out, &name, 1, 0);
        assert_eq!(out.len(), 512, "no PAX header needed");
        assert_eq!(&out[345..465], "p".repeat(120).as_bytes());
        assert_eq!(&out[..90], "n".repeat(90).as_bytes());
        assert!(checksum_ok(&out));
    }

    #[test]
    fn split_picks_a_fitting_slash() {
        assert_eq!(split_ustar_name("a/b"), Some(("", "a/b")));
        let long = format!("{}/{}/{}", "a".repeat(100), "b".repeat(40), "c".repeat(60));
        let (prefix, base) = split_ustar_name(&long).unwrap();
        assert_eq!(prefix, format!("{}/{}", "a".repeat(100), "b".repeat(40)));
        assert_eq!(base, "c".repeat(60));
        // The only slash that keeps the prefix short leaves a name that is too long.
        let long = format!("{}/{}/{}", "a".repeat(150), "b".repeat(50), "c".repeat(60));
        assert_eq!(split_ustar_name(&long), None);
        let edge = format!("{}/{}", "a".repeat(155), "b".repeat(100));
        assert_eq!(
            split_ustar_name(&edge).map(|(p, b)| (p.len(), b.len())),
            Some((155, 100))
        );
        // Too long either way.
        assert_eq!(split_ustar_name(&"x".repeat(101)), None);
        assert_eq!(
            split_ustar_name(&format!("{}/{}", "a".repeat(156), "b")),
            None
        );
        assert_eq!(split_ustar_name(&format!("a/{}", "b".repeat(101))), None);
        // A leading slash would leave an empty prefix.
        assert_eq!(split_ustar_name(&format!("/{}", "b".repeat(100))), None);
    }

    fn pax_records(out: &[u8]) -> String {
        assert_eq!(out[156], b'x');
        assert!(checksum_ok(&out[..512]));
        let len = octal(&out[124..136]) as usize;
        String::from_utf8(out[512..512 + len].to_vec()).unwrap()
    }

    #[test]
    fn pax_for_non_ascii_name() {
        let mut out = Vec::new();
        push_file_header(&mut out, "données/é.txt", 5, 9);
        assert_eq!(out.len(), 3 * 512);
        let recs = pax_records(&out);
        assert_eq!(recs, "24 path=données/é.txt\n");
        assert_eq!(recs.len(), 24);
        assert!(out[..11].starts_with(b"PaxHeaders/"));
        let file = &out[1024..];
        assert_eq!(file[156], b'0');
        assert!(file[..100].is_ascii());
        assert!(checksum_ok(file));
    }

    #[test]
    fn pax_record_length_carries_digit() {
        // body 1 + 4 + 1 + n + 1 = n + 7; choose n so that the total crosses 100.
        for n in 85..100 {
            let len = record_len("path", n);
            let s = format!("{len} path={}\n", "a".repeat(n));
            assert_eq!(s.len(), len, "n={n}");
        }
        for n in [0, 1, 2, 990, 991, 992, 993, 99_990] {
            let len = record_len("path", n);
            assert_eq!(
                format!("{len} path={}\n", "a".repeat(n)).len(),
                len,
                "n={n}"
            );
        }
    }

    #[test]
    fn pax_for_unsplittable_long_name() {
        let name = "z".repeat(300);
        let mut out = Vec::new();
        push_file_header(&mut out, &name, 0, 0);
        let recs = pax_records(&out);
        assert_eq!(recs, format!("310 path={name}\n"));
        assert_eq!(out.len() % 512, 0);
    }

    #[test]
    fn pax_for_huge_size() {
        let size = 10u64 << 30;
        let mut out = Vec::new();
        push_file_header(&mut out, "big.bin", size, 0);
        let recs = pax_records(&out);
        assert_eq!(recs, format!("20 size={size}\n"));
        let file = &out[1024..];
        assert_eq!(&file[..7], b"big.bin");
        assert_eq!(file[124], 0x80);
        assert_eq!(u64::from_be_bytes(file[128..136].try_into().unwrap()), size);
        assert!(checksum_ok(file));
    }

    #[test]
    fn size_limit_boundary() {
        let mut out = Vec::new();
        push_file_header(&mut out, "a", MAX_OCTAL_11, 0);
        assert_eq!(out.len(), 512);
        out.clear();
        push_file_header(&mut out, "a", MAX_OCTAL_11 + 1, 0);
        assert_eq!(out.len(), 3 * 512);
    }
}
