//! Admission webhooks for the hosting.oem.dev API. Filled in by the webhooks issue.
