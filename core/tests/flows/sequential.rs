//! Each variant on a real SQLite database, one request at a time, with the
//! browser's cookie handled by hand: the happy path, every code a variant
//! can answer, and the incident replayed step by step.

use otpsim_core::local::Local;
use otpsim_core::platform::Std;
use otpsim_core::{Code, Request, Response, Session, SessionData, Variant};

const ANA: &str = "ana@example.com";

fn deploy(variant: &str, workers: usize) -> Local<Std> {
    Local::new(variant.parse().unwrap(), workers, 7).unwrap()
}

fn signup(email: &str) -> Request {
    Request::Signup {
        email: email.into(),
        password: "s3cret!".into(),
    }
}

fn verify(email: &str, otp: &str) -> Request {
    Request::Verify {
        email: email.into(),
        otp: otp.into(),
        password: "s3cret!".into(),
    }
}

/// A browser's cookie jar for one site: a response replaces the cookie
/// only when its handler changed the session (Flask's rule).
#[derive(Default)]
struct Browser {
    cookie: Session,
}

impl Browser {
    /// Sends `request` to `worker` and applies the response's cookie.
    fn send(&mut self, local: &Local<Std>, worker: usize, request: &Request) -> Response {
        let (response, cookie) = send_detached(local, worker, &self.cookie, request);
        if let Some(cookie) = cookie {
            self.cookie = cookie;
        }
        response
    }
}

/// Sends a request carrying `cookie` and returns the response with the new
/// cookie, if any, without applying it: the caller decides arrival order.
fn send_detached(
    local: &Local<Std>,
    worker: usize,
    cookie: &Session,
    request: &Request,
) -> (Response, Option<Session>) {
    let mut session = Session::loaded(cookie.data().clone());
    let response = local
        .handle(worker, &mut session, request)
        .expect("no crash without a fault plan");
    let cookie = session.is_modified().then(|| Session::loaded(session.data().clone()));
    (response, cookie)
}

fn code_of(local: &Local<Std>) -> String {
    local.latest_code(ANA).expect("a code was mailed").digits().to_string()
}

/// The latest code with its last digit changed: as long as it, and wrong.
fn wrong_code(local: &Local<Std>) -> String {
    let mut code = code_of(local).into_bytes();
    let last = code.last_mut().unwrap();
    *last = b'0' + (*last - b'0' + 1) % 10;
    String::from_utf8(code).unwrap()
}

#[test]
fn every_variant_completes_the_happy_path() {
    for variant in Variant::MAIN {
        let local = deploy(&variant.to_string(), 1);
        let mut b = Browser::default();
        assert_eq!(b.send(&local, 0, &signup(ANA)).code, Code::Ok, "{variant}");
        assert_eq!(local.pending_count(ANA), 1, "{variant}");
        assert_eq!(local.outbox().len(), 1, "{variant}");
        let r = b.send(&local, 0, &verify(ANA, &code_of(&local)));
        assert_eq!((r.code, r.status()), (Code::Ok, 200), "{variant}: {}", r.message);
        assert_eq!(
            (local.pending_count(ANA), local.account_count(ANA)),
            (0, 1),
            "{variant}"
        );
        assert_eq!(b.cookie.temp_user_id(), None, "{variant}: the session is cleared");
    }
}

#[test]
fn every_variant_refuses_malformed_fields() {
    for variant in Variant::MAIN {
        let local = deploy(&variant.to_string(), 1);
        let mut b = Browser::default();
        let no_password = Request::Signup {
            email: ANA.into(),
            password: String::new(),
        };
        for request in [
            signup("not-an-email"),
            no_password.clone(),
            verify(ANA, "123"),
            verify(ANA, "123456789012345678901"),
            verify(ANA, "abcdef"),
        ] {
            // Idempotent takes the password on the verify form.
            if request == no_password && !variant.password_at_signup() {
                continue;
            }
            let r = b.send(&local, 0, &request);
            assert_eq!(r.code, Code::BadRequest, "{variant} {request:?}");
            assert!(!r.message.is_empty());
        }
        assert_eq!(local.pending_count(ANA), 0);
    }
    // Idempotent's signup without a password is a signup.
    let local = deploy("idempotent", 1);
    let r = Browser::default().send(
        &local,
        0,
        &Request::Signup {
            email: ANA.into(),
            password: String::new(),
        },
    );
    assert_eq!(r.code, Code::Ok, "{}", r.message);
}

