//! The console in a real browser: Debian's headless Chromium, driven through chromedriver with
//! fantoccini, against the real `postern serve`. An administrator signs in with the first-run
//! password, changes it, adds a domain and a mailbox, and follows two messages sent with swaks:
//! one delivered to the mailbox, one to a remote domain whose next hop is down, seen in the queue
//! and the delivery log, held and released.
//!
//! Needs the Debian packages `chromium chromium-driver swaks`; skips without them, and fails
//! without them when POSTERN_TEST_REQUIRE_PEERS=1.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Serve, Setup, applied};
use fantoccini::{Client, ClientBuilder, Locator};
use postern_store::testing::free_port;
use postern_store::testing::{TestDb, missing_peer};

const TEST: &str = "browser::an_administrator_works_through_the_console";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const NEW_PASSWORD: &str = "a much better password";
const MAILBOX_PASSWORD: &str = "correct horse battery";

/// A child process killed when the test ends, whichever way it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program} >/dev/null"))
        .status()
        .is_ok_and(|s| s.success())
}

/// chromedriver on a free loopback port, once it accepts connections.
fn chromedriver() -> (Killed, u16) {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let mut driver = Killed(child);
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = driver.0.try_wait() {
            panic!("chromedriver exited ({status}) before listening on {port}");
        }
        assert!(start.elapsed() < Duration::from_secs(15), "chromedriver does not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    (driver, port)
}

/// A headless Chromium session with a profile of its own in `profile`.
async fn browser(driver_port: u16, profile: &Path) -> Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let capabilities = serde_json::json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let serde_json::Value::Object(capabilities) = capabilities else { unreachable!() };
    ClientBuilder::rustls()
        .expect("rustls")
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("a Chromium session through chromedriver")
}

