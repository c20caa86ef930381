//! Desync dumps as `volley-bots desync` reads them (players send each
//! other these files): any bytes into `Dump::decode`. Nothing may panic,
//! a decoded dump round-trips (never longer), nothing differs from itself,
//! and the diff against a copy with one value changed names that value.
//!
//! Input: the file's bytes. Half the time they are put after the magic
//! (so the fuzzer reaches the decoder without guessing it).

#![no_main]

use libfuzzer_sys::fuzz_target;
use volley_rollback::desync::{DUMP_MAGIC, Dump};

fuzz_target!(|data: &[u8]| {
    let bytes = match data.split_first() {
        Some((flag, rest)) if flag % 2 == 0 => [DUMP_MAGIC.as_slice(), rest].concat(),
        _ => data.to_vec(),
    };
    let Ok(dump) = Dump::decode(&bytes) else {
        return;
    };
    let again = dump.encode().expect("a decoded dump encodes");
    assert!(again.len() <= bytes.len());
    assert_eq!(Dump::decode(&again).as_ref(), Ok(&dump));
    let same = dump.diff(&dump).expect("a dump compares with itself");
    assert!(same.differences.is_empty(), "a dump differs from itself");
    let _ = same.to_string();
    let mut changed = dump.clone();
    let Some(value) = changed.parts.iter_mut().flat_map(|p| &mut p.values).next() else {
        return;
    };
    value.bytes.push(0);
    let entity = value.entity;
    let diff = dump.diff(&changed).expect("same game, same frame");
    assert!(
        diff.differences.iter().any(|d| d.entity == entity),
        "the changed value is not named"
    );
    let _ = diff.to_string();
});
