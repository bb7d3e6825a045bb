//! The real node runs real containers: a cluster of its own (`.cluster/real`, port base 46000,
//! `OEM_CLUSTER_REAL_NODES=1`) with containerd, runc, a CNI bridge, kubelet and kube-proxy.
//! A tiny image built here from Debian's busybox-static runs as uid 10001 with every capability
//! dropped in a namespace that enforces the `restricted` Pod Security level; it answers HTTP on
//! its pod address and through a ClusterIP Service; a file it wrote to its claim is still there
//! after the pod is recreated; and `cluster.sh down` leaves no process, mount, cgroup or link.
//!
//! Runs only inside a network and mount namespace of its own (scripts/test.sh does that);
//! whatever it needs and misses, it fails, never skips.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use k8s_openapi::api::core::v1::{
    Namespace, PersistentVolume, PersistentVolumeClaim, Pod, Service,
};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use oem_e2e::cluster::{DownOnDrop, REAL_NODE, repo_root};
use oem_e2e::{Cluster, http_get, wait};
use serde_json::json;

const IMAGE: &str = "oem.local/test/busybox:1";
/// Fixed host paths the node's programs write to; the node bind-mounts them in its private
/// mount namespace. One it had to create holds this marker, and `down` removes it unless
/// another real-node cluster (another mount namespace) still mounts it.
const HOST_PATHS: [&str; 4] = [
    "/run/containerd",
    "/var/lib/cni",
    "/var/log/containers",
    "/var/lib/kubelet",
];
const MOUNT_POINT_MARKER: &str = ".oem-real-node-mount-point";

/// Whether a host path exists, and whether it is one a real node made (marker inside).
fn host_path_state(path: &str) -> (bool, bool) {
    let path = Path::new(path);
    (path.exists(), path.join(MOUNT_POINT_MARKER).exists())
}

/// Whether `path` is a mount point in a mount namespace other than this process's.
fn mounted_in_another_namespace(path: &str) -> bool {
    let mine = std::fs::read_link("/proc/self/ns/mnt").ok();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter(|e| std::fs::read_link(e.path().join("ns/mnt")).ok() != mine)
        .any(|e| {
            std::fs::read_to_string(e.path().join("mountinfo"))
                .unwrap_or_default()
                .lines()
                .any(|l| l.split(' ').nth(4) == Some(path))
        })
}

/// An OCI archive with busybox-static's binary, every applet as a link, and nothing else.
fn busybox_image(dir: &Path) -> anyhow::Result<PathBuf> {
    let status = Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}", "busybox-static"])
        .output()
        .context("running dpkg-query")?;
    ensure!(
        String::from_utf8_lossy(&status.stdout).contains("install ok installed"),
        "Debian's busybox-static is not installed (scripts/install-deps.sh installs it)"
    );
    let list = Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .context("running /bin/busybox --list")?;
    ensure!(list.status.success(), "busybox --list failed");
    std::fs::create_dir_all(dir)?;
    let archive = dir.join("busybox.tar");
    let mut cmd = Command::new("python3");
    cmd.arg(repo_root().join("e2e/cluster/oci-image.py"))
        .args(["--name", IMAGE, "--out"])
        .arg(&archive)
        .args(["--file", "/bin/busybox:/bin/busybox:0755"])
        .args(["--dir", "/tmp:1777", "--dir", "/srv:0755"])
        .args(["--content", "/etc/passwd:web:x:10001:10001::/srv:/bin/sh\n"])
        .args([
            "--entrypoint",
            r#"["/bin/busybox","httpd","-f","-p","8080"]"#,
        ])
        .args(["--user", "10001:10001"]);
    for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        if applet != "busybox" {
            cmd.arg("--symlink").arg(format!("/bin/{applet}:busybox"));
        }
    }
    let out = cmd.output().context("running e2e/cluster/oci-image.py")?;
    ensure!(
        out.status.success(),
        "oci-image.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(archive)
}

