//! What a real browser does with a double-click on a signup button, seen
//! through otpsim's gating proxy: headless Chromium (WebDriver, Debian's
//! chromedriver) double-clicks the button of a plain HTML form and of a
//! form that posts with `fetch()`, against `otpsim serve --variant naive`
//! and the seed's Flask app. The proxy holds the first signup's response
//! until the second has answered, delivers the second first, then the
//! first: the seed's "responses came back in the other order". Then the
//! browser types the newest code and submits the verify form.
//!
//! What it records: how many POSTs reached the server, whether each held
//! response could still be delivered (a browser that gave up on a request
//! has closed its connection), and whose Set-Cookie the browser sent back
//! with the verify.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use otpsim_live::proxy::{self, Held, Report};
use serde_json::json;

use super::browser::Driver;
use super::{flask, scratch, serve, Served};

/// What one double-click did.
#[derive(Debug, Default, Clone)]
struct Finding {
    /// Signup POSTs that reached the server.
    signups: usize,
    /// For the first and the second signup (in arrival order): whether its
    /// response reached the browser when released.
    delivered: Vec<bool>,
    /// The `session=…` each signup's response set.
    set_cookies: Vec<String>,
    /// The Cookie header of the verify.
    verify_cookie: String,
    /// The verify's status.
    verify_status: u16,
    /// The registration left in the database after both signups (the one
    /// the server handled last) and its code.
    surviving: (String, String),
    /// The code the browser typed: the newest mail's (the mail sent last,
    /// not always by the signup handled last).
    typed: String,
    /// The proxy's log, for the README.
    log: Vec<String>,
}

impl Finding {
    /// Which signup's cookie the browser kept: 1, 2, or 0 for neither.
    fn kept(&self) -> usize {
        self.set_cookies
            .iter()
            .position(|c| !c.is_empty() && self.verify_cookie.contains(c.as_str()))
            .map_or(0, |i| i + 1)
    }

    /// The registration the kept cookie names.
    fn kept_registration(&self) -> Option<String> {
        let kept = self.set_cookies.get(self.kept().checked_sub(1)?)?;
        otpsim_live::wire::read(kept.strip_prefix("session=")?)?.temp_user_id
    }

    /// What the naive verify should answer: 404 if the kept cookie names
    /// the replaced registration, 400 if it names the surviving one but
    /// the newest mail carried the other code, 200 otherwise. Which
    /// registration survives and which mail is newest depend on the order
    /// the server's threads ran in, which nobody controls.
    fn expected_verify(&self) -> u16 {
        if self.kept_registration().as_deref() != Some(self.surviving.0.as_str()) {
            404
        } else if self.typed != self.surviving.1 {
            400
        } else {
            200
        }
    }
}

fn session_of(set_cookie: &[String]) -> String {
    set_cookie
        .iter()
        .find(|c| c.starts_with("session="))
        .and_then(|c| c.split(';').next())
        .unwrap_or_default()
        .to_string()
}

/// The proxy's policy: hold signup responses until two have answered (or
/// 3 s passed), release the second request's, wait, release the first's;
/// release everything else at once.
async fn gate(mut reports: tokio::sync::mpsc::UnboundedReceiver<Report>, finding: Arc<Mutex<Finding>>) {
    let mut held: Vec<Held> = Vec::new();
    let note = |line: String| finding.lock().unwrap().log.push(line);
    loop {
        let report = if held.len() == 1 {
            // After 3 s with one signup only: as if the channel ended.
            tokio::time::timeout(Duration::from_secs(3), reports.recv())
                .await
                .unwrap_or_default()
        } else {
            reports.recv().await
        };
        match report {
            Some(Report::Arrived(f)) => {
                note(format!(
                    "request {} {} {} reached the server, cookie: {}",
                    f.id - proxy::UNLABELLED_FROM + 1,
                    f.method,
                    f.path,
                    f.cookie.as_deref().unwrap_or("(none)")
                ));
                if f.path == "/signup" && f.method == "POST" {
                    finding.lock().unwrap().signups += 1;
                }
            }
            Some(Report::Answered(h)) if h.request.path == "/signup" && h.request.method == "POST" => {
                note(format!(
                    "request {} answered {:?}, held",
                    h.request.id - proxy::UNLABELLED_FROM + 1,
                    h.status
                ));
                held.push(h);
                if held.len() == 2 {
                    release_reversed(&mut held, &finding).await;
                }
            }
            Some(Report::Answered(h)) => {
                if h.request.path == "/verify" && h.request.method == "POST" {
                    let mut f = finding.lock().unwrap();
                    f.verify_cookie = h.request.cookie.clone().unwrap_or_default();
                    f.verify_status = *h.status.as_ref().unwrap_or(&0);
                }
                h.release.deliver().await;
            }
            None if held.len() == 1 => {
                note("only one signup answered within 3 s".to_string());
                release_reversed(&mut held, &finding).await;
            }
            None => return,
        }
    }
}

