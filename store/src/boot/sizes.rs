//! Sizes in the boot configuration: a number of bytes, or a whole number with a binary unit
//! (`"50M"` is 50 MiB), as `[smtp] max_message_size` takes them.

/// What `[smtp] max_message_size` is unless configured: 50 MiB, enough for the attachments
/// people send (most services refuse somewhere between 25 and 50 MB).
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 50 * 1024 * 1024;

/// How sizes are written, for error messages.
const SIZE_FORMAT: &str =
    "must be a number of bytes, or a whole number and a unit: K, M or G (like \"50M\")";

/// Parses `"52428800"`, `"512K"`, `"50M"`, `"1G"` (units are powers of 1024; `KB`/`KiB`, `MB`/`MiB`
/// and `GB`/`GiB` are read the same, in any case).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return Err(SIZE_FORMAT.into()),
    };
    let n: u64 = number.parse().map_err(|_| SIZE_FORMAT.to_string())?;
    n.checked_mul(scale).ok_or_else(|| "is too large".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("50M"), Ok(DEFAULT_MAX_MESSAGE_SIZE));
        assert_eq!(parse_size(" 512k "), Ok(512 * 1024));
        assert_eq!(parse_size("2 GiB"), Ok(2 << 30));
        assert_eq!(parse_size("10MB"), Ok(10 << 20));
        for bad in ["", "M", "-1", "1.5M", "5T", "ten"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_size("99999999999999999999G"), Err(SIZE_FORMAT.into()));
        assert_eq!(parse_size("9999999999999G"), Err("is too large".into()));
    }
}
