//! The resource usage summary (disk, memory, network traffic) that an EndUser's status reports
//! and a Reseller's status sums over its end users.

use k8s_openapi::apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Measured usage, as Kubernetes quantities; absent values were not measured.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Disk space used by the hosting's volumes, e.g. `3.2Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::quantity")]
    pub disk: Option<Quantity>,
    /// Memory in use (working set) by the hosting's workloads, e.g. `512Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::quantity")]
    pub memory: Option<Quantity>,
    /// Bytes received by the hosting's workloads over the current accounting period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::quantity")]
    pub network_in: Option<Quantity>,
    /// Bytes sent by the hosting's workloads over the current accounting period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::quantity")]
    pub network_out: Option<Quantity>,
    /// When these figures were measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Time>,
}
