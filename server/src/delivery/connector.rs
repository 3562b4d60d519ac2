//! Outbound connections behind a small trait, so that tests can point a delivery at a peer of
//! their choosing; [`DirectConnector`] is the real thing (TCP, or a Unix socket for LMTP).

use std::fmt;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use postern_store::model::{DomainName, Host, LmtpTarget};
use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream to a peer: TCP, Unix, or TLS over either.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub type BoxStream = Box<dyn Stream>;

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Tcp {
        host: Host,
        port: u16,
    },
    /// An address DNS gave for a host name, as for an MX host: the connection goes to `ip`,
    /// and a certificate is checked against `name` (RFC 7672 §3.2.2 and RFC 8461 §4.1 name
    /// the MX host, not its address, as the identity to verify).
    Resolved {
        name: DomainName,
        ip: IpAddr,
        port: u16,
    },
    Unix(PathBuf),
}

impl Target {
    /// True for a Unix socket or a loopback address: traffic that never leaves the machine.
    pub fn is_local(&self) -> bool {
        match self {
            Target::Unix(_) => true,
            Target::Tcp { host: Host::Ip(ip), .. } => ip.is_loopback(),
            Target::Tcp { host: Host::Name(name), .. } => name.as_str() == "localhost",
            Target::Resolved { ip, .. } => ip.is_loopback(),
        }
    }

    /// The host a certificate must match, when there is one.
    pub fn host(&self) -> Option<Host> {
        match self {
            Target::Tcp { host, .. } => Some(host.clone()),
            Target::Resolved { name, .. } => Some(Host::Name(name.clone())),
            Target::Unix(_) => None,
        }
    }
}

impl From<&LmtpTarget> for Target {
    fn from(target: &LmtpTarget) -> Target {
        match target {
            LmtpTarget::Tcp { host, port } => Target::Tcp { host: host.clone(), port: *port },
            LmtpTarget::Unix(path) => Target::Unix(PathBuf::from(path)),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp { host, port } => write!(f, "{host}:{port}"),
            // Postfix's spelling: mx1.example.com[192.0.2.1]:25.
            Target::Resolved { name, ip, port } => write!(f, "{name}[{ip}]:{port}"),
            Target::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

pub type ConnectFuture<'a> = Pin<Box<dyn Future<Output = io::Result<BoxStream>> + Send + 'a>>;

/// Opens a connection to a target.
pub trait Connector: Send + Sync {
    fn connect<'a>(&'a self, target: &'a Target) -> ConnectFuture<'a>;
}

/// Real TCP and Unix-socket connections, with a time limit on the connect.
#[derive(Debug, Clone)]
pub struct DirectConnector {
    pub timeout: Duration,
}

impl Default for DirectConnector {
    fn default() -> Self {
        // Postfix's smtp_connect_timeout.
        DirectConnector { timeout: Duration::from_secs(30) }
    }
}

impl Connector for DirectConnector {
    fn connect<'a>(&'a self, target: &'a Target) -> ConnectFuture<'a> {
        Box::pin(async move {
            let attempt = async {
                let stream: BoxStream = match target {
                    // A name is resolved by the system here; MX lookups, which need the DNS
                    // seam, happen before a target is chosen.
                    Target::Tcp { host: Host::Name(name), port } => {
                        Box::new(tokio::net::TcpStream::connect((name.as_str(), *port)).await?)
                    }
                    Target::Tcp { host: Host::Ip(ip), port }
                    | Target::Resolved { ip, port, .. } => {
                        Box::new(tokio::net::TcpStream::connect((*ip, *port)).await?)
                    }
                    Target::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
                };
                Ok(stream)
            };
            tokio::time::timeout(self.timeout, attempt)
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
        })
    }
}
