#![allow(clippy::unwrap_used)]
//! Store behaviour on a real file system: durability of the write path, checksums, layout.
use std::collections::BTreeMap;
use std::fs;

use moss_storage::{Store, StoreError};
use moss_types::Bck;

fn put(store: &Store, bck: &Bck, name: &str, data: &[u8]) -> moss_storage::ObjMeta {
    let mut txn = store.begin_put(bck, name).unwrap();
    txn.write(data).unwrap();
    txn.commit(BTreeMap::new()).unwrap()
}

#[test]
fn a_destroyed_and_recreated_bucket_serves_its_new_objects() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&[dir.path().join("mp1"), dir.path().join("mp2")]).unwrap();
    let bck = Bck::ais("b");
    put(&store, &bck, "o", b"old");
    put(&store, &bck, "d/o", b"old nested");
    assert_eq!(
        store
            .open_object(&bck, "o")
            .unwrap()
            .read_all_verified()
            .unwrap(),
        b"old"
    );
    store.destroy_bucket(&bck).unwrap();
    assert!(matches!(
        store.open_object(&bck, "o"),
        Err(StoreError::NotFound)
    ));
    put(&store, &bck, "o", b"new");
    put(&store, &bck, "d/o", b"new nested");
    assert_eq!(
        store
            .open_object(&bck, "o")
            .unwrap()
            .read_all_verified()
            .unwrap(),
        b"new"
    );
    assert_eq!(
        store
            .open_object(&bck, "d/o")
            .unwrap()
            .read_all_verified()
            .unwrap(),
        b"new nested"
    );
    // A name that would leave the directory never resolves through it.
    assert!(store.open_object(&bck, "../b/%ob/o").is_err());
}

#[test]
fn put_get_overwrite_delete() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&[dir.path().join("mp1"), dir.path().join("mp2")]).unwrap();
    let bck = Bck::ais("b");
    let meta = put(&store, &bck, "dir/a b.txt", b"hello");
    assert_eq!(
        (meta.size, meta.version, meta.cksum_type.as_str()),
        (5, 1, "xxhash2")
    );
    assert_eq!(
        meta.cksum,
        format!("{:016x}", xxhash_rust::xxh64::xxh64(b"hello", 0))
    );
    let h = store.open_object(&bck, "dir/a b.txt").unwrap();
    assert_eq!(h.read_all_verified().unwrap(), b"hello");
    assert_eq!(
        h.describe(),
        "ais://b/dir/a b.txt",
        "messages name no disk path"
    );
    let nested = put(&store, &bck, "x/%ob/y", b"!");
    assert_eq!(nested.size, 1);
    let h2 = store.open_object(&bck, "x/%ob/y").unwrap();
    assert_eq!(h2.describe(), "ais://b/x/%ob/y");
    assert_eq!(put(&store, &bck, "dir/a b.txt", b"bye").version, 2);
    assert_eq!(
        store
            .open_object(&bck, "dir/a b.txt")
            .unwrap()
            .read_all_verified()
            .unwrap(),
        b"bye"
    );
    store.delete(&bck, "dir/a b.txt").unwrap();
    assert!(matches!(
        store.open_object(&bck, "dir/a b.txt"),
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete(&bck, "dir/a b.txt"),
        Err(StoreError::NotFound)
    ));
}

#[test]
fn layout_matches_aistore_and_work_files_vanish() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&[dir.path().to_path_buf()]).unwrap();
    put(&store, &Bck::ais("imagenet"), "train/x.jpg", b"x");
    let path = fs::canonicalize(dir.path())
        .unwrap()
        .join("@ais/imagenet/%ob/train/x.jpg");
    assert_eq!(fs::read(path).unwrap(), b"x");
    assert_eq!(
        fs::read_dir(dir.path().join(".moss-work")).unwrap().count(),
        0
    );
    // An abandoned write leaves nothing visible.
    let mut txn = store.begin_put(&Bck::ais("imagenet"), "half").unwrap();
    txn.write(b"partial").unwrap();
    drop(txn);
    assert!(matches!(
        store.open_object(&Bck::ais("imagenet"), "half"),
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        fs::read_dir(dir.path().join(".moss-work")).unwrap().count(),
        0
    );
}

