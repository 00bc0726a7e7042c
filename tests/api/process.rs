//! The real binary as a child process (for signals, SIGKILL, RSS and captured logs).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_im-dispatcher");

pub struct Server {
    pub child: Child,
    pub addr: String,
    /// Every line the process has written to stdout so far (JSON logs).
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `im-dispatcher serve` with these env overrides (plus a free port, JSON logs).
    pub fn start(env: &[(&str, String)]) -> Server {
        Self::start_with(&[], env)
    }

    /// `start`, with more arguments to `serve` (e.g. `--config PATH`).
    pub fn start_with(args: &[&str], env: &[(&str, String)]) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .args(args)
            // The level is the test's to choose, not the developer's shell's.
            .env_remove("RUST_LOG")
            .env("IMD_HTTP__LISTEN", "127.0.0.1:0")
            .env("IMD_LOG__FORMAT", "json")
            .env("IMD_HTTP__WORKERS", "2")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            match *k {
                // The start-up line is how the address is found, whatever the level.
                "IMD_LOG__LEVEL" => cmd.env(k, format!("{v},im_dispatcher::startup=info")),
                _ => cmd.env(k, v),
            };
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn: {e}"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(rest.split('"').next().unwrap_or_default().to_string());
                }
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no `listening on` line"));
        Server { child, addr, log }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Resident set size, bytes.
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status();
        assert!(ok.is_ok_and(|s| s.success()), "kill -{sig}");
    }

    /// Waits for the process to exit; its exit status.
    pub fn wait(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap_or_else(|e| panic!("{e}")) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A token for `uid` of the demo app.
    pub async fn grant(&self, uid: u64) -> String {
        let mut res = awc::Client::new()
            .post(format!("{}/auth/grant", self.base()))
            .insert_header(("Authorization", demo_auth()))
            .send_json(&serde_json::json!({ "uid": uid }))
            .await
            .unwrap_or_else(|e| panic!("grant: {e}"));
        let v: serde_json::Value = res.json().await.unwrap_or_else(|e| panic!("grant: {e}"));
        v["data"]["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token: {v}"))
            .to_string()
    }

    pub fn log_text(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Server credentials of the demo app 7 (secret `demo-secret`) the binary starts with.
pub fn demo_auth() -> String {
    crate::helpers::basic(7, "demo-secret")
}
