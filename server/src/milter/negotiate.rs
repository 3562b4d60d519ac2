//! Option negotiation (`SMFIC_OPTNEG`, protocol version 6): we offer every action and protocol
//! step we implement; the milter answers the version it speaks, the actions it may take and the
//! steps it wants left out or unanswered (`SMFIP_NO*`, `SMFIP_NR_*`), and optionally the macros
//! it wants at each stage (`SMFIR_SETSYMLIST` data after the three numbers).

use super::wire::{Packet, Reader, WireError, cmd};

/// The protocol version we speak (Sendmail 8.14, Postfix 2.6 and later).
pub const VERSION: u32 = 6;
/// The oldest version we still talk to (libmilter before 8.14 answers 2).
pub const MIN_VERSION: u32 = 2;

/// Actions a milter may take (`SMFIF_*`).
pub mod act {
    pub const ADDHDRS: u32 = 0x01;
    pub const CHGBODY: u32 = 0x02;
    pub const ADDRCPT: u32 = 0x04;
    pub const DELRCPT: u32 = 0x08;
    pub const CHGHDRS: u32 = 0x10;
    pub const QUARANTINE: u32 = 0x20;
    pub const CHGFROM: u32 = 0x40;
    pub const ADDRCPT_PAR: u32 = 0x80;
    pub const SETSYMLIST: u32 = 0x100;
    /// Everything above: what we offer.
    pub const ALL: u32 = 0x1ff;
}

/// Protocol steps (`SMFIP_*`).
pub mod proto {
    pub const NOCONNECT: u32 = 0x01;
    pub const NOHELO: u32 = 0x02;
    pub const NOMAIL: u32 = 0x04;
    pub const NORCPT: u32 = 0x08;
    pub const NOBODY: u32 = 0x10;
    pub const NOHDRS: u32 = 0x20;
    pub const NOEOH: u32 = 0x40;
    pub const NR_HDR: u32 = 0x80;
    pub const NOUNKNOWN: u32 = 0x100;
    pub const NODATA: u32 = 0x200;
    pub const SKIP: u32 = 0x400;
    pub const RCPT_REJ: u32 = 0x800;
    pub const NR_CONN: u32 = 0x1000;
    pub const NR_HELO: u32 = 0x2000;
    pub const NR_MAIL: u32 = 0x4000;
    pub const NR_RCPT: u32 = 0x8000;
    pub const NR_DATA: u32 = 0x10000;
    pub const NR_UNKN: u32 = 0x20000;
    pub const NR_EOH: u32 = 0x40000;
    pub const NR_BODY: u32 = 0x80000;
    pub const HDR_LEADSPC: u32 = 0x100000;
    /// What we offer: every step may be left out or left unanswered, SKIP, leading spaces. Not
    /// RCPT_REJ (we never send refused recipients) and not the larger data sizes (we send
    /// 64 KiB chunks).
    pub const OFFERED: u32 = 0x1fffff & !RCPT_REJ;
}

/// The macro stages of `SMFIR_SETSYMLIST` (`SMFIM_*`), as the command whose macros they are.
pub fn stage_command(stage: u32) -> Option<u8> {
    Some(match stage {
        0 => cmd::CONNECT,
        1 => cmd::HELO,
        2 => cmd::MAIL,
        3 => cmd::RCPT,
        4 => cmd::DATA,
        5 => cmd::BODYEOB,
        6 => cmd::EOH,
        _ => return None,
    })
}

/// What was agreed with one milter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub version: u32,
    pub actions: u32,
    pub protocol: u32,
    /// Macros the milter asked for, per command; a command absent here gets our defaults.
    pub macros: Vec<(u8, Vec<String>)>,
}

impl Negotiated {
    /// Whether the milter asked to skip the step whose `SMFIP_NO*` bit is `flag`.
    pub fn skips(&self, flag: u32) -> bool {
        self.protocol & flag != 0
    }

