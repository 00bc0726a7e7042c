//! Connection threads: every WebSocket and binary-protocol connection runs on one of these,
//! beside that thread's delivery hub (`hub.rs`), not on the HTTP worker that accepted it. The
//! HTTP workers then only answer requests, so a send is accepted and stored without queueing
//! behind the socket writes of the fan-outs before it (issue 13: an unrelated peer send waited
//! up to 146 ms at p99 behind a 10,000-member fan-out when both shared the workers).

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::TcpStream;

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

    /// Lowers the threads' priority to `nice` (`http.connection_nice`), so that requests
    /// (on the workers, at 0) get the cores first when a fan-out would take them all.
    pub fn set_nice(&self, nice: u8) {
        for a in &self.arbiters {
            a.spawn_fn(move || {
                if let Err(e) = set_thread_nice(nice) {
                    tracing::warn!(error = %e, nice, "connection thread: cannot set its nice value");
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

/// Sets the calling thread's nice value (Linux: per thread; elsewhere the process's).
#[allow(unsafe_code)] // one libc call; no well-kept crate wraps setpriority for a thread
fn set_thread_nice(nice: u8) -> std::io::Result<()> {
    // SAFETY: setpriority takes plain integers and touches no memory of ours; `who` 0 is the
    // calling thread on Linux.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, libc::c_int::from(nice)) };
    match r {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}
