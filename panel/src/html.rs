//! HTML output: escaping of everything that is not a literal of this crate, and the page
//! layout (brand header, language switch, the one stylesheet). No inline script or style:
//! the Content-Security-Policy forbids both.

use std::fmt::Write;

use kube::ResourceExt;
use oem_crds::Reseller;

use crate::i18n::Lang;

/// `text` escaped for an HTML text node or a double- or single-quoted attribute value.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `segment` escaped as one URL path segment (unreserved characters kept, the rest
/// percent-encoded), so a name cannot add a path, query or quote.
pub fn url_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// What the layout needs besides the body.
pub struct Frame<'a> {
    pub lang: Lang,
    /// The reseller's brand name; never the provider's.
    pub brand: &'a str,
    /// The reseller whose look (accent colour, logo) the page takes, if any.
    pub reseller: Option<&'a Reseller>,
    /// The page title (already plain text; escaped here).
    pub title: &'a str,
    /// The path of this page, for the language switch to come back to.
    pub here: &'a str,
    /// Navigation links (href, label), shown when logged in.
    pub nav: Vec<(String, &'a str)>,
    /// The logout form's CSRF token, when logged in.
    pub logout_csrf: Option<&'a str>,
}

/// A whole page: `body` is HTML built by this crate from escaped values.
pub fn page(frame: &Frame<'_>, body: &str) -> String {
    let lang = frame.lang;
    let texts = lang.texts();
    let other = lang.other();
    let mut nav = String::new();
    for (href, label) in &frame.nav {
        let _ = write!(nav, "<a href=\"{}\">{}</a>", esc(href), esc(label));
    }
    if let Some(csrf) = frame.logout_csrf {
        let _ = write!(
            nav,
            "<form method=\"post\" action=\"/logout\" class=\"inline\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\">{}</button></form>",
            esc(csrf),
            esc(texts.logout)
        );
    }
    // The reseller's look, by address (the CSP admits only the panel's own styles and
    // images); the resourceVersion in the query makes a changed look load at once.
    let (mut style, mut logo) = (String::new(), String::new());
    if let Some(reseller) = frame.reseller {
        let base = format!("/brand/{}", url_segment(&reseller.name_any()));
        let version = url_segment(&reseller.resource_version().unwrap_or_default());
        if crate::brand::accent(reseller).is_some() {
            style = format!("<link rel=\"stylesheet\" href=\"{base}/style.css?v={version}\">\n");
        }
        if reseller
            .spec
            .branding
            .as_ref()
            .is_some_and(|b| b.logo.is_some())
        {
            logo = format!("<img class=\"logo\" src=\"{base}/logo?v={version}\" alt=\"\">");
        }
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"{code}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} - {brand}</title>\n<link rel=\"stylesheet\" href=\"/static/panel.css\">\n\
         {style}</head>\n<body>\n<header><span class=\"brand\">{logo}{brand}</span><nav>{nav}\
         <a href=\"/lang/{other_code}?next={next}\" lang=\"{other_code}\">{switch}</a></nav></header>\n\
         <main>\n<h1>{title}</h1>\n{body}\n</main>\n</body>\n</html>\n",
        code = lang.code(),
        title = esc(frame.title),
        brand = esc(frame.brand),
        other_code = other.code(),
        next = url_segment(frame.here),
        switch = esc(other.texts().language_name),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_quotes_are_escaped() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn japanese_text_is_kept() {
        assert_eq!(esc("さくらウェブ"), "さくらウェブ");
    }

    #[test]
    fn a_path_segment_cannot_add_a_path_or_query() {
        assert_eq!(url_segment("a/b?c=\"d\""), "a%2Fb%3Fc%3D%22d%22");
        assert_eq!(url_segment("reseller-sakura"), "reseller-sakura");
    }

    #[test]
    fn the_brand_and_title_are_escaped_in_the_layout() {
        let frame = Frame {
            lang: Lang::En,
            brand: "<b>Evil</b>",
            reseller: None,
            title: "\"t\"",
            here: "/x",
            nav: vec![("/a\"onclick=\"x".into(), "<i>")],
            logout_csrf: Some("\"tok"),
        };
        let html = page(&frame, "");
        assert!(!html.contains("<b>Evil"), "{html}");
        assert!(html.contains("&lt;b&gt;Evil&lt;/b&gt;"));
        assert!(!html.contains("\"onclick"), "{html}");
        assert!(!html.contains("<i>"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("style="));
    }
}
