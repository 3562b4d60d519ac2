//! One connection to one milter: connect (TCP or a Unix socket) and negotiate within the
//! connect timeout, then send commands with their macros and read the answers, within the
//! command timeout (the end-of-message timeout at the end), skipping the reads the milter
//! negotiated away (`SMFIP_NR_*`) and waiting again on `SMFIR_PROGRESS`.

use std::time::Duration;

use postern_store::model::{MilterAddress, MilterTimeouts};
use tokio::io::AsyncWriteExt;
use tokio::io::{AsyncRead, AsyncWrite, BufReader, BufWriter};

use super::negotiate::{self, Negotiated};
use super::response::{Modification, Response};
use super::wire::{self, Packet, WireError, cmd};

trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Stream for T {}

/// The largest body a milter may put in place of the message's (`SMFIR_REPLBODY`, in pieces
/// of up to a packet each). A replacement is held in memory, as the message it replaces is
/// (within `smtp::spooled::WHOLE_BUDGET`); a larger one defers the message with `451` and a log
/// line rather than writing it to the spool. Replacing a body is rare (a disclaimer, a
/// defanged copy) and these are far smaller.
pub const MAX_REPLACED_BODY: usize = 16 << 20;

/// Why a milter could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MilterError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Wire(#[from] WireError),
    #[error("answered {0:?} where it may not")]
    Unexpected(Response),
}

pub struct Client {
    conn: BufWriter<BufReader<Box<dyn Stream>>>,
    pub negotiated: Negotiated,
    timeouts: MilterTimeouts,
}

impl Client {
    /// Connects and negotiates, both within the connect timeout.
    pub async fn connect(
        address: &MilterAddress,
        timeouts: MilterTimeouts,
    ) -> Result<Client, MilterError> {
        let limit = timeouts.connect();
        tokio::time::timeout(limit, async {
            let stream: Box<dyn Stream> = match address {
                MilterAddress::Inet { host, port } => {
                    let s = tokio::net::TcpStream::connect((host.as_str(), *port))
                        .await
                        .map_err(MilterError::Connect)?;
                    let _ = s.set_nodelay(true);
                    Box::new(s)
                }
                MilterAddress::Unix(path) => Box::new(
                    tokio::net::UnixStream::connect(path).await.map_err(MilterError::Connect)?,
                ),
            };
            let mut conn = BufWriter::new(BufReader::new(stream));
            wire::write(&mut conn, &negotiate::offer()).await.map_err(WireError::Io)?;
            conn.flush().await.map_err(WireError::Io)?;
            let answer = wire::read(&mut conn).await?;
            let negotiated = negotiate::accept(&answer)?;
            Ok(Client { conn, negotiated, timeouts })
        })
        .await
        .map_err(|_| MilterError::Timeout(limit))?
    }

    /// Sends `packet` (after the macros for it) and, if the milter answers that command, reads
    /// the answer; `None` when it does not answer (`SMFIP_NR_*`).
    pub async fn ask(
        &mut self,
        macros: Option<Packet>,
        packet: Packet,
    ) -> Result<Option<Response>, MilterError> {
        let answers = self.negotiated.answers(packet.code);
        let limit = self.timeouts.command();
        let conn = &mut self.conn;
        tokio::time::timeout(limit, async {
            if let Some(m) = &macros {
                wire::write(conn, m).await.map_err(WireError::Io)?;
            }
            wire::write(conn, &packet).await.map_err(WireError::Io)?;
            conn.flush().await.map_err(WireError::Io)?;
            Ok::<_, MilterError>(())
        })
        .await
        .map_err(|_| MilterError::Timeout(limit))??;
        if !answers {
            return Ok(None);
        }
        loop {
            let response = self.read(limit).await?;
            match response {
                Response::Progress => continue,
                Response::Modify(_) => return Err(MilterError::Unexpected(response)),
                other => return Ok(Some(other)),
            }
        }
    }

    /// The end of the message: the modifications the milter asks for, then its verdict. Each
    /// `SMFIR_PROGRESS` starts the end-of-message timeout again.
    pub async fn end_of_message(
        &mut self,
        macros: Option<Packet>,
    ) -> Result<(Vec<Modification>, Response), MilterError> {
        let limit = self.timeouts.command();
        let conn = &mut self.conn;
        tokio::time::timeout(limit, async {
            if let Some(m) = &macros {
                wire::write(conn, m).await.map_err(WireError::Io)?;
            }
            wire::write(conn, &Packet::new(cmd::BODYEOB, Vec::new()))
                .await
                .map_err(WireError::Io)?;
            conn.flush().await.map_err(WireError::Io)
        })
        .await
        .map_err(|_| MilterError::Timeout(limit))??;
        let mut changes = Vec::new();
        let mut replaced = 0;
        loop {
            match self.read(self.timeouts.eom()).await? {
                Response::Progress => continue,
                Response::Modify(m) => {
                    if !self.negotiated.may(m.action()) {
                        return Err(MilterError::Unexpected(Response::Modify(m)));
                    }
                    if let Modification::ReplaceBody(piece) = &m {
                        replaced += piece.len();
                        if replaced > MAX_REPLACED_BODY {
                            // Held in memory beside the message until it is queued: past
                            // this, deferred rather than grown without bound. The milter's
                            // other answers are not read; the connection is not reused.
                            tracing::warn!(
                                limit = MAX_REPLACED_BODY,
                                "a milter replaced the body with more than the limit; a replacement is held in memory, so the message is deferred (451)"
                            );
                            return Ok((Vec::new(), Response::Tempfail));
                        }
                    }
                    changes.push(m);
                }
                Response::Skip => return Err(MilterError::Unexpected(Response::Skip)),
                verdict => return Ok((changes, verdict)),
            }
        }
    }

    /// Sends a command that has no answer (`SMFIC_ABORT`, `SMFIC_QUIT`), best effort.
    pub async fn tell(&mut self, code: u8) {
        let limit = self.timeouts.command();
        let conn = &mut self.conn;
        let _ = tokio::time::timeout(limit, async {
            wire::write(conn, &Packet::new(code, Vec::new())).await?;
            conn.flush().await
        })
        .await;
    }

    async fn read(&mut self, limit: Duration) -> Result<Response, MilterError> {
        let packet = tokio::time::timeout(limit, wire::read(&mut self.conn))
            .await
            .map_err(|_| MilterError::Timeout(limit))??;
        Ok(Response::decode(&packet)?)
    }
}
