//! A simulated internet with home networks behind NAT routers, built inside
//! the test's own namespaces (the test runs under
//! [`crate::netns::isolate_with_namespaces`]; nothing touches the host).
//!
//! The test's namespace is the internet: a bridge `br0` with
//! [`SERVER_IP`] (203.0.113.0/24, the documentation range) and a default
//! route into it, so that packets to anywhere else vanish rather than fail
//! with "network unreachable". Home `i` (from 1) is the namespace `home{i}`,
//! 192.168.`i`.2/24, whose default route is its router `router{i}`:
//! 192.168.`i`.1 on the inside, 203.0.113.`10 + i` on the internet. Each
//! router NATs with iptables and drops what arrives unasked from outside —
//! also its own INPUT, or a peer's early packet would create an inbound
//! conntrack entry that changes the mapping.

use std::process::Command;

/// The server's address on the simulated internet.
pub const SERVER_IP: &str = "203.0.113.1";

/// How a home router maps its inside addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    /// One public port per inside address and port, whoever it talks to
    /// (`MASQUERADE`): a STUN server's answer tells peers where to reach it.
    EndpointIndependent,
    /// A new random public port for each destination (`MASQUERADE
    /// --random-fully`): what a STUN server sees is useless to a peer.
    Symmetric,
}

/// The built internet (see the module docs).
pub struct Internet {
    homes: usize,
}

/// Runs `script` with `sh`, panicking with its output if it fails.
fn sh(script: &str) {
    let out = Command::new("sh")
        .args(["-ec", script])
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "network set-up failed: {script}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Internet {
    /// The internet and one home per entry of `nats`, behind that NAT.
    pub fn build(nats: &[Nat]) -> Internet {
        assert!(
            Command::new("iptables").arg("--version").output().is_ok(),
            "iptables is needed for NAT tests (`cargo xtask ci` installs it; \
             apt-get install --no-install-recommends iptables)"
        );
        sh(&format!(
            "ip link add br0 type bridge
             ip addr add {SERVER_IP}/24 dev br0
             ip link set br0 up
             ip route replace default dev br0"
        ));
        for (i, nat) in nats.iter().enumerate() {
            let i = i + 1;
            let random = match nat {
                Nat::EndpointIndependent => "",
                Nat::Symmetric => " --random-fully",
            };
            sh(&format!(
                "ip netns add router{i}
                 ip netns add home{i}
                 ip -n router{i} link set lo up
                 ip -n home{i} link set lo up
                 ip link add wan{i} type veth peer name up{i}
                 ip link set wan{i} netns router{i}
                 ip link set up{i} master br0
                 ip link set up{i} up
                 ip -n router{i} addr add 203.0.113.{wan}/24 dev wan{i}
                 ip -n router{i} link set wan{i} up
                 ip -n router{i} route add default dev wan{i}
                 ip link add lan{i} type veth peer name eth{i}
                 ip link set lan{i} netns router{i}
                 ip link set eth{i} netns home{i}
                 ip -n router{i} addr add 192.168.{i}.1/24 dev lan{i}
                 ip -n router{i} link set lan{i} up
                 ip -n home{i} addr add 192.168.{i}.2/24 dev eth{i}
                 ip -n home{i} link set eth{i} up
                 ip -n home{i} route add default via 192.168.{i}.1
                 ip netns exec router{i} sysctl -qw net.ipv4.ip_forward=1
                 ip netns exec router{i} iptables -t nat -A POSTROUTING -o wan{i} -j MASQUERADE{random}
                 ip netns exec router{i} iptables -A INPUT -i wan{i} -m conntrack --ctstate NEW -j DROP
                 ip netns exec router{i} iptables -A FORWARD -i wan{i} -m conntrack --ctstate NEW -j DROP",
                wan = 10 + i
            ));
        }
        Internet { homes: nats.len() }
    }

    /// `program` to be run inside home `home` (from 1), killed after `limit`.
    pub fn command(
        &self,
        home: usize,
        limit: std::time::Duration,
        program: &std::path::Path,
    ) -> Command {
        assert!((1..=self.homes).contains(&home), "no home {home}");
        let mut command = Command::new("timeout");
        command
            .arg(limit.as_secs().max(1).to_string())
            .args(["ip", "netns", "exec", &format!("home{home}")])
            .arg(program);
        command
    }

    /// Home `home`'s router's public address.
    pub fn public_ip(home: usize) -> String {
        format!("203.0.113.{}", 10 + home)
    }
}
