//! The domain of the signup/verify flow: validated values at the edge,
//! requests, responses with the status/code table of `docs/flows.md`, and
//! the session a browser carries.

use std::fmt;

/// Why a value from outside was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not an email address.
    #[error("not an email address: {0:?} (expected local@domain.tld)")]
    Email(String),
    /// Not a code of 4 to 20 digits.
    #[error("not a code: {0:?} (expected 4 to 20 digits)")]
    Otp(String),
    /// Not a temp_id.
    #[error("not a temp_id: {0:?} (expected temp_<unix secs>_<8 lowercase hex>)")]
    TempId(String),
}

/// An email address, trimmed and lower-cased, so that `Ana@X.org` and
/// `ana@x.org` are one registration.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Email(String);

impl Email {
    /// Parses and normalises an address.
    pub fn parse(raw: &str) -> Result<Email, ParseError> {
        let s = raw.trim().to_ascii_lowercase();
        let bad = || ParseError::Email(raw.to_string());
        let (local, domain) = s.split_once('@').ok_or_else(bad)?;
        let fine =
            |part: &str| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || "._%+-".contains(c));
        let labels_fine = domain.split('.').count() >= 2 && domain.split('.').all(|l| !l.is_empty() && fine(l));
        if s.len() > 254 || !fine(local) || !labels_fine {
            return Err(bad());
        }
        Ok(Email(s))
    }
    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A one-time code: a short run of ASCII digits ([`Otp::MIN`] to
/// [`Otp::MAX`]): the six digits a person types, or a long recovery code
/// nobody can guess. Its `Debug` hides the digits so that a code never
/// reaches a log by accident.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Otp {
    digits: [u8; Otp::MAX],
    len: u8,
}

impl Otp {
    /// The fewest digits a code has (apps in the field mail four).
    pub const MIN: usize = 4;
    /// The most: a recovery code of 20 digits is 66 bits, past any online
    /// guessing.
    pub const MAX: usize = 20;

    /// Parses [`Otp::MIN`] to [`Otp::MAX`] ASCII digits, nothing else.
    pub fn parse(raw: &str) -> Result<Otp, ParseError> {
        Otp::checked(raw, Otp::MIN, u8::is_ascii_digit)
    }
    /// Parses a code as another app mails it: 1 to [`Otp::MAX`] ASCII
    /// letters or digits, so that a live run can carry a four-digit code or
    /// an `A7K2QX` one. The flows here still take only [`Otp::parse`]'s.
    pub fn parse_mailed(raw: &str) -> Result<Otp, ParseError> {
        Otp::checked(raw, 1, u8::is_ascii_alphanumeric)
    }
    /// What an attacker types that is no code at all: up to [`Otp::MAX`]
    /// printable ASCII characters, empty included (a malformed code must
    /// reach the app as typed, to see whether it is refused).
    pub fn typed(raw: &str) -> Result<Otp, ParseError> {
        Otp::checked(raw, 0, |b| b.is_ascii_graphic() || *b == b' ')
    }
    /// `raw` as a code, if it has `min` to [`Otp::MAX`] bytes, each `allowed`.
    fn checked(raw: &str, min: usize, allowed: fn(&u8) -> bool) -> Result<Otp, ParseError> {
        let bytes = raw.as_bytes();
        if !(min..=Otp::MAX).contains(&bytes.len()) || !bytes.iter().all(allowed) {
            return Err(ParseError::Otp(raw.to_string()));
        }
        let mut digits = [0; Otp::MAX];
        digits[..bytes.len()].copy_from_slice(bytes);
        Ok(Otp {
            digits,
            len: bytes.len() as u8,
        })
    }
    /// The six-digit code for a number below one million (higher digits
    /// are dropped).
    pub fn from_number(n: u64) -> Otp {
        Otp::from_wide(u128::from(n), 6)
    }
    /// The `len`-digit code (at most [`Otp::MAX`]) for `n`, higher digits
    /// dropped.
    pub fn from_wide(mut n: u128, len: usize) -> Otp {
        let len = len.clamp(Otp::MIN, Otp::MAX);
        let mut digits = [0; Otp::MAX];
        for d in digits[..len].iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
        Otp { digits, len: len as u8 }
    }
    /// The digits, for an email body or a form; never for a log line.
    pub fn digits(&self) -> &str {
        std::str::from_utf8(&self.digits[..usize::from(self.len)]).expect("only ASCII is stored")
    }
}