/// Releases the held signup responses latest request first: the second
/// click's answer reaches the browser before the first's, whichever the
/// server finished first.
async fn release_reversed(held: &mut Vec<Held>, finding: &Arc<Mutex<Finding>>) {
    held.sort_by_key(|h| h.request.id);
    finding.lock().unwrap().set_cookies = held.iter().map(|h| session_of(&h.set_cookie)).collect();
    let mut delivered = vec![false; held.len()];
    for (i, h) in held.drain(..).enumerate().rev() {
        let ok = h.release.deliver().await;
        delivered[i] = ok;
        finding.lock().unwrap().log.push(format!(
            "released the response of signup {}: {}",
            i + 1,
            if ok {
                "delivered"
            } else {
                "the browser had closed the connection"
            }
        ));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    finding.lock().unwrap().delivered = delivered;
}

/// Between the two clicks: a person's double-click.
const CLICK_GAP_MS: u64 = 120;

/// Installs a submit handler that posts the form with fetch(), as a
/// single-page app does, and shows the answer on the page.
const FETCH_FORM: &str = r#"
const form = document.getElementById('signup-form');
form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const answer = await fetch(form.action, {
    method: 'POST',
    body: new URLSearchParams(new FormData(form)),
    headers: {'Accept': 'application/json'},
  });
  const p = document.createElement('p');
  p.className = 'answered';
  p.textContent = String(answer.status);
  document.body.appendChild(p);
});
"#;

