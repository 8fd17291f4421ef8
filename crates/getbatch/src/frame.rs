//! Framing of a sender's stream to the designated target (RFC 0002):
//! `kind:u8 index:u32be len:u64be body[len]`.
//!
//! A sender first writes one `STAT` frame per entry (in request order), then one `ITEM` (payload)
//! or `FAIL` frame per entry whose stat was ok, then `END`.
use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::item::ItemError;

pub const STAT: u8 = 1;
pub const ITEM: u8 = 2;
pub const FAIL: u8 = 3;
pub const END: u8 = 4;

/// Bytes of a frame header.
pub const HEADER_LEN: usize = 13;
/// Longest STAT/FAIL body accepted (error texts are short).
const MAX_MESSAGE: u64 = 64 << 10;

/// Outcome of a stat, as carried in a STAT frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stat {
    Ok { size: u64, mtime: u64 },
    Err(ItemError),
}

pub fn put_header(buf: &mut BytesMut, kind: u8, index: u32, len: u64) {
    buf.reserve(HEADER_LEN);
    buf.put_u8(kind);
    buf.put_u32(index);
    buf.put_u64(len);
}

/// Appends a STAT frame.
pub fn put_stat(buf: &mut BytesMut, index: u32, stat: &Stat) {
    let (code, size, mtime, msg): (u8, u64, u64, &str) = match stat {
        Stat::Ok { size, mtime } => (0, *size, *mtime, ""),
        Stat::Err(e) => {
            let code = match e {
                ItemError::NotFound(_) => 1,
                ItemError::Range(_) => 2,
                ItemError::Corrupt(_) => 3,
                ItemError::Invalid(_) => 4,
                ItemError::Io(_) => 5,
            };
            (code, 0, 0, error_text(e))
        }
    };
    put_header(buf, STAT, index, 17 + msg.len() as u64);
    buf.put_u8(code);
    buf.put_u64(size);
    buf.put_u64(mtime);
    buf.put_slice(msg.as_bytes());
}

/// Appends a FAIL frame.
pub fn put_fail(buf: &mut BytesMut, index: u32, msg: &str) {
    put_header(buf, FAIL, index, msg.len() as u64);
    buf.put_slice(msg.as_bytes());
}

fn error_text(e: &ItemError) -> &str {
    match e {
        ItemError::NotFound(m)
        | ItemError::Range(m)
        | ItemError::Corrupt(m)
        | ItemError::Invalid(m)
        | ItemError::Io(m) => m,
    }
}

fn decode_stat(mut body: Bytes) -> Result<Stat, String> {
    if body.len() < 17 {
        return Err("short STAT frame".into());
    }
    let code = body.get_u8();
    let size = body.get_u64();
    let mtime = body.get_u64();
    let msg = String::from_utf8_lossy(&body).into_owned();
    Ok(match code {
        0 => Stat::Ok { size, mtime },
        1 => Stat::Err(ItemError::NotFound(msg)),
        2 => Stat::Err(ItemError::Range(msg)),
        3 => Stat::Err(ItemError::Corrupt(msg)),
        4 => Stat::Err(ItemError::Invalid(msg)),
        5 => Stat::Err(ItemError::Io(msg)),
        other => return Err(format!("unknown STAT code {other}")),
    })
}

/// What the decoder found in the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    Stat {
        index: u32,
        stat: Stat,
    },
    /// Payload bytes of an ITEM; `last` on the chunk that completes it (a 0-byte item yields one
    /// empty chunk).
    Data {
        index: u32,
        chunk: Bytes,
        last: bool,
    },
    Fail {
        index: u32,
        msg: String,
    },
    End,
}