#[test]
fn naive_reproduces_the_incident() {
    let local = deploy("naive", 1);
    let mut b = Browser::default();
    // Two signups leave the browser with the same cookie (none)…
    let (first, first_cookie) = send_detached(&local, 0, &b.cookie, &signup(ANA));
    local.advance_ms(3000);
    let (second, second_cookie) = send_detached(&local, 0, &b.cookie, &signup(ANA));
    assert_eq!((first.code, second.code), (Code::Ok, Code::Ok));
    // …and their responses arrive in the other order: the first one last.
    b.cookie = second_cookie.unwrap();
    b.cookie = first_cookie.unwrap();
    let stale = b.cookie.temp_user_id().unwrap().to_string();
    assert!(stale.starts_with("temp_1753562929_"), "{stale}");
    // The user types the code of the newest email, which they really have.
    let r = b.send(&local, 0, &verify(ANA, &code_of(&local)));
    assert_eq!(r.status(), 404);
    assert_eq!(r.code, Code::NoRegistration);
    assert_eq!(r.message, format!("No temp_registration found for temp_id: {stale}"));
    assert_eq!(local.account_count(ANA), 0);
}

#[test]
fn naive_answers_each_of_its_codes() {
    let local = deploy("naive", 1);
    let mut b = Browser::default();
    assert_eq!(b.send(&local, 0, &verify(ANA, "123456")).code, Code::SessionMissing);
    b.send(&local, 0, &signup(ANA));
    assert_eq!(
        b.send(&local, 0, &verify(ANA, &wrong_code(&local))).code,
        Code::InvalidOtp
    );
    local.advance_ms(10 * 60 * 1000);
    assert_eq!(b.send(&local, 0, &verify(ANA, &code_of(&local))).code, Code::OtpExpired);
    b.send(&local, 0, &signup(ANA));
    assert_eq!(b.send(&local, 0, &verify(ANA, &code_of(&local))).code, Code::Ok);
    // Naive lets an account's email sign up again; verifying that second
    // registration hits the UNIQUE email of `users` and escapes as a 500.
    b.send(&local, 0, &signup(ANA));
    let r = b.send(&local, 0, &verify(ANA, &code_of(&local)));
    assert_eq!(
        (r.code, r.message.as_str()),
        (Code::ServerError, "Internal Server Error")
    );
}

#[test]
fn seed_fix_answers_429_inside_two_seconds_on_the_same_worker_only() {
    let local = deploy("seed_fix", 2);
    let mut b = Browser::default();
    assert_eq!(b.send(&local, 0, &signup(ANA)).code, Code::Ok);
    local.advance_ms(1999);
    let r = b.send(&local, 0, &signup(ANA));
    assert_eq!(
        (r.code, r.status(), r.message.as_str()),
        (Code::TooManyRequests, 429, "Please wait before trying again")
    );
    // The lock table is per process: another worker lets it through.
    assert_eq!(b.send(&local, 1, &signup(ANA)).code, Code::Ok);
    local.advance_ms(1);
    assert_eq!(b.send(&local, 0, &signup(ANA)).code, Code::Ok);
    let without_dedup = deploy("seed_fix-dedup", 1);
    b.send(&without_dedup, 0, &signup(ANA));
    assert_eq!(b.send(&without_dedup, 0, &signup(ANA)).code, Code::Ok);
}

