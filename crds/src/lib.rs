//! The hosting.oem.dev API types. Filled in by the API issue.
