//! Access tickets as the server reads them from `?ticket=`. Any string is
//! refused or accepted without panicking; one accepted is exactly the
//! ticket the server would mint for its claims (one spelling), alive and
//! within the lifetime, for a room without a newline. A ticket minted from
//! the input's secret, room, user and expiry verifies to those claims (or
//! is refused for its length, its room or its lifetime, as documented), and
//! every one-byte change of it, or of its room, is refused. The TURN
//! username made from an accepted user keeps to `A-Za-z0-9._@-`.
//!
//! Input: secret, room, user (each a packet: u16 LE length, bytes, read
//! as UTF-8, lossily), expiry (two u32 LE, high half first), lifetime
//! (u32 LE seconds), age (u32 LE: now is that long before the expiry), a
//! ticket (packet), then changes to the minted ticket (or, on odd kinds
//! from 3 up, to the room): kind byte (`% 3`: replace, insert, delete),
//! position (u16 LE), byte.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use volley_fuzz::Input;
use volley_server::Secret;
use volley_server::ice::{IceConfig, ice_servers};
use volley_server::ticket::{Claims, MAX_TICKET_LEN, TicketError, mint, verify};

/// One-byte changes tried per input.
const MAX_CHANGES: usize = 32;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `s` with one byte replaced, inserted or deleted (read back lossily).
fn change(s: &str, kind: u8, position: u16, byte: u8) -> String {
    let mut bytes = s.as_bytes().to_vec();
    let at = usize::from(position) % (bytes.len() + 1);
    match kind % 3 {
        0 if at < bytes.len() => bytes[at] = byte,
        1 => bytes.insert(at, byte),
        _ if at < bytes.len() => {
            bytes.remove(at);
        }
        _ => bytes.push(byte),
    }
    text(&bytes)
}

/// An accepted ticket and what it grants, checked.
fn accepted(secret: &[u8], room: &str, ticket: &str, claims: &Claims, now: u64, ttl: u64) {
    assert!(ticket.len() <= MAX_TICKET_LEN);
    assert!(!room.contains('\n'));
    assert!(claims.expiry >= now && claims.expiry - now <= ttl);
    assert_eq!(
        mint(secret, room, &claims.user, claims.expiry),
        ticket,
        "a ticket accepted in another spelling"
    );
    let ice = IceConfig {
        turn: vec!["turn:relay.example".into()],
        turn_secret: Some(Secret::from("turn")),
        turn_user: "volley".into(),
        ..IceConfig::default()
    };
    for server in ice_servers(&ice, now, Some(&claims.user)).ice_servers {
        let Some(username) = server.username else {
            continue;
        };
        let (expiry, user) = username.split_once(':').expect("expiry:user");
        assert!(expiry.bytes().all(|b| b.is_ascii_digit()));
        assert!(
            user.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-')),
            "{username:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let secret = input.packet().to_vec();
    let room = text(input.packet());
    let user = text(input.packet());
    let expiry = (u64::from(input.u32()) << 32) | u64::from(input.u32());
    let ttl = u64::from(input.u32());
    let now = expiry.saturating_sub(u64::from(input.u32()));
    let max_ttl = Duration::from_secs(ttl);

    // Whatever a client writes.
    let given = text(input.packet());
    if let Ok(claims) = verify(&secret, &room, &given, now, max_ttl) {
        accepted(&secret, &room, &given, &claims, now, ttl);
    }

    // What the server's `ticket` command mints.
    let minted = mint(&secret, &room, &user, expiry);
    let expected = if minted.len() > MAX_TICKET_LEN {
        Err(TicketError::Malformed)
    } else if room.contains('\n') {
        Err(TicketError::BadSignature)
    } else if expiry - now > ttl {
        Err(TicketError::TtlTooLong { max_secs: ttl })
    } else {
        Ok(Claims {
            user: user.clone(),
            expiry,
        })
    };
    let got = verify(&secret, &room, &minted, now, max_ttl);
    assert_eq!(got, expected, "{minted:?} for {room:?}");
    if let Ok(claims) = &got {
        accepted(&secret, &room, &minted, claims, now, ttl);
    }
    let valid = expected.is_ok() || matches!(expected, Err(TicketError::TtlTooLong { .. }));
    if valid && expiry < u64::MAX {
        assert_eq!(
            verify(&secret, &room, &minted, expiry + 1, max_ttl),
            Err(TicketError::Expired)
        );
    }

    // Any one-byte change is another ticket, or another room: refused.
    let forever = Duration::from_secs(u64::MAX);
    for _ in 0..MAX_CHANGES {
        if input.is_empty() || !valid {
            break;
        }
        let (kind, position, byte) = (input.u8(), input.u16(), input.u8());
        if kind >= 3 && kind % 2 == 1 {
            let other = change(&room, kind, position, byte);
            if other != room {
                assert!(
                    verify(&secret, &other, &minted, now, forever).is_err(),
                    "{minted:?} accepted for {other:?} too"
                );
            }
        } else {
            let changed = change(&minted, kind, position, byte);
            if changed != minted {
                assert!(
                    verify(&secret, &room, &changed, now, forever).is_err(),
                    "{changed:?} accepted beside {minted:?}"
                );
            }
        }
    }
});
