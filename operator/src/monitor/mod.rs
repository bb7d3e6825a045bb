//! Monitoring of hosts and end-user services (SPEC §6, DESIGN "Monitoring"): the protocol
//! probes live in `probes/`, one module per protocol.

pub mod probes;
