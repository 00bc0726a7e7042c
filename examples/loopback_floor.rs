//! The loopback floor of a super-group fan-out: what the kernel alone costs, with no server.
//!
//! `--members` TCP connections over 127.0.0.1; for each of `--messages` messages, due at
//! `--rate` a second, writer threads (the server's connection threads, at `--writer-nice`)
//! `write()` one 64-byte frame to each of their share of the sockets; reader threads (the
//! clients) wait in `epoll_wait` on theirs and read each frame at once. No storage, no HTTP, no
//! framing, no wake-ups between threads: one system call a delivery on each side, in a tight
//! loop. It prints the latency from a message's due time to its last reader (the 3,000-member
//! row of the README's Performance table measures the same through the whole service) and the
//! CPU each side spent a delivery.
//!
//! `cargo run --release --example loopback_floor -- --members 3000 --messages 100 --rate 10`

use std::error::Error;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::Parser;
use mio::{Events, Interest, Poll, Token};

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

type Handle = JoinHandle<Result<Side>>;

const FRAME: usize = 64;

#[derive(Parser, Clone, Copy)]
struct Opts {
    #[arg(long, default_value_t = 3000)]
    members: usize,
    #[arg(long, default_value_t = 100)]
    messages: u32,
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    #[arg(long, default_value_t = 2)]
    writers: usize,
    #[arg(long, default_value_t = 2)]
    readers: usize,
    /// Nice of the writer threads (the service's connection threads run at 19 by default).
    #[arg(long, default_value_t = 0)]
    writer_nice: i32,
}

/// What one thread measured: per message, its last arrival (µs after the due time; readers
/// only), and the CPU the thread used (µs).
struct Side {
    last_us: Vec<u64>,
    cpu_us: u64,
}

fn main() -> Result<()> {
    let o = Opts::parse();
    let (servers, clients) = connect(o.members)?;
    let start = Instant::now() + Duration::from_millis(500);
    let writers = spawn_all("writer", split(servers, o.writers), move |p| {
        writer(p, o, start)
    })?;
    let readers = spawn_all("reader", split(clients, o.readers), move |p| {
        reader(p, o, start)
    })?;
    let written = join_all(writers)?;
    let read = join_all(readers)?;
    report(o, &written, &read);
    Ok(())
}

/// `n` connected pairs: the accepted (server) ends and the connecting (client) ends.
fn connect(n: usize) -> Result<(Vec<TcpStream>, Vec<TcpStream>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (mut servers, mut clients) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let client = TcpStream::connect(addr)?;
        let (server, _) = listener.accept()?;
        server.set_nodelay(true)?;
        client.set_nonblocking(true)?;
        servers.push(server);
        clients.push(client);
    }
    Ok((servers, clients))
}

fn split(mut all: Vec<TcpStream>, parts: usize) -> Vec<Vec<TcpStream>> {
    let per = all.len().div_ceil(parts.max(1)).max(1);
    let mut out = Vec::new();
    while !all.is_empty() {
        let rest = all.split_off(per.min(all.len()));
        out.push(std::mem::replace(&mut all, rest));
    }
    out
}

/// One thread a part, named `name` (for `perf report --sort comm`).
fn spawn_all<F>(name: &str, parts: Vec<Vec<TcpStream>>, f: F) -> Result<Vec<Handle>>
where
    F: Fn(Vec<TcpStream>) -> Result<Side> + Copy + Send + 'static,
{
    let spawn = |part| {
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || f(part))
    };
    Ok(parts
        .into_iter()
        .map(spawn)
        .collect::<std::io::Result<_>>()?)
}

fn join_all(handles: Vec<Handle>) -> Result<Vec<Side>> {
    let join = |h: Handle| h.join().map_err(|_| "a thread panicked")?;
    handles.into_iter().map(join).collect()
}

fn due(o: Opts, start: Instant, m: u32) -> Instant {
    start + Duration::from_secs_f64(f64::from(m) / o.rate)
}

fn writer(mut socks: Vec<TcpStream>, o: Opts, start: Instant) -> Result<Side> {
    set_nice(o.writer_nice)?;
    for m in 0..o.messages {
        std::thread::sleep(due(o, start, m).saturating_duration_since(Instant::now()));
        let mut frame = [0u8; FRAME];
        frame[..4].copy_from_slice(&m.to_le_bytes());
        for s in socks.iter_mut() {
            s.write_all(&frame)?;
        }
    }
    Ok(Side {
        last_us: Vec::new(),
        cpu_us: thread_cpu_us()?,
    })
}

