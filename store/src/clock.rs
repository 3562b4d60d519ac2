//! The wall clock as everything stored keeps time: whole seconds since the Unix epoch, UTC. One
//! function for the whole appliance, so that every timestamp is read the same way.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch; 0 on a clock set before 1970.
pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