/// The web pod: keeps the first token it is given in its claim, serves /srv/www on 8080.
fn web_pod(token: &str) -> anyhow::Result<Pod> {
    let script = r#"set -e
mkdir -p /srv/www
[ -f /srv/www/stored.txt ] || echo "$TOKEN" > /srv/www/stored.txt
echo "$TOKEN" > /srv/www/index.html
id -u > /srv/www/uid.txt
grep CapEff /proc/self/status > /srv/www/caps.txt
nslookup kubernetes.default.svc.cluster.local > /srv/www/dns.txt 2>&1 || true
exec httpd -f -p 8080 -h /srv/www"#;
    Ok(serde_json::from_value(json!({
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "nodeSelector": {"type": "real"},
            "terminationGracePeriodSeconds": 1,
            "securityContext": {
                "runAsNonRoot": true, "runAsUser": 10001, "runAsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"}
            },
            "containers": [{
                "name": "web",
                "image": IMAGE,
                "imagePullPolicy": "Never",
                "command": ["/bin/sh", "-c", script],
                "env": [{"name": "TOKEN", "value": token}],
                "ports": [{"containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/index.html", "port": 8080}, "periodSeconds": 1},
                "resources": {"limits": {"cpu": "200m", "memory": "64Mi"}},
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"]}
                },
                "volumeMounts": [{"name": "data", "mountPath": "/srv"}]
            }],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
        }
    }))?)
}

/// The IPv4 addresses a DNS server at `server` (ip:port) gives for `name` (one UDP query).
async fn resolve_a(server: &str, name: &str) -> anyhow::Result<Vec<std::net::Ipv4Addr>> {
    let mut query = vec![0x4f, 0x45, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        query.push(u8::try_from(label.len())?);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    let socket = tokio::net::UdpSocket::bind("0.0.0.0:0").await?;
    socket.send_to(&query, server).await?;
    let mut buf = [0u8; 1500];
    let n = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf))
        .await
        .context("no DNS answer within 2 s")??;
    let reply = &buf[..n];
    let at =
        |i: usize| -> anyhow::Result<u8> { reply.get(i).copied().context("truncated DNS answer") };
    ensure!(
        n >= 12 && reply[..2] == query[..2],
        "not an answer to our query"
    );
    ensure!(at(3)? & 0x0f == 0, "DNS error code {}", at(3)? & 0x0f);
    let answers = u16::from_be_bytes([at(6)?, at(7)?]);
    // Skip the question: its name (labels up to the root) and type and class.
    let mut i = 12;
    while at(i)? != 0 {
        i += 1 + usize::from(at(i)?);
    }
    i += 5;
    let mut found = Vec::new();
    for _ in 0..answers {
        if at(i)? & 0xc0 == 0xc0 {
            i += 2;
        } else {
            while at(i)? != 0 {
                i += 1 + usize::from(at(i)?);
            }
            i += 1;
        }
        let kind = u16::from_be_bytes([at(i)?, at(i + 1)?]);
        let length = usize::from(u16::from_be_bytes([at(i + 8)?, at(i + 9)?]));
        i += 10;
        if kind == 1 && length == 4 {
            found.push(std::net::Ipv4Addr::new(
                at(i)?,
                at(i + 1)?,
                at(i + 2)?,
                at(i + 3)?,
            ));
        }
        i += length;
    }
    Ok(found)
}

