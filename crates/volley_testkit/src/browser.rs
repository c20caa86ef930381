//! Headless Chromium driven through chromedriver (W3C WebDriver: HTTP +
//! JSON), for the browser end-to-end tests. Every wait is bounded.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use volley_server::{ServerConfig, ServerHandle};

use crate::wait_for;

/// The flags that make headless Chromium render WebGL2 in software and
/// offer host candidates on the test's own interfaces.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--enable-unsafe-swiftshader",
    "--disable-dev-shm-usage",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
    "--window-size=1024,700",
];

/// The flags in [`CHROMIUM_ARGS`] that spare hidden pages the throttling
/// a browser applies to them ([`Driver::browser_throttled`] leaves them out).
const UNTHROTTLED: &[&str] = &[
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
];

/// A running chromedriver; killed on drop.
pub struct Driver {
    child: Child,
    url: String,
    http: ureq::Agent,
}

impl Driver {
    /// Starts chromedriver on a free port and waits until it is ready.
    pub fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (Debian's chromium-driver; `cargo xtask ci` installs it)");
        let http: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http,
        };
        wait_for("chromedriver ready", Duration::from_secs(20), || {
            driver
                .call("GET", "/status", None)
                .ok()
                .filter(|v| v["ready"] == json!(true))
        });
        driver
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.url);
        let response = match (method, body) {
            ("GET", _) => self.http.get(&url).call(),
            ("DELETE", _) => self.http.delete(&url).call(),
            (_, body) => self
                .http
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.unwrap_or_else(|| json!({})).to_string()),
        }
        .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = response.status().as_u16();
        let text = response
            .into_body()
            .read_to_string()
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| format!("{method} {path}: {e}: {text}"))?;
        if status >= 400 {
            return Err(format!(
                "{method} {path}: HTTP {status}: {}",
                value["value"]
            ));
        }
        Ok(value["value"].clone())
    }

    /// Opens a new headless Chromium window.
    pub fn browser(&self) -> Browser<'_> {
        self.browser_with(&[])
    }

    /// [`Driver::browser`] with more command-line flags.
    pub fn browser_with(&self, extra: &[String]) -> Browser<'_> {
        self.open(
            CHROMIUM_ARGS
                .iter()
                .map(|a| a.to_string())
                .chain(extra.iter().cloned()),
        )
    }

    /// [`Driver::browser`] that throttles a hidden page's timers and
    /// renderer as a desktop Chromium does.
    pub fn browser_throttled(&self) -> Browser<'_> {
        let args = CHROMIUM_ARGS.iter().filter(|a| !UNTHROTTLED.contains(a));
        self.open(args.map(|a| a.to_string()))
    }

    fn open(&self, args: impl Iterator<Item = String>) -> Browser<'_> {
        let args: Vec<String> = args.collect();
        let capabilities = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": { "binary": chromium(), "args": args },
            }}
        });
        let session = self
            .call("POST", "/session", Some(capabilities))
            .expect("a Chromium session");
        let id = session["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        Browser {
            driver: self,
            path: format!("/session/{id}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromium() -> String {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("chromium")
        .to_string()
}

/// One browser window; closed on drop.
pub struct Browser<'a> {
    driver: &'a Driver,
    path: String,
}

impl Browser<'_> {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.driver
            .call(method, &format!("{}{path}", self.path), body)
            .unwrap_or_else(|e| panic!("WebDriver: {e}"))
    }

    /// Navigates and waits for the page to load.
    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    /// Reloads the page, as its reload button does, and waits for it to load.
    pub fn reload(&self) {
        self.call("POST", "/refresh", Some(json!({})));
    }

    /// Runs `script` (a function body) in the page and returns its value.
    pub fn eval(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// Minimises the window: its page is hidden as a tab in the background
    /// is (`visibilityState` `hidden`: no animation frames, and, in a
    /// [`Driver::browser_throttled`], throttled timers).
    pub fn hide(&self) {
        self.call("POST", "/window/minimize", Some(json!({})));
    }

    /// Shows a minimised window again.
    pub fn show(&self) {
        self.call("POST", "/window/maximize", Some(json!({})));
    }

    /// The page's `document.visibilityState`.
    pub fn visibility(&self) -> String {
        self.eval("return document.visibilityState;")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Saves a PNG of the window.
    pub fn screenshot(&self, path: &Path) {
        let data = self.call("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or_default())
            .expect("a base64 PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("the screenshot directory");
        }
        std::fs::write(path, png).expect("the screenshot is written");
    }

    /// The game's reported status (`#volley-status`), if the page has one yet.
    /// Panics with the page's message when the game shell reported an error.
    pub fn game_status(&self) -> Option<Value> {
        let v = self.eval(
            "return { error: document.body && document.body.dataset.error || null, \
             status: document.getElementById('volley-status') && \
             document.getElementById('volley-status').dataset.status || null };",
        );
        if let Some(error) = v["error"].as_str() {
            panic!("the game page reported: {error}");
        }
        v["status"]
            .as_str()
            .and_then(|s| serde_json::from_str(s).ok())
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        let _ = self.driver.call("DELETE", &self.path, None);
    }
}

/// The cargo target directory of the running test or benchmark
/// (`<target>/<profile>/deps/<binary>`).
pub fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// The web bundle (`cargo xtask web`): `$VOLLEY_WEB_DIR`, else
/// `target/web/debug`, built by running `cargo xtask web` when it is missing.
/// Call it before entering the network namespace (the build may need the
/// network to install wasm-bindgen-cli).
pub fn web_bundle() -> PathBuf {
    let dir = std::env::var_os("VOLLEY_WEB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("web").join("debug"));
    if dir.join("box_game").join("manifest.json").exists() {
        return dir;
    }
    eprintln!(
        "no web bundle in {}: running cargo xtask web",
        dir.display()
    );
    {
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["xtask", "web"])
            .env("CARGO_TARGET_DIR", target_dir())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo xtask web runs");
        assert!(status.success(), "cargo xtask web failed");
    }
    target_dir().join("web").join("debug")
}

/// One browser test at a time: each starts Chromium (software WebGL) and
/// native peers, and on two cores several at once starve each other.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs the browser test `name` (its full path as `cargo test` lists it):
/// one at a time, with the web bundle ready, inside its own network
/// namespace, with a server serving the bundle and a chromedriver.
pub fn browser_test(name: &str, test: impl FnOnce(&ServerHandle, &Driver)) {
    browser_test_with(name, ServerConfig::default(), test)
}

/// [`browser_test`] with a server configuration (its web directory and
/// address are set here).
pub fn browser_test_with(
    name: &str,
    config: ServerConfig,
    test: impl FnOnce(&ServerHandle, &Driver),
) {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let web = web_bundle();
    if !crate::netns::isolate(name) {
        return;
    }
    let config = ServerConfig {
        web_dir: Some(web),
        ..config
    };
    crate::server::with_server_config(config, |server| test(server, &Driver::start()));
}