    /// Whether the milter asked for the option whose bit is `flag` (`SMFIP_HDR_LEADSPC`, `SKIP`).
    pub fn wants(&self, flag: u32) -> bool {
        self.protocol & flag != 0
    }

    /// Whether the milter answers `command` (the `SMFIP_NR_*` bits say it does not). Before
    /// version 6 there were no such bits: every command but the macros is answered.
    pub fn answers(&self, command: u8) -> bool {
        let nr = match command {
            cmd::CONNECT => proto::NR_CONN,
            cmd::HELO => proto::NR_HELO,
            cmd::MAIL => proto::NR_MAIL,
            cmd::RCPT => proto::NR_RCPT,
            cmd::DATA => proto::NR_DATA,
            cmd::HEADER => proto::NR_HDR,
            cmd::EOH => proto::NR_EOH,
            cmd::BODY => proto::NR_BODY,
            cmd::MACRO | cmd::ABORT | cmd::QUIT | cmd::QUIT_NC => return false,
            _ => return true,
        };
        self.protocol & nr == 0
    }

    /// Whether the milter may take `action` (an `SMFIF_*` bit).
    pub fn may(&self, action: u32) -> bool {
        self.actions & action != 0
    }

    /// The names of the protocol bits the milter set, for the console's test.
    pub fn protocol_names(&self) -> Vec<&'static str> {
        names(self.protocol, PROTOCOL_NAMES)
    }

    pub fn action_names(&self) -> Vec<&'static str> {
        names(self.actions, ACTION_NAMES)
    }
}

const ACTION_NAMES: &[(u32, &str)] = &[
    (act::ADDHDRS, "add-header"),
    (act::CHGBODY, "replace-body"),
    (act::ADDRCPT, "add-recipient"),
    (act::DELRCPT, "delete-recipient"),
    (act::CHGHDRS, "change-header"),
    (act::QUARANTINE, "quarantine"),
    (act::CHGFROM, "change-sender"),
    (act::ADDRCPT_PAR, "add-recipient-with-args"),
    (act::SETSYMLIST, "set-macro-list"),
];

const PROTOCOL_NAMES: &[(u32, &str)] = &[
    (proto::NOCONNECT, "no-connect"),
    (proto::NOHELO, "no-helo"),
    (proto::NOMAIL, "no-mail"),
    (proto::NORCPT, "no-rcpt"),
    (proto::NOBODY, "no-body"),
    (proto::NOHDRS, "no-headers"),
    (proto::NOEOH, "no-eoh"),
    (proto::NR_HDR, "no-reply-header"),
    (proto::NOUNKNOWN, "no-unknown"),
    (proto::NODATA, "no-data"),
    (proto::SKIP, "skip"),
    (proto::RCPT_REJ, "rejected-rcpt"),
    (proto::NR_CONN, "no-reply-connect"),
    (proto::NR_HELO, "no-reply-helo"),
    (proto::NR_MAIL, "no-reply-mail"),
    (proto::NR_RCPT, "no-reply-rcpt"),
    (proto::NR_DATA, "no-reply-data"),
    (proto::NR_UNKN, "no-reply-unknown"),
    (proto::NR_EOH, "no-reply-eoh"),
    (proto::NR_BODY, "no-reply-body"),
    (proto::HDR_LEADSPC, "header-leading-space"),
];

