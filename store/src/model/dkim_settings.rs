//! A domain's DKIM settings beyond its keys: automatic rotation every N days, and whether mail
//! relayed for others (neither submitted by our users nor relayed from a trusted network) is
//! signed when its `From:` is the domain. A domain without settings has the defaults: no
//! automatic rotation, relayed mail unsigned.

use serde::Serialize;

/// The shortest automatic rotation: a replaced key's record stays published for the 7-day
/// grace period (`RETIRE_GRACE_SECS`), so rotating faster would pile up records to keep.
pub const MIN_ROTATE_DAYS: u32 = 7;
/// Ten years: longer is the same as never.
pub const MAX_ROTATE_DAYS: u32 = 3650;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DkimSettings {
    /// Generate the next key (pending, same algorithm and size) once the active one has signed
    /// this many days; `None`: only when an administrator rotates.
    pub rotate_days: Option<u32>,
    /// Sign mail relayed for others whose `From:` is this domain (a gateway whose senders are
    /// neither our users nor a trusted network).
    pub sign_relayed: bool,
}

/// Checks a rotation period in days.
pub fn check_rotate_days(days: u32) -> Result<u32, String> {
    if (MIN_ROTATE_DAYS..=MAX_ROTATE_DAYS).contains(&days) {
        Ok(days)
    } else {
        Err(format!(
            "rotate every {MIN_ROTATE_DAYS} to {MAX_ROTATE_DAYS} days ({days} given): a replaced \
             key's record stays published for 7 days"
        ))
    }
}

/// Reads `90d`, `90` or `off` (also `never`, `none`, `0`): a rotation period, `None` for none.
pub fn parse_rotate_every(text: &str) -> Result<Option<u32>, String> {
    let text = text.trim().to_ascii_lowercase();
    if matches!(text.as_str(), "off" | "never" | "none" | "0" | "0d" | "") {
        return Ok(None);
    }
    let digits = text.strip_suffix('d').unwrap_or(&text);
    let days: u32 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a number of days like 90d, nor off"))?;
    check_rotate_days(days).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_periods_are_read_and_checked() {
        assert_eq!(parse_rotate_every("90d"), Ok(Some(90)));
        assert_eq!(parse_rotate_every(" 30 "), Ok(Some(30)));
        assert_eq!(parse_rotate_every("off"), Ok(None));
        assert_eq!(parse_rotate_every("0"), Ok(None));
        assert!(parse_rotate_every("3d").unwrap_err().contains("7 to 3650"));
        assert!(parse_rotate_every("9999").is_err());
        assert!(parse_rotate_every("ninety").unwrap_err().contains("number of days"));
    }
}
