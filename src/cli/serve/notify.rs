//! systemd's readiness protocol (sd_notify(3)): one datagram of `KEY=VALUE` lines to the unix
//! socket named by `$NOTIFY_SOCKET`, which `Type=notify` units are given. A path, or `@` for
//! the abstract namespace. Without the variable (not under systemd) nothing is sent.

use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The socket systemd listens on, if any.
fn socket_address() -> Option<std::io::Result<SocketAddr>> {
    let path = std::env::var_os("NOTIFY_SOCKET")?;
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    Some(match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)
        }
        None => SocketAddr::from_pathname(&path),
    })
}

/// Sends `state` (`READY=1`, `STOPPING=1`, `STATUS=…`); a failure is logged, never fatal: the
/// service works the same, systemd only waits for it until its start timeout.
pub fn notify(state: &str) {
    let Some(address) = socket_address() else { return };
    let sent =
        address.and_then(|addr| UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &addr));
    if let Err(e) = sent {
        tracing::warn!(error = %e, state, "cannot notify systemd ($NOTIFY_SOCKET)");
    }
}

/// `RELOADING=1` with the monotonic time systemd asks to go with it (sd_notify(3)).
pub fn reloading() {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the struct passed by reference.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let usec = now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1000;
    notify(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
}
