//! A real browser for the panel tests: Debian's `chromedriver` as a process on a loopback port,
//! driving headless Chromium (Debian's `chromium`) through the W3C WebDriver protocol, spoken
//! here over reqwest: sessions, navigation, elements, keys, scripts and screenshots. Chromium
//! gets a throw-away profile; in the tests' network namespace it reaches loopback only.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::free_port;

/// The key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The W3C code points of special keys.
pub const TAB: &str = "\u{E004}";
pub const ENTER: &str = "\u{E007}";

/// A chromedriver process and one browser session.
pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    session: String,
    base: String,
    _profile: tempfile::TempDir,
}

fn find_binary(names: &[&str]) -> anyhow::Result<PathBuf> {
    for name in names {
        for dir in ["/usr/bin", "/usr/lib/chromium", "/usr/local/bin"] {
            let path = Path::new(dir).join(name);
            if path.exists() {
                return Ok(path);
            }
        }
    }
    bail!("none of {names:?} is installed: run scripts/install-deps.sh (chromium, chromium-driver)")
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a window of `width` x `height` whose
    /// preferred languages (Accept-Language) are `languages`, e.g. `ja,en`.
    pub async fn start(width: u32, height: u32, languages: &str) -> anyhow::Result<Browser> {
        let driver_binary = find_binary(&["chromedriver"])?;
        let chromium = find_binary(&["chromium"])?;
        let port = free_port()?;
        // A process group of its own, so Chromium and its helpers end with it (Drop).
        let driver = Command::new(driver_binary)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting chromedriver")?;
        let profile = tempfile::tempdir()?;
        let mut browser = Browser {
            driver,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
            session: String::new(),
            base: format!("http://127.0.0.1:{port}"),
            _profile: profile,
        };
        let status = format!("{}/status", browser.base);
        let http = browser.http.clone();
        crate::wait::until(
            "chromedriver to answer",
            Duration::from_secs(20),
            Duration::from_millis(100),
            || async {
                match http.get(&status).send().await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(r.status().to_string()),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await?;
        let args = vec![
            "--headless=new".to_owned(),
            // The tests run as root in a namespace of their own.
            "--no-sandbox".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-gpu".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-extensions".to_owned(),
            "--hide-scrollbars".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--accept-lang={languages}"),
            format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let created = browser
            .call(
                reqwest::Method::POST,
                "/session",
                Some(json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {"binary": chromium, "args": args,
                        "prefs": {"intl": {"accept_languages": languages}}}
                }}})),
            )
            .await?;
        browser.session = created["sessionId"]
            .as_str()
            .context("no sessionId in the new session")?
            .to_owned();
        Ok(browser)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method.clone(), &url);
        if let Some(body) = body {
            request = request.json(&body);
        } else if method == reqwest::Method::POST {
            request = request.json(&json!({}));
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let value: Value = response
            .json()
            .await
            .with_context(|| format!("{method} {path}: not JSON"))?;
        if !status.is_success() {
            bail!("{method} {path}: {status} {}", value["value"]);
        }
        Ok(value["value"].clone())
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::POST,
            &self.session_path("/url"),
            Some(json!({"url": url})),
        )
        .await
        .map(drop)
    }

    pub async fn current_url(&self) -> anyhow::Result<String> {
        let v = self
            .call(reqwest::Method::GET, &self.session_path("/url"), None)
            .await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    pub async fn source(&self) -> anyhow::Result<String> {
        let v = self
            .call(reqwest::Method::GET, &self.session_path("/source"), None)
            .await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// The first element matching a CSS selector.
    pub async fn find(&self, css: &str) -> anyhow::Result<String> {
        let v = self
            .call(
                reqwest::Method::POST,
                &self.session_path("/element"),
                Some(json!({"using": "css selector", "value": css})),
            )
            .await
            .with_context(|| format!("finding {css}"))?;
        v[ELEMENT]
            .as_str()
            .map(str::to_owned)
            .context("no element reference")
    }

    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        let element = self.find(css).await?;
        self.call(
            reqwest::Method::POST,
            &self.session_path(&format!("/element/{element}/click")),
            None,
        )
        .await
        .map(drop)
    }

    /// Types `text` into the element (focusing it first).
    pub async fn type_into(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let element = self.find(css).await?;
        self.call(
            reqwest::Method::POST,
            &self.session_path(&format!("/element/{element}/value")),
            Some(json!({"text": text})),
        )
        .await
        .map(drop)
    }

    /// Presses keys on whatever has the focus, as a keyboard-only user would.
    pub async fn keys(&self, text: &str) -> anyhow::Result<()> {
        let mut actions = Vec::new();
        for c in text.chars() {
            actions.push(json!({"type": "keyDown", "value": c.to_string()}));
            actions.push(json!({"type": "keyUp", "value": c.to_string()}));
        }
        self.call(
            reqwest::Method::POST,
            &self.session_path("/actions"),
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        )
        .await
        .map(drop)
    }

    /// Runs a script in the page and returns its value.
    pub async fn script(&self, script: &str) -> anyhow::Result<Value> {
        self.call(
            reqwest::Method::POST,
            &self.session_path("/execute/sync"),
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    pub async fn set_window(&self, width: u32, height: u32) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::POST,
            &self.session_path("/window/rect"),
            Some(json!({"width": width, "height": height})),
        )
        .await
        .map(drop)
    }

    /// A PNG of the whole page at `width`: the window is made as tall as the page first.
    pub async fn screenshot(&self, width: u32, path: &Path) -> anyhow::Result<()> {
        self.set_window(width, 900).await?;
        // The window's height includes what is not the page (window.outerHeight - innerHeight).
        let height = self
            .script(
                "return Math.ceil(document.documentElement.scrollHeight \
                 + window.outerHeight - window.innerHeight)",
            )
            .await?
            .as_u64()
            .unwrap_or(900)
            .clamp(400, 8000) as u32;
        self.set_window(width, height).await?;
        let v = self
            .call(
                reqwest::Method::GET,
                &self.session_path("/screenshot"),
                None,
            )
            .await?;
        let png = decode_base64(v.as_str().context("screenshot is not a string")?)?;
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session closes Chromium; killing chromedriver's process group then ends
        // whatever is left.
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = std::process::Command::new("curl")
            .args(["-s", "-m", "5", "-X", "DELETE", &url])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 (with padding), as WebDriver sends screenshots.
fn decode_base64(text: &str) -> anyhow::Result<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= value(*c).context("not base64")? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(super::decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(super::decode_base64("aGk=").unwrap(), b"hi");
        assert_eq!(super::decode_base64("YWJj").unwrap(), b"abc");
    }
}
