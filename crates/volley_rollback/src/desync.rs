//! Desyncs you can open: a peer's world at the frame where its checksum
//! differed from a peer's, as a file ([`Dump`]), and what differs between
//! two such files ([`Dump::diff`]), part by part (a component or a resource),
//! entity by entity.
//!
//! Each peer writes its own dump when ggrs reports the desync (see
//! `bevy_volley::rollback`, `RollbackPlugin::dump_desyncs`); the two files
//! side by side say which component of which entity went apart first,
//! which usually names the system that is not deterministic. Values are
//! compared by their encoded bytes and shown by their `Debug` text.
//!
//! No Bevy here: `volley-bots desync OURS THEIRS` and the `desync_dump`
//! fuzz target read dumps with it. A dump is a local file, but one that
//! players send each other: it is read within limits, like a replay.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::file::{self, Refused};

/// The first bytes of a desync dump (and its format's version).
pub const DUMP_MAGIC: &[u8; 8] = b"VLYDSY01";

/// Largest dump read: a world of [`crate::MAX_HANDOVER_BYTES`] encoded,
/// plus each value's `Debug` text (at most [`MAX_VALUE_TEXT`]).
pub const MAX_DUMP_BYTES: usize = crate::file::MAX_FILE_BYTES;

/// A value's `Debug` text is cut to this many characters (values are
/// compared by their bytes, so a cut text hides nothing from [`Dump::diff`]).
pub const MAX_VALUE_TEXT: usize = 1024;

/// One peer's world at a desynced frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dump {
    /// The game (its input type's name): two dumps of different games are
    /// not compared.
    pub app: String,
    /// The match frame.
    pub frame: i32,
    /// Who wrote it (a peer id).
    pub peer: u128,
    /// The peer whose checksum differed.
    pub against: u128,
    /// The writer's checksum of the frame.
    pub local_checksum: u128,
    /// The other peer's.
    pub remote_checksum: u128,
    /// The registered rollback state, in registration order.
    pub parts: Vec<Part>,
}

/// One registered component or resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// Its type name.
    pub name: String,
    /// A resource's one value, or a component's value per entity.
    pub values: Vec<Value>,
}

/// One entity's value of a component (or a resource's value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Value {
    /// The entity's place in the rollback order (the same on every peer);
    /// `None` for a resource.
    pub entity: Option<u64>,
    /// The entity's `Name`, when it has one.
    pub label: Option<String>,
    /// The value, encoded (what is compared).
    pub bytes: Vec<u8>,
    /// The value's `Debug` text (what is shown).
    pub text: String,
}

impl Value {
    /// A value, its text cut to [`MAX_VALUE_TEXT`] characters.
    pub fn new(entity: Option<u64>, label: Option<String>, bytes: Vec<u8>, text: &str) -> Self {
        let text = match text.char_indices().nth(MAX_VALUE_TEXT) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text.to_string(),
        };
        Value {
            entity,
            label,
            bytes,
            text,
        }
    }
}

/// Why a dump was refused, or two could not be compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DumpError {
    /// Not a desync dump of this version.
    #[error("not a volley desync dump (or another version of the format)")]
    Magic,
    /// Over [`MAX_DUMP_BYTES`].
    #[error("dump of {0} bytes is over {MAX_DUMP_BYTES}")]
    TooLarge(usize),
    /// The bytes do not decode.
    #[error("dump does not decode: {0}")]
    Decode(String),
    /// Decoded, but a part or an entity's value is there twice.
    #[error("dump is inconsistent: {0}")]
    Inconsistent(&'static str),
    /// Dumps of two different games.
    #[error("dumps of different games: {0} and {1}")]
    Games(String, String),
    /// Dumps of two different frames: compare the dumps of one frame.
    #[error("dumps of frames {0} and {1}: compare the two peers' dumps of one frame")]
    Frames(i32, i32),
}

impl From<Refused> for DumpError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Magic => DumpError::Magic,
            Refused::TooLarge(n) => DumpError::TooLarge(n),
            Refused::Decode(e) => DumpError::Decode(e),
        }
    }
}

impl Dump {
    /// The file's bytes.
    pub fn encode(&self) -> Result<Vec<u8>, DumpError> {
        Ok(file::encode(DUMP_MAGIC, self)?)
    }

