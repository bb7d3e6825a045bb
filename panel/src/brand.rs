//! The reseller's look in both panels, from its Reseller (`spec.branding`): the accent colour as
//! a small stylesheet after the panel's own, and the logo as an image, both served by the panel
//! from its cache (the pages' Content-Security-Policy admits only the panel's own styles and
//! images). A colour white text is hard to read on is not used: the panel's own stays.

use base64::Engine as _;
use oem_crds::Reseller;

/// The least contrast of white text on the accent colour (WCAG AA for normal text).
pub const MIN_CONTRAST: f64 = 4.5;

/// The largest logo served, decoded.
pub const MAX_LOGO_BYTES: usize = 64 * 1024;

/// `#rrggbb` as red, green and blue.
fn rgb(hex: &str) -> Option<[u8; 3]> {
    let digits = hex.strip_prefix('#').filter(|d| d.len() == 6)?;
    let channel = |i: usize| u8::from_str_radix(digits.get(i..i + 2)?, 16).ok();
    Some([channel(0)?, channel(2)?, channel(4)?])
}

/// The contrast ratio of white on the colour `hex` (1 to 21), per WCAG 2's relative luminance.
pub fn contrast_with_white(hex: &str) -> Option<f64> {
    let [r, g, b] = rgb(hex)?;
    let linear = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let luminance = 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
    Some(1.05 / (luminance + 0.05))
}

/// The accent colour the panels use for `reseller`, if it set a readable one (lower-case).
pub fn accent(reseller: &Reseller) -> Option<String> {
    let color = reseller.spec.branding.as_ref()?.accent_color.as_deref()?;
    (contrast_with_white(color)? >= MIN_CONTRAST).then(|| color.to_ascii_lowercase())
}

/// The reseller's stylesheet: its accent colour over the panel's, or nothing.
pub fn stylesheet(reseller: &Reseller) -> String {
    match accent(reseller) {
        Some(color) => format!(":root {{ --accent: {color}; }}\n"),
        None => String::new(),
    }
}

/// The reseller's logo: its media type and bytes, when it has a well-formed one.
pub fn logo(reseller: &Reseller) -> Option<(&'static str, Vec<u8>)> {
    let logo = reseller.spec.branding.as_ref()?.logo.as_ref()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&logo.data)
        .ok()
        .filter(|b| !b.is_empty() && b.len() <= MAX_LOGO_BYTES)?;
    Some((logo.media_type.as_str(), bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reseller(branding: serde_json::Value) -> Reseller {
        serde_json::from_value(json!({
            "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "Reseller",
            "metadata": {"name": "sakura"},
            "spec": {"displayName": "さくら", "contacts": [{"name": "desk", "email": "d@example.jp"}],
                     "quota": {"maxEndUsers": 1, "totalCpu": "1", "totalMemory": "1Gi", "totalStorage": "1Gi"},
                     "branding": branding}
        }))
        .unwrap()
    }

    #[test]
    fn contrast_follows_wcag() {
        assert!((contrast_with_white("#000000").unwrap() - 21.0).abs() < 0.01);
        assert!((contrast_with_white("#ffffff").unwrap() - 1.0).abs() < 0.01);
        // The panel's own accent passes; yellow does not.
        assert!(contrast_with_white("#1f5fbf").unwrap() >= MIN_CONTRAST);
        assert!(contrast_with_white("#ffd700").unwrap() < MIN_CONTRAST);
        assert_eq!(contrast_with_white("red"), None);
    }

    #[test]
    fn a_readable_accent_becomes_the_stylesheet_and_an_unreadable_one_does_not() {
        let dark = reseller(json!({"accentColor": "#0B6E4F"}));
        assert_eq!(stylesheet(&dark), ":root { --accent: #0b6e4f; }\n");
        let light = reseller(json!({"accentColor": "#FFD700"}));
        assert_eq!(stylesheet(&light), "");
        assert_eq!(stylesheet(&reseller(json!({}))), "");
    }

    #[test]
    fn the_logo_is_served_decoded_with_its_type() {
        let png = reseller(json!({"logo": {"mediaType": "image/png", "data": "iVBORw0KGgo="}}));
        let (kind, bytes) = logo(&png).unwrap();
        assert_eq!(kind, "image/png");
        assert_eq!(bytes, b"\x89PNG\r\n\x1a\n");
        let broken = reseller(json!({"logo": {"mediaType": "image/jpeg", "data": "%%%%"}}));
        assert_eq!(logo(&broken), None);
    }
}
