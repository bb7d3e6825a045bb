//! The oem-hosting operator as a library, so tests reach every part; `main.rs` only wires it.

pub mod http;
pub mod telemetry;
