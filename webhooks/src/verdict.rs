//! The outcome of the rules for one object: refusals and warnings, each naming the field and
//! the rule, e.g. `spec.domains[1]: domain shop.example.jp is already used by another end user`.

/// Refusals (any refusal denies the request) and warnings (shown by kubectl, never deny).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub denials: Vec<String>,
    pub warnings: Vec<String>,
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        self.denials.is_empty()
    }

    pub fn deny(&mut self, field: &str, message: impl std::fmt::Display) {
        self.denials.push(format!("{field}: {message}"));
    }

    pub fn warn(&mut self, field: &str, message: impl std::fmt::Display) {
        self.warnings.push(format!("{field}: {message}"));
    }

    /// All refusals as one message for the API server's `status.message`.
    pub fn message(&self) -> String {
        self.denials.join("; ")
    }
}

/// The annotation that lets a reseller override the course-shrinking rules.
pub const FORCE_ANNOTATION: &str = "hosting.oem.dev/force";
