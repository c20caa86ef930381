//! State-sync costs, printed side by side:
//! 1. bytes per entity per tick on the wire, full world vs delta against the
//!    previous tick, for an idle world, 10 % of entities moving and all
//!    moving (1,000 entities, two components: position and velocity);
//! 2. encode + decode time of a 1,000-entity snapshot and the bytes it
//!    takes, bincode 2 vs bitcode, on the same serde types.
//!
//! `cargo bench -p volley_net --bench replication [-- --rounds N]`

#[path = "../../../benches/report.rs"]
mod report;
use std::hint::black_box;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use volley_net::codec::{Bincode, Codec};
use volley_net::replication::{ReplicationMessage, WorldState, diff};

#[derive(
    Clone, Copy, Serialize, Deserialize, bitcode::Encode, bitcode::Decode, PartialEq, Debug,
)]
struct Pos {
    x: f32,
    y: f32,
}

#[derive(
    Clone, Copy, Serialize, Deserialize, bitcode::Encode, bitcode::Decode, PartialEq, Debug,
)]
struct Vel {
    x: f32,
    y: f32,
}

const ENTITIES: u64 = 1_000;

fn component<T: Serialize>(value: &T) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    Bincode.encode(value, &mut out).ok()?;
    Some(out)
}

/// The typed world at `tick`, with every `every`-th entity moving (0: none).
fn typed(tick: u32, every: u64) -> Vec<(u64, Pos, Vel)> {
    (0..ENTITIES)
        .map(|id| {
            let moving = every != 0 && id % every == 0;
            let t = if moving { tick as f32 } else { 0.0 };
            let vel = Vel {
                x: (id % 7) as f32 - 3.0,
                y: (id % 5) as f32 - 2.0,
            };
            let pos = Pos {
                x: id as f32 * 10.0 + vel.x * t,
                y: id as f32 * -10.0 + vel.y * t,
            };
            (id + 1, pos, vel)
        })
        .collect()
}

fn world(typed: &[(u64, Pos, Vel)]) -> WorldState {
    WorldState {
        entities: typed
            .iter()
            .map(|(id, p, v)| (*id, vec![component(p), component(v)]))
            .collect(),
    }
}

