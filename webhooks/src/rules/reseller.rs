//! Reseller rules: every contact is reachable — valid email and fax-gateway addresses, https
//! webhook URLs — and at least one exists, else incident notices go nowhere (a warning).

use oem_crds::Reseller;
use oem_crds::redact::redact_url;

use crate::rules::names::{https_url_problem, is_email};
use crate::verdict::Verdict;
use oem_crds::quantity;

/// Validates a reseller being created or updated.
pub fn validate_reseller(new: &Reseller) -> Verdict {
    let mut verdict = Verdict::default();
    if new.spec.contacts.is_empty() {
        verdict.warn(
            "spec.contacts",
            "no contacts: incident notices cannot be delivered to this reseller",
        );
    }
    for (i, contact) in new.spec.contacts.iter().enumerate() {
        let at = format!("spec.contacts[{i}]");
        if let Some(email) = &contact.email
            && !is_email(email)
        {
            verdict.deny(
                &format!("{at}.email"),
                format!("{email} is not a valid email address (contacts must be reachable)"),
            );
        }
        if let Some(fax) = &contact.fax_gateway_email
            && !is_email(fax)
        {
            verdict.deny(
                &format!("{at}.faxGatewayEmail"),
                format!("{fax} is not a valid email address (contacts must be reachable)"),
            );
        }
        if let Some(webhook) = &contact.webhook
            && let Some(problem) = https_url_problem(&webhook.url)
        {
            verdict.deny(
                &format!("{at}.webhook.url"),
                // Shown by host and a digest of its path: a chat webhook's path is its secret,
                // and refusals reach audit logs and terminals.
                format!(
                    "{}: {problem} (contacts must be reachable)",
                    redact_url(&webhook.url)
                ),
            );
        }
        if contact.email.is_none()
            && contact.webhook.is_none()
            && contact.fax_gateway_email.is_none()
        {
            verdict.warn(&at, "contact has no email, webhook or fax gateway address");
        }
    }
    let quota = &new.spec.quota;
    for (field, q) in [
        ("spec.quota.totalCpu", &quota.total_cpu.0),
        ("spec.quota.totalMemory", &quota.total_memory.0),
        ("spec.quota.totalStorage", &quota.total_storage.0),
    ] {
        if quantity::value(q).is_none() {
            verdict.deny(field, format!("{q} is not a quantity"));
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn reachable_contacts_are_accepted() {
        let r = fixtures::reseller("acme");
        assert_eq!(validate_reseller(&r), Verdict::default());
    }

    #[test]
    fn an_invalid_email_is_refused() {
        let mut r = fixtures::reseller("acme");
        r.spec.contacts[0].email = Some("noc-at-acme".into());
        let v = validate_reseller(&r);
        assert_eq!(
            v.denials,
            [
                "spec.contacts[0].email: noc-at-acme is not a valid email address (contacts must be reachable)"
            ]
        );
    }

    #[test]
    fn an_invalid_fax_gateway_address_is_refused() {
        let mut r = fixtures::reseller("acme");
        r.spec.contacts[0].fax_gateway_email = Some("0312345678".into());
        let v = validate_reseller(&r);
        assert!(v.denials[0].starts_with("spec.contacts[0].faxGatewayEmail: "));
    }

    #[test]
    fn a_plain_http_webhook_is_refused() {
        let mut r = fixtures::reseller("acme");
        r.spec.contacts[0].webhook.as_mut().unwrap().url = "http://hooks.acme.example/x".into();
        let v = validate_reseller(&r);
        assert_eq!(v.denials.len(), 1);
        assert!(
            v.denials[0].starts_with(
                "spec.contacts[0].webhook.url: http://hooks.acme.example/<path sha256:"
            ),
            "{}",
            v.denials[0]
        );
        assert!(
            v.denials[0].ends_with(": webhook URLs must use https (contacts must be reachable)")
        );
    }

    #[test]
    fn a_refused_webhook_url_never_shows_its_path() {
        let mut r = fixtures::reseller("acme");
        r.spec.contacts[0].webhook.as_mut().unwrap().url =
            "http://hooks.slack.com/services/T0/B0/XXXXsecretXXXX".into();
        let v = validate_reseller(&r);
        assert!(!v.message().contains("XXXXsecretXXXX"), "{}", v.message());
    }

    #[test]
    fn no_contacts_is_allowed_with_a_warning() {
        let mut r = fixtures::reseller("acme");
        r.spec.contacts.clear();
        let v = validate_reseller(&r);
        assert!(v.allowed());
        assert_eq!(v.warnings.len(), 1);
    }
}
