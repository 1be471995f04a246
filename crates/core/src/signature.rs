//! The `X-Sqreen-Integrity` signature: lowercase hex of HMAC-SHA256 over the raw body bytes,
//! keyed with the UTF-8 bytes of the secret shown in the Sqreen dashboard.
//!
//! Verify the bytes as they arrived, before any parsing: a body re-serialised from parsed
//! JSON has other bytes and another signature.

use std::fmt;

use ring::hmac;

use crate::secret::Secret;

/// The header Sqreen signs its requests with.
pub const SIGNATURE_HEADER: &str = "X-Sqreen-Integrity";

/// Length of a SHA-256 tag in bytes.
const TAG_LEN: usize = 32;

/// Why a signature was refused. Callers should answer every variant the same way (Sqreen's
/// receivers answer `401`): the variants exist for logs and tests, and none of them carries
/// the expected value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no signature header")]
    Missing,
    #[error("empty signature")]
    Empty,
    #[error("signature is not hexadecimal")]
    NotHex,
    #[error("signature has {0} characters, expected 64")]
    WrongLength(usize),
    #[error("signature does not match any configured secret")]
    Mismatch,
}

/// No secret was given to a [`Verifier`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifierError {
    #[error("at least one webhook secret is needed")]
    NoSecret,
    #[error("webhook secret number {0} is empty")]
    EmptySecret(usize),
}

/// Checks signatures against one or several secrets: one per Sqreen application, and the old
/// and new secret while one is rotated.
#[derive(Clone)]
pub struct Verifier {
    keys: Vec<hmac::Key>,
}

impl Verifier {
    /// A verifier accepting a body signed with any of `secrets`.
    pub fn new<I>(secrets: I) -> Result<Verifier, VerifierError>
    where
        I: IntoIterator,
        I::Item: AsRef<Secret>,
    {
        let mut keys = Vec::new();
        for (i, secret) in secrets.into_iter().enumerate() {
            let secret = secret.as_ref();
            if secret.is_empty() {
                return Err(VerifierError::EmptySecret(i + 1));
            }
            keys.push(hmac::Key::new(
                hmac::HMAC_SHA256,
                secret.expose().as_bytes(),
            ));
        }
        if keys.is_empty() {
            return Err(VerifierError::NoSecret);
        }
        Ok(Verifier { keys })
    }

    /// Checks `signature`, the header's value if the request had one, against `body`.
    ///
    /// The hex may be of either case and surrounded by whitespace. The comparison with each
    /// secret's tag is done in constant time by `ring`.
    pub fn verify(&self, body: &[u8], signature: Option<&[u8]>) -> Result<(), SignatureError> {
        let text = signature.ok_or(SignatureError::Missing)?.trim_ascii();
        if text.is_empty() {
            return Err(SignatureError::Empty);
        }
        if !text.iter().all(u8::is_ascii_hexdigit) {
            return Err(SignatureError::NotHex);
        }
        if text.len() != TAG_LEN * 2 {
            return Err(SignatureError::WrongLength(text.len()));
        }
        let mut tag = [0u8; TAG_LEN];
        if !crate::hex::decode_into(text, &mut tag) {
            return Err(SignatureError::NotHex);
        }
        if self
            .keys
            .iter()
            .any(|key| hmac::verify(key, body, &tag).is_ok())
        {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }

    /// How many secrets this verifier accepts.
    pub fn secret_count(&self) -> usize {
        self.keys.len()
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("secrets", &"[redacted]")
            .field("count", &self.keys.len())
            .finish()
    }
}

impl AsRef<Secret> for Secret {
    fn as_ref(&self) -> &Secret {
        self
    }
}

/// The `X-Sqreen-Integrity` value for `body` signed with `secret`, as Sqreen computes it.
pub fn sign(secret: &Secret, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose().as_bytes());
    crate::hex::encode(hmac::sign(&key, body).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(secrets: &[&str]) -> Verifier {
        Verifier::new(secrets.iter().map(|s| Secret::new(*s))).unwrap()
    }

    #[test]
    fn each_malformed_signature_has_its_own_error() {
        let v = verifier(&["1234"]);
        assert_eq!(v.verify(b"{}", None), Err(SignatureError::Missing));
        assert_eq!(v.verify(b"{}", Some(b"  ")), Err(SignatureError::Empty));
        assert_eq!(v.verify(b"{}", Some(b"zz")), Err(SignatureError::NotHex));
        assert_eq!(
            v.verify(b"{}", Some(b"abcd")),
            Err(SignatureError::WrongLength(4))
        );
        assert_eq!(
            v.verify(b"{}", Some(&[b'0'; 64])),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_body_signed_with_any_configured_secret_is_accepted() {
        let v = verifier(&["old", "new"]);
        for secret in ["old", "new"] {
            let signature = sign(&Secret::new(secret), b"body");
            assert_eq!(v.verify(b"body", Some(signature.as_bytes())), Ok(()));
        }
        let other = sign(&Secret::new("other"), b"body");
        assert_eq!(
            v.verify(b"body", Some(other.as_bytes())),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn upper_case_hex_and_surrounding_whitespace_are_accepted() {
        let v = verifier(&["1234"]);
        let signature = format!(" {} ", sign(&Secret::new("1234"), b"{}").to_uppercase());
        assert_eq!(v.verify(b"{}", Some(signature.as_bytes())), Ok(()));
    }

    #[test]
    fn a_verifier_needs_a_non_empty_secret() {
        assert_eq!(
            Verifier::new(Vec::<Secret>::new()).err(),
            Some(VerifierError::NoSecret)
        );
        assert_eq!(
            Verifier::new([Secret::new("a"), Secret::new("")]).err(),
            Some(VerifierError::EmptySecret(2))
        );
    }

    #[test]
    fn debug_does_not_show_the_keys() {
        assert_eq!(
            format!("{:?}", verifier(&["s3cr3t"])),
            r#"Verifier { secrets: "[redacted]", count: 1 }"#
        );
    }
}