fn names(bits: u32, table: &[(u32, &'static str)]) -> Vec<&'static str> {
    table.iter().filter(|(b, _)| bits & b != 0).map(|(_, n)| *n).collect()
}

/// Our `SMFIC_OPTNEG`.
pub fn offer() -> Packet {
    let mut data = Vec::with_capacity(12);
    data.extend_from_slice(&VERSION.to_be_bytes());
    data.extend_from_slice(&act::ALL.to_be_bytes());
    data.extend_from_slice(&proto::OFFERED.to_be_bytes());
    Packet::new(cmd::OPTNEG, data)
}

/// Reads the milter's answer to [`offer`]. A version we do not speak, or an action or step we
/// did not offer, is refused: going on would mean guessing what the milter expects.
pub fn accept(packet: &Packet) -> Result<Negotiated, WireError> {
    if packet.code != cmd::OPTNEG {
        return Err(WireError::Protocol(format!(
            "answered option negotiation with {:?}",
            packet.code as char
        )));
    }
    let mut r = Reader::new(&packet.data);
    let version = r.u32()?;
    let actions = r.u32()?;
    let protocol = r.u32()?;
    if !(MIN_VERSION..=VERSION).contains(&version) {
        return Err(WireError::Protocol(format!("speaks milter version {version}, not 2 to 6")));
    }
    if actions & !act::ALL != 0 {
        return Err(WireError::Protocol(format!("wants actions {actions:#x} we did not offer")));
    }
    if protocol & !proto::OFFERED != 0 {
        return Err(WireError::Protocol(format!(
            "wants protocol steps {protocol:#x} we did not offer"
        )));
    }
    let mut macros = Vec::new();
    while !r.is_empty() {
        let stage = r.u32()?;
        let list = String::from_utf8_lossy(r.str()?).into_owned();
        if let Some(command) = stage_command(stage) {
            let names = list.split_ascii_whitespace().map(String::from).collect();
            macros.push((command, names));
        }
    }
    Ok(Negotiated { version, actions, protocol, macros })
}

#[cfg(test)]
mod tests {
    use super::super::wire::rsp;
    use super::*;

    fn answer(version: u32, actions: u32, protocol: u32, extra: &[u8]) -> Packet {
        let mut d = Vec::new();
        for n in [version, actions, protocol] {
            d.extend_from_slice(&n.to_be_bytes());
        }
        d.extend_from_slice(extra);
        Packet::new(cmd::OPTNEG, d)
    }

    #[test]
    fn offer_is_version_6_with_everything() {
        let p = offer();
        assert_eq!(p.encode()[..5], [0, 0, 0, 13, b'O']);
        assert_eq!(&p.data[..4], &6u32.to_be_bytes());
        assert_eq!(&p.data[4..8], &0x1ffu32.to_be_bytes());
        assert_eq!(u32::from_be_bytes(p.data[8..12].try_into().unwrap()) & proto::RCPT_REJ, 0);
    }

    #[test]
    fn answers_are_read_and_checked() {
        let n = accept(&answer(
            6,
            act::ADDHDRS | act::QUARANTINE,
            proto::NOHELO | proto::NR_CONN | proto::NR_HDR,
            b"\0\0\0\x02{mail_addr} i\0\0\0\0\x05j\0",
        ))
        .unwrap();
        assert!(n.skips(proto::NOHELO) && !n.skips(proto::NOMAIL));
        assert!(!n.answers(cmd::CONNECT) && !n.answers(cmd::HEADER) && n.answers(cmd::MAIL));
        assert!(n.answers(cmd::BODYEOB) && !n.answers(cmd::MACRO));
        assert!(n.may(act::QUARANTINE) && !n.may(act::CHGBODY));
        assert_eq!(
            n.macros,
            vec![
                (cmd::MAIL, vec!["{mail_addr}".into(), "i".into()]),
                (cmd::BODYEOB, vec!["j".into()])
            ]
        );
        assert_eq!(n.action_names(), ["add-header", "quarantine"]);
        assert_eq!(n.protocol_names(), ["no-helo", "no-reply-header", "no-reply-connect"]);

        assert!(accept(&answer(2, act::ADDHDRS, 0, b"")).is_ok());
        for bad in [
            answer(7, 0, 0, b""),
            answer(1, 0, 0, b""),
            answer(6, 0x200, 0, b""),
            answer(6, 0, proto::RCPT_REJ, b""),
            answer(6, 0, 0, b"\0\0"),
            Packet::new(rsp::CONTINUE, vec![]),
            Packet::new(cmd::OPTNEG, vec![0, 0, 0, 6]),
        ] {
            assert!(accept(&bad).is_err(), "{bad:?}");
        }
    }
}
