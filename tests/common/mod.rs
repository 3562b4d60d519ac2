//! Running the real `postern` binary: one-shot CLI commands, and `serve` as a child process whose
//! printed addresses and JSON log lines the test can read.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use postern_store::Database;

pub mod smtp;

/// The password [`Setup::serve_with_ann`] gives ann@example.test.
pub const ANN_PASSWORD: &str = "correct horse battery";

/// A directory with a `postern.toml` for one test, and the environment that points the binary
/// at its store.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
}

impl Setup {
    /// A config with loopback listeners on free ports and JSON logs; `database` picks the store.
    pub fn new(database: &Database) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("postern.toml"),
            "hostname = \"mail.example.test\"\n\
             data_dir = \"data\"\n\
             [smtp]\n\
             listen = [\"127.0.0.1:0\"]\n\
             submission = [\"127.0.0.1:0\"]\n\
             submissions = [\"127.0.0.1:0\"]\n\
             [console]\n\
             listen = [\"127.0.0.1:0\"]\n\
             [log]\n\
             format = \"json\"\n",
        )
        .unwrap();
        let mut env = Vec::new();
        if let Database::Postgres { url } = database {
            env.push(("POSTERN_DATABASE".to_string(), url.clone()));
        }
        Setup { dir, env }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("postern.toml")
    }

    /// `postern ARGS…` with `stdin` piped in, run to completion.
    pub fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs `postern ARGS…` and returns its standard output, failing the test if it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, "");
        assert!(
            out.status.success(),
            "postern {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs `postern ARGS…`, expects it to fail, and returns its standard error.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args, "");
        assert!(!out.status.success(), "postern {args:?} should have failed");
        String::from_utf8(out.stderr).unwrap()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_postern"));
        cmd.current_dir(self.dir.path())
            .env_remove("POSTERN_CONFIG")
            .env_remove("RUST_LOG")
            .arg("--config")
            .arg(self.config())
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Starts `serve`, adds example.test and ann@example.test (password [`ANN_PASSWORD`])
    /// through the CLI, and waits until the running server has them.
    pub fn serve_with_ann(&self) -> Serve {
        let serve = self.serve();
        self.add_ann(&serve);
        serve
    }

    /// Adds example.test and ann@example.test (password [`ANN_PASSWORD`]) through the CLI, and
    /// waits until `serve`, however it was started, has them.
    pub fn add_ann(&self, serve: &Serve) {
        self.ok(&["domain", "add", "example.test"]);
        let out = self.run(&["mailbox", "add", "ann@example.test"], &format!("{ANN_PASSWORD}\n"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serve
            .wait_log(Duration::from_secs(30), |l| applied(l) && l["mailboxes"] == 1)
            .expect("the mailbox is live");
    }

    /// ann@example.test's Maildir.
    pub fn ann_maildir(&self) -> PathBuf {
        self.dir.path().join("data/mail/example.test/ann")
    }

    pub fn serve(&self) -> Serve {
        Serve::start(self.command(&["serve"]))
    }
}

/// A running `postern serve`, killed on drop.
pub struct Serve {
    pub child: Child,
    /// `smtp`, `submission`, `submissions` -> bound address.
    pub listeners: HashMap<String, SocketAddr>,
    pub stdout: Vec<String>,
    logs: mpsc::Receiver<serde_json::Value>,
}

impl Serve {
    /// Starts `cmd` (a `serve` command, perhaps with more set on it) and waits until it is ready.
    pub fn start(mut cmd: Command) -> Serve {
        let mut child =
            cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let (tx, logs) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                match serde_json::from_str(&line) {
                    Ok(value) => {
                        let _ = tx.send(value);
                    }
                    Err(_) => eprintln!("serve: {line}"),
                }
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut lines = Vec::new();
        let mut listeners = HashMap::new();
        loop {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap() == 0 {
                let status = child.wait().unwrap();
                panic!("serve exited ({status}) before it was ready; it printed {lines:?}");
            }
            let line = line.trim_end().to_string();
            let words: Vec<&str> = line.split_whitespace().collect();
            if let [name @ ("smtp" | "submission" | "submissions" | "console"), addr] =
                words.as_slice()
            {
                listeners.insert(name.to_string(), addr.parse().unwrap());
            }
            let ready = line.starts_with("ready");
            lines.push(line);
            if ready {
                break;
            }
        }
        // Keep draining stdout so that serve never blocks on a full pipe.
        std::thread::spawn(move || for _ in stdout.lines() {});
        Serve { child, listeners, stdout: lines, logs }
    }

    /// Waits up to `within` for a log line for which `pred` holds, returning it and how long it took.
    pub fn wait_log(
        &self,
        within: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<(serde_json::Value, Duration)> {
        let start = Instant::now();
        while let Some(left) = within.checked_sub(start.elapsed()) {
            match self.logs.recv_timeout(left) {
                Ok(line) if pred(&line) => return Some((line, start.elapsed())),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }

    /// The log lines written so far that no `wait_log` took.
    pub fn logs_now(&self) -> Vec<serde_json::Value> {
        self.logs.try_iter().collect()
    }

    /// Every log line not taken yet, up to the end of the process's standard error: call once
    /// the process has exited (killed or stopped).
    pub fn logs_to_exit(&self) -> Vec<serde_json::Value> {
        let mut lines = Vec::new();
        while let Ok(line) = self.logs.recv_timeout(Duration::from_secs(10)) {
            lines.push(line);
        }
        lines
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let status =
            Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < Duration::from_secs(15), "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The log line the engine writes when it applies a configuration.
pub fn applied(line: &serde_json::Value) -> bool {
    line["message"] == "configuration applied"
}

pub fn data_dir(setup: &Setup) -> &Path {
    setup.dir.path()
}
