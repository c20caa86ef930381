//! The message registry and the protocol hash peers compare on connect.

use std::any::TypeId;

use crate::Channel;
use crate::frame::FIRST_USER_KIND;

/// Bumped when volley's own wire format changes.
pub const WIRE_VERSION: u32 = 2;

/// One registered message type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Its name in the protocol hash (the Rust type name unless given).
    pub name: String,
    /// The channel it travels on.
    pub channel: Channel,
    /// Its kind byte on the wire.
    pub kind: u8,
}

/// Why a registration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The type is registered already.
    #[error("{0} is registered twice")]
    Duplicate(String),
    /// The rollback channel is reserved for the rollback session.
    #[error("{0}: the rollback channel is reserved for rollback inputs")]
    Reserved(String),
    /// There are 240 kinds for user messages.
    #[error("too many message types (at most {0})")]
    Full(usize),
}

/// The registered message types, in registration order.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    entries: Vec<(TypeId, Registration)>,
}

impl Registry {
    /// Registers type `id` under `name` on `channel`; returns its kind byte.
    pub fn register(
        &mut self,
        id: TypeId,
        name: &str,
        channel: Channel,
    ) -> Result<u8, RegistryError> {
        if channel == Channel::Rollback {
            return Err(RegistryError::Reserved(name.to_owned()));
        }
        if self.entries.iter().any(|(t, _)| *t == id) {
            return Err(RegistryError::Duplicate(name.to_owned()));
        }
        let max = usize::from(u8::MAX - FIRST_USER_KIND) + 1;
        if self.entries.len() >= max {
            return Err(RegistryError::Full(max));
        }
        let kind = FIRST_USER_KIND + self.entries.len() as u8;
        let registration = Registration {
            name: name.to_owned(),
            channel,
            kind,
        };
        self.entries.push((id, registration));
        Ok(kind)
    }

    /// The registration of type `id`.
    pub fn by_type(&self, id: TypeId) -> Option<&Registration> {
        self.entries.iter().find(|(t, _)| *t == id).map(|(_, r)| r)
    }

    /// The type registered under wire `kind`.
    pub fn by_kind(&self, kind: u8) -> Option<(TypeId, &Registration)> {
        let index = usize::from(kind.checked_sub(FIRST_USER_KIND)?);
        self.entries.get(index).map(|(t, r)| (*t, r))
    }

    /// FNV-1a 64 over the wire version, the channel layout, the app version
    /// and every registration (name, channel, kind) in order: two peers with
    /// the same hash decode each other's messages the same way.
    pub fn protocol_hash(&self, app_version: &str) -> u64 {
        let mut h = Fnv::new();
        h.write(&WIRE_VERSION.to_le_bytes());
        for channel in Channel::ALL {
            h.write(channel.name().as_bytes());
            h.write(&[0]);
        }
        h.write(app_version.as_bytes());
        h.write(&[0]);
        for (_, r) in &self.entries {
            h.write(r.name.as_bytes());
            h.write(&[0, r.channel as u8, r.kind]);
        }
        h.0
    }
}

struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_every_registration_detail() {
        let mut a = Registry::default();
        a.register(TypeId::of::<u8>(), "chat", Channel::Reliable)
            .unwrap();
        a.register(TypeId::of::<u16>(), "pos", Channel::Unreliable)
            .unwrap();
        let base = a.protocol_hash("1.0");
        assert_eq!(base, a.clone().protocol_hash("1.0"));
        assert_ne!(base, a.protocol_hash("1.1"));
        let mut swapped = Registry::default();
        swapped
            .register(TypeId::of::<u16>(), "pos", Channel::Unreliable)
            .unwrap();
        swapped
            .register(TypeId::of::<u8>(), "chat", Channel::Reliable)
            .unwrap();
        assert_ne!(base, swapped.protocol_hash("1.0"));
        let mut other_channel = Registry::default();
        other_channel
            .register(TypeId::of::<u8>(), "chat", Channel::Unreliable)
            .unwrap();
        other_channel
            .register(TypeId::of::<u16>(), "pos", Channel::Unreliable)
            .unwrap();
        assert_ne!(base, other_channel.protocol_hash("1.0"));
        assert_eq!(
            a.register(TypeId::of::<u8>(), "chat", Channel::Reliable),
            Err(RegistryError::Duplicate("chat".into()))
        );
        assert_eq!(a.by_kind(FIRST_USER_KIND + 1).unwrap().1.name, "pos");
        assert!(a.by_kind(3).is_none());
    }
}
