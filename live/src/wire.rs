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
