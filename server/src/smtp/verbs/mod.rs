//! One file per SMTP verb, each an `impl Session` block.

pub(super) mod auth;
mod bdat;
mod bdat_args;
pub(super) mod checks;
pub(super) mod data;
mod ehlo;
mod mail;
mod rcpt;
mod starttls;