#[test]
fn seed_fix_fallback_recovers_the_incident_and_without_it_does_not() {
    for (variant, expected) in [("seed_fix", Code::Ok), ("seed_fix-fallback", Code::NoRegistration)] {
        let local = deploy(variant, 1);
        let mut b = Browser::default();
        let (_, first_cookie) = send_detached(&local, 0, &b.cookie, &signup(ANA));
        local.advance_ms(3000);
        let (_, second_cookie) = send_detached(&local, 0, &b.cookie, &signup(ANA));
        b.cookie = second_cookie.unwrap();
        b.cookie = first_cookie.unwrap();
        let r = b.send(&local, 0, &verify(ANA, &code_of(&local)));
        assert_eq!(r.code, expected, "{variant}: {}", r.message);
    }
}

#[test]
fn seed_fix_answers_each_of_its_codes() {
    let local = deploy("seed_fix", 1);
    let mut b = Browser::default();
    assert_eq!(b.send(&local, 0, &verify(ANA, "123456")).code, Code::SessionMissing);
    b.send(&local, 0, &signup(ANA));
    let old_cookie = Session::loaded(SessionData {
        temp_user_id: b.cookie.temp_user_id().map(Into::into),
        ..SessionData::default()
    });
    assert_eq!(
        b.send(&local, 0, &verify(ANA, &wrong_code(&local))).code,
        Code::InvalidOtp
    );
    local.advance_ms(10 * 60 * 1000);
    assert_eq!(b.send(&local, 0, &verify(ANA, &code_of(&local))).code, Code::OtpExpired);
    b.send(&local, 0, &signup(ANA));
    assert_eq!(b.send(&local, 0, &verify(ANA, &code_of(&local))).code, Code::Ok);
    // A stale cookie without the email key: no row, nothing to fall back on.
    let (r, _) = send_detached(&local, 0, &old_cookie, &verify(ANA, "123456"));
    assert_eq!(r.code, Code::NoRegistration);
    local.advance_ms(2000);
    b.send(&local, 0, &signup(ANA));
    let r = b.send(&local, 0, &verify(ANA, &code_of(&local)));
    assert_eq!(r.code, Code::ServerError);
    assert!(r.message.contains("database error"), "{}", r.message);
    assert_eq!(
        local.account_count(ANA),
        1,
        "the best-effort cleanup removed nothing it did not insert"
    );
}

#[test]
fn idempotent_reuses_the_pending_registration_for_a_duplicate_signup() {
    let local = deploy("idempotent", 2);
    let (mut tab1, mut tab2) = (Browser::default(), Browser::default());
    tab1.send(&local, 0, &signup(ANA));
    local.advance_ms(3000);
    tab2.send(&local, 1, &signup(ANA));
    let mails = local.outbox();
    assert_eq!(mails.len(), 2, "the duplicate re-sends the code");
    assert_eq!(mails[0].otp, mails[1].otp, "…the same code");
    assert_eq!(mails[0].temp_id, mails[1].temp_id);
    assert_eq!(tab1.cookie.temp_user_id(), tab2.cookie.temp_user_id());
    assert_eq!(local.pending_count(ANA), 1);
    // Either email's code works from either tab.
    assert_eq!(tab1.send(&local, 1, &verify(ANA, mails[0].otp.digits())).code, Code::Ok);
}

#[test]
fn idempotent_answers_already_verified_only_to_the_right_code() {
    let local = deploy("idempotent", 1);
    let mut b = Browser::default();
    b.send(&local, 0, &signup(ANA));
    let code = code_of(&local);
    assert_eq!(b.send(&local, 0, &verify(ANA, &code)).code, Code::Ok);
    let again = b.send(&local, 0, &verify(ANA, &code));
    assert_eq!((again.code, again.status()), (Code::AlreadyVerified, 200));
    assert_eq!(
        b.send(&local, 0, &verify(ANA, &wrong_code(&local))).code,
        Code::InvalidOtp
    );
    assert_eq!(local.account_count(ANA), 1);
    assert_eq!(
        b.send(&local, 0, &signup(ANA)).code,
        Code::BadRequest,
        "an account exists"
    );
}

