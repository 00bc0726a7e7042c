//! A connection thread's priority follows its delivery. While delivery is light — each round
//! of the thread's hub finds one job, and few deliveries a `WINDOW` — the thread runs at the
//! process's own nice (0 unless started under `nice`): a message's writes go out at once, not
//! each behind a reader on the same cores that a write woke (the last member of a 3,000-member
//! super group at 10 msg/s: p99 30–43 ms against 42–48 at a fixed 19, README "Performance").
//! While it is heavy — a round finds jobs waiting behind it, or more than `HEAVY` deliveries in
//! a window — the thread is at `http.connection_nice` (19), so accepting and storing get the
//! cores first and a lagging connection writes several of its messages at once (the groups
//! burst); it comes back a window after the last heavy round ended.
//!
//! Going back needs `CAP_SYS_NICE` (or a `RLIMIT_NICE` that allows it); a thread that may not
//! is set to `http.connection_nice` for good, as before this module (`start` says which). A
//! thread never runs above the priority the process started with.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// How long a thread stays at the burst nice after delivery was last heavy, and the span over
/// which its deliveries are counted.
const WINDOW: Duration = Duration::from_millis(100);

/// Deliveries a thread may queue in a window and still count as light: ~160,000 a second, a
/// sustained fan-out (a 10,000-member super group's message, 5,000 a thread, now and then is
/// light; one every millisecond is not).
const HEAVY: usize = 16 * 1024;

/// The calling thread's pacing, if it is a connection thread whose nice may follow delivery.
#[derive(Clone, Copy)]
struct Pace {
    /// The process's own nice, where the thread started.
    light_nice: i32,
    burst_nice: i32,
    /// At `burst_nice` until this instant; `None`: at `light_nice`.
    heavy_until: Option<Instant>,
    window_start: Instant,
    window_deliveries: usize,
    /// The round under way is heavy: the window restarts when it is done.
    round_heavy: bool,
}

impl Pace {
    fn nice(&self) -> i32 {
        self.heavy_until
            .map_or(self.light_nice, |_| self.burst_nice)
    }

    /// `self` after a round of `jobs` jobs and `deliveries` deliveries at `now`.
    fn after_round(mut self, jobs: usize, deliveries: usize, now: Instant) -> Pace {
        if now.duration_since(self.window_start) > WINDOW {
            self.window_start = now;
            self.window_deliveries = 0;
        }
        self.window_deliveries += deliveries;
        self.round_heavy = jobs > 1 || self.window_deliveries > HEAVY;
        if self.round_heavy {
            self.heavy_until = Some(now + WINDOW);
        } else if self.heavy_until.is_some_and(|until| now >= until) {
            self.heavy_until = None;
        }
        self
    }

    /// `self` when the round under way is done at `now`, if it was heavy: a heavy round that took
    /// longer than a window keeps the thread heavy for a window after it.
    fn heavy_round_done(mut self, now: Instant) -> Pace {
        self.heavy_until = Some(now + WINDOW);
        self.round_heavy = false;
        self
    }
}

thread_local! {
    static PACE: Cell<Option<Pace>> = const { Cell::new(None) };
}

/// How a connection thread's nice was set up.
#[derive(Debug, PartialEq, Eq)]
pub enum Mode {
    /// The process's nice while delivery is light, `burst_nice` while it is heavy.
    Adaptive,
    /// `burst_nice` for good: the thread may not go back.
    Fixed,
    /// Left at the process's nice: `burst_nice` is not above it (0 turns pacing off).
    Unchanged,
}

/// Sets up the calling (connection) thread: adaptive when it may lower its nice again, else
/// at `burst_nice` for good (or left where it is, when that is not below the process's own).
pub fn start(burst_nice: u8) -> std::io::Result<Mode> {
    let (light_nice, burst_nice) = (current_nice().unwrap_or(0), i32::from(burst_nice));
    if burst_nice <= light_nice {
        return Ok(Mode::Unchanged);
    }
    set_thread_nice(burst_nice)?;
    if set_thread_nice(light_nice).is_err() {
        set_thread_nice(burst_nice)?; // a failed call may still have moved it
        return Ok(Mode::Fixed);
    }
    let pace = Pace {
        light_nice,
        burst_nice,
        heavy_until: None,
        window_start: Instant::now(),
        window_deliveries: 0,
        round_heavy: false,
    };
    PACE.with(|p| p.set(Some(pace)));
    Ok(Mode::Adaptive)
}