    /// Reads a file's bytes, within the limits; each part once, each
    /// entity once per part.
    pub fn decode(bytes: &[u8]) -> Result<Dump, DumpError> {
        let dump: Dump = file::decode(DUMP_MAGIC, bytes)?;
        let mut names: Vec<&String> = dump.parts.iter().map(|p| &p.name).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(DumpError::Inconsistent("a part twice"));
        }
        for part in &dump.parts {
            let mut entities: Vec<Option<u64>> = part.values.iter().map(|v| v.entity).collect();
            entities.sort_unstable();
            if entities.windows(2).any(|w| w[0] == w[1]) {
                return Err(DumpError::Inconsistent("an entity's value twice"));
            }
        }
        Ok(dump)
    }
}

/// What differs between two peers' dumps of one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    /// The frame.
    pub frame: i32,
    /// The two peers (ours, theirs).
    pub peers: (u128, u128),
    /// Every difference, part by part in our registration order, entity by
    /// entity in rollback order.
    pub differences: Vec<Difference>,
}

/// One value that differs (or is on one side only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The component's or resource's type name.
    pub part: String,
    /// The entity's place in the rollback order (`None`: a resource).
    pub entity: Option<u64>,
    /// The entity's name, from either side.
    pub label: Option<String>,
    /// Our value's text (`None`: we have none).
    pub ours: Option<String>,
    /// Theirs.
    pub theirs: Option<String>,
}

impl Dump {
    /// Compares two peers' dumps of the same frame of the same game.
    pub fn diff(&self, theirs: &Dump) -> Result<Diff, DumpError> {
        let ours = self;
        if ours.app != theirs.app {
            return Err(DumpError::Games(ours.app.clone(), theirs.app.clone()));
        }
        if ours.frame != theirs.frame {
            return Err(DumpError::Frames(ours.frame, theirs.frame));
        }
        let mut names: Vec<&String> = ours.parts.iter().map(|p| &p.name).collect();
        for part in &theirs.parts {
            if !names.contains(&&part.name) {
                names.push(&part.name);
            }
        }
        let mut differences = Vec::new();
        for name in names {
            let (a, b) = (values(ours, name), values(theirs, name));
            let mut entities: Vec<Option<u64>> = a.iter().chain(b).map(|v| v.entity).collect();
            entities.sort_unstable();
            entities.dedup();
            for entity in entities {
                let x = a.iter().find(|v| v.entity == entity);
                let y = b.iter().find(|v| v.entity == entity);
                if x.map(|v| &v.bytes) == y.map(|v| &v.bytes) {
                    continue;
                }
                differences.push(Difference {
                    part: name.clone(),
                    entity,
                    label: x.or(y).and_then(|v| v.label.clone()),
                    ours: x.map(|v| v.text.clone()),
                    theirs: y.map(|v| v.text.clone()),
                });
            }
        }
        Ok(Diff {
            frame: ours.frame,
            peers: (ours.peer, theirs.peer),
            differences,
        })
    }
}

