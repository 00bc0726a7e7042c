//! Client frames → commands. Every read is bounds-checked: a body too short for its command is
//! `Bad::Body`, a command outside the client whitelist `Bad::Command`; both close the
//! connection, as the original does. Nothing here can panic on input.

use super::{Header, cmd};

/// What a client frame asks for. Ids are the wire's i64 read as u64 (a negative id is out of
/// range and refused where it is used); keys below 0 count as 0.
#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    Auth {
        platform: u8,
        token: &'a [u8],
        device: &'a [u8],
    },
    Ping,
    /// Accepted, nothing to do: PONG, METADATA, client ACKs, legacy CUSTOMER 24/25.
    Ignored,
    Im {
        group: bool,
        sender: u64,
        receiver: u64,
        msgid: i32,
        content: &'a [u8],
    },
    Customer {
        sender_app: u64,
        sender: u64,
        receiver_app: u64,
        receiver: u64,
        content: &'a [u8],
    },
    Rt {
        sender: u64,
        receiver: u64,
        content: &'a [u8],
    },
    EnterRoom(u64),
    LeaveRoom(u64),
    RoomIm {
        sender: u64,
        room: u64,
        content: &'a [u8],
    },
    UnreadCount(i32),
    Sync(u64),
    SyncKey(u64),
    SyncGroup {
        group: u64,
        key: u64,
    },
    GroupSyncKey {
        group: u64,
        key: u64,
    },
}

/// Why a frame closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    /// A command a client may not send.
    Command(u8),
    /// A body the command's decoder rejects.
    Body(u8),
}

/// A cursor over a body: big-endian reads that fail instead of panicking.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4)?.try_into().ok().map(i32::from_be_bytes)
    }
    fn id(&mut self) -> Option<u64> {
        self.take(8)?
            .try_into()
            .ok()
            .map(i64::from_be_bytes)
            .map(|v| v as u64)
    }
    fn key(&mut self) -> Option<u64> {
        self.take(8)?
            .try_into()
            .ok()
            .map(i64::from_be_bytes)
            .map(|v| v.max(0) as u64)
    }
    fn rest(self) -> &'a [u8] {
        self.0
    }
}

/// Decodes one client frame by its own header version.
pub fn decode<'a>(h: &Header, body: &'a [u8]) -> Result<Command<'a>, Bad> {
    let c = h.cmd;
    let mut r = Reader(body);
    let parsed = match c {
        cmd::AUTH_TOKEN => auth(body),
        cmd::PING => body.is_empty().then_some(Command::Ping),
        cmd::PONG => body.is_empty().then_some(Command::Ignored),
        cmd::METADATA => (body.len() >= 32).then_some(Command::Ignored),
        cmd::ACK | cmd::CUSTOMER | cmd::CUSTOMER_SUPPORT => Some(Command::Ignored),
        cmd::IM | cmd::GROUP_IM => im(h, r),
        cmd::CUSTOMER_V2 => (|| {
            let (sender_app, sender) = (r.id()?, r.id()?);
            let (receiver_app, receiver) = (r.id()?, r.id()?);
            r.i32()?; // timestamp: the server's clock is used
            Some(Command::Customer {
                sender_app,
                sender,
                receiver_app,
                receiver,
                content: r.rest(),
            })
        })(),
        cmd::RT => (|| {
            let (sender, receiver) = (r.id()?, r.id()?);
            Some(Command::Rt {
                sender,
                receiver,
                content: r.rest(),
            })
        })(),
        cmd::ROOM_IM => (|| {
            let (sender, room) = (r.id()?, r.id()?);
            Some(Command::RoomIm {
                sender,
                room,
                content: r.rest(),
            })
        })(),
        cmd::ENTER_ROOM => r.id().map(Command::EnterRoom),
        cmd::LEAVE_ROOM => r.id().map(Command::LeaveRoom),
        cmd::UNREAD_COUNT => r.i32().map(Command::UnreadCount),
        cmd::SYNC => r.key().map(Command::Sync),
        cmd::SYNC_KEY => r.key().map(Command::SyncKey),
        cmd::SYNC_GROUP => (|| {
            Some(Command::SyncGroup {
                group: r.id()?,
                key: r.key()?,
            })
        })(),
        cmd::GROUP_SYNC_KEY => (|| {
            Some(Command::GroupSyncKey {
                group: r.id()?,
                key: r.key()?,
            })
        })(),
        other => return Err(Bad::Command(other)),
    };
    parsed.ok_or(Bad::Body(c))
}

/// IM / GROUP_IM: version 0 has no timestamp; every other version has one (ignored: the
/// server's clock is used).
fn im<'a>(h: &Header, mut r: Reader<'a>) -> Option<Command<'a>> {
    let (sender, receiver) = (r.id()?, r.id()?);
    if h.version != 0 {
        r.i32()?;
    }
    let msgid = r.i32()?;
    Some(Command::Im {
        group: h.cmd == cmd::GROUP_IM,
        sender,
        receiver,
        msgid,
        content: r.rest(),
    })
}

/// AUTH_TOKEN: platform u8, token_len u8, token, device_len u8, device (body ≥ 4 bytes).
fn auth(body: &[u8]) -> Option<Command<'_>> {
    if body.len() < 4 {
        return None;
    }
    let mut r = Reader(body);
    let platform = r.u8()?;
    let n = usize::from(r.u8()?);
    let token = r.take(n)?;
    let n = usize::from(r.u8()?);
    let device = r.take(n)?;
    Some(Command::Auth {
        platform,
        token,
        device,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(cmd: u8, version: u8, len: usize) -> Header {
        Header {
            len: len as i32,
            seq: 1,
            cmd,
            version,
            flag: 0,
        }
    }

    #[test]
    fn im_is_decoded_by_its_own_version() {
        let mut v1 = Vec::new();
        v1.extend_from_slice(&1i64.to_be_bytes());
        v1.extend_from_slice(&2i64.to_be_bytes());
        v1.extend_from_slice(&77i32.to_be_bytes()); // timestamp
        v1.extend_from_slice(&9i32.to_be_bytes());
        v1.extend_from_slice(b"hi");
        let got = decode(&header(cmd::IM, 1, v1.len()), &v1).unwrap();
        assert!(matches!(
            got,
            Command::Im {
                msgid: 9,
                content: b"hi",
                ..
            }
        ));
        // The same bytes as version 0: the timestamp is the msgid, the msgid part of content.
        let got = decode(&header(cmd::IM, 0, v1.len()), &v1).unwrap();
        assert!(matches!(got, Command::Im { msgid: 77, .. }));
    }

    #[test]
    fn short_bodies_and_unknown_commands_are_refused() {
        assert_eq!(
            decode(&header(cmd::SYNC, 1, 3), &[0, 0, 0]),
            Err(Bad::Body(cmd::SYNC))
        );
        assert_eq!(
            decode(&header(cmd::PING, 1, 1), &[0]),
            Err(Bad::Body(cmd::PING))
        );
        assert_eq!(decode(&header(99, 1, 0), &[]), Err(Bad::Command(99)));
        assert_eq!(
            decode(&header(cmd::AUTH_TOKEN, 1, 4), &[3, 9, 0, 0]),
            Err(Bad::Body(cmd::AUTH_TOKEN))
        );
        assert_eq!(
            decode(&header(cmd::AUTH_STATUS, 1, 4), &[0; 4]),
            Err(Bad::Command(3))
        );
    }
}
