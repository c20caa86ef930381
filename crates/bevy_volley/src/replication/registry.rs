//! The replicated component types: registering them on the app, and each
//! one's extraction from and application to the world, by slot.

use bevy::app::{App, PreUpdate};
use bevy::ecs::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::warn;
use volley_net::codec::{Bincode, Codec};
use volley_net::replication::Mirror;

use super::apply::apply_world;
use super::interpolation::{Interpolate, apply_interpolated, interpolate, settle};
use super::{Engine, ReplicationSet};

pub(super) type Extract = fn(&World, Entity) -> Option<Vec<u8>>;
pub(super) type Apply = fn(&mut World, Entity, Option<&[u8]>, u32) -> bool;

/// The replicated component types, in registration order (= slot).
#[derive(Resource, Default)]
pub(super) struct Registry(pub(super) Vec<(&'static str, Extract, Apply)>);

/// What a replicated component must be: mutable (the authority's state is
/// written into it), comparable (only real changes are written), and
/// serializable. Implemented for every such component.
pub trait ReplicatedComponent:
    Component<Mutability = bevy::ecs::component::Mutable>
    + Clone
    + PartialEq
    + Serialize
    + DeserializeOwned
{
}

impl<C> ReplicatedComponent for C where
    C: Component<Mutability = bevy::ecs::component::Mutable>
        + Clone
        + PartialEq
        + Serialize
        + DeserializeOwned
{
}

/// Registering replicated components.
pub trait ReplicationAppExt {
    /// Replicates component `C` of [`Replicated`] entities. Every peer must
    /// register the same components in the same order.
    ///
    /// [`Replicated`]: super::Replicated
    fn replicate<C>(&mut self) -> &mut Self
    where
        C: ReplicatedComponent;

    /// Replicates `C` like [`ReplicationAppExt::replicate`], and on peers
    /// other than the authority shows it [`INTERPOLATION_DELAY`] ticks in
    /// the past, interpolated between the two snapshots around that
    /// moment: smooth motion at any tick rate, whatever the frame rate.
    ///
    /// [`INTERPOLATION_DELAY`]: super::INTERPOLATION_DELAY
    fn replicate_interpolated<C>(&mut self) -> &mut Self
    where
        C: ReplicatedComponent + Interpolate;
}

impl ReplicationAppExt for App {
    fn replicate_interpolated<C>(&mut self) -> &mut Self
    where
        C: ReplicatedComponent + Interpolate,
    {
        register::<C>(self, apply_interpolated::<C>);
        self.add_systems(
            PreUpdate,
            (interpolate::<C>, settle::<C>)
                .after(apply_world)
                .in_set(ReplicationSet::Receive),
        )
    }

    fn replicate<C>(&mut self) -> &mut Self
    where
        C: ReplicatedComponent,
    {
        register::<C>(self, apply::<C>)
    }
}

fn register<C: Component + Serialize>(app: &mut App, apply: Apply) -> &mut App {
    app.init_resource::<Registry>();
    let name = std::any::type_name::<C>();
    if app
        .world()
        .resource::<Registry>()
        .0
        .iter()
        .any(|r| r.0 == name)
    {
        return app; // registered already (e.g. by `predict`)
    }
    app.world_mut().resource_mut::<Registry>().0.push((
        std::any::type_name::<C>(),
        extract::<C>,
        apply,
    ));
    let slots = app.world().resource::<Registry>().0.len();
    if let Some(mut engine) = app.world_mut().get_resource_mut::<Engine>() {
        engine.mirror = Mirror::with_limits(slots, engine.mirror.limits());
    }
    app
}

fn extract<C: Component + Serialize>(world: &World, entity: Entity) -> Option<Vec<u8>> {
    let component = world.get::<C>(entity)?;
    let mut bytes = Vec::new();
    match Bincode.encode(component, &mut bytes) {
        Ok(()) => Some(bytes),
        Err(e) => {
            warn!("volley: cannot encode {}: {e}", std::any::type_name::<C>());
            None
        }
    }
}

/// Sets (or removes) the component; false when the bytes did not decode.
fn apply<C>(world: &mut World, entity: Entity, bytes: Option<&[u8]>, _tick: u32) -> bool
where
    C: Component<Mutability = bevy::ecs::component::Mutable> + Clone + PartialEq + DeserializeOwned,
{
    let Ok(mut e) = world.get_entity_mut(entity) else {
        return true;
    };
    match bytes {
        None => {
            e.remove::<C>();
            true
        }
        Some(bytes) => match Bincode.decode::<C>(bytes) {
            Ok(value) => {
                match e.get_mut::<C>() {
                    // Only a real change marks it changed.
                    Some(mut current) => {
                        if *current != value {
                            *current = value;
                        }
                    }
                    None => {
                        e.insert(value);
                    }
                }
                true
            }
            Err(_) => false,
        },
    }
}
