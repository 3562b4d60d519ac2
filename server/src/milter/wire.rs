//! The milter wire format (Sendmail's libmilter, `include/libmilter/mfdef.h`; Postfix's
//! `milter8.c`): every packet is a 4-byte big-endian length, then a command byte, then
//! `length - 1` bytes of data. Strings are NUL-terminated; numbers are 32-bit big-endian.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Commands from the MTA (`SMFIC_*`).
pub mod cmd {
    pub const ABORT: u8 = b'A';
    pub const BODY: u8 = b'B';
    pub const CONNECT: u8 = b'C';
    pub const MACRO: u8 = b'D';
    pub const BODYEOB: u8 = b'E';
    pub const HELO: u8 = b'H';
    pub const QUIT_NC: u8 = b'K';
    pub const HEADER: u8 = b'L';
    pub const MAIL: u8 = b'M';
    pub const EOH: u8 = b'N';
    pub const OPTNEG: u8 = b'O';
    pub const QUIT: u8 = b'Q';
    pub const RCPT: u8 = b'R';
    pub const DATA: u8 = b'T';
}

/// Replies and modifications from the milter (`SMFIR_*`).
pub mod rsp {
    pub const ADDRCPT: u8 = b'+';
    pub const DELRCPT: u8 = b'-';
    pub const ADDRCPT_PAR: u8 = b'2';
    pub const SHUTDOWN: u8 = b'4';
    pub const ACCEPT: u8 = b'a';
    pub const REPLBODY: u8 = b'b';
    pub const CONTINUE: u8 = b'c';
    pub const DISCARD: u8 = b'd';
    pub const CHGFROM: u8 = b'e';
    pub const CONN_FAIL: u8 = b'f';
    pub const ADDHEADER: u8 = b'h';
    pub const INSHEADER: u8 = b'i';
    pub const CHGHEADER: u8 = b'm';
    pub const PROGRESS: u8 = b'p';
    pub const QUARANTINE: u8 = b'q';
    pub const REJECT: u8 = b'r';
    pub const SKIP: u8 = b's';
    pub const TEMPFAIL: u8 = b't';
    pub const REPLYCODE: u8 = b'y';
}

/// Largest body chunk in one `SMFIC_BODY` (`MILTER_CHUNK_SIZE`).
pub const CHUNK_SIZE: usize = 65535;

/// Largest packet we accept from a milter: a replaced body arrives in chunks, so anything much
/// bigger than one chunk is a broken or hostile peer (libmilter's own limit is 256 MiB; Postfix
/// refuses beyond 1 MiB data with its default settings).
pub const MAX_PACKET: usize = 1 << 20;

/// One packet: the command or reply byte and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub code: u8,
    pub data: Vec<u8>,
}

/// What went wrong on the wire.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("milter sent a packet of {0} bytes")]
    TooBig(usize),
    #[error("milter sent an empty packet")]
    Empty,
    #[error("milter broke the protocol: {0}")]
    Protocol(String),
}

impl Packet {
    pub fn new(code: u8, data: Vec<u8>) -> Packet {
        Packet { code, data }
    }

    /// The packet as it goes on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + self.data.len());
        out.extend_from_slice(&(self.data.len() as u32 + 1).to_be_bytes());
        out.push(self.code);
        out.extend_from_slice(&self.data);
        out
    }
}

pub async fn write<W: AsyncWrite + Unpin>(w: &mut W, packet: &Packet) -> std::io::Result<()> {
    w.write_all(&packet.encode()).await
}

pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<Packet, WireError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 {
        return Err(WireError::Empty);
    }
    if len > MAX_PACKET {
        return Err(WireError::TooBig(len));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    let code = buf[0];
    buf.remove(0);
    Ok(Packet { code, data: buf })
}

/// Appends `s` and its terminating NUL; a NUL inside `s` would cut the string short on the
/// other side, so it becomes a space.
pub fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend(s.iter().map(|&b| if b == 0 { b' ' } else { b }));
    out.push(0);
}

/// Reads a data area as NUL-terminated strings.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data }
    }

    pub fn u32(&mut self) -> Result<u32, WireError> {
        if self.data.len() < 4 {
            return Err(WireError::Protocol("a number is cut short".into()));
        }
        let (n, rest) = self.data.split_at(4);
        self.data = rest;
        Ok(u32::from_be_bytes(n.try_into().expect("4 bytes")))
    }

    /// The next NUL-terminated string; a missing final NUL is forgiven (some milters omit it
    /// on their last string).
    pub fn str(&mut self) -> Result<&'a [u8], WireError> {
        if self.data.is_empty() {
            return Err(WireError::Protocol("a string is missing".into()));
        }
        match self.data.iter().position(|&b| b == 0) {
            Some(end) => {
                let s = &self.data[..end];
                self.data = &self.data[end + 1..];
                Ok(s)
            }
            None => Ok(std::mem::take(&mut self.data)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn packets_round_trip_and_limits_hold() {
        let p = Packet::new(cmd::HELO, b"mx.example\0".to_vec());
        assert_eq!(p.encode(), b"\0\0\0\x0cHmx.example\0");
        let mut wire = &p.encode()[..];
        assert_eq!(read(&mut wire).await.unwrap(), p);
        let mut empty: &[u8] = b"\0\0\0\0";
        assert!(matches!(read(&mut empty).await, Err(WireError::Empty)));
        let mut big: &[u8] = b"\x7f\0\0\0c";
        assert!(matches!(read(&mut big).await, Err(WireError::TooBig(_))));
        let mut short: &[u8] = b"\0\0\0\x05cab";
        assert!(matches!(read(&mut short).await, Err(WireError::Io(_))));
    }

    #[test]
    fn strings_and_numbers() {
        let mut out = Vec::new();
        put_str(&mut out, b"a\0b");
        out.extend_from_slice(&7u32.to_be_bytes());
        put_str(&mut out, b"last");
        let mut r = Reader::new(&out);
        assert_eq!(r.str().unwrap(), b"a b");
        assert_eq!(r.u32().unwrap(), 7);
        assert_eq!(r.str().unwrap(), b"last");
        assert!(r.is_empty());
        assert!(r.str().is_err());
        assert!(Reader::new(b"ab").u32().is_err());
        assert_eq!(Reader::new(b"no-nul").str().unwrap(), b"no-nul");
    }
}
