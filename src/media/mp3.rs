//! AMR → MP3 through an `ffmpeg` found at start-up (`media.ffmpeg`: a name looked up in PATH,
//! or a path). The audio goes in on stdin and the MP3 comes out on stdout: no temporary files,
//! nothing named after user input on a command line. A conversion is bounded in time and
//! killed if the request goes away.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

/// Longest a conversion may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The ffmpeg to run for `setting`, if there is one: a path that is an executable file, or a
/// name found in one of `PATH`'s folders.
pub fn find_ffmpeg(setting: &str) -> Option<PathBuf> {
    if setting.is_empty() {
        return None;
    }
    if setting.contains('/') {
        return is_executable(Path::new(setting)).then(|| PathBuf::from(setting));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(setting))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

/// Converts `audio` (AMR or anything else ffmpeg reads) to MP3; `Err` says why not.
pub async fn convert(ffmpeg: &Path, audio: bytes::Bytes) -> Result<Vec<u8>, String> {
    let mut child = tokio::process::Command::new(ffmpeg)
        .args(["-hide_banner", "-loglevel", "error", "-i", "pipe:0"])
        .args(["-vn", "-f", "mp3", "pipe:1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("ffmpeg ({}) could not be started: {e}", ffmpeg.display()))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| "ffmpeg's stdin is not a pipe".to_string())?;
    // Fed from its own task: ffmpeg writes while it reads, and a full stdout pipe would block it.
    let feed = tokio::spawn(async move {
        let _ = stdin.write_all(&audio).await;
    });
    let out = tokio::time::timeout(TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| format!("ffmpeg took longer than {TIMEOUT:?}"))?
        .map_err(|e| format!("ffmpeg failed: {e}"))?;
    feed.abort();
    if !out.status.success() || out.stdout.is_empty() {
        let why = String::from_utf8_lossy(&out.stderr);
        let why = why.lines().last().unwrap_or("no output").trim().to_string();
        return Err(format!("ffmpeg could not convert the audio: {why}"));
    }
    Ok(out.stdout)
}