/// Tells the calling thread's pacing that its hub took a round of `jobs` jobs with
/// `deliveries` deliveries (nothing on threads that `start` did not make adaptive).
pub fn after_round(jobs: usize, deliveries: usize) {
    PACE.with(|p| {
        let Some(pace) = p.get() else { return };
        let next = pace.after_round(jobs, deliveries, Instant::now());
        if next.nice() != pace.nice()
            && let Err(e) = set_thread_nice(next.nice())
        {
            tracing::warn!(error = %e, "connection thread: cannot change its nice value");
            p.set(None); // stays where it is
            return;
        }
        p.set(Some(next));
    });
}

/// Tells the calling thread's pacing that its hub's round is done (all its connections woken).
pub fn round_done() {
    PACE.with(|p| {
        if let Some(pace) = p.get().filter(|pace| pace.round_heavy) {
            p.set(Some(pace.heavy_round_done(Instant::now())));
        }
    });
}

/// The calling thread's nice value now.
fn current_nice() -> std::io::Result<i32> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat")?;
    let fields = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let nice = fields.split_whitespace().nth(16).unwrap_or("");
    nice.parse()
        .map_err(|_| std::io::Error::other("no nice in /proc/thread-self/stat"))
}

/// Sets the calling thread's nice value (Linux: per thread; elsewhere the process's).
#[allow(unsafe_code)] // one libc call; no well-kept crate wraps setpriority for a thread
fn set_thread_nice(nice: i32) -> std::io::Result<()> {
    // SAFETY: setpriority takes plain integers and touches no memory of ours; `who` 0 is the
    // calling thread on Linux.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    match r {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on a thread of its own (nice and pacing are per thread).
    fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        match std::thread::spawn(f).join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    }

    fn light() -> Pace {
        Pace {
            light_nice: 0,
            burst_nice: 19,
            heavy_until: None,
            window_start: Instant::now(),
            window_deliveries: 0,
            round_heavy: false,
        }
    }

    #[test]
    fn jobs_waiting_or_many_deliveries_make_delivery_heavy_until_a_quiet_window() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let p = light().after_round(1, 1500, ms(1));
        assert_eq!(p.nice(), 0, "a message now and then is light");
        let p = p.after_round(3, 150, ms(2));
        assert_eq!(p.nice(), 19, "jobs waiting behind a round");
        let p = p.after_round(1, 150, ms(50));
        assert_eq!(p.nice(), 19, "within a window of the last heavy round");
        let p = p.after_round(1, 150, ms(103));
        assert_eq!(p.nice(), 0, "a window without a heavy round");
        let p = p.after_round(1, HEAVY, ms(150)).after_round(1, 1, ms(151));
        assert_eq!(p.nice(), 19, "more than HEAVY deliveries in one window");
        let p = p.after_round(1, 1, ms(260));
        assert_eq!(p.nice(), 0, "a new window starts its count at 0");
        let p = p.after_round(2, 2, ms(300)).heavy_round_done(ms(450));
        let p = p.after_round(1, 1, ms(460));
        assert_eq!(
            p.nice(),
            19,
            "a window counts from the end of a long heavy round"
        );
        let p = p.after_round(1, 1, ms(551));
        assert_eq!(p.nice(), 0, "a window after the heavy round's end");
    }

    #[test]
    fn a_paced_thread_changes_its_nice_only_when_it_may_go_back() {
        let niceness = on_thread(|| {
            let base = current_nice()?;
            if start(19)? == Mode::Fixed {
                // Unprivileged: the thread stays at 19, as it did before pacing.
                return Ok::<_, std::io::Error>(vec![current_nice()?]);
            }
            let mut seen = vec![current_nice()? - base];
            after_round(3, 3);
            seen.push(current_nice()?);
            std::thread::sleep(WINDOW + Duration::from_millis(10));
            after_round(1, 1);
            seen.push(current_nice()? - base);
            Ok(seen)
        });
        let niceness = match niceness {
            Ok(n) => n,
            Err(e) => panic!("reading the thread's nice: {e}"),
        };
        if niceness.len() == 1 {
            assert_eq!(niceness, [19], "a thread that may not go back stays at 19");
        } else {
            assert_eq!(niceness, [0, 19, 0]);
        }
    }

    #[test]
    fn nice_zero_and_threads_not_started_are_left_alone() {
        let seen = on_thread(|| {
            let before = current_nice();
            after_round(5, 50_000); // not a paced thread: nothing happens
            let mode = start(0);
            after_round(5, 50_000);
            (before.ok(), mode.ok(), current_nice().ok())
        });
        assert_eq!(seen.1, Some(Mode::Unchanged));
        assert_eq!(seen.0, seen.2, "the thread's nice did not move");
    }
}
