//! The SMTP service: listeners for port 25, submission (587) and submissions (465).

mod listener;

pub use listener::{Listener, bind_all, serve};