fn reader(mut socks: Vec<TcpStream>, o: Opts, start: Instant) -> Result<Side> {
    let mut poll = Poll::new()?;
    let mut conns = Vec::with_capacity(socks.len());
    for (i, s) in socks.drain(..).enumerate() {
        let mut s = mio::net::TcpStream::from_std(s);
        poll.registry()
            .register(&mut s, Token(i), Interest::READABLE)?;
        conns.push((s, Vec::new()));
    }
    let mut last_us = vec![0u64; o.messages as usize];
    let (mut got, want) = (0, conns.len() as u64 * u64::from(o.messages));
    let mut events = Events::with_capacity(1024);
    while got < want {
        poll.poll(&mut events, Some(Duration::from_secs(10)))?;
        if events.is_empty() {
            return Err(format!("stalled after {got} of {want} frames").into());
        }
        for ev in events.iter() {
            let (sock, pending) = &mut conns[ev.token().0];
            got += read_frames(sock, pending, |m| {
                let at = Instant::now().saturating_duration_since(due(o, start, m));
                let slot = &mut last_us[m as usize];
                *slot = (*slot).max(at.as_micros() as u64);
            })?;
        }
    }
    Ok(Side {
        last_us,
        cpu_us: thread_cpu_us()?,
    })
}

/// Reads what is there, calling `seen` with each whole frame's message number.
fn read_frames(
    sock: &mut mio::net::TcpStream,
    pending: &mut Vec<u8>,
    mut seen: impl FnMut(u32),
) -> Result<u64> {
    let (mut buf, mut frames) = ([0u8; 4096], 0);
    loop {
        match sock.read(&mut buf) {
            Ok(0) => return Ok(frames), // the writer is done; a missing frame stalls the poll
            Ok(k) => pending.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(frames),
            Err(e) => return Err(e.into()),
        }
        while pending.len() >= FRAME {
            let mut m = [0u8; 4];
            m.copy_from_slice(&pending[..4]);
            seen(u32::from_le_bytes(m));
            pending.drain(..FRAME);
            frames += 1;
        }
    }
}

/// This thread's user + system CPU time, from `/proc/thread-self/stat` (clock ticks of 10 ms).
fn thread_cpu_us() -> Result<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat")?;
    let after_name = stat.rsplit_once(')').ok_or("no ')' in stat")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let tick = |i: usize| -> Result<u64> { Ok(fields.get(i).ok_or("short stat")?.parse()?) };
    Ok((tick(11)? + tick(12)?) * 10_000)
}

/// Sets this thread's nice with `renice`, so that the example needs no `unsafe`.
fn set_nice(nice: i32) -> Result<()> {
    if nice == 0 {
        return Ok(());
    }
    let tid = std::fs::read_link("/proc/thread-self")?;
    let tid = tid
        .file_name()
        .ok_or("no thread id")?
        .to_string_lossy()
        .into_owned();
    let status = std::process::Command::new("renice")
        .args(["-n", &nice.to_string(), "-p", &tid])
        .stdout(std::process::Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err("renice failed".into())
    }
}

fn report(o: Opts, written: &[Side], read: &[Side]) {
    let mut last: Vec<u64> = (0..o.messages as usize)
        .map(|m| read.iter().map(|s| s.last_us[m]).max().unwrap_or(0))
        .collect();
    last.sort_unstable();
    let pct = |q: f64| {
        let i = ((last.len() as f64 * q) as usize).min(last.len().saturating_sub(1));
        last.get(i).map_or(0.0, |us| *us as f64 / 1000.0)
    };
    let deliveries = (o.members as f64 * f64::from(o.messages)).max(1.0);
    let cpu = |sides: &[Side]| sides.iter().map(|s| s.cpu_us).sum::<u64>() as f64 / deliveries;
    println!(
        "loopback floor: {} members, {} messages at {}/s, {} writer / {} reader threads",
        o.members, o.messages, o.rate, o.writers, o.readers
    );
    println!(
        "  due → last member   p50 {:.1} p99 {:.1} max {:.1} ms",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "  cpu µs/delivery     writers {:.2}, readers {:.2}",
        cpu(written),
        cpu(read)
    );
}