impl fmt::Debug for Otp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Otp(******)")
    }
}

/// A pending registration's id, `temp_<unix secs>_<8 lowercase hex>`, as the
/// app of the incident makes them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TempId(String);

impl TempId {
    /// The id made at `unix_secs` with 32 random bits.
    pub fn new(unix_secs: u64, random: u32) -> TempId {
        TempId(format!("temp_{unix_secs}_{random:08x}"))
    }
    /// Parses an id in the app's format.
    pub fn parse(raw: &str) -> Result<TempId, ParseError> {
        let bad = || ParseError::TempId(raw.to_string());
        let rest = raw.strip_prefix("temp_").ok_or_else(bad)?;
        let (secs, hex) = rest.split_once('_').ok_or_else(bad)?;
        let secs_fine = !secs.is_empty() && secs.bytes().all(|b| b.is_ascii_digit());
        let hex_fine = hex.len() == 8 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !secs_fine || !hex_fine {
            return Err(bad());
        }
        Ok(TempId(raw.to_string()))
    }
    /// The id as stored and shown.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TempId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which form a request posts: the request's kind, as scenario files,
/// traces and reports name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `POST /signup`
    Signup,
    /// `POST /verify`
    Verify,
    /// `POST /login`
    Login,
    /// `POST /resend`: the "resend the code" link of a pending signup.
    Resend,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 4] = [Kind::Signup, Kind::Verify, Kind::Login, Kind::Resend];
    /// The kind as files and traces write it (and the route's last part).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Signup => "signup",
            Kind::Verify => "verify",
            Kind::Login => "login",
            Kind::Resend => "resend",
        }
    }
    /// Whether the request asks for a code to be mailed, and so may make or
    /// replace a pending registration: a signup, or a resend (which a flow
    /// without its own treats as a signup).
    pub fn mails(self) -> bool {
        matches!(self, Kind::Signup | Kind::Resend)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A request as the browser sends it: raw form fields, validated by the
/// handler so that bad input gets a `bad_request` answer, not a panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `POST /signup`
    Signup {
        /// The address to register.
        email: String,
        /// The chosen password.
        password: String,
    },
    /// `POST /verify`; the form carries the email as a hidden field and
    /// asks for the password again (a variant may ignore it).
    Verify {
        /// The address whose code the user types.
        email: String,
        /// What the user typed.
        otp: String,
        /// The password typed on the verify form.
        password: String,
    },
    /// `POST /login`
    Login {
        /// The account's address.
        email: String,
        /// Its password.
        password: String,
    },
    /// `POST /resend`
    Resend {
        /// The address whose pending code is asked for again.
        email: String,
        /// The password the browser's signup form still holds: a flow with
        /// no resend of its own takes the request as that signup sent
        /// again; `idempotent` ignores it.
        password: String,
    },
}

impl Request {
    /// The email field as sent.
    pub fn email(&self) -> &str {
        match self {
            Request::Signup { email, .. }
            | Request::Verify { email, .. }
            | Request::Login { email, .. }
            | Request::Resend { email, .. } => email,
        }
    }
    /// Which form it posts.
    pub fn kind(&self) -> Kind {
        match self {
            Request::Signup { .. } => Kind::Signup,
            Request::Verify { .. } => Kind::Verify,
            Request::Login { .. } => Kind::Login,
            Request::Resend { .. } => Kind::Resend,
        }
    }
}

/// The error (or success) code of a response; the table of `flows.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    /// 200: done.
    Ok,
    /// 200: a repeated verify of a finished signup.
    AlreadyVerified,
    /// 400: the code does not match.
    InvalidOtp,
    /// 400: the session holds no pending registration.
    SessionMissing,
    /// 400: a malformed field.
    BadRequest,
    /// 401: login refused (unknown address, unverified, or wrong password).
    BadCredentials,
    /// 404: no pending registration for what the request names.
    NoRegistration,
    /// 410: the code is older than `otp_ttl`.
    OtpExpired,
    /// 423: too many wrong codes for this registration.
    Locked,
    /// 429: duplicate or too frequent request.
    TooManyRequests,
    /// 500: an unhandled failure.
    ServerError,
    /// 503: a transient failure; nothing was changed; retry.
    Retry,
}

