//! What the harness and `otpsim serve` agree on over the wire, and
//! nothing else: the header that labels a request, and the payload of a
//! Flask-style session cookie. The harness reads any target's cookies
//! through this, never through the server's own module.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use otpsim_core::SessionData;

/// The header with a request's number in the scenario, which the live
/// executor's browsers send (the proxy stamps it on requests that come
/// without); `serve` copies it into the mail the request sends, so that a
/// mail is tied to the request that sent it. It is only a label: a
/// client that forges it mislabels its own mail and nothing else.
pub const REQUEST_HEADER: &str = "x-otpsim-request";

/// The session as JSON with Flask's keys.
pub fn data_to_json(data: &SessionData) -> String {
    let mut map = serde_json::Map::new();
    for (key, value) in [
        ("temp_user_id", &data.temp_user_id),
        ("email", &data.email),
        ("user", &data.user),
    ] {
        if let Some(v) = value {
            map.insert(key.to_string(), serde_json::Value::String(v.clone()));
        }
    }
    serde_json::Value::Object(map).to_string()
}

/// A session from JSON with Flask's keys (others ignored).
pub fn data_from_json(json: &str) -> Option<SessionData> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    let get = |k: &str| value.get(k).and_then(|v| v.as_str()).map(str::to_string);
    value.as_object()?;
    Some(SessionData {
        temp_user_id: get("temp_user_id"),
        email: get("email"),
        user: get("user"),
    })
}

/// What a session cookie's payload says, without checking the
/// signature: what a harness shows in a trace (Flask's cookies start
/// the same way, `base64url(JSON).…`).
pub fn read(value: &str) -> Option<SessionData> {
    let payload = value.split('.').next()?;
    let json = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    data_from_json(std::str::from_utf8(&json).ok()?)
}

/// What anyone holding a cookie can read of it without its key: the value,
/// percent-decoded, and each of its `.`- or `:`-separated parts that is
/// base64 of text, inflated where it is compressed (Flask's and Django's
/// signed cookies mark that with a leading `.`). Signed is not encrypted:
/// an attacker reads these, and so does [`Sightings`](otpsim_model::network::Sightings).
pub fn readable(value: &str) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    use std::io::Read as _;
    // Percent-decoded only: a `+` of standard base64 stays a `+`.
    let value = percent_encoding::percent_decode_str(value)
        .decode_utf8_lossy()
        .into_owned();
    let compressed = value.starts_with('.');
    let mut texts = vec![value.clone()];
    for part in value.split(['.', ':']).filter(|p| p.len() >= 4) {
        let bare = part.trim_end_matches('=');
        let Some(bytes) = [
            URL_SAFE_NO_PAD.decode(bare).ok(),
            STANDARD.decode(part).ok(),
            URL_SAFE.decode(part).ok(),
        ]
        .into_iter()
        .flatten()
        .next() else {
            continue;
        };
        let mut inflated = Vec::new();
        let bytes = match compressed
            && flate2::read::ZlibDecoder::new(&bytes[..])
                .take(1 << 20)
                .read_to_end(&mut inflated)
                .is_ok()
        {
            true => inflated,
            false => bytes,
        };
        if let Ok(text) = String::from_utf8(bytes) {
            if text.chars().all(|c| !c.is_control() || c.is_whitespace()) {
                texts.push(text);
            }
        }
    }
    texts
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn a_signed_cookie_is_read_without_its_key_compressed_or_not() {
        let json = r#"{"pending":{"code":"424242","email":"ana@example.com"}}"#;
        // Flask: base64url(JSON).timestamp.signature
        let flask = format!("{}.Zx1a2b.c2lnbmF0dXJl", URL_SAFE_NO_PAD.encode(json));
        assert!(readable(&flask).iter().any(|t| t == json), "{:?}", readable(&flask));
        // Flask and Django, compressed: a leading dot, then zlib.
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(json.as_bytes()).unwrap();
        let django = format!(".{}:1tGh2k:c2lnbmF0dXJlcw", URL_SAFE_NO_PAD.encode(z.finish().unwrap()));
        assert!(readable(&django).iter().any(|t| t == json), "{:?}", readable(&django));
        // Express's signed cookie: s:value.signature, percent-encoded.
        let express = "s%3A%7B%22code%22%3A%22424242%22%7D.c2lnbmF0dXJl";
        assert!(readable(express).iter().any(|t| t.contains(r#"{"code":"424242"}"#)));
        // An opaque id reads as itself and nothing else.
        assert_eq!(readable("9f8e7d6c"), ["9f8e7d6c"]);
    }
}
