//! Reading the mails the SMTP sink received (`prometheus::SmtpSink`): headers (continuation
//! lines unfolded, RFC 2047 words decoded), single-part or multipart bodies, base64 and
//! quoted-printable decoded.

use base64::Engine;

/// One part of a received mail: its headers and decoded body.
#[derive(Debug)]
pub struct Part {
    pub head: String,
    pub body: String,
}

pub fn header(head: &str, name: &str) -> String {
    let prefix = format!("{}:", name.to_ascii_lowercase());
    let mut lines = head
        .lines()
        .skip_while(|l| !l.to_ascii_lowercase().starts_with(&prefix));
    let Some(first) = lines.next() else {
        return String::new();
    };
    let mut value = first[prefix.len()..].trim().to_owned();
    for more in lines.take_while(|l| l.starts_with([' ', '\t'])) {
        value.push(' ');
        value.push_str(more.trim());
    }
    value
}

/// RFC 2047 base64 words, joined before decoding (a word may end inside a character).
pub fn decode_words(value: &str) -> String {
    let mut bytes = Vec::new();
    for word in value.split_whitespace() {
        let inner = word
            .strip_prefix("=?utf-8?b?")
            .or_else(|| word.strip_prefix("=?UTF-8?B?"))
            .and_then(|w| w.strip_suffix("?="));
        match inner {
            Some(b64) => bytes.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap_or_default(),
            ),
            None => {
                if !bytes.is_empty() {
                    bytes.push(b' ');
                }
                bytes.extend(word.as_bytes());
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Quoted-printable: soft line breaks and `=XX` bytes.
fn quoted_printable(body: &str) -> String {
    let joined = body.replace("=\n", "");
    let raw = joined.as_bytes();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'='
            && i + 2 < raw.len()
            && let Some(byte) = std::str::from_utf8(&raw[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn decode(head: &str, body: &str) -> String {
    match header(head, "Content-Transfer-Encoding")
        .to_ascii_lowercase()
        .as_str()
    {
        "base64" => {
            let joined: String = body.split_whitespace().collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(joined)
                .unwrap_or_default();
            String::from_utf8_lossy(&bytes).replace("\r\n", "\n")
        }
        "quoted-printable" => quoted_printable(body),
        _ => body.to_owned(),
    }
}

/// The mail's top headers and its parts (one part for a single-part mail).
pub fn parse(raw: &str) -> (String, Vec<Part>) {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
    let content_type = header(head, "Content-Type");
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .map(|b| b.trim_matches('"').to_owned());
    let Some(boundary) = boundary else {
        return (
            head.to_owned(),
            vec![Part {
                head: head.to_owned(),
                body: decode(head, body),
            }],
        );
    };
    let parts = body
        .split(&format!("--{boundary}"))
        .skip(1)
        .filter(|p| !p.starts_with("--"))
        .filter_map(|p| {
            let p = p.trim_start_matches('\n');
            let (h, b) = p.split_once("\n\n")?;
            Some(Part {
                head: h.to_owned(),
                body: decode(h, b),
            })
        })
        .collect();
    (head.to_owned(), parts)
}
