//! A private `redis-server` for this test binary, started once on a free port, with one logical
//! database handed to each test (so tests never see each other's keys, global queues included).
//! `IMD_TEST_REDIS_URL` points the tests at an existing, disposable Redis instead.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Databases the private server is started with; each test takes the next one.
const DATABASES: u32 = 4000;

struct Server {
    base_url: String,
    databases: u32,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(1);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

fn start() -> Result<Server, String> {
    if let Ok(url) = std::env::var("IMD_TEST_REDIS_URL") {
        let url = url.trim_end_matches('/').to_string();
        return Ok(Server {
            base_url: url,
            databases: 16,
        });
    }
    let found = Command::new("redis-server").arg("--version").output();
    if found.is_err() {
        return Err("redis-server is not installed, and the tests need a real Redis. Install it with \
             `sudo apt-get install -y redis-server` (Debian/Ubuntu; `scripts/test` does this for you), \
             or point IMD_TEST_REDIS_URL at a disposable Redis."
            .to_string());
    }
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("imd-test-redis-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    // The shell wrapper stops Redis once this test process is gone, even after a crash.
    let script = format!(
        "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no --databases {DATABASES} \
         --dir '{dir}' --logfile '' --daemonize no >/dev/null 2>&1 & R=$!; \
         while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill $R; rm -rf '{dir}'",
        dir = dir.display(),
        parent = std::process::id(),
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("could not start redis-server: {e}"))?;
    let base_url = format!("redis://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ok = redis::Client::open(format!("{base_url}/0"))
            .and_then(|c| c.get_connection())
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
        if ok.is_ok() {
            return Ok(Server {
                base_url,
                databases: DATABASES,
            });
        }
        if Instant::now() > deadline {
            return Err(format!(
                "redis-server on port {port} did not answer within 10 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fresh, empty Redis database for one test: its URL.
pub fn fresh_db() -> String {
    let server = match SERVER.get_or_init(start) {
        Ok(s) => s,
        Err(msg) => panic!("{msg}"),
    };
    let n = NEXT_DB.fetch_add(1, Ordering::Relaxed);
    let db = 1 + (n - 1) % (server.databases - 1);
    let url = format!("{}/{db}", server.base_url);
    let mut con = redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection())
        .unwrap_or_else(|e| panic!("cannot connect to test redis {url}: {e}"));
    let _: () = redis::cmd("FLUSHDB")
        .query(&mut con)
        .unwrap_or_else(|e| panic!("FLUSHDB: {e}"));
    url
}

/// A blocking connection to a test database, for checking raw keys.
pub fn connect(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .unwrap_or_else(|e| panic!("cannot connect to test redis {url}: {e}"))
}

/// A redis-server of its own for one test (to pause, stall, kill or restart it), with
/// append-only persistence in its own directory. Killed when dropped.
pub struct Dedicated {
    pub port: u16,
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
    fsync: &'static str,
}

impl Dedicated {
    /// Starts one; `fsync` is the AOF policy (`always` or `everysec`).
    pub fn start(fsync: &'static str) -> Dedicated {
        if let Err(msg) = SERVER.get_or_init(start) {
            panic!("{msg}");
        }
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("imd-dedicated-{}-{port}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let mut d = Dedicated {
            port,
            dir,
            child: None,
            fsync,
        };
        d.restart();
        d
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// (Re)starts the server on the same port and directory; its AOF is replayed.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "yes", "--appendfsync", self.fsync])
            // DEBUG SLEEP stalls it (store_outcomes.rs); only from this machine.
            .args(["--enable-debug-command", "local"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("redis-server: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_err()
        {
            assert!(Instant::now() < deadline, "dedicated redis did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no shutdown save, only what the AOF already holds survives.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn connection(&self) -> redis::Connection {
        connect(&self.url())
    }
}

impl Drop for Dedicated {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