/// A part's values (none when the dump has no such part).
fn values<'a>(dump: &'a Dump, name: &str) -> &'a [Value] {
    (dump.parts.iter().find(|p| p.name == name)).map_or(&[], |p| p.values.as_slice())
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.part)?;
        if let Some(entity) = self.entity {
            write!(f, " of rollback entity {entity}")?;
        }
        if let Some(label) = &self.label {
            write!(f, " ({label})")?;
        }
        let side = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
        write!(
            f,
            "\n    ours:   {}\n    theirs: {}",
            side(&self.ours),
            side(&self.theirs)
        )
    }
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (ours, theirs) = self.peers;
        write!(
            f,
            "frame {}: {} difference(s) between {ours:032x} (ours) and {theirs:032x} (theirs)",
            self.frame,
            self.differences.len()
        )?;
        for difference in &self.differences {
            write!(f, "\n  {difference}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(entity: Option<u64>, label: &str, n: u8) -> Value {
        Value::new(entity, Some(label.into()), vec![n], &format!("V({n})"))
    }

    fn dump(peer: u128, score: u8) -> Dump {
        Dump {
            app: "game::Input".into(),
            frame: 110,
            peer,
            against: 3 - peer,
            local_checksum: u128::from(score),
            remote_checksum: 0,
            parts: vec![
                Part {
                    name: "game::Body".into(),
                    values: vec![value(Some(0), "player 0", 1), value(Some(1), "player 1", 2)],
                },
                Part {
                    name: "game::Score".into(),
                    values: vec![
                        value(Some(0), "player 0", score),
                        value(Some(1), "player 1", 0),
                    ],
                },
                Part {
                    name: "game::Round".into(),
                    values: vec![Value::new(None, None, vec![9], "Round")],
                },
            ],
        }
    }

    #[test]
    fn a_dump_round_trips_and_bad_bytes_are_refused() {
        let bytes = dump(1, 5).encode().unwrap();
        assert_eq!(Dump::decode(&bytes), Ok(dump(1, 5)));
        assert_eq!(Dump::decode(&bytes[8..]), Err(DumpError::Magic));
        assert!(matches!(
            Dump::decode(&bytes[..bytes.len() - 1]),
            Err(DumpError::Decode(_))
        ));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(Dump::decode(&longer), Err(DumpError::Decode(_))));
        let mut twice = dump(1, 5);
        twice.parts.push(twice.parts[0].clone());
        let twice = twice.encode().unwrap();
        assert_eq!(
            Dump::decode(&twice),
            Err(DumpError::Inconsistent("a part twice"))
        );
        let mut twice = dump(1, 5);
        twice.parts[1].values[1].entity = Some(0);
        let twice = twice.encode().unwrap();
        assert!(matches!(
            Dump::decode(&twice),
            Err(DumpError::Inconsistent(_))
        ));
    }

    #[test]
    fn the_diff_names_the_differing_part_and_entity_only() {
        let found = dump(1, 5).diff(&dump(2, 4)).unwrap();
        assert_eq!(
            found.differences,
            vec![Difference {
                part: "game::Score".into(),
                entity: Some(0),
                label: Some("player 0".into()),
                ours: Some("V(5)".into()),
                theirs: Some("V(4)".into()),
            }]
        );
        let text = found.to_string();
        assert!(
            text.contains("game::Score of rollback entity 0 (player 0)"),
            "{text}"
        );
        assert!(
            text.contains("ours:   V(5)") && text.contains("theirs: V(4)"),
            "{text}"
        );
        assert!(dump(1, 5).diff(&dump(2, 5)).unwrap().differences.is_empty());
    }

    #[test]
    fn values_on_one_side_only_are_differences() {
        let ours = dump(1, 5);
        let mut theirs = dump(2, 5);
        theirs.parts[0].values.pop();
        theirs.parts.pop();
        let found = ours.diff(&theirs).unwrap().differences;
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!((found[0].entity, found[0].theirs.as_ref()), (Some(1), None));
        assert_eq!(
            (found[1].part.as_str(), found[1].entity),
            ("game::Round", None)
        );
    }

    #[test]
    fn dumps_of_other_frames_or_games_are_not_compared() {
        let mut other = dump(2, 5);
        other.frame = 120;
        assert_eq!(dump(1, 5).diff(&other), Err(DumpError::Frames(110, 120)));
        other.app = "other::Input".into();
        assert!(matches!(dump(1, 5).diff(&other), Err(DumpError::Games(..))));
    }

    /// The `desync_dump` fuzz target's seed is a dump (its first byte odd:
    /// the bytes as they are). `VOLLEY_BLESS=1` writes it anew after a
    /// change of the format.
    #[test]
    fn the_fuzz_seed_is_a_dump() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/regressions/desync_dump/two_players");
        let mut seed = vec![1];
        seed.extend(dump(1, 5).encode().unwrap());
        if std::env::var_os("VOLLEY_BLESS").is_some() {
            std::fs::write(&path, &seed).unwrap();
        }
        let on_disk = std::fs::read(&path).expect("the seed (VOLLEY_BLESS=1 writes it)");
        assert_eq!(Dump::decode(&on_disk[1..]), Ok(dump(1, 5)));
    }

    #[test]
    fn long_texts_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_VALUE_TEXT + 10);
        let value = Value::new(None, None, Vec::new(), &long);
        assert_eq!(value.text.chars().count(), MAX_VALUE_TEXT + 1);
        assert!(value.text.ends_with('…'));
    }
}
