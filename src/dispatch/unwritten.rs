//! What a connection's socket has not taken yet, kept until it can: the tail of the thread's
//! scratch buffer (copied: a few hundred KiB at most), or the parts of a large frame by
//! reference (`Drained::Large`), so a big frame queued on many slow connections is never
//! copied once per connection.

use std::collections::VecDeque;
use std::io::{self, IoSlice};

use bytes::{Buf, Bytes};
use tokio::net::TcpStream;

/// Parts handed to one vectored write at most.
const SLICES: usize = 8;

#[derive(Default)]
pub struct Unwritten {
    parts: VecDeque<Bytes>,
}

impl Unwritten {
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Keeps a copy of what the socket did not take from the scratch buffer.
    pub fn keep_copy(&mut self, rest: &[u8]) {
        if !rest.is_empty() {
            self.parts.push_back(Bytes::copy_from_slice(rest));
        }
    }

    /// Writes a large frame's parts, keeping (by reference) what the socket does not take.
    pub fn write_shared(&mut self, io: &TcpStream, parts: Vec<Bytes>) -> io::Result<bool> {
        self.parts
            .extend(parts.into_iter().filter(|p| !p.is_empty()));
        self.write(io)
    }

    /// Writes as much as the socket takes now; whether any byte went.
    pub fn write(&mut self, io: &TcpStream) -> io::Result<bool> {
        let mut progress = false;
        while !self.parts.is_empty() {
            let mut slices = [IoSlice::new(&[]); SLICES];
            let n = self.parts.len().min(SLICES);
            for (slot, part) in slices.iter_mut().zip(&self.parts) {
                *slot = IoSlice::new(part);
            }
            match io.try_write_vectored(&slices[..n]) {
                Ok(0) => break,
                Ok(n) => {
                    self.advance(n);
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(progress)
    }

    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.parts.front_mut() else {
                return;
            };
            if front.len() <= n {
                n -= front.len();
                self.parts.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }
}