/// Incremental decoder: feed network chunks, take out frames; payloads are sliced, not copied.
#[derive(Default)]
pub struct Decoder {
    pending: BytesMut,
    /// An ITEM whose payload is still arriving: (index, bytes left).
    in_item: Option<(u32, u64)>,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Decodes everything complete in `input` (plus what was left from before) into `out`.
    pub fn feed(&mut self, input: Bytes, out: &mut Vec<Decoded>) -> Result<(), String> {
        let mut input = if self.pending.is_empty() {
            input
        } else {
            self.pending.extend_from_slice(&input);
            self.pending.split().freeze()
        };
        loop {
            if let Some((index, left)) = self.in_item {
                if input.is_empty() {
                    return Ok(());
                }
                let take = left.min(input.len() as u64) as usize;
                let chunk = input.split_to(take);
                let left = left - take as u64;
                out.push(Decoded::Data {
                    index,
                    chunk,
                    last: left == 0,
                });
                self.in_item = (left > 0).then_some((index, left));
                continue;
            }
            if input.len() < HEADER_LEN {
                self.pending.extend_from_slice(&input);
                return Ok(());
            }
            let mut header = &input[..HEADER_LEN];
            let kind = header.get_u8();
            let index = header.get_u32();
            let len = header.get_u64();
            match kind {
                ITEM => {
                    input.advance(HEADER_LEN);
                    if len == 0 {
                        out.push(Decoded::Data {
                            index,
                            chunk: Bytes::new(),
                            last: true,
                        });
                    } else {
                        self.in_item = Some((index, len));
                    }
                }
                STAT | FAIL | END => {
                    if len > MAX_MESSAGE {
                        return Err(format!("oversized frame body ({len} bytes)"));
                    }
                    let total = HEADER_LEN + len as usize;
                    if input.len() < total {
                        self.pending.extend_from_slice(&input);
                        return Ok(());
                    }
                    input.advance(HEADER_LEN);
                    let body = input.split_to(len as usize);
                    out.push(match kind {
                        STAT => Decoded::Stat {
                            index,
                            stat: decode_stat(body)?,
                        },
                        FAIL => Decoded::Fail {
                            index,
                            msg: String::from_utf8_lossy(&body).into_owned(),
                        },
                        _ => Decoded::End,
                    });
                }
                other => return Err(format!("unknown frame kind {other}")),
            }
        }
    }

    /// True when the stream may end here (not inside a frame).
    pub fn at_boundary(&self) -> bool {
        self.pending.is_empty() && self.in_item.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_sample() -> Bytes {
        let mut buf = BytesMut::new();
        put_stat(&mut buf, 0, &Stat::Ok { size: 5, mtime: 7 });
        put_stat(
            &mut buf,
            3,
            &Stat::Err(ItemError::NotFound("ais://b/x does not exist".into())),
        );
        put_stat(&mut buf, 4, &Stat::Ok { size: 0, mtime: 0 });
        put_header(&mut buf, ITEM, 0, 5);
        buf.put_slice(b"hello");
        put_header(&mut buf, ITEM, 4, 0);
        put_fail(&mut buf, 9, "gone");
        put_header(&mut buf, END, 0, 0);
        buf.freeze()
    }

    fn collapse(decoded: Vec<Decoded>) -> Vec<Decoded> {
        // Merge consecutive data chunks of one item so splits do not matter.
        let mut out: Vec<Decoded> = Vec::new();
        for d in decoded {
            if let (
                Some(Decoded::Data {
                    index: pi,
                    chunk: pc,
                    last: pl,
                }),
                Decoded::Data { index, chunk, last },
            ) = (out.last_mut(), &d)
                && *pi == *index
                && !*pl
            {
                let mut joined = BytesMut::from(&pc[..]);
                joined.extend_from_slice(chunk);
                *pc = joined.freeze();
                *pl = *last;
                continue;
            }
            out.push(d);
        }
        out
    }

    #[test]
    fn frames_decode_across_every_split() {
        let wire = encode_sample();
        let mut whole = Vec::new();
        Decoder::new().feed(wire.clone(), &mut whole).unwrap();
        assert_eq!(whole.len(), 7);
        assert_eq!(
            whole[3],
            Decoded::Data {
                index: 0,
                chunk: Bytes::from_static(b"hello"),
                last: true
            }
        );
        assert_eq!(
            whole[4],
            Decoded::Data {
                index: 4,
                chunk: Bytes::new(),
                last: true
            }
        );
        assert_eq!(whole[6], Decoded::End);
        for step in 1..wire.len() {
            let mut decoder = Decoder::new();
            let mut out = Vec::new();
            for piece in wire.chunks(step) {
                decoder
                    .feed(Bytes::copy_from_slice(piece), &mut out)
                    .unwrap();
            }
            assert!(decoder.at_boundary());
            assert_eq!(collapse(out), whole, "split every {step} bytes");
        }
    }

    #[test]
    fn garbage_is_rejected() {
        let mut out = Vec::new();
        assert!(
            Decoder::new()
                .feed(Bytes::from_static(&[9; 20]), &mut out)
                .is_err()
        );
        let mut huge = BytesMut::new();
        put_header(&mut huge, FAIL, 0, 1 << 40);
        assert!(Decoder::new().feed(huge.freeze(), &mut out).is_err());
    }
}
