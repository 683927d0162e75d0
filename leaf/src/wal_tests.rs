use super::*;

fn open(dir: &Path, applied: u64) -> (Wal, Vec<Entry>) {
    let mut seen = Vec::new();
    let (wal, replayed) = Wal::open(dir, applied, |e| {
        seen.push(e);
        Ok::<_, WalError>(())
    })
    .unwrap();
    assert_eq!(replayed as usize, seen.len());
    (wal, seen)
}

fn upsert(items: &[&str]) -> (OpKind, Vec<String>) {
    (
        OpKind::Upsert,
        items.iter().map(|s| s.to_string()).collect(),
    )
}

fn append(wal: &mut Wal, kind: OpKind, items: &[&str]) -> u64 {
    wal.append(kind, items.iter().copied()).unwrap()
}

fn ops(entries: &[Entry]) -> Vec<(OpKind, Vec<String>)> {
    entries.iter().map(|e| (e.kind, e.items.clone())).collect()
}

#[test]
fn replays_every_record_after_the_applied_one_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, seen) = open(dir.path(), 0);
    assert!(seen.is_empty());
    assert_eq!(append(&mut wal, OpKind::Upsert, &[r#"{"id":"a"}"#, "é"]), 1);
    assert_eq!(append(&mut wal, OpKind::Delete, &["a"]), 2);
    assert_eq!(append(&mut wal, OpKind::Upsert, &[]), 3);
    drop(wal);

    let (_, all) = open(dir.path(), 0);
    assert_eq!(
        ops(&all),
        [
            upsert(&[r#"{"id":"a"}"#, "é"]),
            (OpKind::Delete, vec!["a".to_string()]),
            upsert(&[]),
        ]
    );
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    let (mut wal, after_two) = open(dir.path(), 2);
    assert_eq!(after_two.iter().map(|e| e.seq).collect::<Vec<_>>(), [3]);
    assert_eq!(wal.last_seq(), 3, "numbering goes on after a reopen");
    assert_eq!(append(&mut wal, OpKind::Delete, &["b"]), 4);
}

#[test]
fn a_checkpoint_deletes_covered_segments_and_numbering_continues() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(dir.path(), 0);
    append(&mut wal, OpKind::Upsert, &["1"]);
    append(&mut wal, OpKind::Upsert, &["2"]);
    assert!(wal.pending_bytes() > 0);
    wal.checkpoint(2).unwrap();
    assert_eq!(wal.pending_bytes(), 0);
    assert_eq!(wal.segment_files().len(), 1, "{:?}", wal.segment_files());
    append(&mut wal, OpKind::Upsert, &["3"]);
    drop(wal);
    let on_disk = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(on_disk, 1);

    // The commit holding 1..=2 is the applied point; only 3 comes back.
    let (mut wal, seen) = open(dir.path(), 2);
    assert_eq!(ops(&seen), [upsert(&["3"])]);
    wal.checkpoint(3).unwrap();
    drop(wal);
    // Everything committed and the log emptied: a reopen replays nothing and numbers on.
    let (mut wal, seen) = open(dir.path(), 3);
    assert!(seen.is_empty());
    assert_eq!(append(&mut wal, OpKind::Upsert, &["4"]), 4);
}

#[test]
fn a_torn_tail_is_cut_off_and_appends_continue_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(dir.path(), 0);
    append(&mut wal, OpKind::Upsert, &["kept"]);
    append(&mut wal, OpKind::Upsert, &["torn in half by a crash"]);
    let file = wal.segment_files().pop().unwrap();
    drop(wal);
    let len = std::fs::metadata(&file).unwrap().len();
    let f = OpenOptions::new().write(true).open(&file).unwrap();
    f.set_len(len - 5).unwrap();
    drop(f);

    let (mut wal, seen) = open(dir.path(), 0);
    assert_eq!(ops(&seen), [upsert(&["kept"])]);
    assert_eq!(append(&mut wal, OpKind::Upsert, &["next"]), 2);
    drop(wal);
    let (_, seen) = open(dir.path(), 0);
    assert_eq!(ops(&seen), [upsert(&["kept"]), upsert(&["next"])]);
}

#[test]
fn a_flipped_bit_in_an_older_segment_fails_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(dir.path(), 0);
    append(&mut wal, OpKind::Upsert, &["first"]);
    drop(wal);
    // Appends after an open go to a new segment.
    let (mut wal, _) = open(dir.path(), 0);
    append(&mut wal, OpKind::Upsert, &["second"]);
    let files = wal.segment_files();
    assert_eq!(files.len(), 2);
    drop(wal);
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&files[0], bytes).unwrap();

    let err = Wal::open(dir.path(), 0, |_| Ok::<_, WalError>(()))
        .err()
        .expect("corruption is not a torn tail");
    assert!(matches!(err, WalError::Corrupt { offset: 0, .. }), "{err}");
    assert!(err.to_string().contains("checksum"), "{err}");
}

