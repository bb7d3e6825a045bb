//! Forms of the resellers' panel: labelled fields, each with its error next to it (announced,
//! `aria-describedby`), and the API server's refusals mapped onto the field they name, so bad
//! input reads as it does with kubectl, beside the field.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::html::esc;

/// What went wrong, by form field (the spec path under `spec.`, e.g. `contractName` or
/// `resources.cpu`), and what names no field.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Errors {
    pub by_field: BTreeMap<String, String>,
    pub general: Vec<String>,
}

impl Errors {
    pub fn is_empty(&self) -> bool {
        self.by_field.is_empty() && self.general.is_empty()
    }

    pub fn field(&mut self, field: &str, message: impl Into<String>) {
        self.by_field.insert(field.to_owned(), message.into());
    }

    /// One error that names no field.
    pub fn general(message: impl Into<String>) -> Self {
        Self {
            general: vec![message.into()],
            ..Self::default()
        }
    }

    /// The changed fields another applier owns (`act::plan`'s refusal), each at its field:
    /// `<managed_text><managers>`.
    pub fn owned_elsewhere(refused: Vec<(String, String)>, managed_text: &str) -> Self {
        let mut errors = Self::default();
        for (field, managers) in refused {
            errors.field(&field, format!("{managed_text}{managers}"));
        }
        errors
    }

    /// An API server's (or admission webhook's) refusal: each `spec.<path>: <message>` it
    /// contains goes to the form field that is the longest prefix of `<path>` (indices
    /// dropped); the rest, or all of it when no field is named, stays general.
    pub fn from_refusal(message: &str, fields: &[&str]) -> Self {
        let mut errors = Errors::default();
        for (path, text) in named_paths(message) {
            let bare = strip_indices(&path);
            let target = fields
                .iter()
                .filter(|f| bare == **f || bare.starts_with(&format!("{f}.")))
                .max_by_key(|f| f.len());
            match target {
                Some(field) => {
                    let entry = errors.by_field.entry((*field).to_owned()).or_default();
                    if !entry.is_empty() {
                        entry.push_str("; ");
                    }
                    entry.push_str(&format!("spec.{path}: {text}"));
                }
                None => errors.general.push(format!("spec.{path}: {text}")),
            }
        }
        if errors.is_empty() {
            errors.general.push(message.to_owned());
        }
        errors
    }

    /// The general errors as an announced list (empty when none).
    pub fn summary(&self, prefix: &str) -> String {
        if self.general.is_empty() && self.by_field.is_empty() {
            return String::new();
        }
        let mut out = format!(
            "<div class=\"error\" role=\"alert\" id=\"form-errors\"><p>{}</p>",
            esc(prefix)
        );
        if !self.general.is_empty() {
            out.push_str("<ul>");
            for message in &self.general {
                let _ = write!(out, "<li>{}</li>", esc(message));
            }
            out.push_str("</ul>");
        }
        out.push_str("</div>");
        out
    }
}

/// `(path, message)` for each `spec.<path>: <message>` in an API message. Messages list their
/// causes as `..., spec.a: m1, spec.b: m2]` or `spec.a: m1; spec.b: m2`.
fn named_paths(message: &str) -> Vec<(String, String)> {
    let starts: Vec<usize> = message
        .match_indices("spec.")
        .map(|(i, _)| i)
        .filter(|&i| {
            // `.spec.x` (a conflict's path) counts when the dot starts a word.
            let before = &message[..i];
            let before = before
                .strip_suffix('.')
                .filter(|b| b.is_empty() || b.ends_with(' '))
                .unwrap_or(before);
            before.is_empty() || matches!(before.chars().next_back(), Some(' ' | '[' | '(' | '"'))
        })
        .collect();
    let mut found = Vec::new();
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(message.len());
        let chunk = &message[start + "spec.".len()..end];
        let Some((path, text)) = chunk.split_once(':') else {
            continue;
        };
        if path.is_empty() || path.contains(' ') {
            continue;
        }
        let text = text
            .trim()
            .trim_end_matches([',', ';', ']', ' '])
            .trim()
            .to_owned();
        found.push((path.to_owned(), text));
    }
    found
}

fn strip_indices(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut depth = 0;
    for c in path.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// The HTML id of a field.
pub fn id_of(field: &str) -> String {
    format!("f-{}", field.replace('.', "-"))
}

/// A field's extra: an error (announced and described-by), or who else manages it (then the
/// field is read-only: the panel does not fight another applier).
pub struct Field<'a> {
    pub name: &'a str,
    pub label: &'a str,
    pub value: &'a str,
    /// `text`, `email`, `date`, `number` or `textarea`.
    pub kind: &'a str,
    pub required: bool,
    pub managed_by: Option<&'a str>,
    pub hint: Option<&'a str>,
    pub read_only: bool,
}

impl<'a> Field<'a> {
    pub fn new(name: &'a str, label: &'a str, value: &'a str) -> Self {
        Self {
            name,
            label,
            value,
            kind: "text",
            required: false,
            managed_by: None,
            hint: None,
            read_only: false,
        }
    }

    pub fn kind(mut self, kind: &'a str) -> Self {
        self.kind = kind;
        self
    }

    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    pub fn managed_by(mut self, manager: Option<&'a str>) -> Self {
        self.managed_by = manager;
        self
    }

    /// Shown, never changed (an immutable field).
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    pub fn hint(mut self, hint: &'a str) -> Self {
        self.hint = Some(hint);
        self
    }

