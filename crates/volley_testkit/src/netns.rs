//! Runs a WebRTC test inside a private network namespace.
//!
//! Native WebRTC (webrtc-rs through matchbox_socket) binds 0.0.0.0 and offers
//! only non-loopback interface addresses as ICE candidates, so on the host it
//! would talk over the machine's real interface addresses — and on a machine
//! with only `lo` it could not connect at all. Inside a namespace of its own,
//! with `lo` and one veth pair (10.200.0.1/24, fd00:200::1/64) that leads
//! nowhere, every
//! packet stays inside the test. (The default route into the veth is there
//! because webrtc-rs joins the mDNS multicast group and fails without one.)
//!
//! Usage, at the top of a `#[test]`:
//! `if !support::netns::isolate("module::test_name") { return; }` — the
//! outer call re-runs the test binary for that one test inside the namespace
//! (at most 180 s) and returns `false` once it passed (panicking with its
//! output otherwise); inside, it returns `true` and the test body runs.

use std::process::{Command, Stdio};

const INSIDE: &str = "VOLLEY_TEST_NETNS";

const SETUP: &str = "ip link set lo up \
    && ip link add v0 type veth peer name v1 \
    && ip addr add 10.200.0.1/24 dev v0 && ip addr add fd00:200::1/64 dev v0 nodad \
    && ip link set v0 addrgenmode none && ip link set v1 addrgenmode none \
    && ip link set v0 up && ip link set v1 up \
    && ip route add default dev v0";

/// See the module docs. `test` is the test's full path as `cargo test` lists it.
pub fn isolate(test: &str) -> bool {
    isolate_in(test, false)
}

/// [`isolate`], in a private mount namespace too with a tmpfs on `/run`,
/// so that the test may add network namespaces of its own (`ip netns add`,
/// as [`crate::internet`] does) without touching the host's.
pub fn isolate_with_namespaces(test: &str) -> bool {
    isolate_in(test, true)
}

fn isolate_in(test: &str, mounts: bool) -> bool {
    if inside() {
        return true;
    }
    let args = [test, "--exact", "--nocapture", "--test-threads=1"];
    let output = run_isolated_with(&args, true, mounts, TEST_LIMIT);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{test} failed inside its network namespace ({}):\n{stdout}\n{stderr}",
        output.status
    );
    false
}

/// True inside the namespace.
pub fn inside() -> bool {
    std::env::var_os(INSIDE).is_some()
}

/// Re-runs the current executable with `args` inside a fresh namespace;
/// `capture` collects its output, otherwise it goes to ours. At most 180 s.
pub fn run_isolated(args: &[&str], capture: bool) -> std::process::Output {
    run_isolated_with(args, capture, false, TEST_LIMIT)
}

/// A test's time inside its namespace, at most (seconds).
const TEST_LIMIT: u32 = 180;

/// A benchmark's first line: outside its namespace, runs this benchmark
/// again inside one (with a mount namespace too when `mounts`: `/run` a
/// fresh tmpfs, for `ip netns` and iptables' lock), with the same
/// arguments, its output ours, for at most 15 min, and exits with its
/// status; inside, returns.
pub fn benchmark_inside(mounts: bool) {
    if inside() {
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let status = run_isolated_with(&args, false, mounts, 900).status;
    std::process::exit(status.code().unwrap_or(1));
}

/// [`run_isolated`]; with `mounts`, in a mount namespace of its own too,
/// `/run` a fresh tmpfs (for `ip netns`); killed after `limit` seconds.
fn run_isolated_with(
    args: &[&str],
    capture: bool,
    mounts: bool,
    limit: u32,
) -> std::process::Output {
    let exe = std::env::current_exe().expect("own executable path");
    // As root this is a plain network namespace; otherwise a user namespace
    // maps the caller to root so that it may configure its own interfaces.
    let mount = if mounts {
        "mount -t tmpfs tmpfs /run && mkdir -p /run/netns && "
    } else {
        ""
    };
    let script = format!("{mount}{SETUP} && exec \"$0\" \"$@\"");
    let stdio = || {
        if capture {
            Stdio::piped()
        } else {
            Stdio::inherit()
        }
    };
    let limit = limit.to_string();
    let mut unshare = vec![limit.as_str(), "unshare", "--map-root-user", "--net"];
    if mounts {
        unshare.push("--mount");
    }
    Command::new("timeout")
        .args(unshare)
        .args(["--", "sh", "-c", &script])
        .arg(&exe)
        .args(args)
        .env(INSIDE, "1")
        .stdout(stdio())
        .stderr(stdio())
        .spawn()
        .and_then(|child| child.wait_with_output())
        .expect("`timeout`, `unshare` (util-linux) and `ip` (iproute2) are needed for WebRTC tests")
}