impl Code {
    /// Every code, in table order.
    pub const ALL: [Code; 12] = [
        Code::Ok,
        Code::AlreadyVerified,
        Code::InvalidOtp,
        Code::SessionMissing,
        Code::BadRequest,
        Code::BadCredentials,
        Code::NoRegistration,
        Code::OtpExpired,
        Code::Locked,
        Code::TooManyRequests,
        Code::ServerError,
        Code::Retry,
    ];
    /// The HTTP status that goes with the code.
    pub fn status(self) -> u16 {
        match self {
            Code::Ok | Code::AlreadyVerified => 200,
            Code::InvalidOtp | Code::SessionMissing | Code::BadRequest => 400,
            Code::BadCredentials => 401,
            Code::NoRegistration => 404,
            Code::OtpExpired => 410,
            Code::Locked => 423,
            Code::TooManyRequests => 429,
            Code::ServerError => 500,
            Code::Retry => 503,
        }
    }
    /// The code as it appears in responses, scenario files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Ok => "ok",
            Code::AlreadyVerified => "already_verified",
            Code::InvalidOtp => "invalid_otp",
            Code::SessionMissing => "session_missing",
            Code::BadRequest => "bad_request",
            Code::BadCredentials => "bad_credentials",
            Code::NoRegistration => "no_registration",
            Code::OtpExpired => "otp_expired",
            Code::Locked => "locked",
            Code::TooManyRequests => "too_many_requests",
            Code::ServerError => "server_error",
            Code::Retry => "retry",
        }
    }
    /// 200 of either kind.
    pub fn is_success(self) -> bool {
        self.status() == 200
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a handler answers. The new session, if any, travels separately in
/// the [`Session`] the handler was given (Flask's rule: a cookie is set
/// whenever the handler changed the session, whatever the status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The code; the status follows from it.
    pub code: Code,
    /// A sentence for people.
    pub message: String,
}

impl Response {
    /// A response with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Response {
        Response {
            code,
            message: message.into(),
        }
    }
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.code.status()
    }
}

/// What a session holds: the keys the flows use (Flask's
/// `session['temp_user_id']`, `session['email']`, and `session['user']`
/// once logged in). A cookie carries it signed; a server keeps it by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionData {
    /// The pending registration the signup made.
    pub temp_user_id: Option<String>,
    /// The address the signup was for.
    pub email: Option<String>,
    /// The account logged in.
    pub user: Option<String>,
}

impl SessionData {
    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        *self == SessionData::default()
    }
}

impl fmt::Display for SessionData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("{}");
        }
        let keys = [
            ("temp_user_id", &self.temp_user_id),
            ("email", &self.email),
            ("user", &self.user),
        ];
        let set: Vec<String> = keys
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect();
        write!(f, "{{{}}}", set.join(", "))
    }
}

/// The session a handler sees, with Flask's `modified` flag: any write
/// marks it, even one that leaves the value as it was.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    data: SessionData,
    modified: bool,
}

