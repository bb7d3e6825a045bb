//! Admission webhooks for the hosting.oem.dev API: validating and defaulting of Reseller,
//! Course and EndUser, validating of Maintenance and ClusterMaintenance windows, served over
//! TLS.
//!
//! - [`rules`]: the rules, pure functions of the object and a [`lookup::Lookup`];
//!   [`defaulting`]: the mutating webhook's patch.
//! - [`review`]: AdmissionReview decoding, dispatch and responses; [`claims`]: domain
//!   reservations that close the cache-lag race within one process; [`domains`]: the
//!   cluster's `DomainClaim`s that decide between replicas.
//! - [`cache`]: reflector caches answering the lookup; [`tls`]: serving certificates (files
//!   reloaded on change, or a generated CA); [`server`]: the HTTPS endpoints; [`config`].

pub mod cache;
pub mod claims;
pub mod config;
pub mod defaulting;
pub mod domains;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod lookup;
pub use oem_crds::policy;
pub mod review;
pub mod rules;
pub mod server;
pub mod tls;
pub mod verdict;
