//! A player's network outage inside a test's own network namespace: the
//! player binds its connections to an address of its own ([`CUT_IP`], on
//! a veth pair), and iptables drops every packet to and from it — the
//! packets vanish, as in a real outage. (Taking a link down does not stop
//! traffic between local addresses, which goes through `lo`.)

use std::net::SocketAddr;
use std::process::Command;

/// The address a cut player binds to.
pub const CUT_IP: &str = "10.77.0.2";

/// Adds [`CUT_IP`] to the namespace; returns it as a bind address (any
/// port). Call it once, inside the namespace.
pub fn own_address() -> SocketAddr {
    // A veth pair (no dummy links in every kernel) to hold the address.
    run("ip", "link add cut0 type veth peer name cut1");
    run("ip", &format!("addr add {CUT_IP}/32 dev cut0"));
    run("ip", "link set cut1 up");
    run("ip", "link set cut0 up");
    SocketAddr::new(CUT_IP.parse().expect("an IP address"), 0)
}

/// Drops every packet to or from [`CUT_IP`] (`true`), or lets them
/// through again (`false`).
pub fn cut(off: bool) {
    let how = if off { "-I" } else { "-D" };
    run("iptables", &format!("-w {how} INPUT -s {CUT_IP} -j DROP"));
    run("iptables", &format!("-w {how} INPUT -d {CUT_IP} -j DROP"));
}

fn run(program: &str, args: &str) {
    let out = Command::new(program)
        .args(args.split_whitespace())
        .output()
        .unwrap_or_else(|e| panic!("{program} does not run: {e}"));
    assert!(
        out.status.success(),
        "{program} {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
