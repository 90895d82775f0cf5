//! Headless Chromium driven over the DevTools protocol, without any dependency: Chromium is
//! started with `--remote-debugging-pipe`, which reads commands from file descriptor 3 and
//! writes answers and events to descriptor 4, each a JSON text ended by a NUL byte. A shell
//! `exec` maps our pipes onto those descriptors (no unsafe code needed to set them up).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::TempDir;

/// Where Chromium is: `GRIDWATCH_CHROMIUM`, else Debian's `chromium` (or `chromium-browser`).
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("GRIDWATCH_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    ["chromium", "chromium-browser"]
        .iter()
        .flat_map(|name| {
            std::env::split_paths(&path)
                .chain([PathBuf::from("/usr/bin")])
                .map(move |dir| dir.join(name))
        })
        .find(|candidate| candidate.is_file())
}

/// One headless Chromium with one page, ended when dropped.
pub struct Browser {
    child: Child,
    commands: ChildStdin,
    answers: ChildStdout,
    buffer: Vec<u8>,
    next_id: u64,
    session: String,
    /// Every event received (console messages, exceptions...), in order.
    pub events: Vec<Value>,
    profile: TempDir,
}

impl Browser {
    /// Starts Chromium headless with a fresh profile and opens a page of `width` x `height`.
    pub async fn launch(chromium: &Path, width: u32, height: u32) -> Browser {
        let profile = TempDir::new("chromium");
        let log = std::fs::File::create(profile.path().join("chromium.log")).expect("log file");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("exec \"$0\" \"$@\" 3<&0 4>&1 0</dev/null 1>&2")
            .arg(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--disable-extensions",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-pipe",
                &format!(
                    "--user-data-dir={}",
                    profile.path().join("profile").display()
                ),
                &format!("--window-size={width},{height}"),
                "about:blank",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("chromium starts");
        let commands = child.stdin.take().expect("stdin");
        let answers = child.stdout.take().expect("stdout");
        let mut browser = Browser {
            child,
            commands,
            answers,
            buffer: Vec::new(),
            next_id: 0,
            session: String::new(),
            events: Vec::new(),
            profile,
        };
        let target = browser
            .call(None, "Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let target_id = target["targetId"].as_str().expect("a target").to_owned();
        let attached = browser
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
            )
            .await;
        browser.session = attached["sessionId"]
            .as_str()
            .expect("a session")
            .to_owned();
        for method in ["Page.enable", "Runtime.enable", "Log.enable"] {
            browser.send(method, json!({})).await;
        }
        browser
            .send(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
            )
            .await;
        browser
    }

    /// Chromium's own log (stderr), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.profile.path().join("chromium.log")).unwrap_or_default()
    }

    async fn read_message(&mut self) -> Value {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == 0) {
                let message: Vec<u8> = self.buffer.drain(..=end).collect();
                return serde_json::from_slice(&message[..end]).expect("DevTools speaks JSON");
            }
            let mut chunk = vec![0u8; 64 * 1024];
            let n = self
                .answers
                .read(&mut chunk)
                .await
                .expect("read from chromium");
            assert!(n > 0, "chromium closed its pipe:\n{}", self.log());
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }

    async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).expect("json");
        bytes.push(0);
        self.commands
            .write_all(&bytes)
            .await
            .expect("write to chromium");
        loop {
            let answer = self.read_message().await;
            if answer["id"] == json!(id) {
                if let Some(error) = answer.get("error") {
                    panic!("{method} failed: {error}");
                }
                return answer["result"].clone();
            }
            if answer.get("method").is_some() {
                self.events.push(answer);
            }
        }
    }

    /// A command to the page.
    pub async fn send(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.call(Some(&session), method, params).await
    }

    /// Runs `expression` before any script of every document the page loads.
    pub async fn on_new_document(&mut self, expression: &str) {
        self.send(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({"source": expression}),
        )
        .await;
    }

    /// Loads `url` and waits until the document is complete.
    pub async fn navigate(&mut self, url: &str) {
        self.send("Page.navigate", json!({"url": url})).await;
        self.wait_for("document.readyState === 'complete'", "the page to load")
            .await;
    }

    /// The value of `expression` in the page (promises awaited); panics on an exception.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .send(
                "Runtime.evaluate",
                json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
            )
            .await;
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("{expression} threw: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Polls `condition` (a JavaScript expression) until it is true, for 20 s at most.
    pub async fn wait_for(&mut self, condition: &str, what: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if self.eval(&format!("Boolean({condition})")).await == json!(true) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let body = self
                    .eval("document.body ? document.body.innerText : ''")
                    .await;
                panic!("timed out waiting for {what} ({condition}); the page says:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn center(&mut self, selector: &str) -> (f64, f64) {
        let rect = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({selector:?}); if (!e) return null;
                   e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect();
                   return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
            ))
            .await;
        let x = rect[0].as_f64();
        let y = rect[1].as_f64();
        match (x, y) {
            (Some(x), Some(y)) => (x, y),
            _ => panic!("no element {selector} to click"),
        }
    }

    /// Clicks the middle of the element `selector` with the mouse, as a user does.
    pub async fn click(&mut self, selector: &str) {
        let (x, y) = self.center(selector).await;
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.send(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )
            .await;
        }
    }

    /// Focuses `selector` and types `text` into it.
    pub async fn type_into(&mut self, selector: &str, text: &str) {
        self.click(selector).await;
        self.send("Input.insertText", json!({"text": text})).await;
    }

    /// Saves a PNG of the whole page (not only the window) to `path`.
    pub async fn screenshot(&mut self, path: &Path, width: u32) {
        use base64::Engine;
        let height = self
            .eval("Math.ceil(document.documentElement.scrollHeight)")
            .await
            .as_u64()
            .unwrap_or(1000)
            .clamp(200, 6000);
        self.send(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
        let shot = self
            .send("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("image data"))
            .expect("base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot directory");
        }
        std::fs::write(path, png).expect("screenshot written");
    }

    /// Events of `method` received so far.
    pub fn events_of(&self, method: &str) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| e["method"] == method)
            .collect()
    }

    /// Closes the browser and waits for it.
    pub async fn close(mut self) {
        self.next_id += 1;
        let mut bytes = serde_json::to_vec(&json!({"id": self.next_id, "method": "Browser.close"}))
            .expect("json");
        bytes.push(0);
        let _ = self.commands.write_all(&bytes).await;
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
