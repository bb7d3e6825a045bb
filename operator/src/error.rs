//! The operator's errors. Each variant says what failed and on which object; its class picks
//! the retry (a spec error waits for the user to change something, a transient one backs off)
//! and its `metric_label` is a low-cardinality name for `/metrics`.

use std::time::Duration;

/// How the controller reacts to an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The user's spec cannot work (missing course, bad reference): wait for a change, with a
    /// slow re-check in case what was missing appears.
    Spec,
    /// The API server or network failed: retry soon.
    Transient,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {kind} {name}: {source}")]
    Kube {
        action: &'static str,
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("{object}: {field}: {message}")]
    InvalidSpec {
        object: String,
        field: &'static str,
        message: String,
    },
    #[error("{object}: course {course} not found in namespace {namespace}")]
    CourseNotFound {
        object: String,
        course: String,
        namespace: String,
    },
    #[error("{object}: reseller {reseller} not found")]
    ResellerNotFound { object: String, reseller: String },
    #[error(
        "{object}: reseller {reseller} is not set up yet (its namespace and the operator's access to its Secrets); retrying"
    )]
    ResellerNotSetUp { object: String, reseller: String },
    #[error("{object} is not in a reseller namespace (reseller-<name>)")]
    NotInResellerNamespace { object: String },
    #[error("{object}: password secret {secret} has no key {key}")]
    PasswordSecret {
        object: String,
        secret: String,
        key: String,
    },
    /// The hosting namespace exists but its labels do not name this end user: a collision or
    /// someone else's namespace. The message names neither the other owner (another reseller's
    /// customer) nor anything of theirs.
    #[error(
        "{object}: namespace {namespace} already exists and is not labelled as this end user's hosting namespace; the operator neither adopts nor deletes it"
    )]
    HostingNamespaceNotOwned { object: String, namespace: String },
    #[error("reseller {reseller}: {count} end users remain; delete them first")]
    EndUsersRemain { reseller: String, count: i32 },
    #[error(transparent)]
    Finalizer(Box<kube::runtime::finalizer::Error<Error>>),
    /// Something of the operator's own failed, e.g. making a key: retried as transient.
    #[error("{what}: {message}")]
    Internal { what: String, message: String },
    #[error("serialising {what}: {source}")]
    Serialize {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// Wraps a kube error with what was being done to which object.
    pub fn kube(
        action: &'static str,
        kind: &'static str,
        name: impl Into<String>,
    ) -> impl FnOnce(kube::Error) -> Error {
        let name = name.into();
        move |source| Error::Kube {
            action,
            kind,
            name,
            source,
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Kube { source, .. } => match source {
                // Refused by validation or admission: retrying the same request cannot help.
                kube::Error::Api(status) if status.code == 422 || status.code == 400 => {
                    ErrorClass::Spec
                }
                _ => ErrorClass::Transient,
            },
            Error::Serialize { .. } | Error::Internal { .. } | Error::ResellerNotSetUp { .. } => {
                ErrorClass::Transient
            }
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.class(),
                _ => ErrorClass::Transient,
            },
            _ => ErrorClass::Spec,
        }
    }

    /// Short, stable reason for conditions and events (CamelCase, as Kubernetes reasons are).
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "ApiError",
            Error::InvalidSpec { .. } => "InvalidSpec",
            Error::CourseNotFound { .. } => "CourseNotFound",
            Error::ResellerNotFound { .. } => "ResellerNotFound",
            Error::ResellerNotSetUp { .. } => "ResellerNotSetUp",
            Error::NotInResellerNamespace { .. } => "NotInResellerNamespace",
            Error::PasswordSecret { .. } => "PasswordSecretInvalid",
            Error::HostingNamespaceNotOwned { .. } => "HostingNamespaceConflict",
            Error::Serialize { .. } | Error::Internal { .. } => "InternalError",
            Error::EndUsersRemain { .. } => "EndUsersRemain",
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.reason(),
                _ => "FinalizerError",
            },
        }
    }

    /// Low-cardinality label for the error metric.
    pub fn metric_label(&self) -> &'static str {
        match self.class() {
            ErrorClass::Spec => "spec",
            ErrorClass::Transient => "transient",
        }
    }

    /// How long to wait before trying again.
    pub fn retry_after(&self, transient: Duration, spec: Duration) -> Duration {
        match self.class() {
            ErrorClass::Spec => spec,
            ErrorClass::Transient => transient,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_course_is_a_spec_error() {
        let e = Error::CourseNotFound {
            object: "enduser r/a".into(),
            course: "gold".into(),
            namespace: "reseller-r".into(),
        };
        assert_eq!(e.class(), ErrorClass::Spec);
        assert_eq!(e.metric_label(), "spec");
        assert!(e.to_string().contains("course gold not found"));
    }

    #[test]
    fn a_foreign_hosting_namespace_is_a_spec_error_with_its_own_reason() {
        let e = Error::HostingNamespaceNotOwned {
            object: "enduser reseller-r/a".into(),
            namespace: "h-r-a-0123456789abcdef".into(),
        };
        assert_eq!(e.class(), ErrorClass::Spec);
        assert_eq!(e.reason(), "HostingNamespaceConflict");
        assert!(e.to_string().contains("h-r-a-0123456789abcdef"), "{e}");
    }

    #[test]
    fn a_reseller_not_yet_set_up_is_waited_for() {
        let e = Error::ResellerNotSetUp {
            object: "enduser reseller-r/a".into(),
            reseller: "r".into(),
        };
        assert_eq!(e.class(), ErrorClass::Transient);
        assert_eq!(e.reason(), "ResellerNotSetUp");
    }

    #[test]
    fn a_server_error_is_transient() {
        let e = Error::kube("get", "StatefulSet", "web")(kube::Error::Api(Box::new(
            kube::core::Status::failure("etcd timeout", "InternalError").with_code(500),
        )));
        assert_eq!(e.class(), ErrorClass::Transient);
        assert_eq!(
            e.retry_after(Duration::from_secs(5), Duration::from_secs(300)),
            Duration::from_secs(5)
        );
    }
}
