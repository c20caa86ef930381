//! Per-user quotas of the built-in TURN server: allocations at once, and
//! bytes per second over all of a user's allocations together. Pure: the
//! clock is passed in.
//!
//! The user is the part after `expiry:` of the TURN username `/api/ice`
//! mints: a ticket's user, or without tickets the client's address (its
//! /64 for IPv6), so one client cannot take every relay or all of the
//! server's bandwidth. Users are tracked only while they hold an
//! allocation, so there are never more entries than live allocations.
//!
//! ```
//! use std::time::Instant;
//! use volley_server::turn_quota::{QuotaRefusal, UserQuotas};
//! let now = Instant::now();
//! let mut quotas = UserQuotas::new(2, 0);
//! assert!(quotas.admit("ann", now).is_ok());
//! assert!(quotas.admit("ann", now).is_ok());
//! assert_eq!(quotas.admit("ann", now), Err(QuotaRefusal::Allocations { limit: 2 }));
//! assert!(quotas.admit("bob", now).is_ok()); // others are not affected
//! quotas.release("ann");
//! assert!(quotas.admit("ann", now).is_ok());
//! ```

use std::collections::HashMap;
use std::time::Instant;

use crate::limits::TokenBucket;

/// What a user's quota refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuotaRefusal {
    /// The user already holds its share of allocations.
    #[error("this user already holds {limit} TURN allocations")]
    Allocations {
        /// The limit.
        limit: usize,
    },
}

impl QuotaRefusal {
    /// The metric label (`volley_turn_refusals_total{reason=…}`).
    pub fn label(&self) -> &'static str {
        match self {
            QuotaRefusal::Allocations { .. } => "turn_user_allocations",
        }
    }
}

/// One user's live allocations and shared byte budget.
#[derive(Debug)]
struct Usage {
    allocations: usize,
    bucket: Option<TokenBucket>,
}

/// Every user's usage (see the module docs).
#[derive(Debug)]
pub struct UserQuotas {
    max_allocations: usize,
    max_bytes_per_second: u32,
    users: HashMap<String, Usage>,
}

impl UserQuotas {
    /// At most `max_allocations` allocations and `max_bytes_per_second`
    /// relayed bytes (both directions, over all its allocations) per user;
    /// 0 switches either limit off.
    pub fn new(max_allocations: usize, max_bytes_per_second: u32) -> Self {
        UserQuotas {
            max_allocations,
            max_bytes_per_second,
            users: HashMap::new(),
        }
    }

    /// Counts one more allocation of `user`, or refuses it.
    pub fn admit(&mut self, user: &str, now: Instant) -> Result<(), QuotaRefusal> {
        let rate = self.max_bytes_per_second;
        if let Some(usage) = self.users.get_mut(user) {
            if self.max_allocations != 0 && usage.allocations >= self.max_allocations {
                return Err(QuotaRefusal::Allocations {
                    limit: self.max_allocations,
                });
            }
            usage.allocations += 1;
            return Ok(());
        }
        if self.max_allocations == 0 && rate == 0 {
            return Ok(()); // nothing to track
        }
        self.users.insert(
            user.to_owned(),
            Usage {
                allocations: 1,
                // A second's worth of burst, as for one allocation.
                bucket: (rate > 0).then(|| TokenBucket::new(rate, rate, now)),
            },
        );
        Ok(())
    }

    /// An allocation of `user` ended; the user is forgotten with its last.
    pub fn release(&mut self, user: &str) {
        if let Some(usage) = self.users.get_mut(user) {
            usage.allocations = usage.allocations.saturating_sub(1);
            if usage.allocations == 0 {
                self.users.remove(user);
            }
        }
    }

    /// Whether `user` may relay `bytes` more at `now` (taken if so).
    pub fn allow(&mut self, user: &str, bytes: u32, now: Instant) -> bool {
        match self.users.get_mut(user).and_then(|u| u.bucket.as_mut()) {
            Some(bucket) => bucket.take_n(now, bytes),
            None => true,
        }
    }

    /// Users holding an allocation.
    pub fn users(&self) -> usize {
        self.users.len()
    }
}

/// The user part of a TURN REST username (`expiry:user`), or "" without one.
pub fn user_of(username: &str) -> &str {
    username.split_once(':').map_or("", |(_, user)| user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    #[derive(Debug, Clone)]
    enum Op {
        Admit(u8),
        Release(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![(0u8..4).prop_map(Op::Admit), (0u8..4).prop_map(Op::Release)]
    }

    proptest! {
        /// Against a model: a count per user, admitted below the limit.
        #[test]
        fn quotas_match_a_count_per_user(limit in 1usize..4, ops in prop::collection::vec(op(), 0..200)) {
            let now = Instant::now();
            let mut quotas = UserQuotas::new(limit, 1000);
            let mut model: HashMap<String, usize> = HashMap::new();
            for op in ops {
                match op {
                    Op::Admit(u) => {
                        let user = format!("u{u}");
                        let count = model.entry(user.clone()).or_insert(0);
                        let admitted = quotas.admit(&user, now).is_ok();
                        prop_assert_eq!(admitted, *count < limit);
                        if admitted {
                            *count += 1;
                        }
                    }
                    Op::Release(u) => {
                        let user = format!("u{u}");
                        quotas.release(&user);
                        if let Some(count) = model.get_mut(&user) {
                            *count = count.saturating_sub(1);
                        }
                    }
                }
                model.retain(|_, n| *n > 0);
                prop_assert_eq!(quotas.users(), model.len());
            }
        }
    }

    #[test]
    fn a_users_allocations_share_one_byte_budget() {
        let t0 = Instant::now();
        let mut quotas = UserQuotas::new(0, 1000);
        quotas.admit("ann", t0).unwrap();
        quotas.admit("ann", t0).unwrap();
        quotas.admit("bob", t0).unwrap();
        assert!(quotas.allow("ann", 600, t0));
        assert!(
            !quotas.allow("ann", 600, t0),
            "the second allocation shares the budget"
        );
        assert!(quotas.allow("bob", 600, t0), "another user has its own");
        assert!(quotas.allow("ann", 600, t0 + Duration::from_millis(300)));
        // Unknown users (no live allocation) are not limited here.
        assert!(quotas.allow("eve", 1_000_000, t0));
    }

    #[test]
    fn off_means_off_and_nothing_is_tracked() {
        let t0 = Instant::now();
        let mut quotas = UserQuotas::new(0, 0);
        for _ in 0..1000 {
            quotas.admit("ann", t0).unwrap();
        }
        assert_eq!(quotas.users(), 0);
        assert!(quotas.allow("ann", u32::MAX, t0));
    }

    #[test]
    fn the_user_is_what_follows_the_expiry() {
        assert_eq!(user_of("1700000000:alice"), "alice");
        assert_eq!(user_of("1700000000:a:b"), "a:b");
        assert_eq!(user_of("1700000000:"), "");
        assert_eq!(user_of("nonsense"), "");
    }
}
