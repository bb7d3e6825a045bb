//! A TCP relay to the API server that a test cuts, as a network partition would cut a replica
//! off: the open connections are dropped and new ones are refused. The API server's
//! certificate names 127.0.0.1, so a client whose kubeconfig names the relay's loopback address
//! still verifies it.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running relay; dropping it cuts it too.
pub struct Relay {
    /// Where clients connect.
    pub addr: SocketAddr,
    cut: watch::Sender<bool>,
}

impl Relay {
    /// Relays connections on a free loopback port to `target`.
    pub async fn start(target: SocketAddr) -> anyhow::Result<Relay> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the relay")?;
        let addr = listener.local_addr()?;
        let (cut, mut cut_seen) = watch::channel(false);
        let on_cut = cut.subscribe();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = cut_seen.wait_for(|cut| *cut) => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((mut inbound, _)) = accepted else {
                    continue;
                };
                let mut on_cut = on_cut.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = on_cut.wait_for(|cut| *cut) => {}
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    }
                });
            }
        });
        Ok(Relay { addr, cut })
    }

    /// Drops every relayed connection and refuses new ones (the listener closes).
    pub fn cut(&self) {
        let _ = self.cut.send(true);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
    }
}
