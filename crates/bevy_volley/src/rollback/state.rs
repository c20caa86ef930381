//! The rollback world as bytes: what a player coming back into a running
//! match is handed ([`volley_rollback::seats`]). A game registers each
//! piece of rollback state once, with [`RollbackStateApp`]: snapshots for
//! rollback (bevy_ggrs), a named checksum part, and its place in the state.
//!
//! Components travel by their entity's place in bevy_ggrs' rollback order
//! (what its checksums use too), so the rollback entities must be spawned
//! the same way on every peer (at start-up, as box_game does); a state
//! naming an entity this peer does not have is refused.

use std::hash::Hash;

use bevy::ecs::prelude::*;
use bevy_ggrs::{RollbackApp, RollbackId, RollbackOrdered};
use serde::Serialize;
use serde::de::DeserializeOwned;
use volley_rollback::MAX_HANDOVER_BYTES;
use volley_rollback::desync::{Part, Value};

use super::checksum::ChecksumApp;

/// Why a state could not be saved or loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Bytes that do not decode (or would decode beyond [`MAX_HANDOVER_BYTES`]).
    #[error("state does not decode: {0}")]
    Decode(String),
    /// The state's parts are not the ones this game registered.
    #[error("state parts {theirs:?} are not ours ({ours:?})")]
    Parts {
        /// What it holds.
        theirs: Vec<String>,
        /// What we registered.
        ours: Vec<String>,
    },
    /// A component for an entity this peer does not have.
    #[error("state names rollback entity {0}, which this peer does not have")]
    Entity(u64),
    /// Our own state is larger than a handover may be.
    #[error("state of {0} bytes is over {MAX_HANDOVER_BYTES}")]
    TooLarge(usize),
}

type Save = fn(&mut World) -> Result<Vec<u8>, StateError>;
type Load = fn(&mut World, &[u8]) -> Result<(), StateError>;
/// A saved part's values one by one (unlabelled), for desync dumps.
type Describe = fn(&[u8]) -> Result<Vec<Value>, StateError>;

/// One registered part.
#[derive(Clone)]
struct Registered {
    name: String,
    save: Save,
    load: Load,
    describe: Describe,
}

/// The registered parts, in registration order.
#[derive(Resource, Default, Clone)]
pub(super) struct StateRegistry(Vec<Registered>);

/// Registers rollback state in one call (see the module docs).
pub trait RollbackStateApp {
    /// Component `C` is rollback state: restored on rollback, checksummed
    /// under its type name, and handed to players coming back.
    fn rollback_state_component<C>(&mut self) -> &mut Self
    where
        C: Component<Mutability = bevy::ecs::component::Mutable>
            + Clone
            + Hash
            + std::fmt::Debug
            + Serialize
            + DeserializeOwned;

    /// Resource `R` is rollback state, like [`Self::rollback_state_component`].
    fn rollback_state_resource<R>(&mut self) -> &mut Self
    where
        R: Resource<Mutability = bevy::ecs::component::Mutable>
            + Clone
            + Hash
            + std::fmt::Debug
            + Serialize
            + DeserializeOwned;
}

impl RollbackStateApp for bevy::app::App {
    fn rollback_state_component<C>(&mut self) -> &mut Self
    where
        C: Component<Mutability = bevy::ecs::component::Mutable>
            + Clone
            + Hash
            + std::fmt::Debug
            + Serialize
            + DeserializeOwned,
    {
        self.rollback_component_with_clone::<C>()
            .checksum_component_named::<C>();
        register::<C>(
            self,
            save_component::<C>,
            load_component::<C>,
            describe_component::<C>,
        )
    }

    fn rollback_state_resource<R>(&mut self) -> &mut Self
    where
        R: Resource<Mutability = bevy::ecs::component::Mutable>
            + Clone
            + Hash
            + std::fmt::Debug
            + Serialize
            + DeserializeOwned,
    {
        self.rollback_resource_with_clone::<R>()
            .checksum_resource_named::<R>();
        register::<R>(
            self,
            save_resource::<R>,
            load_resource::<R>,
            describe_resource::<R>,
        )
    }
}

/// `T`'s place in the state, under its type name.
fn register<T>(
    app: &mut bevy::app::App,
    save: Save,
    load: Load,
    describe: Describe,
) -> &mut bevy::app::App {
    let name = std::any::type_name::<T>().to_string();
    app.world_mut()
        .get_resource_or_init::<StateRegistry>()
        .0
        .push(Registered {
            name,
            save,
            load,
            describe,
        });
    app
}

fn config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_HANDOVER_BYTES>,
> {
    bincode::config::standard().with_limit::<MAX_HANDOVER_BYTES>()
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StateError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| StateError::Decode(e.to_string()))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StateError> {
    bincode::serde::decode_from_slice(bytes, config())
        .map(|(value, _)| value)
        .map_err(|e| StateError::Decode(e.to_string()))
}

/// Rollback entities by their place in bevy_ggrs' rollback order.
fn by_order(world: &mut World) -> std::collections::HashMap<u64, Entity> {
    let ids: Vec<(Entity, RollbackId)> = world
        .query::<(Entity, &RollbackId)>()
        .iter(world)
        .map(|(e, id)| (e, *id))
        .collect();
    let ordered = world.get_resource::<RollbackOrdered>();
    ids.into_iter()
        .filter_map(|(entity, id)| Some((ordered?.order(id), entity)))
        .collect()
}

