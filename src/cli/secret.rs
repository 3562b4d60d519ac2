//! Reading passwords: from a prompt on a terminal (asked twice, not echoed), else one line of
//! standard input. Never from the command line, where `ps` and shell history would show them.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};

pub fn read_password(what: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first =
            rpassword::prompt_password(format!("{what}: ")).context("reading the password")?;
        let second = rpassword::prompt_password(format!("{what} (again): "))
            .context("reading the password")?;
        if first != second {
            bail!("the two passwords differ; nothing was changed");
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!(
            "no password on standard input (pipe it in, e.g. `printf '%s\\n' \"$PW\" | postern …`)"
        );
    }
    Ok(password)
}
