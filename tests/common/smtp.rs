//! A plain SMTP client for the end-to-end tests: one command at a time, each reply read whole.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

pub struct Smtp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Smtp {
    /// Connects and reads the greeting, which must be a 220.
    pub fn connect(addr: impl ToSocketAddrs) -> Smtp {
        let stream = TcpStream::connect(addr).expect("connect to the SMTP listener");
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        let mut smtp = Smtp { reader, writer: stream };
        let greeting = smtp.reply();
        assert!(greeting.starts_with("220"), "greeting: {greeting}");
        smtp
    }

    /// Sends one command line; returns its reply, every line of it.
    pub fn command(&mut self, line: &str) -> String {
        self.writer.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        self.reply()
    }

    /// Sends a message's content (lines ending in CRLF) and the final dot; returns the reply.
    pub fn content(&mut self, text: &str) -> String {
        self.writer.write_all(format!("{text}.\r\n").as_bytes()).unwrap();
        self.reply()
    }

    /// Says goodbye without waiting for the answer.
    pub fn quit(mut self) {
        let _ = self.writer.write_all(b"QUIT\r\n");
    }

    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            assert!(self.reader.read_line(&mut line).unwrap() > 0, "the server closed: {all}");
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }
}

/// One message from `from` to `rcpt` with `subject` as its subject and its body. Returns the
/// reply to MAIL or RCPT if either is refused, else the reply to the end of DATA.
pub fn send(addr: impl ToSocketAddrs, from: &str, rcpt: &str, subject: &str) -> String {
    let mut smtp = Smtp::connect(addr);
    let ehlo = smtp.command("EHLO client.test");
    assert!(ehlo.starts_with("250"), "EHLO: {ehlo}");
    for command in [format!("MAIL FROM:<{from}>"), format!("RCPT TO:<{rcpt}>")] {
        let reply = smtp.command(&command);
        if !reply.starts_with('2') {
            smtp.quit();
            return reply;
        }
    }
    let data = smtp.command("DATA");
    assert!(data.starts_with("354"), "DATA: {data}");
    let last = smtp.content(&format!("Subject: {subject}\r\n\r\n{subject}\r\n"));
    smtp.quit();
    last
}