#[test]
fn corruption_is_detected_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&[dir.path().to_path_buf()]).unwrap();
    let bck = Bck::ais("b");
    put(&store, &bck, "o", b"0123456789");
    let h = store.open_object(&bck, "o").unwrap();
    // Flip a byte in place, keeping the xattr.
    use std::os::unix::fs::FileExt;
    fs::OpenOptions::new()
        .write(true)
        .open(&h.path)
        .unwrap()
        .write_all_at(b"X", 3)
        .unwrap();
    let err = store
        .open_object(&bck, "o")
        .unwrap()
        .read_all_verified()
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("checksum mismatch")),
        "{err}"
    );
}

#[test]
fn name_collisions_are_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&[dir.path().to_path_buf()]).unwrap();
    let bck = Bck::ais("b");
    put(&store, &bck, "a", b"1");
    let mut txn = store.begin_put(&bck, "a/b").unwrap();
    txn.write(b"2").unwrap();
    assert!(matches!(
        txn.commit(BTreeMap::new()),
        Err(StoreError::Conflict(_))
    ));
    put(&store, &bck, "c/d", b"3");
    let mut txn = store.begin_put(&bck, "c").unwrap();
    txn.write(b"4").unwrap();
    assert!(matches!(
        txn.commit(BTreeMap::new()),
        Err(StoreError::Conflict(_))
    ));
    // Rejected writes leave no work files behind.
    assert_eq!(
        fs::read_dir(dir.path().join(".moss-work")).unwrap().count(),
        0
    );
    // Deleting the only object under c/ frees the name c.
    store.delete(&bck, "c/d").unwrap();
    put(&store, &bck, "c", b"5");
}

#[test]
fn truncated_objects_fail_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&[dir.path().to_path_buf()]).unwrap();
    let bck = Bck::ais("b");
    put(&store, &bck, "o", b"0123456789");
    let path = store.open_object(&bck, "o").unwrap().path;
    // Truncate in place, keeping the xattr that records 10 bytes.
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(4)
        .unwrap();
    let err = store.open_object(&bck, "o").unwrap_err();
    let text = err.to_string();
    assert!(matches!(&err, StoreError::Corrupt(_)), "{text}");
    assert!(text.contains("size mismatch"), "{text}");
    assert!(!text.contains(dir.path().to_str().unwrap()), "{text}");
}

#[test]
fn listing_is_sorted_paged_and_prefixed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&[
        dir.path().join("m1"),
        dir.path().join("m2"),
        dir.path().join("m3"),
    ])
    .unwrap();
    let bck = Bck::ais("b");
    let mut names: Vec<String> = (0..50).map(|i| format!("d{}/o-{i:03}", i % 3)).collect();
    names.push("d-x".into());
    for n in &names {
        put(&store, &bck, n, n.as_bytes());
    }
    names.sort();
    let page = store.list(&bck, "", "", 10, false, false).unwrap();
    assert_eq!(
        page.iter().map(|o| o.name.clone()).collect::<Vec<_>>(),
        names[..10]
    );
    let next = store
        .list(&bck, "", &page[9].name, 10, true, false)
        .unwrap();
    assert_eq!(next[0].name, names[10]);
    assert!(
        next.iter()
            .all(|o| o.meta.as_ref().is_some_and(|m| m.size == o.size))
    );
    let d1 = store.list(&bck, "d1/", "", 1000, false, false).unwrap();
    assert_eq!(
        d1.len(),
        names.iter().filter(|n| n.starts_with("d1/")).count()
    );
    assert_eq!(store.buckets_on_disk(), vec![bck.clone()]);
    store.destroy_bucket(&bck).unwrap();
    assert!(
        store
            .list(&bck, "", "", 10, false, false)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn metadata_is_stored_compactly_enough_to_live_in_the_inode() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&[dir.path().to_path_buf()]).unwrap();
    put(&store, &Bck::ais("b"), "o", b"payload");
    let h = store.open_object(&Bck::ais("b"), "o").unwrap();
    let mut raw = [0u8; 512];
    let len = rustix::fs::fgetxattr(&h.file, "user.moss.lom", &mut raw).unwrap();
    assert_eq!(raw[0], 1, "binary record, not JSON");
    assert!(len <= 40, "{len} bytes");
    assert_eq!(h.meta.size, 7);
    assert_eq!(h.read_all_verified().unwrap(), b"payload");
}

