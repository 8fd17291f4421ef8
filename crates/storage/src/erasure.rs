//! Reed-Solomon slices of one object (`ec.*`, objects at or above `ec.objsize_limit`).
//!
//! Layout: the object is cut into stripes of `data × shard` bytes (the last one zero-padded),
//! where `shard` is [`CHUNK`], or less for an object smaller than one full stripe (its size over
//! `data`, rounded up to 64 bytes, so small objects are not padded to a whole stripe). Stripe
//! `s` contributes bytes `[s × shard, (s+1) × shard)` to each of the `data` data slices and the
//! `parity` parity slices computed from them. Every slice file is therefore `stripes × shard`
//! bytes, and any `data` of the `data + parity` slices rebuild the object.
//! Memory while encoding or decoding: one stripe of every slice, never the object.
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;

use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

/// Most bytes each slice receives per stripe.
pub const CHUNK: usize = 64 * 1024;
/// Shard sizes are multiples of this (the codec needs an even size; 64 suits its SIMD paths).
const SHARD_ALIGN: usize = 64;

/// Shape of one object's slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub data: usize,
    pub parity: usize,
    /// The object's size.
    pub size: u64,
}

impl Layout {
    /// Bytes each slice receives per stripe.
    pub fn shard(&self) -> usize {
        let per_slice = self.size.div_ceil(self.data as u64).min(CHUNK as u64) as usize;
        per_slice.next_multiple_of(SHARD_ALIGN).max(SHARD_ALIGN)
    }

    pub fn stripes(&self) -> u64 {
        let stripe = (self.data * self.shard()) as u64;
        self.size.div_ceil(stripe).max(1)
    }

    /// Bytes of every slice file.
    pub fn slice_len(&self) -> u64 {
        self.stripes() * self.shard() as u64
    }

    /// Object bytes held by stripe `s`.
    fn stripe_bytes(&self, s: u64) -> usize {
        let stripe = (self.data * self.shard()) as u64;
        (self.size - (s * stripe).min(self.size)).min(stripe) as usize
    }
}

fn rs_error(e: reed_solomon_simd::Error) -> io::Error {
    io::Error::other(format!("reed-solomon: {e}"))
}

/// Reads the object's `layout.size` bytes from `src` and writes its `data + parity` slices, in
/// index order, to `slices`.
pub fn encode(src: &mut dyn Read, layout: Layout, slices: &mut [&mut dyn Write]) -> io::Result<()> {
    assert_eq!(slices.len(), layout.data + layout.parity);
    let shard = layout.shard();
    let mut encoder =
        ReedSolomonEncoder::new(layout.data, layout.parity, shard).map_err(rs_error)?;
    let mut stripe = vec![0u8; layout.data * shard];
    for s in 0..layout.stripes() {
        let n = layout.stripe_bytes(s);
        src.read_exact(&mut stripe[..n])?;
        stripe[n..].fill(0);
        for (k, chunk) in stripe.chunks(shard).enumerate() {
            encoder.add_original_shard(chunk).map_err(rs_error)?;
            slices[k].write_all(chunk)?;
        }
        let result = encoder.encode().map_err(rs_error)?;
        for (k, recovery) in result.recovery_iter().enumerate() {
            slices[layout.data + k].write_all(recovery)?;
        }
        drop(result);
        encoder
            .reset(layout.data, layout.parity, shard)
            .map_err(rs_error)?;
    }
    Ok(())
}