    /// The label, the input and its notes.
    pub fn render(&self, errors: &Errors, managed_text: &str) -> String {
        let id = id_of(self.name);
        let mut described = Vec::new();
        let mut notes = String::new();
        if let Some(hint) = self.hint {
            let _ = write!(
                notes,
                "<p class=\"hint\" id=\"{id}-hint\">{}</p>",
                esc(hint)
            );
            described.push(format!("{id}-hint"));
        }
        if let Some(manager) = self.managed_by {
            let _ = write!(
                notes,
                "<p class=\"hint\" id=\"{id}-managed\">{}{}</p>",
                esc(managed_text),
                esc(manager)
            );
            described.push(format!("{id}-managed"));
        }
        if let Some(error) = errors.by_field.get(self.name) {
            let _ = write!(
                notes,
                "<p class=\"error\" role=\"alert\" id=\"{id}-error\">{}</p>",
                esc(error)
            );
            described.push(format!("{id}-error"));
        }
        let mut attrs = String::new();
        if !described.is_empty() {
            let _ = write!(attrs, " aria-describedby=\"{}\"", described.join(" "));
        }
        if errors.by_field.contains_key(self.name) {
            attrs.push_str(" aria-invalid=\"true\"");
        }
        if self.required {
            attrs.push_str(" required");
        }
        if self.managed_by.is_some() || self.read_only {
            attrs.push_str(" readonly");
        }
        let input = if self.kind == "textarea" {
            format!(
                "<textarea id=\"{id}\" name=\"{name}\" rows=\"4\"{attrs}>{value}</textarea>",
                name = esc(self.name),
                value = esc(self.value)
            )
        } else {
            format!(
                "<input id=\"{id}\" name=\"{name}\" type=\"{kind}\" value=\"{value}\"{attrs}>",
                name = esc(self.name),
                kind = esc(self.kind),
                value = esc(self.value)
            )
        };
        format!(
            "<label for=\"{id}\">{label}</label>{input}{notes}",
            label = esc(self.label)
        )
    }
}

/// A labelled select of `options` (value, text), `selected` chosen.
pub fn select(
    name: &str,
    label: &str,
    options: &[(String, String)],
    selected: &str,
    errors: &Errors,
) -> String {
    let id = id_of(name);
    let mut out = format!("<label for=\"{id}\">{}</label>", esc(label));
    let error = errors.by_field.get(name);
    let described = if error.is_some() {
        format!(" aria-describedby=\"{id}-error\" aria-invalid=\"true\"")
    } else {
        String::new()
    };
    let _ = write!(
        out,
        "<select id=\"{id}\" name=\"{}\"{described}>",
        esc(name)
    );
    for (value, text) in options {
        let chosen = if value == selected { " selected" } else { "" };
        let _ = write!(
            out,
            "<option value=\"{}\"{chosen}>{}</option>",
            esc(value),
            esc(text)
        );
    }
    out.push_str("</select>");
    if let Some(error) = error {
        let _ = write!(
            out,
            "<p class=\"error\" role=\"alert\" id=\"{id}-error\">{}</p>",
            esc(error)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: &[&str] = &["contractName", "domains", "resources.cpu", "resources"];

    #[test]
    fn a_crd_validation_message_lands_on_its_fields() {
        let message = "EndUser.hosting.oem.dev \"shop\" is invalid: [spec.domains[0]: Invalid value: \"Bad_Name\": should match '^[a-z0-9]', spec.contractName: Required value]";
        let errors = Errors::from_refusal(message, FIELDS);
        assert!(errors.general.is_empty(), "{errors:?}");
        assert!(
            errors.by_field["domains"].starts_with("spec.domains[0]: Invalid value"),
            "{errors:?}"
        );
        assert_eq!(
            errors.by_field["contractName"],
            "spec.contractName: Required value"
        );
    }

    #[test]
    fn a_webhook_refusal_lands_on_the_longest_matching_field() {
        let message = "admission webhook \"courses.hosting.oem.dev\" denied the request: spec.resources.cpu: 64 exceeds the reseller's totalCpu 8";
        let errors = Errors::from_refusal(message, FIELDS);
        assert_eq!(
            errors.by_field["resources.cpu"],
            "spec.resources.cpu: 64 exceeds the reseller's totalCpu 8"
        );
        assert!(!errors.by_field.contains_key("resources"));
    }

    #[test]
    fn a_message_naming_no_field_stays_general() {
        let errors = Errors::from_refusal("the server is currently unable to handle", FIELDS);
        assert_eq!(errors.general, ["the server is currently unable to handle"]);
        let errors = Errors::from_refusal("spec.price: must be positive", FIELDS);
        assert_eq!(errors.general, ["spec.price: must be positive"]);
    }

    #[test]
    fn a_field_is_labelled_and_describes_its_error_and_manager() {
        let mut errors = Errors::default();
        errors.field("contractName", "spec.contractName: <Required>");
        let html = Field::new("contractName", "Contract", "\"x\"")
            .required()
            .managed_by(Some("argocd"))
            .render(&errors, "Managed elsewhere: ");
        assert!(html.contains("<label for=\"f-contractName\">Contract</label>"));
        assert!(html.contains("aria-describedby=\"f-contractName-managed f-contractName-error\""));
        assert!(html.contains("readonly"));
        assert!(html.contains("&lt;Required&gt;"));
        assert!(html.contains("value=\"&quot;x&quot;\""));
        assert!(html.contains("Managed elsewhere: argocd"));
    }
}
