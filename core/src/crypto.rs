//! Keyed hashing and constant-time comparison for codes and passwords.
//!
//! Codes never sit in the database in the clear in the `idempotent` flow:
//! it stores `HMAC(secret, email, code)` and derives the code it mails from
//! the secret and the registration, so a duplicate signup can re-send the
//! same code without keeping it.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::domain::Otp;

/// HMAC-SHA256 of the parts, each length-prefixed so that no two lists of
/// parts hash alike.
pub fn mac(secret: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    for part in parts {
        m.update(&(part.len() as u64).to_be_bytes());
        m.update(part);
    }
    m.finalize().into_bytes().into()
}

/// Lower-case hex, for storing a MAC in a TEXT column. Written out, not
/// through `format!` a byte: a schedule of idempotent hashes several
/// codes and passwords, and thirty-two allocations a hash showed in its
/// profile (BENCHMARKS.md, session 24).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * bytes.len());
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// Equality that takes the same time wherever the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// A stand-in for a password hash (a real deployment uses a slow KDF; the
/// races under test do not depend on which).
pub fn password_hash(secret: &[u8], email: &str, password: &str) -> String {
    hex(&mac(secret, &[b"password", email.as_bytes(), password.as_bytes()]))
}

/// The code of a registration, derived from the secret so that it can be
/// mailed again without being stored.
pub fn derive_code(secret: &[u8], email: &str, temp_id: &str) -> Otp {
    let m = mac(secret, &[b"code", email.as_bytes(), temp_id.as_bytes()]);
    Otp::from_number(u64::from_be_bytes(m[..8].try_into().expect("8 bytes")))
}

/// The recovery code mailed after a lockout: [`Otp::MAX`] digits (66
/// bits), derived like [`derive_code`] but never equal to it. Nobody
/// guesses it online, so it needs no attempt limit a stranger could use
/// to lock the owner out again.
pub fn derive_recovery_code(secret: &[u8], email: &str, temp_id: &str) -> Otp {
    let m = mac(secret, &[b"recovery", email.as_bytes(), temp_id.as_bytes()]);
    Otp::from_wide(u128::from_be_bytes(m[..16].try_into().expect("16 bytes")), Otp::MAX)
}

/// What the database keeps of a code: bound to the address it was mailed to.
pub fn code_mac(secret: &[u8], email: &str, code: &Otp) -> String {
    hex(&mac(secret, &[b"code-mac", email.as_bytes(), code.digits().as_bytes()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_macs_bind_the_address_and_the_code() {
        let code = Otp::parse("123456").unwrap();
        let a = code_mac(b"k", "a@x.org", &code);
        assert_eq!(a.len(), 64);
        assert_eq!(a, code_mac(b"k", "a@x.org", &code));
        assert_ne!(a, code_mac(b"k", "b@x.org", &code));
        assert_ne!(a, code_mac(b"k", "a@x.org", &Otp::parse("123457").unwrap()));
        assert_ne!(a, code_mac(b"other", "a@x.org", &code));
    }

    #[test]
    fn derived_codes_depend_on_the_registration() {
        let one = derive_code(b"k", "a@x.org", "temp_1_00000001");
        assert_eq!(one, derive_code(b"k", "a@x.org", "temp_1_00000001"));
        assert_ne!(one, derive_code(b"k", "a@x.org", "temp_1_00000002"));
    }

    #[test]
    fn recovery_codes_are_long_and_depend_on_the_registration() {
        let recovery = derive_recovery_code(b"k", "a@x.org", "temp_1_00000001");
        assert_eq!(recovery.digits().len(), Otp::MAX);
        assert_ne!(recovery, derive_recovery_code(b"k", "a@x.org", "temp_1_00000002"));
    }

    #[test]
    fn hex_is_two_lower_case_digits_a_byte() {
        let every: Vec<u8> = (0..=255).collect();
        let formatted: String = every.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex(&every), formatted);
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
