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

/// Waits until the object `name` no longer exists (deletion finished, finalizers done).
pub async fn gone<K>(api: &kube::Api<K>, name: &str, limit: Duration) -> anyhow::Result<()>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    until(
        &format!("{} {name} to be gone", K::kind(&())),
        limit,
        Duration::from_millis(500),
        || async {
            match api.get_metadata_opt(name).await {
                Ok(None) => Ok(()),
                Ok(Some(o)) => Err(format!(
                    "still there (deleting since {:?}, finalizers {:?})",
                    o.metadata.deletion_timestamp, o.metadata.finalizers
                )),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await
}