impl Session {
    /// A session with these values, as loaded from a cookie or the server.
    pub fn loaded(data: SessionData) -> Session {
        Session { data, modified: false }
    }
    /// What it holds.
    pub fn data(&self) -> &SessionData {
        &self.data
    }
    /// `session.get('temp_user_id')`
    pub fn temp_user_id(&self) -> Option<&str> {
        self.data.temp_user_id.as_deref()
    }
    /// `session.get('email')`
    pub fn email(&self) -> Option<&str> {
        self.data.email.as_deref()
    }
    /// `session.get('user')`
    pub fn user(&self) -> Option<&str> {
        self.data.user.as_deref()
    }
    /// `session['temp_user_id'] = id`
    pub fn set_temp_user_id(&mut self, id: &str) {
        self.data.temp_user_id = Some(id.to_string());
        self.modified = true;
    }
    /// `session['email'] = email`
    pub fn set_email(&mut self, email: &str) {
        self.data.email = Some(email.to_string());
        self.modified = true;
    }
    /// `session['user'] = email`: logged in.
    pub fn set_user(&mut self, email: &str) {
        self.data.user = Some(email.to_string());
        self.modified = true;
    }
    /// Pops the OTP keys (the seed's `clear_otp_session`).
    pub fn clear(&mut self) {
        self.data.temp_user_id = None;
        self.data.email = None;
        self.modified = true;
    }
    /// Whether a handler wrote to the session.
    pub fn is_modified(&self) -> bool {
        self.modified
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_normalised_and_validated() {
        assert_eq!(Email::parse("  Ana@Example.COM ").unwrap().as_str(), "ana@example.com");
        for bad in [
            "",
            "ana",
            "ana@",
            "@x.org",
            "ana@x",
            "a b@x.org",
            "ana@x..org",
            "ana@@x.org",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn otp_is_four_to_twenty_digits_and_hidden_in_debug() {
        assert_eq!(Otp::parse("012345").unwrap().digits(), "012345");
        assert_eq!(Otp::parse("0123").unwrap().digits(), "0123");
        assert_eq!(
            Otp::parse("01234567890123456789").unwrap().digits(),
            "01234567890123456789"
        );
        for bad in ["123", "012345678901234567890", "12345a", "", "١٢٣٤٥٦", " 123456"] {
            assert!(Otp::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(Otp::from_number(42).digits(), "000042");
        assert_eq!(Otp::from_number(1_234_567).digits(), "234567");
        assert_eq!(Otp::from_wide(u128::MAX, Otp::MAX).digits().len(), 20);
        // A six-digit code and a longer one with the same leading digits differ.
        assert_ne!(Otp::parse("123456").unwrap(), Otp::parse("1234560").unwrap());
        assert!(!format!("{:?}", Otp::parse("987654").unwrap()).contains("987654"));
    }

    #[test]
    fn a_mailed_code_is_any_short_run_of_letters_and_digits() {
        for good in ["A7K2QX", "42", "x", "01234567890123456789"] {
            assert_eq!(Otp::parse_mailed(good).unwrap().digits(), good);
        }
        for bad in ["", "12 34", "12-34", "é123", "012345678901234567890"] {
            assert!(Otp::parse_mailed(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Otp::parse("A7K2QX").is_err(), "the flows' own codes stay digits");
        for typed in ["", "12345", "12 34a", "1234567"] {
            assert_eq!(Otp::typed(typed).unwrap().digits(), typed);
        }
        assert!(Otp::typed("12\n34").is_err());
    }

    #[test]
    fn temp_id_matches_the_apps_format() {
        let id = TempId::new(1753562929, 0x84249ea7);
        assert_eq!(id.as_str(), "temp_1753562929_84249ea7");
        assert_eq!(TempId::parse(id.as_str()).unwrap(), id);
        assert_eq!(TempId::new(5, 0xab).as_str(), "temp_5_000000ab");
        for bad in [
            "temp_1_84249EA7",
            "temp__84249ea7",
            "temp_1_84249ea",
            "tmp_1_84249ea7",
            "temp_1x_84249ea7",
        ] {
            assert!(TempId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn codes_carry_the_statuses_of_the_table() {
        let statuses: Vec<u16> = Code::ALL.iter().map(|c| c.status()).collect();
        assert_eq!(statuses, [200, 200, 400, 400, 400, 401, 404, 410, 423, 429, 500, 503]);
        assert!(Code::AlreadyVerified.is_success() && !Code::Retry.is_success());
    }

    #[test]
    fn any_session_write_marks_it_modified() {
        let mut s = Session::loaded(SessionData {
            temp_user_id: Some("temp_1_0000000a".into()),
            ..SessionData::default()
        });
        assert!(!s.is_modified());
        s.set_temp_user_id("temp_1_0000000a");
        assert!(s.is_modified());
        let mut cleared = Session::default();
        cleared.clear();
        assert!(cleared.is_modified() && cleared.temp_user_id().is_none());
    }
}