/// Runs swaks against `addr`; returns its exit success and transcript.
fn swaks(addr: SocketAddr, args: &[&str]) -> (bool, String) {
    let out = Command::new("swaks")
        .args(["--server", &addr.ip().to_string(), "--port", &addr.port().to_string()])
        .args(["--timeout", "20"])
        .args(args)
        .output()
        .expect("run swaks");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The one-time password `serve` prints on a fresh store.
fn first_run_password(serve: &Serve) -> String {
    let line = serve
        .stdout
        .iter()
        .find(|l| l.contains("one-time password"))
        .unwrap_or_else(|| panic!("serve printed no first-run password: {:?}", serve.stdout));
    let rest = line.split("one-time password").nth(1).unwrap();
    rest.split_whitespace().next().unwrap().to_string()
}

/// The console as the test drives it: a browser session and the console's address.
struct Console {
    client: Client,
    base: String,
}

impl Console {
    async fn goto(&self, path: &str) {
        self.client.goto(&format!("{}{path}", self.base)).await.unwrap();
    }

    async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_string()
    }

    async fn body(&self) -> String {
        self.client.find(Locator::Css("body")).await.unwrap().text().await.unwrap()
    }

    /// Types `value` into the input (or selects it in the select) named `name`.
    async fn fill(&self, name: &str, value: &str) {
        let field = self
            .client
            .find(Locator::Css(&format!("[name=\"{name}\"]")))
            .await
            .unwrap_or_else(|e| panic!("no field {name} on {}: {e}", self.base));
        if field.tag_name().await.unwrap() == "select" {
            field.select_by_value(value).await.unwrap();
        } else {
            field.clear().await.unwrap();
            field.send_keys(value).await.unwrap();
        }
    }

    /// Clicks the button that says `label`, and waits for the page it leads to.
    async fn press(&self, label: &str) {
        let xpath = format!("//button[normalize-space()='{label}']");
        let button = match self.client.find(Locator::XPath(&xpath)).await {
            Ok(button) => button,
            Err(e) => {
                panic!("no button {label:?} on {}: {e}\n{}", self.path().await, self.body().await)
            }
        };
        self.mark().await;
        button.click().await.unwrap();
        self.settle().await;
    }

    /// Marks the current page, so that [`Console::settle`] can tell when another replaced it.
    async fn mark(&self) {
        self.client.execute("window.posternOldPage = true", vec![]).await.unwrap();
    }

    /// Waits until a new page (one without the mark) has loaded.
    async fn settle(&self) {
        let start = Instant::now();
        loop {
            let state = self
                .client
                .execute("return window.posternOldPage ? 'old' : document.readyState", vec![])
                .await;
            if matches!(state, Ok(ref s) if s == "complete") {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "the next page did not load");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Loads `path` again and again until its text holds every one of `needles`; returns it.
    async fn wait_for(&self, path: &str, needles: &[&str]) -> String {
        let start = Instant::now();
        loop {
            self.goto(path).await;
            let body = self.body().await;
            if needles.iter().all(|n| body.contains(n)) {
                return body;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{path} never showed {needles:?}; it shows:\n{body}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// What the message page says under "Held".
    async fn held(&self) -> String {
        let xpath = "//dt[normalize-space()='Held']/following-sibling::dd[1]";
        match self.client.find(Locator::XPath(xpath)).await {
            Ok(dd) => dd.text().await.unwrap().trim().to_string(),
            Err(e) => panic!("no Held field on {}: {e}\n{}", self.path().await, self.body().await),
        }
    }

    /// The text of the table row on `path` that mentions `needle`, once there is one that also
    /// says `status`.
    async fn row_with(&self, path: &str, needle: &str, status: &str) -> String {
        let xpath = format!("//tr[contains(., '{needle}') and contains(., '{status}')]");
        let start = Instant::now();
        loop {
            self.goto(path).await;
            if let Ok(row) = self.client.find(Locator::XPath(&xpath)).await {
                return row.text().await.unwrap();
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{path} never showed a row with {needle:?} and {status:?}; it shows:\n{}",
                self.body().await
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// The page after a change says it is live, or (on a slow machine) that it is not yet: never
/// that the engine refused it.
fn said_live(body: &str) {
    if body.contains("live on the engine") {
        return;
    }
    assert!(body.contains("no engine has applied it yet"), "{body}");
    eprintln!("note: the change was not live within the page's wait; the engine log decides");
}

/// `postern queue list --json ARGS…`.
fn queue(setup: &Setup, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["queue", "list", "--json"];
    all.extend(args);
    serde_json::from_str(&setup.ok(&all)).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_administrator_works_through_the_console() {
    for (program, package) in
        [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver"), ("swaks", "swaks")]
    {
        if !have(program) {
            missing_peer(TEST, &format!("{program} is not installed (Debian package {package})"));
            return;
        }
    }
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    let serve = setup.serve();
    let password = first_run_password(&serve);
    let console = serve.listeners["console"];
    let (_driver, driver_port) = chromedriver();
    let profile = tempfile::tempdir().unwrap();
    let client = browser(driver_port, profile.path()).await;
    let c = Console { client: client.clone(), base: format!("http://{console}") };
    let result = tokio::spawn(walk_through(c, setup, serve, password)).await;
    let _ = client.close().await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn walk_through(c: Console, setup: Setup, serve: Serve, password: String) {
    // Signed out, the console sends us to the login; the one-time password leads to the
    // password change, and nowhere else until it is done.
    c.goto("/").await;
    assert_eq!(c.path().await, "/login");
    c.fill("name", "admin").await;
    c.fill("password", &password).await;
    c.press("Sign in").await;
    assert_eq!(c.path().await, "/password", "{}", c.body().await);
    c.goto("/domains").await;
    assert_eq!(c.path().await, "/password", "the console let us past the password change");
    c.fill("current", &password).await;
    c.fill("new", NEW_PASSWORD).await;
    c.fill("repeat", NEW_PASSWORD).await;
    c.press("Change password").await;
    assert_eq!(c.path().await, "/", "{}", c.body().await);
    assert!(c.body().await.contains("Password changed"), "{}", c.body().await);

    // The old password is gone, the new one works.
    c.client.delete_all_cookies().await.unwrap();
    c.goto("/login").await;
    c.fill("name", "admin").await;
    c.fill("password", &password).await;
    c.press("Sign in").await;
    assert_eq!(c.path().await, "/login");
    c.fill("name", "admin").await;
    c.fill("password", NEW_PASSWORD).await;
    c.press("Sign in").await;
    assert_eq!(c.path().await, "/", "{}", c.body().await);

    // A domain and a mailbox. The page says whether the engine has the change; it has up to
    // 1.5 s to say "live", which a loaded CI machine may miss, so the engine's log decides.
    c.goto("/domains").await;
    c.fill("name", "example.test").await;
    c.fill("kind", "local").await;
    c.press("Add domain").await;
    let body = c.body().await;
    assert!(body.contains("Domain example.test added"), "{body}");
    said_live(&body);

    c.goto("/mailboxes").await;
    c.fill("address", "ann@example.test").await;
    c.fill("password", MAILBOX_PASSWORD).await;
    c.fill("display_name", "Ann Example").await;
    c.fill("quota", "100").await;
    c.press("Add mailbox").await;
    let body = c.body().await;
    assert!(body.contains("ann@example.test"), "{body}");
    said_live(&body);
    serve
        .wait_log(Duration::from_secs(5), |l| applied(l) && l["mailboxes"] == 1)
        .expect("the engine has the mailbox");

    // remote.test goes to a next hop that is down, so its mail waits in the queue. Through the
    // CLI: the console's own transport page is tested with its resource.
    let closed = free_port();
    setup.ok(&[
        "transport",
        "set",
        "remote.test",
        &format!("smtp:[127.0.0.1]:{closed}"),
        "--tls",
        "none",
    ]);
    serve
        .wait_log(Duration::from_secs(5), |l| applied(l) && l["transports"] == 1)
        .expect("the transport is live");

    let smtp = serve.listeners["smtp"];
    let (ok, text) = swaks(
        smtp,
        &["--from", "zoe@example.test", "--to", "ann@example.test", "--header", "Subject: to ann"],
    );
    assert!(ok, "{text}");
    let (ok, text) = swaks(
        smtp,
        &["--from", "ann@example.test", "--to", "bob@remote.test", "--header", "Subject: stuck"],
    );
    assert!(ok, "{text}");
    let (line, _) = serve
        .wait_log(Duration::from_secs(15), |l| l["status"] == "deferred")
        .expect("the message to remote.test is deferred");
    let id = line["queue_id"].as_str().unwrap().to_string();

    // The delivery log has both: one delivered, one deferred.
    let row = c.row_with("/log", "ann@example.test", "delivered").await;
    assert!(row.contains("zoe@example.test"), "{row}");
    let row = c.row_with("/log", "bob@remote.test", "deferred").await;
    assert!(row.contains(&id) || row.contains("refused"), "{row}");

    // The queue lists the waiting message; its page shows the envelope and the failed attempt.
    c.wait_for("/queue", &["bob@remote.test"]).await;
    let link = c
        .client
        .find(Locator::Css(&format!("a[href=\"/queue/{id}\"]")))
        .await
        .unwrap_or_else(|e| panic!("no link to /queue/{id}: {e}"));
    c.mark().await;
    link.click().await.unwrap();
    c.settle().await;
    assert_eq!(c.path().await, format!("/queue/{id}"));
    let body = c.body().await;
    assert!(body.contains("bob@remote.test") && body.contains("ann@example.test"), "{body}");
    assert_eq!(c.held().await, "no");

    // Hold it: the page says so, and the store agrees.
    c.press("Hold").await;
    c.goto(&format!("/queue/{id}")).await;
    let held = c.held().await;
    assert!(held.starts_with("held"), "the message page says {held:?} after Hold");
    assert_eq!(queue(&setup, &["--held"])["total"], 1);

    // Release it: it waits again for its next attempt.
    c.press("Release").await;
    c.goto(&format!("/queue/{id}")).await;
    assert_eq!(c.held().await, "no", "after Release");
    assert_eq!(queue(&setup, &["--held"])["total"], 0);
    let page = queue(&setup, &[]);
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(page["messages"][0]["id"], id.as_str());

    let domain_pages = ["/domains/example.test/dkim"];
    fits_a_phone(&c, domain_pages.iter().map(ToString::to_string).chain([format!("/queue/{id}")]))
        .await;
    drop(serve);
}

/// Every section in the menu, and `more`, fit a phone's screen (390x844): nothing on them is
/// wider than the screen, so nothing needs scrolling sideways.
async fn fits_a_phone(c: &Console, more: impl Iterator<Item = String>) {
    c.client.set_window_size(390, 844).await.unwrap();
    c.goto("/").await;
    let mut paths = Vec::new();
    for link in c.client.find_all(Locator::Css("nav.side a[href^='/']")).await.unwrap() {
        if let Some(href) = link.attr("href").await.unwrap() {
            paths.push(href);
        }
    }
    assert!(paths.len() > 5, "the menu has too few sections: {paths:?}");
    paths.extend(more);
    let mut wide = Vec::new();
    for path in &paths {
        c.goto(path).await;
        let size = c
            .client
            .execute(
                "window.scrollTo(10000, 0);
                 const moved = window.scrollX;
                 window.scrollTo(0, 0);
                 return [moved, document.documentElement.clientWidth];",
                vec![],
            )
            .await
            .unwrap();
        let (moved, inner) = (size[0].as_f64().unwrap(), size[1].as_u64().unwrap());
        if moved > 0.0 {
            let culprits = c
                .client
                .execute(
                    "return [...document.querySelectorAll('body *')]
                        .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
                        .filter(e => !['THEAD','TBODY','TR','TH','TD','CAPTION'].includes(e.tagName))
                        .slice(0, 12)
                        .map(e => e.tagName + '.' + e.className + ': ' + e.textContent.trim().slice(0, 30) + ' ' + Math.round(e.getBoundingClientRect().right) + ' ' + getComputedStyle(e).position);",
                    vec![],
                )
                .await
                .unwrap();
            wide.push(format!(
                "{path}: scrolls {moved}px sideways on a {inner}px screen: {culprits}"
            ));
        }
        // No cell narrower than its longest word (words broken a letter per line), and the
        // page's own content starts on the first screen, the menu folded away.
        let layout = c
            .client
            .execute(
                "const cramped = [...document.querySelectorAll('td, th')]
                    .filter(c => c.scrollWidth > c.clientWidth + 1)
                    .map(c => c.textContent.trim().slice(0, 40));
                 const h1 = document.querySelector('main h1');
                 const title = h1 ? h1.getBoundingClientRect().top : -1;
                 return [cramped, title];",
                vec![],
            )
            .await
            .unwrap();
        if let Some(cells) = layout[0].as_array().filter(|c| !c.is_empty()) {
            wide.push(format!("{path}: cells narrower than their words: {cells:?}"));
        }
        let title = layout[1].as_f64().unwrap();
        if title < 0.0 {
            wide.push(format!("{path}: no title in <main>: {}", c.body().await));
        } else if title > 200.0 {
            wide.push(format!("{path}: the page's title starts {title}px down, under the menu"));
        }
    }
    assert!(wide.is_empty(), "pages that do not fit a phone:\n{}", wide.join("\n"));
    // The folded menu opens, and leads to every section.
    c.goto("/").await;
    c.client.find(Locator::Css("label.menu-label")).await.unwrap().click().await.unwrap();
    let link = c.client.find(Locator::Css("nav.side a[href='/queue']")).await.unwrap();
    assert!(link.is_displayed().await.unwrap(), "the menu does not open");
}
