//! What the request-flow tests share (`app_tests.rs`, `reseller/flow_tests.rs`): a ready panel
//! on hand-filled caches with no reachable API server, and requests through the real warp
//! routes.

use std::sync::Arc;

use crate::app::App;
use crate::auth::password::{Hasher, SecretKey};
use crate::cache::Caches;
use crate::config::{Config, HashCost};
use crate::server::routes;

/// The cheapest hashing the configuration allows, so tests hash fast.
pub const CHEAP: HashCost = HashCost {
    memory_kib: 8 * 1024,
    passes: 1,
    workers: 2,
};

/// A ready panel reading `caches`, whose password Secret keys `keys` hold `password` at
/// resourceVersion 1 (the digest derived up front: no Secret can be read).
pub async fn panel_with(caches: Caches, keys: Vec<SecretKey>, password: &str) -> Arc<App> {
    let config = Config {
        hash_cost: CHEAP,
        ..Config::default()
    };
    let client =
        kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
    let hasher = Hasher::start(CHEAP).unwrap();
    let digest = hasher.hash(password).await.unwrap();
    let app = Arc::new(App::new(config, caches, client, hasher));
    for key in keys {
        app.auth().hashes.insert(key, "1".into(), digest.clone());
    }
    app.set_ready();
    app
}

pub type Response = http::Response<bytes::Bytes>;

pub async fn get(app: &Arc<App>, path: &str, cookie: &str) -> Response {
    warp::test::request()
        .path(path)
        .header("cookie", cookie)
        .reply(&routes(app.clone()))
        .await
}

pub async fn post(app: &Arc<App>, path: &str, cookie: &str, body: &str) -> Response {
    warp::test::request()
        .method("POST")
        .path(path)
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .reply(&routes(app.clone()))
        .await
}

pub fn body(r: &Response) -> String {
    String::from_utf8_lossy(r.body()).into_owned()
}

/// The value a `Set-Cookie` header gives `name`.
pub fn set_cookie(r: &Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
}