#[test]
fn an_error_from_apply_stops_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(dir.path(), 0);
    append(&mut wal, OpKind::Upsert, &["x"]);
    drop(wal);
    #[derive(Debug)]
    struct Refused;
    impl From<WalError> for Refused {
        fn from(_: WalError) -> Self {
            Refused
        }
    }
    assert!(Wal::open(dir.path(), 0, |_| Err(Refused)).is_err());
}

/// Writes `n` records to a fresh log and returns its one segment's path and each record's
/// (start, end) byte range.
fn segment_of(dir: &Path, n: usize) -> (PathBuf, Vec<(u64, u64)>) {
    let (mut wal, _) = open(dir, 0);
    let mut ranges = Vec::new();
    let path = wal.segment_files().pop().unwrap();
    for i in 0..n {
        let start = std::fs::metadata(&path).unwrap().len();
        let doc = format!(r#"{{"id":"{i}","body":"{}"}}"#, "x".repeat(i * 7 % 50));
        append(&mut wal, OpKind::Upsert, &[doc.as_str()]);
        ranges.push((start, std::fs::metadata(&path).unwrap().len()));
    }
    (path, ranges)
}

fn try_open(dir: &Path) -> Result<Vec<Entry>, WalError> {
    let mut seen = Vec::new();
    Wal::open(dir, 0, |e| {
        seen.push(e);
        Ok::<_, WalError>(())
    })?;
    Ok(seen)
}

#[test]
fn a_flipped_bit_before_the_last_record_fails_the_open_naming_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ranges) = segment_of(dir.path(), 5);
    let mut bytes = std::fs::read(&path).unwrap();
    let (start, _) = ranges[2];
    bytes[start as usize + 20] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let err = try_open(dir.path()).unwrap_err();
    let message = err.to_string();
    assert!(message.contains(&format!("at byte {start}")), "{message}");
    assert!(message.contains("followed by a valid record"), "{message}");
    // Nothing was cut: the records are all still on disk.
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// A torn tail is cut and every whole record before it replayed; damage anywhere else is
    /// reported, and no acknowledged record is ever dropped silently.
    #[test]
    fn damage_is_cut_only_when_it_is_a_torn_tail(
        n in 1usize..12,
        cut in proptest::prelude::any::<proptest::sample::Index>(),
        flip in proptest::prelude::any::<proptest::sample::Index>(),
        bit in 0u8..8,
        truncate in proptest::prelude::any::<bool>(),
        zeros in 0usize..48,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (path, ranges) = segment_of(dir.path(), n);
        let mut bytes = std::fs::read(&path).unwrap();
        let end = bytes.len();
        if truncate {
            // Cut anywhere, then (as when a file's size was persisted before its data) zeros.
            let at = cut.index(end);
            bytes.truncate(at);
            bytes.resize(at + zeros, 0);
            std::fs::write(&path, &bytes).unwrap();
            let whole = ranges.iter().filter(|(_, e)| *e as usize <= at).count();
            let seen = try_open(dir.path()).unwrap();
            proptest::prop_assert_eq!(seen.len(), whole);
            proptest::prop_assert!(seen.iter().map(|e| e.seq).eq(1..=whole as u64));
        } else {
            let at = flip.index(end);
            bytes[at] ^= 1 << bit;
            std::fs::write(&path, &bytes).unwrap();
            let damaged = ranges.iter().position(|(s, e)| (*s as usize..*e as usize).contains(&at)).unwrap();
            match try_open(dir.path()) {
                // Only the last record's damage looks like a torn write.
                Ok(seen) => {
                    proptest::prop_assert_eq!(damaged, n - 1);
                    proptest::prop_assert_eq!(seen.len(), n - 1);
                    proptest::prop_assert!(seen.iter().map(|e| e.seq).eq(1..n as u64));
                }
                Err(WalError::Corrupt { offset, .. }) => {
                    proptest::prop_assert!(damaged < n - 1, "the last record's damage is a torn tail");
                    proptest::prop_assert!(offset <= ranges[damaged].0);
                }
                Err(other) => proptest::prop_assert!(false, "{other}"),
            }
        }
    }
}

#[test]
fn a_zero_filled_tail_is_cut_as_torn() {
    // A file extended before its data reached the disk reads as zeros after the last record.
    let dir = tempfile::tempdir().unwrap();
    let (path, ranges) = segment_of(dir.path(), 3);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.resize(bytes.len() + 4096, 0);
    std::fs::write(&path, &bytes).unwrap();
    let seen = try_open(dir.path()).unwrap();
    assert_eq!(seen.len(), 3);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), ranges[2].1);
}