fn pod_ready(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Starts the web pod and waits until it is Ready; returns its address and how long it took.
async fn run_web(pods: &Api<Pod>, token: &str) -> anyhow::Result<(String, Duration)> {
    let t0 = Instant::now();
    pods.create(&PostParams::default(), &web_pod(token)?)
        .await?;
    let ip = wait::until(
        "the web pod Running and Ready on the real node",
        Duration::from_secs(120),
        Duration::from_millis(250),
        || async {
            let pod = pods.get("web").await.map_err(|e| e.to_string())?;
            let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
            let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
            match (pod_ready(&pod), node.as_deref(), ip) {
                (true, Some(REAL_NODE), Some(ip)) => Ok(ip),
                (_, node, _) => Err(format!(
                    "on {node:?}, status {:?}",
                    pod.status
                        .as_ref()
                        .map(|s| (&s.phase, &s.container_statuses))
                )),
            }
        },
    )
    .await?;
    Ok((ip, t0.elapsed()))
}

async fn services_ip(client: &kube::Client, ns: &str, name: &str) -> anyhow::Result<String> {
    Api::<Service>::namespaced(client.clone(), ns)
        .get(name)
        .await?
        .spec
        .and_then(|s| s.cluster_ip)
        .with_context(|| format!("Service {ns}/{name} has no ClusterIP"))
}

async fn get_ok(url: &str) -> anyhow::Result<String> {
    let (status, body) = http_get(url).await?;
    ensure!(status == 200, "GET {url}: status {status}, body {body}");
    Ok(body)
}

/// Processes whose command line or environment names `dir` or a path in it.
fn processes_naming(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    // This test and the processes that started it (which may name the folder in their
    // environment) are not leftovers.
    let mut ours = vec![std::process::id().to_string()];
    for _ in 0..64 {
        let Some(parent) = ours.last().and_then(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()?
                .lines()
                .find_map(|l| l.strip_prefix("PPid:"))
                .map(|p| p.trim().to_owned())
        }) else {
            break;
        };
        if parent == "0" {
            break;
        }
        ours.push(parent);
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.chars().all(|c| c.is_ascii_digit()) || ours.contains(&pid) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let text = String::from_utf8_lossy(&[cmdline.clone(), environ].concat()).into_owned();
        // The folder itself or a path in it, not a sibling that shares its prefix.
        let names_it = text.match_indices(&needle).any(|(at, _)| {
            matches!(
                text[at + needle.len()..].chars().next(),
                None | Some('/' | '\0' | ' ' | '=')
            )
        });
        if names_it {
            found.push(format!(
                "{pid}: {}",
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            ));
        }
    }
    found
}

/// Mount points at or under `dir` in this mount namespace.
fn mounts_under(dir: &Path) -> anyhow::Result<Vec<String>> {
    let needle = dir.to_string_lossy().into_owned();
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| *m == needle || m.starts_with(&format!("{needle}/")))
        .map(str::to_owned)
        .collect())
}