/// The change stamp of an object moves with every commit and delete of it and with a destroyed
/// bucket, and not with reads or with writes that never commit.
#[test]
fn change_stamps_follow_commits_deletes_and_destroyed_buckets() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&[dir.path().join("mp1")]).unwrap();
    let bck = Bck::ais("b");
    let stamp = || store.change_stamp(&bck, "shard.tar");
    let before = stamp();
    put(&store, &bck, "shard.tar", b"v1");
    let after_put = stamp();
    assert_ne!(after_put, before);
    store.open_object(&bck, "shard.tar").unwrap();
    drop(store.begin_put(&bck, "shard.tar").unwrap());
    assert_eq!(
        stamp(),
        after_put,
        "reads and abandoned writes change nothing"
    );
    let count = store.change_count();
    store.delete(&bck, "shard.tar").unwrap();
    let after_delete = stamp();
    assert_ne!(after_delete, after_put);
    assert!(store.change_count() > count);
    put(&store, &bck, "other", b"x");
    store.destroy_bucket(&bck).unwrap();
    assert_ne!(
        stamp(),
        after_delete,
        "a destroyed bucket changes every stamp"
    );
}

#[test]
fn a_non_recursive_listing_shows_one_level_with_directory_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&[dir.path().join("m1"), dir.path().join("m2")]).unwrap();
    let bck = Bck::ais("b");
    for n in [
        "X/alpha.txt",
        "X/beta.bin",
        "X/subdir/one.txt",
        "X/subdir/deep/three.txt",
        "Xy/z",
        "top",
    ] {
        put(&store, &bck, n, n.as_bytes());
    }
    let names = |prefix: &str, after: &str, limit: usize| -> Vec<(String, bool)> {
        store
            .list(&bck, prefix, after, limit, true, true)
            .unwrap()
            .into_iter()
            .map(|o| (o.name, o.is_dir))
            .collect()
    };
    let own = |v: &[(&str, bool)]| -> Vec<(String, bool)> {
        v.iter().map(|(n, d)| (n.to_string(), *d)).collect()
    };
    assert_eq!(
        names("X/", "", 100),
        own(&[
            ("X/alpha.txt", false),
            ("X/beta.bin", false),
            ("X/subdir/", true)
        ])
    );
    assert_eq!(
        names("", "", 100),
        own(&[("X/", true), ("Xy/", true), ("top", false)])
    );
    // A prefix that ends inside a name segment: the next `/` closes the directory.
    assert_eq!(names("X/sub", "", 100), own(&[("X/subdir/", true)]));
    // Paging: a directory is listed once, and a page after it does not list it again.
    assert_eq!(names("X/", "", 2).len(), 2);
    assert_eq!(names("X/", "X/beta.bin", 2), own(&[("X/subdir/", true)]));
    assert!(names("X/", "X/subdir/", 2).is_empty());
    assert_eq!(moss_storage::dir_entry("a/b/c", "a"), Some("a/b/"));
    assert_eq!(moss_storage::dir_entry("a/b", "a/"), None);
}