fn save_component<C: Component + Clone + Serialize>(
    world: &mut World,
) -> Result<Vec<u8>, StateError> {
    let order = by_order(world);
    let mut values: Vec<(u64, C)> = order
        .iter()
        .filter_map(|(place, entity)| Some((*place, world.get::<C>(*entity)?.clone())))
        .collect();
    values.sort_by_key(|(place, _)| *place);
    encode(&values)
}

fn load_component<C>(world: &mut World, bytes: &[u8]) -> Result<(), StateError>
where
    C: Component<Mutability = bevy::ecs::component::Mutable> + DeserializeOwned,
{
    let values: Vec<(u64, C)> = decode(bytes)?;
    let order = by_order(world);
    if let Some((place, _)) = values.iter().find(|(place, _)| !order.contains_key(place)) {
        return Err(StateError::Entity(*place));
    }
    let mut values: std::collections::HashMap<u64, C> = values.into_iter().collect();
    for (place, entity) in order {
        match values.remove(&place) {
            Some(value) => {
                world.entity_mut(entity).insert(value);
            }
            None => {
                world.entity_mut(entity).remove::<C>();
            }
        }
    }
    Ok(())
}

fn describe_component<C: Serialize + DeserializeOwned + std::fmt::Debug>(
    bytes: &[u8],
) -> Result<Vec<Value>, StateError> {
    let values: Vec<(u64, C)> = decode(bytes)?;
    values
        .into_iter()
        .map(|(place, value)| {
            let text = format!("{value:?}");
            Ok(Value::new(Some(place), None, encode(&value)?, &text))
        })
        .collect()
}

fn save_resource<R: Resource + Clone + Serialize>(
    world: &mut World,
) -> Result<Vec<u8>, StateError> {
    encode(&world.get_resource::<R>().cloned())
}

fn load_resource<R>(world: &mut World, bytes: &[u8]) -> Result<(), StateError>
where
    R: Resource<Mutability = bevy::ecs::component::Mutable> + DeserializeOwned,
{
    match decode::<Option<R>>(bytes)? {
        Some(value) => world.insert_resource(value),
        None => {
            world.remove_resource::<R>();
        }
    }
    Ok(())
}

fn describe_resource<R: Serialize + DeserializeOwned + std::fmt::Debug>(
    bytes: &[u8],
) -> Result<Vec<Value>, StateError> {
    match decode::<Option<R>>(bytes)? {
        Some(value) => {
            let text = format!("{value:?}");
            Ok(vec![Value::new(None, None, encode(&value)?, &text)])
        }
        None => Ok(Vec::new()),
    }
}

/// The registered rollback state of the world as it is now.
pub fn save_state(world: &mut World) -> Result<Vec<u8>, StateError> {
    let registry = world
        .get_resource::<StateRegistry>()
        .cloned()
        .unwrap_or_default();
    let mut parts = Vec::with_capacity(registry.0.len());
    for part in &registry.0 {
        parts.push((part.name.clone(), (part.save)(world)?));
    }
    let bytes = encode(&parts)?;
    if bytes.len() > MAX_HANDOVER_BYTES {
        return Err(StateError::TooLarge(bytes.len()));
    }
    Ok(bytes)
}

/// Loads a state [`save_state`] made (here or on a peer running the same
/// game). Nothing changes when it does not decode or names other parts;
/// a part that fails halfway leaves the parts before it loaded.
pub fn load_state(world: &mut World, bytes: &[u8]) -> Result<(), StateError> {
    let registry = world
        .get_resource::<StateRegistry>()
        .cloned()
        .unwrap_or_default();
    let parts = ours(&registry, bytes)?;
    for (registered, (_, part)) in registry.0.iter().zip(&parts) {
        (registered.load)(world, part)?;
    }
    Ok(())
}

/// A state's parts, when they are the ones registered.
fn ours(registry: &StateRegistry, bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, StateError> {
    let parts: Vec<(String, Vec<u8>)> = decode(bytes)?;
    let theirs: Vec<&String> = parts.iter().map(|(name, _)| name).collect();
    let ours: Vec<&String> = registry.0.iter().map(|part| &part.name).collect();
    if theirs != ours {
        return Err(StateError::Parts {
            theirs: theirs.into_iter().cloned().collect(),
            ours: ours.into_iter().cloned().collect(),
        });
    }
    Ok(parts)
}

/// A state [`save_state`] made, value by value, for a desync dump: each
/// part's name and its values, labelled with their entity's `Name` here.
pub(super) fn describe_state(world: &mut World, bytes: &[u8]) -> Result<Vec<Part>, StateError> {
    let registry = world
        .get_resource::<StateRegistry>()
        .cloned()
        .unwrap_or_default();
    let order = by_order(world);
    let label = |place: Option<u64>| {
        let entity = order.get(&place?)?;
        Some(world.get::<Name>(*entity)?.as_str().to_string())
    };
    let mut described = Vec::new();
    for (registered, (name, part)) in registry.0.iter().zip(ours(&registry, bytes)?) {
        let mut values = (registered.describe)(&part)?;
        for value in &mut values {
            value.label = label(value.entity);
        }
        described.push(Part { name, values });
    }
    Ok(described)
}