#[test]
fn idempotent_never_accepts_a_wrong_code_and_locks_after_max_attempts() {
    let local = deploy("idempotent", 1);
    let mut b = Browser::default();
    b.send(&local, 0, &signup(ANA));
    let max = local.config.max_attempts;
    for n in 0..max {
        let r = b.send(&local, 0, &verify(ANA, &wrong_code(&local)));
        assert_eq!(r.code, Code::InvalidOtp, "attempt {n}");
    }
    let r = b.send(&local, 0, &verify(ANA, &code_of(&local)));
    assert_eq!(
        (r.code, r.status()),
        (Code::Locked, 423),
        "even the right code once locked"
    );
    assert_eq!(local.account_count(ANA), 0);
    // A new signup after the lockout mails a recovery code, too long to
    // guess: the locked code stays locked, and a stranger's guesses lock
    // nothing.
    let first = code_of(&local);
    assert_eq!(b.send(&local, 0, &signup(ANA)).code, Code::Ok);
    let recovery = code_of(&local);
    assert_eq!(recovery.len(), 20, "a recovery code after a lockout");
    assert_eq!(b.send(&local, 0, &verify(ANA, &first)).code, Code::Locked);
    let mut stranger = Browser::default();
    for _ in 0..max + 1 {
        assert_eq!(
            stranger.send(&local, 0, &verify(ANA, &wrong_code(&local))).code,
            Code::Locked
        );
        assert_eq!(stranger.send(&local, 0, &verify(ANA, "123456")).code, Code::Locked);
    }
    // Bound to no session: any browser of hers that holds the mail.
    let mut other_tab = Browser::default();
    assert_eq!(other_tab.send(&local, 0, &verify(ANA, &recovery)).code, Code::Ok);
    assert_eq!(local.account_count(ANA), 1);
}

#[test]
fn idempotent_answers_each_of_its_codes() {
    let local = deploy("idempotent", 1);
    let mut b = Browser::default();
    assert_eq!(b.send(&local, 0, &verify(ANA, "123456")).code, Code::NoRegistration);
    assert_eq!(b.send(&local, 0, &verify("nope", "123456")).code, Code::BadRequest);
    b.send(&local, 0, &signup(ANA));
    let no_password = Request::Verify {
        email: ANA.into(),
        otp: code_of(&local),
        password: String::new(),
    };
    assert_eq!(b.send(&local, 0, &no_password).code, Code::BadRequest);
    for _ in 1..otpsim_core::flows::MAX_SENDS {
        assert_eq!(b.send(&local, 0, &signup(ANA)).code, Code::Ok);
    }
    assert_eq!(b.send(&local, 0, &signup(ANA)).code, Code::TooManyRequests);
    assert_eq!(local.outbox().len() as i64, otpsim_core::flows::MAX_SENDS);
    local.advance_ms(local.config.otp_ttl_ms);
    assert_eq!(b.send(&local, 0, &verify(ANA, &code_of(&local))).code, Code::OtpExpired);
}