#[test]
fn multipart_parts_survive_a_reopen_and_assemble_in_number_order() {
    let dir = tempfile::tempdir().unwrap();
    let paths = [dir.path().join("m1"), dir.path().join("m2")];
    let bck = Bck::ais("b");
    let id = {
        let store = Store::open(&paths).unwrap();
        let id = store.mpu_create(&bck, "big").unwrap();
        for (n, data) in [(2u32, b"-two".as_slice()), (1, b"one")] {
            let mut part = store.mpu_part(&bck, "big", &id, n).unwrap();
            part.write(data).unwrap();
            part.commit().unwrap();
        }
        // A part cut off mid-write (its request never answered) leaves nothing behind.
        let mut torn = store.mpu_part(&bck, "big", &id, 3).unwrap();
        torn.write(b"torn").unwrap();
        drop(torn);
        id
    };
    let store = Store::open(&paths).unwrap();
    assert_eq!(store.mpu_ids(), vec![id.clone()]);
    assert!(matches!(
        store.open_object(&bck, "big"),
        Err(StoreError::NotFound)
    ));
    let wrong = store.mpu_complete(&bck, "other", &id, Some(&[1, 2]));
    assert!(matches!(wrong, Err(StoreError::Missing(m)) if m.contains("does not exist")));
    let (txn, custom) = store.mpu_complete(&bck, "big", &id, Some(&[2, 1])).unwrap();
    let meta = txn.commit(custom).unwrap();
    assert_eq!(meta.size, 7);
    assert_eq!(moss_storage::chunk_info(&meta.custom), Some((2, 4)));
    let handle = store.open_object(&bck, "big").unwrap();
    assert_eq!(handle.read_all_verified().unwrap(), b"one-two");
    assert!(store.mpu_ids().is_empty());
    let again = store.mpu_complete(&bck, "big", &id, Some(&[1, 2]));
    assert!(matches!(again, Err(StoreError::Missing(_))));
}

/// Mirror copies follow their object: a commit of new content drops the old copies, making
/// copies restores a lost object's bytes, and a delete racing with the copying never leaves a
/// copy behind that could bring the deleted object back.
#[test]
fn mirror_copies_follow_commits_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<_> = (0..3).map(|k| dir.path().join(format!("mp{k}"))).collect();
    let store = std::sync::Arc::new(Store::open(&paths).unwrap());
    let bck = Bck::ais("b");
    put(&store, &bck, "o", b"first");
    let made = store.make_copies(&bck, "o", 3).unwrap();
    assert_eq!((made.written, made.copies), (2, 3));
    assert_eq!(store.copies_of(&bck, "o").len(), 2);
    assert_eq!(store.make_copies(&bck, "o", 3).unwrap().written, 0);
    put(&store, &bck, "o", b"second");
    assert!(store.copies_of(&bck, "o").is_empty(), "old copies dropped");
    store.make_copies(&bck, "o", 2).unwrap();
    let main = store.open_object(&bck, "o").unwrap().path;
    fs::remove_file(&main).unwrap();
    store.restore_from_copy(&bck, "o").unwrap();
    let restored = store.open_object(&bck, "o").unwrap();
    assert_eq!(restored.read_all_verified().unwrap(), b"second");
    assert_eq!(restored.meta.version, 2, "same version as before the loss");
    assert_eq!(store.copies_of(&bck, "o").len(), 1, "the copy stays");

    // The delete lands while the copier is between opening the object and renaming its copies
    // into place (each copy is fsynced first, which takes a while), in most rounds.
    for i in 0..40 {
        let name = format!("race-{i}");
        put(&store, &bck, &name, &vec![i as u8; 256 << 10]);
        let copier = {
            let (store, bck, name) = (store.clone(), bck.clone(), name.clone());
            std::thread::spawn(move || {
                let _ = store.make_copies(&bck, &name, 3);
            })
        };
        std::thread::sleep(std::time::Duration::from_micros(300));
        store.delete(&bck, &name).unwrap();
        copier.join().unwrap();
        assert!(
            store.copies_of(&bck, &name).is_empty(),
            "{name}: a copy outlived its deleted object"
        );
        assert!(matches!(
            store.restore_from_copy(&bck, &name),
            Err(StoreError::NotFound)
        ));
    }
}
