//! coturn (Debian's `turnserver`) as the external TURN server of the NAT
//! tests and the relay benchmark, with TURN REST credentials
//! (`use-auth-secret`, the form volley-server's `/api/ice` mints).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running coturn; killed when dropped.
pub struct Coturn(Child);

impl Coturn {
    /// coturn on `listen` with relays on `listen`'s IP and `ports`, and
    /// `secret`; `None` when `turnserver` is missing or does not listen
    /// within 5 s.
    pub fn start(listen: SocketAddr, ports: (u16, u16), secret: &str) -> Option<Coturn> {
        let ip = listen.ip().to_string();
        let child = Command::new("turnserver")
            .args(["--listening-ip", &ip, "--relay-ip", &ip])
            .args(["--listening-port", &listen.port().to_string()])
            .args(["--min-port", &ports.0.to_string()])
            .args(["--max-port", &ports.1.to_string()])
            .args(["--use-auth-secret", "--static-auth-secret", secret])
            .args(["--realm", "volley", "--no-tls", "--no-dtls", "--no-cli"])
            .args(["--fingerprint", "--log-file", "stdout"])
            .arg("--pidfile")
            .arg(std::env::temp_dir().join(format!("volley-coturn-{}.pid", std::process::id())))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let coturn = Coturn(child);
        // It answers once its UDP port is bound (in this namespace's table).
        let bound = format!(":{:04X} ", listen.port());
        let deadline = Instant::now() + Duration::from_secs(5);
        while !std::fs::read_to_string("/proc/net/udp")
            .unwrap_or_default()
            .contains(&bound)
        {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(coturn)
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
