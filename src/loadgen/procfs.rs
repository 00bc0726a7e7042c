//! Server resource samples from `/proc/<pid>/status` (VmRSS) and `/proc/<pid>/stat` (user +
//! system CPU time), taken before and after the measured phase of a run.

use std::time::Instant;

use anyhow::{Context, bail};

/// Clock ticks per second of `/proc/<pid>/stat` times. This is `USER_HZ`, fixed at 100 by the
/// Linux ABI on every mainstream architecture (reading `sysconf` would need libc/unsafe).
const TICKS_PER_SEC: f64 = 100.0;

/// One look at a process.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Resident set size.
    pub rss_bytes: u64,
    /// Peak resident set size (VmHWM): since the process started, or since `reset_peak`.
    pub peak_rss_bytes: u64,
    /// User + system CPU time so far, in seconds.
    pub cpu_secs: f64,
    /// When the sample was taken (CPU % is over the time between two samples).
    pub at: Instant,
}

pub fn sample(pid: u32) -> anyhow::Result<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status (is --server-pid right?)"))?;
    let kb = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .with_context(|| format!("no {field} in /proc/{pid}/status"))
    };
    let rss_kb = kb("VmRSS:")?;
    let peak_kb = kb("VmHWM:").unwrap_or(rss_kb);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    Ok(Sample {
        rss_bytes: rss_kb * 1024,
        peak_rss_bytes: peak_kb * 1024,
        cpu_secs: cpu_ticks(&stat).with_context(|| format!("parsing /proc/{pid}/stat"))? as f64
            / TICKS_PER_SEC,
        at: Instant::now(),
    })
}

/// Resets the process's peak RSS to its current RSS (`/proc/<pid>/clear_refs`, value 5), so a
/// later `peak_rss_bytes` is the peak of what follows. False if not permitted (another user's
/// process).
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// utime + stime: fields 14 and 15, counted after the parenthesised command name (which may
/// itself contain spaces or parentheses).
fn cpu_ticks(stat: &str) -> anyhow::Result<u64> {
    let Some((_, rest)) = stat.rsplit_once(')') else {
        bail!("no command name");
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("field {}", i + 3))
    };
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    Ok(field(11)? + field(12)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_past_an_awkward_command_name() {
        let stat = "42 (im (dis) patcher) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(cpu_ticks(stat).unwrap(), 300);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.rss_bytes > 0);
    }
}
