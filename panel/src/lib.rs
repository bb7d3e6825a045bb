//! oem-panel: the end users' web panel (SPEC §3), and later the resellers' (§2), as one warp
//! service. Pages are built from reflector caches (`cache`), users authenticated against
//! argon2id hashes of their password Secrets with lockouts and sessions (`auth`), every page
//! authorised on the server (`app`), in Japanese and English (`i18n`), with everything
//! user-controlled escaped (`html`). Writes go through `writes` with the field manager
//! `oem-hosting-panel`.

pub mod app;
pub mod auth;
pub mod brand;
pub mod cache;
pub mod config;
pub mod html;
pub mod i18n;
pub mod pages;
pub mod reseller;
pub mod server;
#[cfg(test)]
mod test_support;
pub mod web;
pub mod writes;
