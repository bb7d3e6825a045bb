//! A client outside the cluster: a network namespace of its own (a child of the test, itself
//! in the test's namespace) joined to the real node's "provider LAN" (`oem-lan0`,
//! `e2e/cluster/loadbalancer.sh`) by a veth, with one address there and no route anywhere else.
//! It reaches the load balancer's addresses only as a machine on that segment would: ARP
//! answered by MetalLB's speaker, packets into the node through the bridge.

use std::process::{Child, Command, Output, Stdio};

use anyhow::{Context, ensure};

/// The LAN bridge (`loadbalancer.sh`); its addresses are a /24.
const LAN: &str = "oem-lan0";

pub struct LanClient {
    holder: Child,
    veth: String,
}

impl LanClient {
    /// Joins the LAN as `address` (e.g. `10.251.0.2`); `index` names its veth.
    pub fn join(address: &str, index: u8) -> anyhow::Result<LanClient> {
        let holder = Command::new("unshare")
            .args(["--net", "sleep", "3600"])
            .stdin(Stdio::null())
            .spawn()
            .context("starting the client's network namespace (unshare --net)")?;
        let pid = holder.id().to_string();
        let veth = format!("oem-lanc{index}");
        let client = LanClient {
            holder,
            veth: veth.clone(),
        };
        // The child's namespace exists once unshare has run: wait for it to differ from ours.
        let ours = std::fs::read_link("/proc/self/ns/net")?;
        for _ in 0..100 {
            if std::fs::read_link(format!("/proc/{pid}/ns/net")).is_ok_and(|ns| ns != ours) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let peer = format!("{veth}p");
        run(
            "ip",
            &["link", "add", &veth, "type", "veth", "peer", "name", &peer],
        )?;
        run("ip", &["link", "set", &peer, "netns", &pid])?;
        run("ip", &["link", "set", &veth, "master", LAN, "up"])?;
        let cidr = format!("{address}/24");
        client.exec_ok("ip", &["link", "set", "lo", "up"])?;
        client.exec_ok("ip", &["addr", "add", &cidr, "dev", &peer])?;
        client.exec_ok("ip", &["link", "set", &peer, "up"])?;
        Ok(client)
    }

    /// Runs `program` in the client's namespace.
    pub fn exec(&self, program: &str, args: &[&str]) -> anyhow::Result<Output> {
        let pid = self.holder.id().to_string();
        Command::new("nsenter")
            .args(["-t", &pid, "-n", program])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {program} in the LAN client's namespace"))
    }

    /// [`LanClient::exec`], failing with its output unless it succeeds; its stdout.
    pub fn exec_ok(&self, program: &str, args: &[&str]) -> anyhow::Result<String> {
        let out = self.exec(program, args)?;
        ensure!(
            out.status.success(),
            "{program} {args:?} ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for LanClient {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
        // The namespace's end takes its end of the veth, and that the other.
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .stderr(Stdio::null())
            .status();
    }
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    ensure!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