fn wire_size(message: &ReplicationMessage) -> usize {
    let mut out = Vec::new();
    Bincode.encode(message, &mut out).expect("encodes");
    out.len()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time(rounds: usize, mut f: impl FnMut()) -> Duration {
    for _ in 0..rounds / 10 + 1 {
        f();
    }
    median(
        (0..rounds)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect(),
    )
}

fn main() {
    let mut rounds = 200;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--rounds" {
            rounds = args.next().and_then(|v| v.parse().ok()).unwrap_or(rounds);
        }
    }

    let mut sizes = report::Table::new(
        "state_sync",
        format!(
            "State sync: bytes per entity per tick on the wire, {ENTITIES} entities with position + velocity, bincode 2"
        ),
        &["delta", "full world"],
    );
    println!(
        "1. bytes per entity per tick ({ENTITIES} entities; position + velocity, bincode 2 on the wire)"
    );
    println!(
        "{:<14} {:>12} {:>12} {:>10}",
        "world", "full", "delta", "delta/full"
    );
    for (name, every) in [("idle", 0), ("10% moving", 10), ("all moving", 1)] {
        let before = world(&typed(1, every));
        let now = world(&typed(2, every));
        let full = wire_size(&ReplicationMessage::Full {
            tick: 2,
            term: 0,
            input_ack: 0,
            world: now.clone(),
        });
        let (changed, despawned) = diff(&before, &now);
        let delta = wire_size(&ReplicationMessage::Delta {
            tick: 2,
            term: 0,
            input_ack: 0,
            baseline: 1,
            changed,
            despawned,
        });
        let per = |bytes: usize| bytes as f64 / ENTITIES as f64;
        sizes.row(
            format!("{name} (bytes/entity/tick)"),
            report::Better::Lower,
            &[per(delta), per(full)],
        );
        println!(
            "{name:<14} {:>12.2} {:>12.3} {:>9.3}x",
            per(full),
            per(delta),
            delta as f64 / full as f64
        );
    }

    sizes.save();
    println!();
    println!("2. a {ENTITIES}-entity snapshot (id, position, velocity), median of {rounds}");
    println!(
        "{:<16} {:>12} {:>12} {:>12}",
        "codec", "encode", "decode", "bytes"
    );
    let snapshot = typed(5, 1);
    let config = bincode::config::standard();
    let bincode_bytes = bincode::serde::encode_to_vec(&snapshot, config).expect("encodes");
    let bincode_encode = time(rounds, || {
        black_box(bincode::serde::encode_to_vec(black_box(&snapshot), config).expect("encodes"));
    });
    let bincode_decode = time(rounds, || {
        let (v, _): (Vec<(u64, Pos, Vel)>, usize) =
            bincode::serde::decode_from_slice(black_box(&bincode_bytes), config).expect("decodes");
        black_box(v);
    });
    let bitcode_bytes = bitcode::serialize(&snapshot).expect("encodes");
    let bitcode_encode = time(rounds, || {
        black_box(bitcode::serialize(black_box(&snapshot)).expect("encodes"));
    });
    let bitcode_decode = time(rounds, || {
        let v: Vec<(u64, Pos, Vel)> =
            bitcode::deserialize(black_box(&bitcode_bytes)).expect("decodes");
        black_box(v);
    });
    let derived_bytes = bitcode::encode(&snapshot);
    let derived_encode = time(rounds, || {
        black_box(bitcode::encode(black_box(&snapshot)));
    });
    let derived_decode = time(rounds, || {
        let v: Vec<(u64, Pos, Vel)> = bitcode::decode(black_box(&derived_bytes)).expect("decodes");
        black_box(v);
    });
    let us = |d: Duration| format!("{:.1} µs", d.as_secs_f64() * 1e6);
    println!(
        "{:<16} {:>12} {:>12} {:>12}",
        "bincode 2 (serde)",
        us(bincode_encode),
        us(bincode_decode),
        bincode_bytes.len()
    );
    let mut codecs = report::Table::new(
        "codec",
        format!("Codec: a {ENTITIES}-entity snapshot (id, position, velocity), median of {rounds}"),
        &["bincode 2 (serde)", "bitcode (serde)", "bitcode (derive)"],
    );
    let us_f = |d: Duration| d.as_secs_f64() * 1e6;
    codecs.row(
        "encode (µs)",
        report::Better::Lower,
        &[
            us_f(bincode_encode),
            us_f(bitcode_encode),
            us_f(derived_encode),
        ],
    );
    codecs.row(
        "decode (µs)",
        report::Better::Lower,
        &[
            us_f(bincode_decode),
            us_f(bitcode_decode),
            us_f(derived_decode),
        ],
    );
    codecs.row(
        "bytes",
        report::Better::Lower,
        &[
            bincode_bytes.len() as f64,
            bitcode_bytes.len() as f64,
            derived_bytes.len() as f64,
        ],
    );
    codecs.save();
    for (name, encode, decode, bytes) in [
        (
            "bitcode (serde)",
            bitcode_encode,
            bitcode_decode,
            bitcode_bytes.len(),
        ),
        (
            "bitcode (derive)",
            derived_encode,
            derived_decode,
            derived_bytes.len(),
        ),
    ] {
        println!(
            "{name:<16} {:>12} {:>12} {:>12}   ({:.2}x / {:.2}x / {:.2}x of bincode)",
            us(encode),
            us(decode),
            bytes,
            encode.as_secs_f64() / bincode_encode.as_secs_f64(),
            decode.as_secs_f64() / bincode_decode.as_secs_f64(),
            bytes as f64 / bincode_bytes.len() as f64
        );
    }
}
