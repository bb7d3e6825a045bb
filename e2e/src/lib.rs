//! The end-to-end harness: finds or starts the local control plane (`e2e/cluster/cluster.sh`),
//! hands tests a client for it, and waits with bounded loops.

pub mod cluster;
pub mod wait;

pub use cluster::Cluster;
