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
