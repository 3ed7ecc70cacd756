//! A real browser on `otpsim serve`'s pages: headless Chromium, driven over
//! the W3C WebDriver protocol by Debian's chromedriver, fills and submits
//! the signup, verify and login forms, reads the code from the SMTP sink,
//! and takes a screenshot of each page.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use super::serve;

pub struct Driver {
    child: Child,
    url: String,
    session: String,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Never panic here (a test may be failing already): end the
        // session if there is one, then stop chromedriver.
        if !self.session.is_empty() {
            let request = self.client.delete(format!("{}/session/{}", self.url, self.session));
            let _ = self.runtime.block_on(request.send());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    pub fn start(profile: &std::path::Path) -> Driver {
        let port = otpsim_live::port::for_instance().unwrap();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("chromedriver did not start ({e}); install Chromium and chromedriver with targets/install.sh")
            });
        let mut driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        };
        let started = Instant::now();
        while driver.get_status().is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver never answered"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // The flags that keep Chromium off the network but for loopback.
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=900,700",
        ];
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let created = driver.call(
            reqwest::Method::POST,
            "/session",
            json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}}}}),
        );
        driver.session = created["sessionId"].as_str().expect("a WebDriver session").to_string();
        driver
    }

    fn get_status(&self) -> Option<Value> {
        let request = self.client.get(format!("{}/status", self.url));
        self.runtime
            .block_on(async { request.send().await.ok()?.json::<Value>().await.ok() })
    }

    /// One WebDriver command; its `value`.
    pub fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let base = if path == "/session" {
            self.url.clone()
        } else {
            format!("{}/session/{}", self.url, self.session)
        };
        let mut request = self.client.request(method, format!("{base}{path}"));
        if !body.is_null() {
            request = request.json(&body);
        }
        let answer: Value = self
            .runtime
            .block_on(async { request.send().await.unwrap().json().await.unwrap() });
        let value = answer["value"].clone();
        assert!(value.get("error").is_none(), "WebDriver {path}: {value}");
        value
    }

    pub fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url }));
    }

    pub fn element(&self, css: &str) -> String {
        let found = self.call(
            reqwest::Method::POST,
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("an element id")
            .to_string()
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        );
    }

    pub fn click(&self, css: &str) {
        let id = self.element(css);
        self.call(reqwest::Method::POST, &format!("/element/{id}/click"), json!({}));
    }

    pub fn text(&self, css: &str) -> String {
        let id = self.element(css);
        self.call(reqwest::Method::GET, &format!("/element/{id}/text"), Value::Null)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits for the page after a submit: one with a `#code`.
    pub fn result_code(&self) -> String {
        let started = Instant::now();
        loop {
            let found = self.call(
                reqwest::Method::POST,
                "/elements",
                json!({"using": "css selector", "value": "#code"}),
            );
            if found.as_array().is_some_and(|a| !a.is_empty()) {
                return self.text("#code");
            }
            assert!(started.elapsed() < Duration::from_secs(20), "no result page");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What an input holds now.
    pub fn value(&self, css: &str) -> String {
        let id = self.element(css);
        self.call(
            reqwest::Method::GET,
            &format!("/element/{id}/property/value"),
            Value::Null,
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Whether an element matches `css`.
    pub fn has(&self, css: &str) -> bool {
        let found = self.call(
            reqwest::Method::POST,
            "/elements",
            json!({"using": "css selector", "value": css}),
        );
        found.as_array().is_some_and(|a| !a.is_empty())
    }

    /// The window's size in CSS pixels.
    pub fn resize(&self, width: u32, height: u32) {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            json!({"width": width, "height": height}),
        );
    }

    /// A script's value.
    pub fn script(&self, js: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": js, "args": []}),
        )
    }

    pub fn screenshot(&self, path: &std::path::Path) -> usize {
        let data = self.call(reqwest::Method::GET, "/screenshot", Value::Null);
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap())
            .unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
        std::fs::write(path, &png).unwrap();
        png.len()
    }
}

#[test]
fn chromium_submits_the_serve_forms_and_each_page_is_screenshotted() {
    let mut served = serve("idempotent", "browser");
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("serve-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let profile = super::scratch("browser-profile");
    let driver = Driver::start(&profile);
    let base = served.base.clone();
    let mut sizes = Vec::new();
    let mut shoot = |name: &str| {
        let size = driver.screenshot(&shots.join(format!("{name}.png")));
        sizes.push((name.to_string(), size));
    };

    driver.go(&format!("{base}/signup"));
    shoot("1-signup-form");
    // Idempotent takes the password on the verify form: signup asks for
    // none.
    assert!(
        !driver.has("#password"),
        "idempotent's signup asks only for the address"
    );
    driver.type_into("#email", "ana@example.com");
    driver.click("#submit");
    assert_eq!(driver.result_code(), "ok");
    assert_eq!(driver.text("h1"), "Check your email");
    shoot("2-signup-done");

    let mail = served
        .runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), served.mail.recv()).await })
        .expect("a mail within 10 s")
        .unwrap();
    let code = regex::Regex::new(r"code is (\d{4,20})")
        .unwrap()
        .captures(&mail.body)
        .unwrap()[1]
        .to_string();

    driver.click("#next");
    shoot("3-verify-form");
    assert_eq!(driver.value("#email"), "ana@example.com", "the address comes along");
    driver.type_into("#otp", &code);
    driver.type_into("#password", "correct horse");
    driver.click("#submit");
    assert_eq!(driver.result_code(), "ok", "{}", driver.text("#message"));
    shoot("4-verify-done");

    driver.click("#next");
    shoot("5-login-form");
    assert_eq!(driver.value("#email"), "ana@example.com");
    driver.type_into("#password", "correct horse");
    driver.click("#submit");
    assert_eq!(driver.result_code(), "ok", "{}", driver.text("#message"));
    assert!(driver.text("#message").contains("Signed in as ana@example.com"));
    shoot("6-login-done");

    // At a phone's width (390 CSS pixels) the form fits: nothing to scroll
    // sideways.
    driver.resize(390, 844);
    driver.go(&format!("{base}/verify?email=ana%40example.com"));
    shoot("7-verify-form-phone");
    let overflow = driver.script("return document.documentElement.scrollWidth - window.innerWidth;");
    assert!(
        overflow.as_i64().is_some_and(|o| o <= 0),
        "wider than the screen by {overflow}"
    );

    for (name, size) in &sizes {
        // A blank 900x700 page compresses to a few hundred bytes.
        assert!(*size > 3000, "{name}: {size} bytes");
    }
    eprintln!("screenshots in {}", shots.display());
}
