//! Interpolated replication: remote values kept as snapshots by tick and
//! shown [`INTERPOLATION_DELAY`] ticks in the past, blended between them.

use std::collections::VecDeque;

use bevy::ecs::message::MessageReader;
use bevy::ecs::prelude::*;
use serde::de::DeserializeOwned;
use volley_net::codec::{Bincode, Codec};

use super::{AuthorityChanged, Engine, ReplicationStatus};

/// Values that can be blended, for [`ReplicationAppExt::replicate_interpolated`].
///
/// [`ReplicationAppExt::replicate_interpolated`]: super::ReplicationAppExt::replicate_interpolated
pub trait Interpolate: Sized {
    /// `self` at `t` = 0, `to` at `t` = 1.
    fn interpolate(&self, to: &Self, t: f32) -> Self;
}

/// Ticks remote interpolated components are shown in the past: two
/// snapshots to blend between even when one is late or lost.
pub const INTERPOLATION_DELAY: f32 = 2.0;

/// Snapshots kept per interpolated component.
const SNAPSHOTS: usize = 8;

/// The authoritative values of an interpolated component, by tick.
#[derive(Component, Debug, Clone)]
pub struct Snapshots<C> {
    values: VecDeque<(u32, C)>,
}

impl<C: Interpolate + Clone> Snapshots<C> {
    /// The value at a fractional `tick`: blended between the snapshots
    /// around it; the oldest before them, the newest after them.
    pub fn sample(&self, tick: f32) -> Option<C> {
        let (first, last) = (self.values.front()?, self.values.back()?);
        if tick <= first.0 as f32 {
            return Some(first.1.clone());
        }
        if tick >= last.0 as f32 {
            return Some(last.1.clone());
        }
        let after = self.values.iter().position(|(t, _)| *t as f32 >= tick)?;
        let (t0, v0) = &self.values[after.checked_sub(1)?];
        let (t1, v1) = &self.values[after];
        let span = (*t1 - *t0).max(1) as f32;
        Some(v0.interpolate(v1, (tick - *t0 as f32) / span))
    }

    /// The newest authoritative value.
    pub fn latest(&self) -> Option<&C> {
        self.values.back().map(|(_, v)| v)
    }
}

/// Records the authoritative value (and shows it at once the first time).
pub(super) fn apply_interpolated<C>(
    world: &mut World,
    entity: Entity,
    bytes: Option<&[u8]>,
    tick: u32,
) -> bool
where
    C: Component<Mutability = bevy::ecs::component::Mutable> + Clone + PartialEq + DeserializeOwned,
{
    let Ok(mut e) = world.get_entity_mut(entity) else {
        return true;
    };
    let Some(bytes) = bytes else {
        e.remove::<(C, Snapshots<C>)>();
        return true;
    };
    let Ok(value) = Bincode.decode::<C>(bytes) else {
        return false;
    };
    if !e.contains::<C>() {
        e.insert(value.clone());
    }
    match e.get_mut::<Snapshots<C>>() {
        Some(mut snapshots) => {
            if snapshots.values.back().is_none_or(|(t, _)| *t < tick) {
                snapshots.values.push_back((tick, value));
                while snapshots.values.len() > SNAPSHOTS {
                    snapshots.values.pop_front();
                }
            }
        }
        None => {
            e.insert(Snapshots {
                values: VecDeque::from([(tick, value)]),
            });
        }
    }
    true
}

/// Shows interpolated components [`INTERPOLATION_DELAY`] ticks behind the
/// authority's estimated tick (the last applied one plus the time since).
pub(super) fn interpolate<C>(
    engine: Res<Engine>,
    status: Res<ReplicationStatus>,
    mut query: Query<(&Snapshots<C>, &mut C)>,
) where
    C: Component<Mutability = bevy::ecs::component::Mutable> + Clone + PartialEq + Interpolate,
{
    if status.is_authority {
        return;
    }
    let Some(at) = engine.applied_at else { return };
    let elapsed = at.elapsed().as_secs_f32() / engine.period.as_secs_f32().max(1e-6);
    // No extrapolation: at most one tick past the last snapshot's time.
    let now = status.tick as f32 + elapsed.min(1.0);
    let render = now - INTERPOLATION_DELAY;
    for (snapshots, mut value) in &mut query {
        if let Some(shown) = snapshots.sample(render)
            && *value != shown
        {
            *value = shown;
        }
    }
}

/// A peer that becomes the authority goes on from the newest authoritative
/// values, not the interpolated past.
pub(super) fn settle<C>(
    mut commands: Commands,
    mut changed: MessageReader<AuthorityChanged>,
    mut query: Query<(Entity, &Snapshots<C>, &mut C)>,
) where
    C: Component<Mutability = bevy::ecs::component::Mutable> + Clone + Interpolate,
{
    if !changed.read().any(|c| c.is_us) {
        return;
    }
    for (entity, snapshots, mut value) in &mut query {
        if let Some(latest) = snapshots.latest() {
            *value = latest.clone();
        }
        commands.entity(entity).remove::<Snapshots<C>>();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct X(f32);

    impl Interpolate for X {
        fn interpolate(&self, to: &Self, t: f32) -> Self {
            X(self.0 + (to.0 - self.0) * t)
        }
    }

    #[test]
    fn sampling_blends_between_snapshots_and_clamps_outside() {
        let snapshots = Snapshots {
            values: VecDeque::from([(10, X(0.0)), (11, X(10.0)), (13, X(30.0))]),
        };
        assert_eq!(snapshots.sample(9.0), Some(X(0.0)));
        assert_eq!(snapshots.sample(10.5), Some(X(5.0)));
        assert_eq!(
            snapshots.sample(12.0),
            Some(X(20.0)),
            "a missing tick is bridged"
        );
        assert_eq!(snapshots.sample(14.0), Some(X(30.0)), "no extrapolation");
        assert_eq!(snapshots.latest(), Some(&X(30.0)));
        let empty: Snapshots<X> = Snapshots {
            values: VecDeque::new(),
        };
        assert_eq!(empty.sample(1.0), None);
    }
}