/// Cgroup folders with one of `names` in the first three levels below every hierarchy.
fn cgroups_named(names: &[String]) -> Vec<String> {
    fn walk(dir: &Path, depth: u32, names: &[String], found: &mut Vec<String>) {
        if depth == 0 {
            return;
        }
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if names.contains(&name) {
                found.push(path.display().to_string());
            }
            walk(&path, depth - 1, names, found);
        }
    }
    let mut found = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), 4, names, &mut found);
    found
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn real_node_runs_restricted_pods_services_and_volumes_and_down_leaves_nothing()
-> anyhow::Result<()> {
    let host_paths_before: Vec<(bool, bool)> =
        HOST_PATHS.iter().map(|p| host_path_state(p)).collect();
    let t_up = Instant::now();
    let cluster = tokio::task::spawn_blocking(Cluster::real_node)
        .await
        .context("start-up task panicked")??;
    let mut guard = DownOnDrop(Some(cluster.clone()));
    eprintln!("real-node cluster up in {:.1?}", t_up.elapsed());
    let client = cluster.client().await?;

    let image = busybox_image(&cluster.state_dir.join("test-images"))?;
    cluster.import_image(&image)?;

    // A namespace enforcing the restricted Pod Security level, as every hosting namespace does.
    let ns = oem_e2e::cluster::unique_name("real");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns, "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest"
            }}}))?,
        )
        .await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    claims
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}}}
            }))?,
        )
        .await?;
    // A privileged pod is refused there: the level is really enforced.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let refused = pods
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "root"},
                "spec": {"containers": [{"name": "c", "image": IMAGE}]}
            }))?,
        )
        .await;
    ensure!(
        refused.is_err(),
        "a pod running as root was admitted in a restricted namespace"
    );

    let (ip, first_start) = run_web(&pods, "first").await?;
    eprintln!("web pod Ready at {ip} in {first_start:.1?} (image imported, volume bound)");
    let t_http = Instant::now();
    assert_eq!(
        get_ok(&format!("http://{ip}:8080/index.html"))
            .await?
            .trim(),
        "first"
    );
    eprintln!("pod answered HTTP in {:.1?}", t_http.elapsed());
    assert_eq!(
        get_ok(&format!("http://{ip}:8080/uid.txt")).await?.trim(),
        "10001"
    );
    let caps = get_ok(&format!("http://{ip}:8080/caps.txt")).await?;
    assert_eq!(
        caps.split_whitespace().nth(1),
        Some("0000000000000000"),
        "effective capabilities: {caps}"
    );

    // Through a ClusterIP Service: kube-proxy's rules send it to the pod.
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let service = services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "web"},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
            }))?,
        )
        .await?;
    let cluster_ip = service
        .spec
        .and_then(|s| s.cluster_ip)
        .context("the Service got no ClusterIP")?;
    let t_svc = Instant::now();
    // kube-proxy has programmed the Service once its address is in the nat table.
    wait::until(
        "kube-proxy's rules for the Service",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || async {
            let rules = run("iptables-save", &["-t", "nat"]).map_err(|e| format!("{e:#}"))?;
            if rules.contains(&format!("{cluster_ip}/32")) {
                Ok(())
            } else {
                Err("no rule names the ClusterIP yet".to_owned())
            }
        },
    )
    .await?;
    let body = wait::until(
        "HTTP through the ClusterIP Service",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || async {
            get_ok(&format!("http://{cluster_ip}:80/index.html"))
                .await
                .map_err(|e| format!("{e:#}"))
        },
    )
    .await?;
    assert_eq!(body.trim(), "first");
    eprintln!(
        "Service {cluster_ip}:80 answered in {:.1?}",
        t_svc.elapsed()
    );

    // Cluster DNS: CoreDNS on the node answers for the Service's name, through kube-dns's
    // ClusterIP, and the pod resolved the API server's Service name through it.
    let dns = services_ip(&client, "kube-system", "kube-dns").await?;
    let name = format!("web.{ns}.svc.cluster.local");
    let addresses = wait::until(
        "CoreDNS to answer for the Service",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || async {
            match resolve_a(&format!("{dns}:53"), &name).await {
                Ok(a) if !a.is_empty() => Ok(a),
                Ok(_) => Err("no address yet".to_owned()),
                Err(e) => Err(format!("{e:#}")),
            }
        },
    )
    .await?;
    assert_eq!(
        addresses
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec![cluster_ip.clone()],
        "{name}"
    );
    let pod_dns = get_ok(&format!("http://{ip}:8080/dns.txt")).await?;
    let api_ip = services_ip(&client, "default", "kubernetes").await?;
    ensure!(
        pod_dns.contains(&api_ip),
        "the pod did not resolve kubernetes.default to {api_ip}: {pod_dns}"
    );

    // The claim's folder on the node holds the file, owned by the pod's uid.
    let claim = claims.get("data").await?;
    let volume_name = claim
        .spec
        .and_then(|s| s.volume_name)
        .context("the claim is not bound")?;
    let volume = Api::<PersistentVolume>::all(client.clone())
        .get(&volume_name)
        .await?;
    let host_path = volume
        .spec
        .and_then(|s| s.host_path)
        .context("the volume is not a hostPath volume")?
        .path;
    ensure!(
        host_path.starts_with(&cluster.state_dir.to_string_lossy().into_owned()),
        "volume folder {host_path} is outside the cluster folder"
    );
    let stored = Path::new(&host_path).join("www/stored.txt");
    assert_eq!(std::fs::read_to_string(&stored)?.trim(), "first");
    {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&stored)?.uid(), 10001);
    }

    // Recreated with another token, the pod still serves what it stored the first time.
    pods.delete("web", &DeleteParams::default()).await?;
    wait::gone(&pods, "web", Duration::from_secs(60)).await?;
    let (ip, second_start) = run_web(&pods, "second").await?;
    eprintln!("web pod recreated and Ready at {ip} in {second_start:.1?}");
    assert_eq!(
        get_ok(&format!("http://{ip}:8080/stored.txt"))
            .await?
            .trim(),
        "first"
    );
    assert_eq!(
        get_ok(&format!("http://{ip}:8080/index.html"))
            .await?
            .trim(),
        "second"
    );

    // Deleting the claim deletes the volume and its folder (reclaim policy Delete).
    pods.delete("web", &DeleteParams::default()).await?;
    wait::gone(&pods, "web", Duration::from_secs(60)).await?;
    claims.delete("data", &DeleteParams::default()).await?;
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    wait::gone(&volumes, &volume_name, Duration::from_secs(60)).await?;
    ensure!(
        !Path::new(&host_path).exists(),
        "volume folder {host_path} is still there after its volume was deleted"
    );

    // A pod left running, with a volume, for `down` to clean up; the container IDs it must
    // remove.
    claims
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}}}
            }))?,
        )
        .await?;
    run_web(&pods, "left").await?;
    let containers = run(
        "bash",
        &[
            "-c",
            &format!(
                "{} --address {} -n k8s.io containers ls -q",
                cluster.ctr_binary()?.display(),
                cluster.containerd_socket().display()
            ),
        ],
    )?;
    let ids: Vec<String> = containers.split_whitespace().map(str::to_owned).collect();
    // Their cgroups (containerd's /k8s.io/<id> in every hierarchy) exist until `down`.
    let before = cgroups_named(&ids);
    ensure!(
        !ids.is_empty() && !before.is_empty(),
        "no container cgroups found for containers {ids:?}"
    );
    eprintln!(
        "{} containers, {} cgroups before down",
        ids.len(),
        before.len()
    );

    let t_down = Instant::now();
    let cluster = guard.0.take().context("cluster already stopped")?;
    let output = cluster.down()?;
    eprintln!("cluster.sh down in {:.1?}:\n{output}", t_down.elapsed());

    let procs = processes_naming(&cluster.state_dir);
    ensure!(procs.is_empty(), "processes left after down: {procs:#?}");
    let mounts = mounts_under(&cluster.state_dir)?;
    ensure!(mounts.is_empty(), "mounts left after down: {mounts:#?}");
    let cgroups = cgroups_named(&ids);
    ensure!(cgroups.is_empty(), "cgroups left after down: {cgroups:#?}");
    ensure!(
        !cluster.state_dir.exists(),
        "{} is still there",
        cluster.state_dir.display()
    );
    let links = run("ip", &["-o", "link", "show"])?;
    ensure!(
        !links.contains("oem-cni0") && !links.contains("veth"),
        "network links left after down: {links}"
    );
    // The machine's own folders stay; one a real node made is gone unless another real-node
    // cluster still mounts it.
    for (path, (existed, made)) in HOST_PATHS.iter().zip(&host_paths_before) {
        let (exists, marked) = host_path_state(path);
        ensure!(
            exists || !existed || *made,
            "{path} was the machine's and is gone after down"
        );
        ensure!(
            !marked || mounted_in_another_namespace(path),
            "{path}, made for a real node, is left after down"
        );
    }
    let lo = run("ip", &["-o", "addr", "show", "dev", "lo"])?;
    ensure!(!lo.contains("10.250.0.1"), "node address left on lo: {lo}");
    let rules = run("iptables-save", &[])?;
    ensure!(
        !rules.contains("KUBE-SERVICES") && !rules.contains("CNI-"),
        "kube-proxy or CNI rules left after down:\n{rules}"
    );
    Ok(())
}
