//! Any bytes as an AdmissionReview body: decoding, rule evaluation and response building must
//! answer without panicking, for both endpoints. Run: `cargo +nightly fuzz run admission_review`
//! from `webhooks/`.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use oem_webhooks::claims::Claims;
use oem_webhooks::fixtures;
use oem_webhooks::review::{Endpoint, respond};

fuzz_target!(|data: &[u8]| {
    let lookup = fixtures::cluster();
    let claims = Claims::new(Duration::from_secs(30));
    let _ = respond(data, Endpoint::Validate, &lookup, &claims);
    let _ = respond(data, Endpoint::Mutate, &lookup, &claims);
});
