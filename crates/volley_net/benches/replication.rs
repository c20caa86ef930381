//! State-sync costs, printed side by side:
//! 1. bytes per entity per tick on the wire, full world vs delta against the
//!    previous tick, for an idle world, 10 % of entities moving and all
//!    moving (1,000 entities, two components: position and velocity);
//! 2. encode + decode time and bytes of a box_game input, a 64- and a
//!    1,000-entity snapshot: bincode 2 vs bitcode (through serde, and with
//!    its own derive), on the same types.
//!
//! `cargo bench -p volley_net --bench replication [-- --rounds N]`

use std::hint::black_box;
use std::time::{Duration, Instant};
use volley_testkit::report;

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
    let rounds: usize = report::Options::parse(&["rounds"]).get("rounds", 200);

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
    println!("2. codecs, per encode/decode (median of {rounds} batches), bincode 2 vs bitcode");
    println!(
        "{:<28} {:<18} {:>12} {:>12} {:>8}",
        "value", "codec", "encode", "decode", "bytes"
    );
    let mut codecs = report::Table::new(
        "codec",
        format!(
            "Codec: encode and decode per value (ns, median of {rounds} batches) and bytes; a box_game input, a 64- and a {ENTITIES}-entity snapshot (id, position, velocity)"
        ),
        &["bincode 2 (serde)", "bitcode (serde)", "bitcode (derive)"],
    );
    let input = BoxInput(0b0101);
    codec_rows(&mut codecs, "box_game input", &input, 1000, rounds);
    let small: Vec<(u64, Pos, Vel)> = typed(5, 1).into_iter().take(64).collect();
    codec_rows(&mut codecs, "64-entity snapshot", &small, 50, rounds);
    codec_rows(
        &mut codecs,
        "1,000-entity snapshot",
        &typed(5, 1),
        5,
        rounds,
    );
    codecs.save();
}

/// A box_game input as the game sends it every frame (a direction, 4 bits).
#[derive(
    Clone, Copy, Serialize, Deserialize, bitcode::Encode, bitcode::Decode, PartialEq, Debug,
)]
struct BoxInput(u8);

/// Times `batch` calls per sample and reports per call.
fn per_call(rounds: usize, batch: usize, mut f: impl FnMut()) -> f64 {
    time(rounds, || {
        for _ in 0..batch {
            f();
        }
    })
    .as_secs_f64()
        * 1e9
        / batch as f64
}

/// Encode/decode ns and bytes of `value` with the three codecs, printed and
/// added to the table.
fn codec_rows<T>(table: &mut report::Table, what: &str, value: &T, batch: usize, rounds: usize)
where
    T: Serialize + serde::de::DeserializeOwned + bitcode::Encode + bitcode::DecodeOwned,
{
    let config = bincode::config::standard();
    let bincode_bytes = bincode::serde::encode_to_vec(value, config).expect("encodes");
    let serde_bytes = bitcode::serialize(value).expect("encodes");
    let derive_bytes = bitcode::encode(value);
    let encode = [
        per_call(rounds, batch, || {
            black_box(bincode::serde::encode_to_vec(black_box(value), config).expect("encodes"));
        }),
        per_call(rounds, batch, || {
            black_box(bitcode::serialize(black_box(value)).expect("encodes"));
        }),
        per_call(rounds, batch, || {
            black_box(bitcode::encode(black_box(value)));
        }),
    ];
    let decode = [
        per_call(rounds, batch, || {
            let (v, _): (T, usize) =
                bincode::serde::decode_from_slice(black_box(&bincode_bytes), config)
                    .expect("decodes");
            black_box(v);
        }),
        per_call(rounds, batch, || {
            let v: T = bitcode::deserialize(black_box(&serde_bytes)).expect("decodes");
            black_box(v);
        }),
        per_call(rounds, batch, || {
            let v: T = bitcode::decode(black_box(&derive_bytes)).expect("decodes");
            black_box(v);
        }),
    ];
    let bytes = [
        bincode_bytes.len() as f64,
        serde_bytes.len() as f64,
        derive_bytes.len() as f64,
    ];
    for (i, codec) in ["bincode 2 (serde)", "bitcode (serde)", "bitcode (derive)"]
        .iter()
        .enumerate()
    {
        println!(
            "{what:<28} {codec:<18} {:>9.0} ns {:>9.0} ns {:>8}",
            encode[i], decode[i], bytes[i]
        );
    }
    table.row(
        format!("{what}: encode (ns)"),
        report::Better::Lower,
        &encode,
    );
    table.row(
        format!("{what}: decode (ns)"),
        report::Better::Lower,
        &decode,
    );
    table.row(format!("{what}: bytes"), report::Better::Lower, &bytes);
}