fn double_click(app: &mut Served, name: &str, fetch: bool) -> Finding {
    let profile = format!(
        "dc-{}-{}",
        name.replace(' ', "-"),
        if fetch { "fetch" } else { "plain" }
    );
    let email = if fetch { "bea@example.com" } else { "ana@example.com" };
    let (tx, reports) = tokio::sync::mpsc::unbounded_channel();
    let upstream: std::net::SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    let proxy = app.runtime.block_on(proxy::start(vec![upstream], tx, 0)).unwrap();
    let finding = Arc::new(Mutex::new(Finding::default()));
    let gate = app.runtime.spawn(gate(reports, Arc::clone(&finding)));
    let base = format!("http://{}", proxy.addr);
    let driver = Driver::start(&scratch(&profile));

    driver.go(&format!("{base}/signup"));
    driver.type_into("#email", email);
    driver.type_into("#password", "correct horse");
    if fetch {
        driver.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": FETCH_FORM, "args": []}),
        );
    }
    let button = driver.element("#submit");
    let origin = json!({ "element-6066-11e4-a52e-4f735466cecf": button });
    driver.call(
        reqwest::Method::POST,
        "/actions",
        json!({"actions": [{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"}, "actions": [
            {"type": "pointerMove", "origin": origin, "x": 0, "y": 0},
            {"type": "pointerDown", "button": 0}, {"type": "pointerUp", "button": 0},
            {"type": "pause", "duration": CLICK_GAP_MS},
            {"type": "pointerDown", "button": 0}, {"type": "pointerUp", "button": 0}
        ]}]}),
    );
    // Both held responses released (or the 3 s wait over), then a moment
    // for the browser to take the last one.
    let started = std::time::Instant::now();
    while finding.lock().unwrap().delivered.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the signups never answered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));

    finding.lock().unwrap().surviving = rusqlite::Connection::open(&app.db)
        .unwrap()
        .query_row(
            "SELECT temp_id, otp FROM temp_registrations WHERE email = ?1",
            [email],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap_or_default();
    // The newest mail is the code the user has.
    let mut newest = None;
    while let Ok(Some(mail)) = app
        .runtime
        .block_on(async { tokio::time::timeout(Duration::from_millis(500), app.mail.recv()).await })
    {
        newest = Some(mail);
    }
    let mail = newest.expect("a mail");
    let code = regex::Regex::new(r"code is (\d{4,20})")
        .unwrap()
        .captures(&mail.body)
        .unwrap()[1]
        .to_string();
    finding.lock().unwrap().typed = code.clone();
    driver.go(&format!("{base}/verify"));
    driver.type_into("#email", email);
    driver.type_into("#otp", &code);
    driver.type_into("#password", "correct horse");
    driver.click("#submit");
    let started = std::time::Instant::now();
    while finding.lock().unwrap().verify_status == 0 {
        assert!(started.elapsed() < Duration::from_secs(20), "the verify never answered");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(driver);
    gate.abort();
    drop(proxy);
    let finding = finding.lock().unwrap().clone();
    eprintln!(
        "{name}, a {} form: {finding:#?}",
        if fetch { "fetch()" } else { "plain HTML" }
    );
    finding
}

#[test]
fn a_real_double_click_on_a_plain_form_and_on_a_fetch_form() {
    for (app, name) in [
        (serve("naive", "dc-serve"), "serve naive"),
        (flask(false, "dc-flask"), "Flask original"),
    ] {
        let mut app = app;
        let plain = double_click(&mut app, name, false);
        // Both clicks post; the second submission abandons the first
        // request, whose response then finds its connection closed: its
        // cookie is never set, the second click's is the one kept.
        assert_eq!(plain.signups, 2, "{name}: {plain:#?}");
        assert_eq!(plain.delivered, vec![false, true], "{name}: {plain:#?}");
        assert_eq!(plain.kept(), 2, "{name}: {plain:#?}");
        assert_eq!(plain.verify_status, plain.expected_verify(), "{name}: {plain:#?}");

        let fetched = double_click(&mut app, name, true);
        // fetch() keeps both requests: both responses are taken, in the
        // order they arrive, and the last one's cookie wins: the first
        // signup's, whose registration the second replaced when the server
        // handled them in the order they came (then the verify is the
        // seed's 404).
        assert_eq!(fetched.signups, 2, "{name}: {fetched:#?}");
        assert_eq!(fetched.delivered, vec![true, true], "{name}: {fetched:#?}");
        assert_eq!(fetched.kept(), 1, "{name}: {fetched:#?}");
        assert_eq!(fetched.verify_status, fetched.expected_verify(), "{name}: {fetched:#?}");
    }
}

#[test]
fn the_seed_fix_locks_out_a_plain_form_double_click_as_the_simulator_predicts() {
    // scenarios/browser_double_click_form.toml: the 2 s window answers the
    // second click 429 with no cookie, and the browser drops the first
    // response, the only one with a cookie: the verify finds no session.
    for (app, name) in [
        (serve("seed_fix", "dc-serve-fix"), "serve seed_fix"),
        (flask(true, "dc-flask-fix"), "Flask fix"),
    ] {
        let mut app = app;
        let plain = double_click(&mut app, name, false);
        assert_eq!(plain.signups, 2, "{name}: {plain:#?}");
        assert_eq!(plain.delivered, vec![false, true], "{name}: {plain:#?}");
        assert_eq!(plain.kept(), 0, "{name}: {plain:#?}");
        assert_eq!(plain.verify_status, 400, "{name}: {plain:#?}");
        // With fetch() the first response's cookie is kept and verifies.
        let fetched = double_click(&mut app, name, true);
        assert_eq!(fetched.kept(), 1, "{name}: {fetched:#?}");
        assert_eq!(fetched.verify_status, 200, "{name}: {fetched:#?}");
    }
}
