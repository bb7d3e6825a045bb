//! The oem-hosting operator as a library, so tests reach every part; `main.rs` only wires it.

pub mod alerting;
pub mod apply;
pub mod clock;
pub mod compact;
pub mod config;
pub mod context;
pub mod controllers;
pub mod error;
pub mod events;
pub mod gauges;
pub mod hosting;
pub mod http;
pub mod identity;
pub mod leader;
pub mod metrics;
pub mod monitor;
pub mod naming;
pub mod slim;
pub mod status;
pub mod telemetry;
pub mod usage;
pub mod versions;
pub mod view;