#[test]
fn idempotent_re_sends_its_code_with_a_full_ttl_while_it_lives_and_a_fresh_one_after() {
    let local = deploy("idempotent", 1);
    let mut b = Browser::default();
    b.send(&local, 0, &signup(ANA));
    let first = code_of(&local);
    local.advance_ms(local.config.otp_ttl_ms - 1000);
    // A second signup 1 s before expiry: the code it re-sends lives a full
    // otp_ttl from this mail, not 1 s.
    assert_eq!(b.send(&local, 0, &signup(ANA)).code, Code::Ok);
    assert_eq!(code_of(&local), first);
    local.advance_ms(local.config.otp_ttl_ms - 1);
    assert_eq!(b.send(&local, 0, &verify(ANA, &first)).code, Code::Ok);

    // Long dead, the code stays dead: a signup mails a fresh one (mailing
    // the old one again revived it while the mail was on its way, which
    // `codes_expire` reads as a code living past its promise).
    let local = deploy("idempotent", 1);
    b.send(&local, 0, &signup(ANA));
    let first = code_of(&local);
    local.advance_ms(10 * local.config.otp_ttl_ms);
    assert_eq!(b.send(&local, 0, &verify(ANA, &first)).code, Code::OtpExpired);
    assert_eq!(b.send(&local, 0, &signup(ANA)).code, Code::Ok);
    let fresh = code_of(&local);
    assert_ne!(fresh, first, "a fresh code");
    assert_eq!(b.send(&local, 0, &verify(ANA, &first)).code, Code::OtpExpired);
    assert_eq!(b.send(&local, 0, &verify(ANA, &fresh)).code, Code::Ok);
}

fn login(email: &str, password: &str) -> Request {
    Request::Login {
        email: email.into(),
        password: password.into(),
    }
}

#[test]
fn login_is_shared_and_answers_one_401_for_every_refusal() {
    for variant in Variant::MAIN {
        let local = deploy(&variant.to_string(), 1);
        let mut b = Browser::default();
        assert_eq!(
            b.send(&local, 0, &login(ANA, "s3cret!")).code,
            Code::BadCredentials,
            "{variant}: unknown"
        );
        b.send(&local, 0, &signup(ANA));
        assert_eq!(
            b.send(&local, 0, &login(ANA, "s3cret!")).code,
            Code::BadCredentials,
            "{variant}: unverified"
        );
        b.send(&local, 0, &verify(ANA, &code_of(&local)));
        let wrong = b.send(&local, 0, &login(ANA, "guess"));
        assert_eq!((wrong.code, wrong.status()), (Code::BadCredentials, 401), "{variant}");
        assert_eq!(b.send(&local, 0, &login(ANA, "s3cret!")).code, Code::Ok, "{variant}");
        assert_eq!(b.cookie.user(), Some(ANA), "{variant}: logged in");
    }
}

/// A stranger who knows ana's address signs up for it after her, with a
/// password of his own; ana types the newest code in her mailbox (the one
/// the stranger's signup sent her) and verifies.
fn stranger_signs_up_after_the_owner(variant: &str) -> (Local<Std>, Response) {
    let local = deploy(variant, 1);
    let (mut ana, mut mallory) = (Browser::default(), Browser::default());
    ana.send(&local, 0, &signup(ANA));
    local.advance_ms(3000);
    let evil = Request::Signup {
        email: ANA.into(),
        password: "mallory's".into(),
    };
    mallory.send(&local, 0, &evil);
    ana.send(&local, 0, &verify(ANA, &code_of(&local)));
    let r = mallory.send(&local, 0, &login(ANA, "mallory's"));
    (local, r)
}

#[test]
fn the_seed_fix_lets_a_stranger_choose_the_password_and_idempotent_does_not() {
    let (_, r) = stranger_signs_up_after_the_owner("seed_fix");
    assert_eq!(r.code, Code::Ok, "the fallback verified the stranger's registration");
    let (local, r) = stranger_signs_up_after_the_owner("idempotent");
    assert_eq!(r.code, Code::BadCredentials);
    assert_eq!(local.account_count(ANA), 1);
    let owner = Browser::default().send(&local, 0, &login(ANA, "s3cret!"));
    assert_eq!(owner.code, Code::Ok, "the password typed on the verify form");
}

