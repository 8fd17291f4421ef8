//! Job ids in AIStore's formats (`shared/reference/ais-jobs.md` §1.2).
use rand::Rng;

const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

fn pick(alphabet: &[u8], n: usize) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

/// A generic id (`Z8WkHxwIrr`): a letter, then 9 letters or digits.
pub fn generic_id() -> String {
    let mut id = pick(LETTERS, 1);
    id.push_str(&pick(ALNUM, 9));
    id
}

/// An object-copy id: `tco-` and 10 letters.
pub fn copy_id() -> String {
    format!("tco-{}", pick(LETTERS, 10))
}

/// An archive id: 10 letters.
pub fn archive_id() -> String {
    pick(LETTERS, 10)
}

/// A GetBatch id: `gbt-` and 9 letters or digits.
pub fn getbatch_id() -> String {
    format!("gbt-{}", pick(ALNUM, 9))
}

/// The rebalance id of a cluster-map version: `g<version>`.
pub fn rebalance_id(smap_version: u64) -> String {
    format!("g{smap_version}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use moss_types::jobs::valid_job_id;

    #[test]
    fn every_form_is_a_valid_id() {
        for _ in 0..200 {
            for id in [generic_id(), copy_id(), archive_id(), getbatch_id()] {
                assert!(valid_job_id(&id), "{id}");
            }
        }
        assert!(valid_job_id(&rebalance_id(17)));
        assert!(generic_id().as_bytes()[0].is_ascii_alphabetic());
        assert_eq!(copy_id().len(), 14);
        assert_ne!(generic_id(), generic_id());
    }
}
