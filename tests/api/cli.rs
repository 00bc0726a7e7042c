//! The binary itself: help, config errors, start-up line, graceful stop.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_im-dispatcher");

#[test]
fn help_is_available_everywhere() {
    let mut all = vec![
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["loadgen", "--help"],
    ];
    for scenario in ["peer", "api", "fanout", "groups", "connect", "idle"] {
        all.push(vec!["loadgen", scenario, "--help"]);
    }
    for args in all {
        let out = Command::new(BIN)
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}

fn config_error(args: &[&str], env: &[(&str, &str)], mention: &str) {
    let out = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "one clear line: {stderr}");
    assert!(
        stderr.contains(mention),
        "{stderr} should mention {mention}"
    );
}

#[test]
fn config_errors_exit_non_zero_with_one_line() {
    config_error(
        &["serve", "--config", "/definitely/not/here.toml"],
        &[],
        "/definitely/not/here.toml",
    );
    // (variable, value, what the one line must name)
    let bad_env = [
        ("IMD_STORE__KIND", "sqlite", "sqlite"),
        ("IMD_HTTP__TYPO", "1", "typo"),
        ("IMD_HTTP__LISTEN", "not-an-address", "listen"),
        ("IMD_LIMITS__CONTENT", "0", "limits.content"),
        // Shorter than the GoBelieve SDKs' 180 s ping: it would drop healthy idle clients.
        (
            "IMD_LIMITS__BINARY_IDLE_TIMEOUT_SECS",
            "180",
            "binary_idle_timeout_secs",
        ),
        ("IMD_BINARY__LISTEN", "not-an-address", "binary.listen"),
        ("IMD_HTTP__CONNECTION_NICE", "20", "http.connection_nice"),
        ("IMD_HTTP__CONNECTION_NICE", "-5", "connection_nice"),
    ];
    for (var, value, mention) in bad_env {
        config_error(&["serve"], &[(var, value)], mention);
    }
    // A Redis URL that does not parse is a config error that does not print its password.
    let out = Command::new(BIN)
        .arg("serve")
        .envs([
            ("IMD_STORE__KIND", "redis"),
            (
                "IMD_STORE__REDIS_URL",
                "redis://:hunter2#x@localhost:notaport",
            ),
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("store.redis_url"), "{stderr}");
    assert!(
        !stderr.contains("hunter2"),
        "the password was printed: {stderr}"
    );
}

#[test]
fn bad_config_files_exit_non_zero_with_one_line() {
    let dir = std::env::temp_dir().join(format!("imd-cli-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let bad = dir.join("bad.toml");
    let _ = std::fs::write(&bad, "[store]\nkind = \"memory\"\nunknown_key = 1\n");
    config_error(
        &["serve", "--config", bad.to_str().unwrap_or_default()],
        &[],
        "unknown_key",
    );
    let dup = dir.join("dup.toml");
    let _ = std::fs::write(
        &dup,
        "[[apps]]\nid = 1\nname = \"a\"\nkey = \"k\"\nsecret = \"s\"\n[[apps]]\nid = 1\nname = \"b\"\nkey = \"k\"\nsecret = \"s\"\n",
    );
    config_error(
        &["serve", "--config", dup.to_str().unwrap_or_default()],
        &[],
        "twice",
    );
    let shared = dir.join("shared-store.toml");
    let _ = std::fs::write(
        &shared,
        "[[apps]]\nid = 1\nname = \"a\"\nkey = \"k\"\nsecret = \"s\"\nstore_id = 9\n[[apps]]\nid = 2\nname = \"b\"\nkey = \"k\"\nsecret = \"s\"\nstore_id = 9\n",
    );
    config_error(
        &["serve", "--config", shared.to_str().unwrap_or_default()],
        &[],
        "store_id 9",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_logs_its_address_and_stops_gracefully_on_sigterm() {
    let mut child = Command::new(BIN)
        .arg("serve")
        .env_remove("RUST_LOG")
        .env("IMD_HTTP__LISTEN", "127.0.0.1:0")
        .env("IMD_LOG__FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut addr = None;
    let mut warned_memory = false;
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        warned_memory |= line.contains("nothing") && line.contains("survives a restart");
        if let Some(rest) = line.split("listening on ").nth(1) {
            addr = Some(rest.split('"').next().unwrap_or_default().to_string());
            break;
        }
    }
    let addr = addr.unwrap_or_else(|| panic!("no `listening on` line"));
    assert!(warned_memory, "memory store start-up warning");
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "{addr}"
    );
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap_or_else(|e| panic!("{e}")) {
            assert!(status.success(), "exit status {status:?}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `RUST_LOG` replaces `log.level` (as for any Rust service): at `warn` the access log of a
/// request is gone, while the configured `info` alone logs it.
#[actix_web::test]
async fn rust_log_replaces_the_configured_level() {
    async fn logs_a_request(env: &[(&str, String)]) -> bool {
        let server = crate::process::Server::start(env);
        let res = awc::Client::new()
            .get(format!("{}/healthz", server.base()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET /healthz: {e}"));
        assert_eq!(res.status().as_u16(), 200);
        // The access log line is written as the response goes out; give it a moment.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let logged = server.log_text().contains("\"path\":\"/healthz\"");
            if logged || Instant::now() >= deadline {
                return logged;
            }
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let info = [("IMD_LOG__LEVEL", "info".to_string())];
    assert!(logs_a_request(&info).await, "log.level info logs requests");
    let warn = [
        ("IMD_LOG__LEVEL", "info".to_string()),
        ("RUST_LOG", "warn,im_dispatcher::startup=info".to_string()),
    ];
    assert!(
        !logs_a_request(&warn).await,
        "RUST_LOG=warn overrides log.level"
    );
}
