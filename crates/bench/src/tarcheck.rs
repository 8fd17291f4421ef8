//! Incremental TAR parsing of a response stream, member by member, as a client does while the
//! bytes arrive (like aisloader's `ReadUntil`), plus verification against the request.
use std::time::Instant;

use anyhow::{Result, bail, ensure};
use xxhash_rust::xxh64::Xxh64;

use crate::data::Catalog;

const BLOCK: usize = 512;
/// Largest PAX / GNU long-name payload accepted.
const MAX_META: u64 = 64 << 10;

/// What the parser reports while bytes are fed to it.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A regular-file member starts.
    Member { name: &'a str, size: u64 },
    /// Payload bytes of the current member (possibly several times per member).
    Data(&'a [u8]),
    /// The current member's payload is complete.
    MemberEnd,
    /// The end-of-archive marker (two zero blocks).
    Trailer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Payload,
    Meta(MetaKind),
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetaKind {
    Pax,
    GnuName,
}

/// Streaming TAR parser (ustar, PAX `x`/`g`, GNU `L`). Several archives may follow each other.
#[derive(Debug)]
pub struct TarParser {
    state: State,
    block: [u8; BLOCK],
    fill: usize,
    /// Bytes left in the current payload (file, metadata or skipped entry).
    remaining: u64,
    /// Padding still to skip after the payload.
    pad: usize,
    meta: Vec<u8>,
    next_name: Option<String>,
    next_size: Option<u64>,
    name: String,
    zero_blocks: u8,
}

impl Default for TarParser {
    fn default() -> Self {
        TarParser {
            state: State::Header,
            block: [0; BLOCK],
            fill: 0,
            remaining: 0,
            pad: 0,
            meta: Vec::new(),
            next_name: None,
            next_size: None,
            name: String::new(),
            zero_blocks: 0,
        }
    }
}

fn padding(size: u64) -> usize {
    ((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64) as usize
}

fn octal(field: &[u8]) -> Result<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        // GNU base-256: big-endian in the remaining bytes.
        let mut v: u64 = 0;
        for &b in &field[1..] {
            ensure!(v >> 56 == 0, "base-256 size overflows");
            v = (v << 8) | u64::from(b);
        }
        return Ok(v);
    }
    let text: &[u8] = {
        let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
        &field[..end]
    };
    let text = std::str::from_utf8(text)?.trim();
    if text.is_empty() {
        return Ok(0);
    }
    Ok(u64::from_str_radix(text, 8)?)
}

fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

impl TarParser {
    pub fn new() -> TarParser {
        TarParser::default()
    }

    /// Feeds bytes; calls `on` for every event they complete.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        on: &mut impl FnMut(Event<'_>) -> Result<()>,
    ) -> Result<()> {
        while !data.is_empty() {
            match self.state {
                State::Header => {
                    let take = (BLOCK - self.fill).min(data.len());
                    self.block[self.fill..self.fill + take].copy_from_slice(&data[..take]);
                    self.fill += take;
                    data = &data[take..];
                    if self.fill == BLOCK {
                        self.fill = 0;
                        self.header(on)?;
                    }
                }
                State::Payload => {
                    let take = (self.remaining.min(data.len() as u64)) as usize;
                    if take > 0 {
                        on(Event::Data(&data[..take]))?;
                        self.remaining -= take as u64;
                        data = &data[take..];
                    }
                    if self.remaining == 0 {
                        on(Event::MemberEnd)?;
                        self.after_payload();
                    }
                }
                State::Meta(kind) => {
                    let take = (self.remaining.min(data.len() as u64)) as usize;
                    self.meta.extend_from_slice(&data[..take]);
                    self.remaining -= take as u64;
                    data = &data[take..];
                    if self.remaining == 0 {
                        self.finish_meta(kind)?;
                        self.after_payload();
                    }
                }
                State::Skip => {
                    let take = (self.remaining.min(data.len() as u64)) as usize;
                    self.remaining -= take as u64;
                    data = &data[take..];
                    if self.remaining == 0 {
                        let pad = self.pad.min(data.len());
                        self.pad -= pad;
                        data = &data[pad..];
                        if self.pad == 0 {
                            self.state = State::Header;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Moves past a finished payload: to its padding, or straight to the next header.
    fn after_payload(&mut self) {
        self.remaining = 0;
        self.state = if self.pad == 0 {
            State::Header
        } else {
            State::Skip
        };
    }

    /// Checks the stream ended on an archive boundary (after a trailer, nothing partial).
    pub fn finish(&self) -> Result<()> {
        ensure!(
            self.state == State::Header && self.fill == 0 && self.zero_blocks == 0,
            "archive ends mid-entry (state {:?}, {} header bytes, {} zero blocks)",
            self.state,
            self.fill,
            self.zero_blocks
        );
        Ok(())
    }

    fn header(&mut self, on: &mut impl FnMut(Event<'_>) -> Result<()>) -> Result<()> {
        let block = self.block;
        if block.iter().all(|&b| b == 0) {
            self.zero_blocks += 1;
            if self.zero_blocks == 2 {
                self.zero_blocks = 0;
                on(Event::Trailer)?;
            }
            return Ok(());
        }
        ensure!(
            self.zero_blocks == 0,
            "a single zero block inside the archive"
        );
        let stored = octal(&block[148..156])?;
        let sum: u64 = block
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
        ensure!(stored == sum, "bad header checksum");
        let size = match self.next_size.take() {
            Some(s) => s,
            None => octal(&block[124..136])?,
        };
        let typeflag = block[156];
        match typeflag {
            b'x' | b'L' => {
                ensure!(size <= MAX_META, "metadata entry of {size} bytes");
                self.meta.clear();
                self.remaining = size;
                self.pad = padding(size);
                self.state = State::Meta(if typeflag == b'x' {
                    MetaKind::Pax
                } else {
                    MetaKind::GnuName
                });
                if size == 0 {
                    self.after_payload();
                }
            }
            b'0' | 0 | b'7' => {
                self.name.clear();
                match self.next_name.take() {
                    Some(n) => self.name.push_str(&n),
                    None => {
                        let prefix = cstr(&block[345..500]);
                        if !prefix.is_empty() && &block[257..262] == b"ustar" {
                            self.name.push_str(std::str::from_utf8(prefix)?);
                            self.name.push('/');
                        }
                        self.name
                            .push_str(std::str::from_utf8(cstr(&block[..100]))?);
                    }
                }
                on(Event::Member {
                    name: &self.name,
                    size,
                })?;
                self.remaining = size;
                self.pad = padding(size);
                self.state = State::Payload;
                if size == 0 {
                    on(Event::MemberEnd)?;
                    self.state = State::Header;
                }
            }
            other => {
                // Directories, links, global PAX headers: skip their payload.
                if other != b'g' && other != b'5' {
                    bail!("unexpected TAR entry type {:?}", other as char);
                }
                self.remaining = size;
                self.pad = padding(size);
                self.state = State::Skip;
                if size == 0 {
                    self.after_payload();
                }
            }
        }
        Ok(())
    }

    fn finish_meta(&mut self, kind: MetaKind) -> Result<()> {
        match kind {
            MetaKind::GnuName => {
                let name = cstr(&self.meta);
                self.next_name = Some(std::str::from_utf8(name)?.to_string());
            }
            MetaKind::Pax => {
                let mut rest: &[u8] = &self.meta;
                while !rest.is_empty() {
                    let Some(sp) = rest.iter().position(|&b| b == b' ') else {
                        bail!("bad PAX record");
                    };
                    let len: usize = std::str::from_utf8(&rest[..sp])?.parse()?;
                    ensure!(len > sp + 1 && len <= rest.len(), "bad PAX record length");
                    let record = &rest[sp + 1..len - 1];
                    if let Some(eq) = record.iter().position(|&b| b == b'=') {
                        let (key, value) = (&record[..eq], &record[eq + 1..]);
                        match key {
                            b"path" => {
                                self.next_name = Some(std::str::from_utf8(value)?.to_string())
                            }
                            b"size" => self.next_size = Some(std::str::from_utf8(value)?.parse()?),
                            _ => {}
                        }
                    }
                    rest = &rest[len..];
                }
            }
        }
        Ok(())
    }
}

/// Verifies one archive against the requested catalog items: count, order, names, sizes, and the
/// checksum of sampled items. Optionally records when each member completed.
pub struct BatchCheck<'a> {
    cat: &'a Catalog,
    ids: Vec<u32>,
    next: usize,
    current: Option<u32>,
    hasher: Option<Xxh64>,
    got: u64,
    trailer: bool,
    /// Payload bytes seen.
    pub bytes: u64,
    /// Sampled checksums that matched.
    pub checksums: u64,
    /// Completion time of each member, when recording.
    pub ends: Option<Vec<Instant>>,
}

impl<'a> BatchCheck<'a> {
    pub fn new(cat: &'a Catalog, ids: Vec<u32>) -> BatchCheck<'a> {
        BatchCheck {
            cat,
            ids,
            next: 0,
            current: None,
            hasher: None,
            got: 0,
            trailer: false,
            bytes: 0,
            checksums: 0,
            ends: None,
        }
    }

    /// Records completion times of members.
    pub fn record_ends(mut self) -> Self {
        self.ends = Some(Vec::with_capacity(self.ids.len()));
        self
    }

    /// Members verified so far.
    pub fn members(&self) -> usize {
        self.next
    }

    /// Whether the trailer was seen.
    pub fn complete(&self) -> bool {
        self.trailer
    }

    /// Handles one parser event.
    pub fn on(&mut self, ev: Event<'_>) -> Result<()> {
        match ev {
            Event::Member { name, size } => {
                ensure!(
                    !self.trailer,
                    "member {name:?} after the end of the archive"
                );
                let Some(&id) = self.ids.get(self.next) else {
                    bail!("extra member {name:?}: expected {} members", self.ids.len());
                };
                let item = self.cat.item(id);
                ensure!(
                    name == item.tar_name,
                    "member {} is {name:?}, expected {:?}",
                    self.next,
                    item.tar_name
                );
                ensure!(
                    size == item.size,
                    "member {name:?} has {size} bytes, expected {}",
                    item.size
                );
                self.current = Some(id);
                self.got = 0;
                self.hasher = Catalog::sampled(id).then(|| Xxh64::new(0));
            }
            Event::Data(bytes) => {
                self.got += bytes.len() as u64;
                if let Some(h) = self.hasher.as_mut() {
                    h.update(bytes);
                }
            }
            Event::MemberEnd => {
                let Some(id) = self.current.take() else {
                    bail!("member end without a member");
                };
                let item = self.cat.item(id);
                ensure!(self.got == item.size, "short member {:?}", item.tar_name);
                if let Some(h) = self.hasher.take() {
                    ensure!(
                        h.digest() == item.hash,
                        "checksum mismatch in {:?}",
                        item.tar_name
                    );
                    self.checksums += 1;
                }
                self.bytes += self.got;
                self.next += 1;
                if let Some(ends) = self.ends.as_mut() {
                    ends.push(Instant::now());
                }
            }
            Event::Trailer => {
                if self.trailer {
                    // Extra zero padding after the end marker is allowed.
                    return Ok(());
                }
                ensure!(
                    self.next == self.ids.len(),
                    "archive ended after {} of {} members",
                    self.next,
                    self.ids.len()
                );
                self.trailer = true;
            }
        }
        Ok(())
    }

    /// Checks the archive was complete.
    pub fn finish(&self) -> Result<()> {
        ensure!(
            self.trailer,
            "archive has no end marker after {} of {} members",
            self.next,
            self.ids.len()
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use moss_archive::tarfmt;

    fn build(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data) in members {
            tarfmt::push_file_header(&mut out, name, data.len() as u64, 0);
            out.extend_from_slice(data);
            out.resize(out.len() + tarfmt::padding(data.len() as u64), 0);
        }
        out.extend_from_slice(&tarfmt::TRAILER);
        out
    }

    fn collect(archive: &[u8], chunk: usize) -> Vec<(String, Vec<u8>)> {
        let mut p = TarParser::new();
        let mut out: Vec<(String, Vec<u8>)> = Vec::new();
        let mut trailers = 0;
        for piece in archive.chunks(chunk) {
            p.feed(piece, &mut |ev| {
                match ev {
                    Event::Member { name, .. } => out.push((name.to_string(), Vec::new())),
                    Event::Data(d) => out.last_mut().unwrap().1.extend_from_slice(d),
                    Event::MemberEnd => {}
                    Event::Trailer => trailers += 1,
                }
                Ok(())
            })
            .unwrap();
        }
        p.finish().unwrap();
        assert_eq!(trailers, 1);
        out
    }

    #[test]
    fn parses_members_in_any_chunking() {
        let long = format!("{}/{}", "d".repeat(150), "f".repeat(120));
        let members = vec![
            ("b/o1", vec![1u8; 10 * 1024]),
            ("b/empty", Vec::new()),
            ("b/odd", vec![7u8; 777]),
            (long.as_str(), vec![9u8; 600]),
            ("b/ünï", vec![3u8; 512]),
        ];
        let archive = build(&members);
        for chunk in [1, 7, 511, 512, 513, 4096, archive.len()] {
            let got = collect(&archive, chunk);
            assert_eq!(got.len(), members.len(), "chunk {chunk}");
            for ((gn, gd), (en, ed)) in got.iter().zip(&members) {
                assert_eq!(gn, en);
                assert_eq!(gd, ed);
            }
        }
    }

    #[test]
    fn detects_truncation_and_corruption() {
        let archive = build(&[("a", vec![1u8; 100])]);
        let mut p = TarParser::new();
        p.feed(&archive[..600], &mut |_| Ok(())).unwrap();
        assert!(p.finish().is_err());
        let mut bad = archive.clone();
        bad[0] = b'z';
        let mut p = TarParser::new();
        assert!(p.feed(&bad, &mut |_| Ok(())).is_err());
    }

    #[test]
    fn back_to_back_archives() {
        let mut two = build(&[("a", vec![1u8; 3])]);
        two.extend(build(&[("b", vec![2u8; 5])]));
        let mut p = TarParser::new();
        let mut names = Vec::new();
        let mut trailers = 0;
        p.feed(&two, &mut |ev| {
            match ev {
                Event::Member { name, .. } => names.push(name.to_string()),
                Event::Trailer => trailers += 1,
                _ => {}
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(trailers, 2);
    }
}
