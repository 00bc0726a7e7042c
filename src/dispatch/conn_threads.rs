//! Connection threads: every WebSocket and binary-protocol connection runs on one of these,
//! beside that thread's delivery hub (`hub.rs`), not on the HTTP worker that accepted it. The
//! HTTP workers then only answer requests, so a send is accepted and stored without queueing
//! behind the socket writes of the fan-outs before it (issue 13: an unrelated peer send waited
//! up to 146 ms at p99 behind a 10,000-member fan-out when both shared the workers).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::net::TcpStream;

use super::pace;

pub struct ConnThreads {
    arbiters: Vec<actix::Arbiter>,
    next: AtomicUsize,
}

impl ConnThreads {
    /// Starts `n` threads (at least one).
    pub fn new(n: usize) -> ConnThreads {
        ConnThreads {
            arbiters: (0..n.max(1)).map(|_| actix::Arbiter::new()).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// Moves an accepted socket to the next connection thread (round robin) and calls `start`
    /// with it there, where the connection's task, its registration and its hub then live.
    pub fn adopt(&self, io: TcpStream, start: impl FnOnce(TcpStream) + Send + 'static) {
        // Taken off this thread's reactor; registered again with the connection thread's.
        let io = match io.into_std() {
            Ok(io) => io,
            Err(e) => return tracing::debug!(error = %e, "a connection closed before it ran"),
        };
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
        let started = self.arbiters[i].spawn_fn(move || match TcpStream::from_std(io) {
            Ok(io) => start(io),
            Err(e) => tracing::warn!(error = %e, "connection thread: cannot take a socket"),
        });
        if !started {
            tracing::debug!("connection threads stopped: connection dropped");
        }
    }

    /// Paces the threads' priority with `nice` (`http.connection_nice`) as the nice of a burst
    /// (`pace.rs`), so that requests (on the workers, at 0) get the cores first when a fan-out
    /// would take them all.
    pub fn set_nice(&self, nice: u8) {
        static SAID: AtomicBool = AtomicBool::new(false);
        for a in &self.arbiters {
            a.spawn_fn(move || match pace::start(nice) {
                Ok(mode) if !SAID.swap(true, Ordering::Relaxed) => say_mode(mode, nice),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, nice, "connection thread: cannot set its nice value")
                }
            });
        }
    }

    /// Stops the threads, dropping the connections still on them (shutdown, after they were
    /// told to close).
    pub fn stop(&self) {
        for a in &self.arbiters {
            a.stop();
        }
    }
}

impl Drop for ConnThreads {
    fn drop(&mut self) {
        self.stop();
    }
}

fn say_mode(mode: pace::Mode, nice: u8) {
    match mode {
        pace::Mode::Adaptive => tracing::info!(
            "connection threads: the process's nice while delivery keeps up, {nice} while it is behind"
        ),
        pace::Mode::Fixed => tracing::info!(
            "connection threads: nice {nice} (going back after a burst needs CAP_SYS_NICE)"
        ),
        pace::Mode::Unchanged => {}
    }
}