#[test]
fn a_broken_database_is_a_500_for_naive_and_a_clean_503_for_idempotent() {
    for (variant, expected) in [
        ("naive", Code::ServerError),
        ("seed_fix", Code::ServerError),
        ("idempotent", Code::Retry),
    ] {
        let local = deploy(variant, 1);
        local
            .store()
            .inspect(|p| p.connection().execute_batch("DROP TABLE temp_registrations"))
            .unwrap();
        let r = Browser::default().send(&local, 0, &signup(ANA));
        assert_eq!(r.code, expected, "{variant}");
        assert!(
            !r.message.to_lowercase().contains("select") && !r.message.contains("temp_registrations"),
            "{variant}: raw SQL leaked: {}",
            r.message
        );
        assert!(local.outbox().is_empty(), "{variant}: no code mailed");
    }
}

/// Survivors of cargo-mutants (docs/ci.md): the count of attempts left
/// that a wrong code is told, and a browser that locks its own recovery
/// code getting a new one from its next signup.
#[test]
fn idempotent_counts_down_attempts_and_re_sends_one_recovery_code() {
    let local = deploy("idempotent", 1);
    let max = local.config.max_attempts;
    let mut b = Browser::default();
    b.send(&local, 0, &signup(ANA));
    for n in 1..=max {
        let r = b.send(&local, 0, &verify(ANA, &wrong_code(&local)));
        assert!(
            r.message.contains(&format!("{} attempts left", max - n)),
            "{n}: {}",
            r.message
        );
    }
    // Locked. A stranger's signup asks for the recovery code: it goes to
    // the address, and his guesses against it count nothing.
    let mut stranger = Browser::default();
    assert_eq!(stranger.send(&local, 0, &signup(ANA)).code, Code::Ok);
    let recovery = code_of(&local);
    for _ in 0..3 * max {
        assert_eq!(
            stranger.send(&local, 0, &verify(ANA, &wrong_code(&local))).code,
            Code::Locked
        );
    }
    // Her own signup, and a double-click of it, re-send the same recovery
    // code: whichever answer her browser keeps, the mail she types works.
    assert_eq!(b.send(&local, 0, &signup(ANA)).code, Code::Ok);
    assert_eq!(b.send(&local, 0, &signup(ANA)).code, Code::Ok);
    assert_eq!(code_of(&local), recovery);
    assert_eq!(local.outbox().iter().filter(|m| m.otp.digits() == recovery).count(), 3);
    assert_eq!(b.send(&local, 0, &verify(ANA, &recovery)).code, Code::Ok);
}

#[test]
fn idempotent_mails_a_code_again_once_its_promise_is_over_however_often_it_went() {
    let local = deploy("idempotent", 1);
    let ttl = local.config.otp_ttl_ms;
    let mut b = Browser::default();
    for n in 0..otpsim_core::flows::MAX_SENDS {
        assert_eq!(b.send(&local, 0, &signup(ANA)).code, Code::Ok, "send {n}");
    }
    assert_eq!(b.send(&local, 0, &signup(ANA)).code, Code::TooManyRequests);
    // To the millisecond when the last mail's promise ends: the count
    // starts again, and the code goes out with a new lifetime.
    local.advance_ms(ttl);
    assert_eq!(b.send(&local, 0, &signup(ANA)).code, Code::Ok);
    assert_eq!(local.outbox().len(), otpsim_core::flows::MAX_SENDS as usize + 1);
}

fn resend(email: &str) -> Request {
    Request::Resend {
        email: email.into(),
        password: "s3cret!".into(),
    }
}

