//! Misbehaving servers of the tests' own on 127.0.0.1: silent ones, ones that greet wrongly,
//! send oversized or truncated replies, or answer each command line by a script. Each counts
//! the connections it accepted, so a test can prove a refused address was never contacted.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A server of ours, stopped when dropped.
pub struct Fake {
    pub port: u16,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fake {
    /// Runs `serve` on every accepted connection.
    pub async fn start<F, Fut>(serve: F) -> Fake
    where
        F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a fake server");
        let port = listener.local_addr().expect("local address").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let serve = Arc::new(serve);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream));
            }
        });
        Fake {
            port,
            accepted,
            task,
        }
    }

    /// Accepts and never says anything (reads until the client leaves).
    pub async fn silent() -> Fake {
        Fake::start(|mut stream| async move {
            let mut sink = [0u8; 1024];
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await
    }

    /// Sends `bytes` on connection, then closes after the client's first line or leaving.
    pub async fn greeting(bytes: &'static [u8]) -> Fake {
        Fake::start(move |mut stream| async move {
            let _ = stream.write_all(bytes).await;
            let mut sink = [0u8; 1024];
            let _ = stream.read(&mut sink).await;
        })
        .await
    }

    /// Sends `bytes` on connection and closes at once.
    pub async fn says_and_closes(bytes: &'static [u8]) -> Fake {
        Fake::start(move |mut stream| async move {
            let _ = stream.write_all(bytes).await;
            let _ = stream.shutdown().await;
        })
        .await
    }

    /// Greets, then answers each received line with `reply(line)` (`None`: close).
    pub async fn scripted(
        greeting: &'static [u8],
        reply: fn(&str) -> Option<&'static [u8]>,
    ) -> Fake {
        Fake::start(move |stream| async move {
            let (read, mut write) = stream.into_split();
            let _ = write.write_all(greeting).await;
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match reply(&line) {
                    Some(answer) => {
                        if write.write_all(answer).await.is_err() {
                            break;
                        }
                    }
                    None => break,
                }
            }
        })
        .await
    }

    /// How many connections it accepted.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}
