//! Monitoring of hosts and end-user services (SPEC §6, DESIGN "Monitoring"): the protocol
//! probes live in `probes/`, one module per protocol; `targets` says what is probed,
//! `scheduler` when, `results` what each found last (its metrics), `health` what is written
//! to `EndUser.status.services`, and `engine` runs it all against the cluster.

pub mod config;
pub mod engine;
pub mod health;
pub mod probes;
pub mod results;
pub mod scheduler;
pub mod targets;

pub use config::MonitorConfig;
pub use engine::run;
