//! The API against the real API server: the CRDs install, every example applies, and every
//! manifest under `e2e/manifests/invalid/` (each breaking exactly one schema rule) is refused
//! with a message naming the offending field and rule.

use std::path::PathBuf;

use oem_e2e::Cluster;
use oem_e2e::cluster::repo_root;

const NAMESPACE: &str = "reseller-invalid-test";
const MANAGER: &str = "e2e-invalid-manifests";

/// The tests of this file run side by side and each installs: one at a time, or both create
/// the namespace at once and one gets AlreadyExists.
static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn install_crds(cluster: &Cluster) -> anyhow::Result<()> {
    let _one = INSTALL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    oem_e2e::operator::install_crds(cluster)?;
    let namespace = cluster.kubectl_ok(
        &[
            "create",
            "namespace",
            NAMESPACE,
            "--dry-run=client",
            "-o",
            "yaml",
        ],
        None,
    )?;
    cluster.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&namespace))?;
    Ok(())
}

#[tokio::test]
async fn every_example_is_accepted_by_the_api_server() -> anyhow::Result<()> {
    let cluster = Cluster::shared().await?;
    install_crds(cluster)?;
    let mut checked = 0;
    for file in yaml_files(repo_root().join("examples"))? {
        let text = std::fs::read_to_string(&file)?;
        // Validate against the schema without needing the reseller's namespace to exist yet.
        let text = text.replace(
            "namespace: reseller-sakura-web",
            &format!("namespace: {NAMESPACE}"),
        );
        let out = cluster.kubectl(&["create", "--dry-run=server", "-f", "-"], Some(&text))?;
        assert!(
            out.status.success(),
            "{} refused: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 3, "examples checked: {checked}");
    Ok(())
}

fn yaml_files(dir: PathBuf) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    Ok(files)
}

#[tokio::test]
async fn every_invalid_manifest_is_refused_naming_its_field() -> anyhow::Result<()> {
    let cluster = Cluster::shared().await?;
    install_crds(cluster)?;
    let files = yaml_files(repo_root().join("e2e/manifests/invalid"))?;
    assert!(files.len() >= 25, "only {} invalid manifests", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)?;
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect:"))
            .map(str::trim)
            .ok_or_else(|| anyhow::anyhow!("{} has no '# expect:' line", file.display()))?;
        let update = text.lines().any(|l| l.trim() == "# mode: update");
        let refusal = if update {
            // The first document is valid and is created; the second changes it.
            let docs: Vec<&str> = text.split("\n---\n").collect();
            anyhow::ensure!(
                docs.len() == 2,
                "{}: update mode needs two documents",
                file.display()
            );
            let first = cluster.kubectl(
                &[
                    "apply",
                    "--server-side",
                    "--field-manager",
                    MANAGER,
                    "-f",
                    "-",
                ],
                Some(docs[0]),
            )?;
            anyhow::ensure!(
                first.status.success(),
                "{}: the valid first document was refused: {}",
                file.display(),
                String::from_utf8_lossy(&first.stderr)
            );
            let second = cluster.kubectl(
                &[
                    "apply",
                    "--server-side",
                    "--field-manager",
                    MANAGER,
                    "-f",
                    "-",
                ],
                Some(docs[1]),
            )?;
            let _ = cluster.kubectl(&["delete", "--wait=false", "-f", "-"], Some(docs[0]));
            second
        } else {
            cluster.kubectl(&["create", "--dry-run=server", "-f", "-"], Some(&text))?
        };
        let stderr = String::from_utf8_lossy(&refusal.stderr).into_owned();
        if refusal.status.success() {
            failures.push(format!(
                "{}: accepted, expected refusal with {expect:?}",
                file.display()
            ));
        } else if !stderr.contains(expect) {
            failures.push(format!(
                "{}: refused without {expect:?}: {stderr}",
                file.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} manifests:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    println!(
        "{} invalid manifests refused with their expected messages",
        files.len()
    );
    Ok(())
}
