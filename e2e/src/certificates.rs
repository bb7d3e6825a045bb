//! Certificates the local ACME server issued (`e2e/cluster/certificates.sh`), as clients see
//! them: what the hosting namespace's `tls` Secret holds, and whether a TLS service presents a
//! certificate for its name that verifies against pebble's root (openssl).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, ensure};
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;

use crate::real_hosting::secret_value;
use crate::wait;

/// The longest wait for a certificate: an HTTP-01 issuance and a renewal of the pods.
const LIMIT: Duration = Duration::from_secs(180);

/// What `openssl x509` says of a PEM certificate: its names, issuer and end.
#[derive(Debug)]
pub struct Issued {
    pub names: Vec<String>,
    pub issuer: String,
    pub not_after: String,
}

pub fn openssl(args: &[&str], input: &str) -> anyhow::Result<String> {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running openssl")?;
    child
        .stdin
        .take()
        .context("openssl's stdin")?
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "openssl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn inspect(pem: &str) -> anyhow::Result<Issued> {
    let text = openssl(
        &[
            "x509",
            "-noout",
            "-issuer",
            "-enddate",
            "-ext",
            "subjectAltName",
        ],
        pem,
    )?;
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::to_owned)
            .unwrap_or_default()
    };
    let names = text
        .split([',', '\n'])
        .filter_map(|part| part.trim().strip_prefix("DNS:"))
        .map(str::to_owned)
        .collect();
    Ok(Issued {
        names,
        issuer: field("issuer="),
        not_after: field("notAfter="),
    })
}

/// Waits until the hosting namespace's `tls` Secret holds a certificate from pebble for
/// exactly `names`.
pub async fn issued_for(client: &Client, ns: &str, names: &[&str]) -> anyhow::Result<Issued> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut want: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    want.sort();
    wait::until(
        &format!("a certificate from pebble for {want:?} in {ns}/tls"),
        LIMIT,
        Duration::from_secs(2),
        || {
            let secrets = secrets.clone();
            let want = want.clone();
            async move {
                let secret = secrets
                    .get_opt("tls")
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("no tls Secret yet")?;
                let pem = secret_value(&secret, "tls.crt").map_err(|e| format!("{e:#}"))?;
                let mut issued = inspect(&pem).map_err(|e| format!("{e:#}"))?;
                issued.names.sort();
                if issued.issuer.contains("Pebble") && issued.names == want {
                    Ok(issued)
                } else {
                    Err(format!("the Secret holds {issued:?}"))
                }
            }
        },
    )
    .await
}

/// Connects to `ip:port` (after `starttls` when set) and verifies the certificate for `name`
/// against pebble's root.
pub fn verified_tls(
    ip: &str,
    port: u16,
    starttls: Option<&str>,
    name: &str,
    root: &Path,
) -> anyhow::Result<()> {
    let connect = format!("{ip}:{port}");
    let root = root.to_string_lossy();
    let mut args = vec![
        "s_client",
        "-connect",
        &connect,
        "-servername",
        name,
        "-verify_hostname",
        name,
        "-CAfile",
        &root,
        "-verify_return_error",
        "-brief",
    ];
    if let Some(protocol) = starttls {
        args.extend(["-starttls", protocol]);
    }
    openssl(&args, "").map(|_| ())
}