/// Rebuilds the object from the slices at hand (`slices[k]` is slice `k`, `None` if missing; at
/// least `data` must be present) and writes its bytes to `dst`.
pub fn decode<F: FileExt>(
    slices: &[Option<F>],
    layout: Layout,
    dst: &mut dyn Write,
) -> io::Result<()> {
    assert_eq!(slices.len(), layout.data + layout.parity);
    let present = slices.iter().filter(|s| s.is_some()).count();
    if present < layout.data {
        return Err(io::Error::other(format!(
            "only {present} of the {} slices needed are available",
            layout.data
        )));
    }
    let all_data = slices[..layout.data].iter().all(Option::is_some);
    let shard = layout.shard();
    let mut decoder =
        ReedSolomonDecoder::new(layout.data, layout.parity, shard).map_err(rs_error)?;
    let mut chunks: Vec<Vec<u8>> = vec![vec![0u8; shard]; slices.len()];
    for s in 0..layout.stripes() {
        let offset = s * shard as u64;
        let mut used = 0;
        for (k, slice) in slices.iter().enumerate() {
            // Data slices first; parity only as needed.
            if used == layout.data && k >= layout.data {
                break;
            }
            let Some(file) = slice else { continue };
            file.read_exact_at(&mut chunks[k], offset)?;
            used += 1;
            if all_data {
                continue;
            }
            if k < layout.data {
                decoder
                    .add_original_shard(k, &chunks[k])
                    .map_err(rs_error)?;
            } else {
                decoder
                    .add_recovery_shard(k - layout.data, &chunks[k])
                    .map_err(rs_error)?;
            }
        }
        let mut left = layout.stripe_bytes(s);
        if all_data {
            for chunk in &chunks[..layout.data] {
                let n = left.min(shard);
                dst.write_all(&chunk[..n])?;
                left -= n;
            }
            continue;
        }
        let result = decoder.decode().map_err(rs_error)?;
        for (k, chunk) in chunks.iter().enumerate().take(layout.data) {
            let n = left.min(shard);
            let bytes = if slices[k].is_some() {
                &chunk[..]
            } else {
                result
                    .restored_original(k)
                    .ok_or_else(|| io::Error::other("reed-solomon: slice not restored"))?
            };
            dst.write_all(&bytes[..n])?;
            left -= n;
        }
        drop(result);
        decoder
            .reset(layout.data, layout.parity, shard)
            .map_err(rs_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slices_of(data: &[u8], layout: Layout) -> Vec<Vec<u8>> {
        let mut outs: Vec<Vec<u8>> = vec![Vec::new(); layout.data + layout.parity];
        let mut writers: Vec<&mut dyn Write> =
            outs.iter_mut().map(|v| v as &mut dyn Write).collect();
        encode(&mut &data[..], layout, &mut writers).unwrap();
        outs
    }

    fn files(slices: &[Vec<u8>], lost: &[usize]) -> Vec<Option<std::fs::File>> {
        slices
            .iter()
            .enumerate()
            .map(|(k, bytes)| {
                (!lost.contains(&k)).then(|| {
                    let mut f = tempfile::tempfile().unwrap();
                    f.write_all(bytes).unwrap();
                    f
                })
            })
            .collect()
    }

    #[test]
    fn any_data_slices_rebuild_the_object_and_too_few_fail() {
        let data: Vec<u8> = (0..(3 * CHUNK * 2 + 12_345))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let layout = Layout {
            data: 3,
            parity: 2,
            size: data.len() as u64,
        };
        let slices = slices_of(&data, layout);
        assert_eq!(slices.len(), 5);
        assert!(slices.iter().all(|s| s.len() as u64 == layout.slice_len()));
        for lost in [vec![], vec![0], vec![1, 4], vec![0, 2], vec![3, 4]] {
            let mut out = Vec::new();
            decode(&files(&slices, &lost), layout, &mut out).unwrap();
            assert!(out == data, "lost {lost:?}: rebuilt bytes differ");
        }
        let err = decode(&files(&slices, &[0, 1, 2]), layout, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("only 2 of the 3"), "{err}");
    }

    #[test]
    fn small_objects_are_not_padded_to_a_whole_stripe() {
        let layout = |size: u64| Layout {
            data: 2,
            parity: 2,
            size,
        };
        assert_eq!(layout(64 << 10).slice_len(), 32 << 10);
        assert_eq!(layout(1000).slice_len(), 512);
        assert_eq!(layout(1 << 20).slice_len(), 512 << 10);
        assert_eq!(
            layout((1 << 20) + 1).slice_len(),
            (512 << 10) + CHUNK as u64
        );
    }

    #[test]
    fn one_data_slice_and_tiny_objects() {
        for size in [0usize, 1, 2, 65, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 7] {
            let data: Vec<u8> = (0..size).map(|i| i as u8).collect();
            let layout = Layout {
                data: 1,
                parity: 1,
                size: size as u64,
            };
            let slices = slices_of(&data, layout);
            assert!(slices.iter().all(|s| s.len() as u64 == layout.slice_len()));
            let mut out = Vec::new();
            decode(&files(&slices, &[0]), layout, &mut out).unwrap();
            assert_eq!(out, data, "size {size}");
        }
    }
}
