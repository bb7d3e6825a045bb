//! Bounded waiting: every loop in the tests ends by itself.

use std::future::Future;
use std::time::Duration;

use anyhow::bail;

/// Polls `check` every `every` until it returns `Some`, or fails after `limit` naming `what`
/// and the last observation.
pub async fn until<T, F, Fut>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let last = match check().await {
            Ok(value) => return Ok(value),
            Err(observed) => observed,
        };
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {limit:?} waiting for {what}; last seen: {last}");
        }
        tokio::time::sleep(every).await;
    }
}