#[test]
fn idempotent_resends_the_pending_code_and_never_resets_its_attempt_count() {
    let local = deploy("idempotent", 1);
    let max = local.config.max_attempts;
    let mut b = Browser::default();
    // Nothing pending: a resend makes no registration and mails nothing.
    assert_eq!(b.send(&local, 0, &resend(ANA)).code, Code::NoRegistration);
    assert!(local.outbox().is_empty());
    b.send(&local, 0, &signup(ANA));
    let first = code_of(&local);
    // The same code, with a new lifetime from its mail.
    local.advance_ms(local.config.otp_ttl_ms - 1000);
    assert_eq!(b.send(&local, 0, &resend(ANA)).code, Code::Ok);
    assert_eq!((code_of(&local), local.outbox().len()), (first.clone(), 2));
    local.advance_ms(local.config.otp_ttl_ms - 1);
    // Wrong codes before and after a resend count against one limit.
    let mut stranger = Browser::default();
    for n in 1..max {
        assert_eq!(
            stranger.send(&local, 0, &verify(ANA, &wrong_code(&local))).code,
            Code::InvalidOtp,
            "{n}"
        );
    }
    assert_eq!(stranger.send(&local, 0, &resend(ANA)).code, Code::Ok);
    assert_eq!(
        stranger.send(&local, 0, &verify(ANA, &wrong_code(&local))).code,
        Code::InvalidOtp
    );
    assert_eq!(stranger.send(&local, 0, &verify(ANA, &first)).code, Code::Locked);
    // Locked: a resend does not bring the recovery code; a signup does.
    assert_eq!(b.send(&local, 0, &resend(ANA)).code, Code::Locked);
    assert_eq!(code_of(&local), first);
    assert_eq!(b.send(&local, 0, &signup(ANA)).code, Code::Ok);
    let recovery = code_of(&local);
    assert_eq!(recovery.len(), 20);
    // The recovery code is re-sent like any pending code.
    assert_eq!(b.send(&local, 0, &resend(ANA)).code, Code::Ok);
    assert_eq!(code_of(&local), recovery);
    assert_eq!(b.send(&local, 0, &verify(ANA, &recovery)).code, Code::Ok);
    // An account: nothing to resend.
    assert_eq!(b.send(&local, 0, &resend(ANA)).code, Code::BadRequest);
}

#[test]
fn idempotent_resends_a_fresh_code_after_the_lifetime_with_a_count_of_its_own() {
    let local = deploy("idempotent", 1);
    let max = local.config.max_attempts;
    let mut b = Browser::default();
    b.send(&local, 0, &signup(ANA));
    let first = code_of(&local);
    let mut stranger = Browser::default();
    for _ in 1..max {
        stranger.send(&local, 0, &verify(ANA, &wrong_code(&local)));
    }
    local.advance_ms(local.config.otp_ttl_ms);
    assert_eq!(stranger.send(&local, 0, &resend(ANA)).code, Code::Ok);
    let fresh = code_of(&local);
    assert_ne!(fresh, first, "an expired code is not mailed again");
    // Guesses at the old code tell nothing of the fresh one, and do not
    // lock its owner out of it.
    assert_eq!(
        stranger.send(&local, 0, &verify(ANA, &wrong_code(&local))).code,
        Code::InvalidOtp
    );
    assert_eq!(b.send(&local, 0, &verify(ANA, &fresh)).code, Code::Ok);
}

#[test]
fn a_flow_without_its_own_resend_takes_it_as_the_signup_sent_again() {
    for variant in ["naive", "seed_fix"] {
        let local = deploy(variant, 1);
        let mut b = Browser::default();
        b.send(&local, 0, &signup(ANA));
        let first = code_of(&local);
        // Past seed_fix's 2 s window for a duplicate signup.
        local.advance_ms(3000);
        assert_eq!(b.send(&local, 0, &resend(ANA)).code, Code::Ok, "{variant}");
        assert_eq!(local.outbox().len(), 2, "{variant}");
        let latest = code_of(&local);
        // The code the resend mailed verifies; the account has the
        // password the browser signed up with.
        assert_eq!(
            b.send(&local, 0, &verify(ANA, &latest)).code,
            Code::Ok,
            "{variant}: {first} then {latest}"
        );
        assert_eq!(b.send(&local, 0, &login(ANA, "s3cret!")).code, Code::Ok, "{variant}");
    }
}
