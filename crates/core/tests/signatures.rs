//! The verifier against every published test vector, and against tampered bodies.

#![allow(clippy::unwrap_used)]

use serde::Deserialize;
use sqreen_webhook_core::samples::sample;
use sqreen_webhook_core::{Secret, SignatureError, Verifier, sign};

#[derive(Deserialize)]
struct Vectors {
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    secret: String,
    body: Option<String>,
    body_file: Option<String>,
    signature: String,
}

impl Vector {
    fn body(&self) -> Vec<u8> {
        match (&self.body, &self.body_file) {
            (Some(body), _) => body.clone().into_bytes(),
            (None, Some(file)) => {
                let name = file.trim_end_matches(".json");
                sample(name)
                    .unwrap_or_else(|| panic!("no sample {name}"))
                    .body
                    .as_bytes()
                    .to_vec()
            }
            (None, None) => panic!("vector without a body"),
        }
    }
}

fn vectors() -> Vec<Vector> {
    let text = include_str!("../fixtures/signatures.json");
    serde_json::from_str::<Vectors>(text).unwrap().vectors
}

#[test]
fn signs_every_vector_as_sqreen_did() {
    for vector in vectors() {
        assert_eq!(
            sign(&Secret::new(vector.secret.as_str()), &vector.body()),
            vector.signature
        );
    }
}

#[test]
fn accepts_every_vector_in_lower_and_upper_case() {
    for vector in vectors() {
        let verifier = Verifier::new([Secret::new(vector.secret.as_str())]).unwrap();
        let body = vector.body();
        assert_eq!(
            verifier.verify(&body, Some(vector.signature.as_bytes())),
            Ok(())
        );
        let upper = vector.signature.to_uppercase();
        assert_eq!(verifier.verify(&body, Some(upper.as_bytes())), Ok(()));
    }
}

#[test]
fn refuses_every_vector_with_a_tampered_body() {
    for vector in vectors() {
        let verifier = Verifier::new([Secret::new(vector.secret.as_str())]).unwrap();
        let mut appended = vector.body();
        appended.push(b' ');
        assert_eq!(
            verifier.verify(&appended, Some(vector.signature.as_bytes())),
            Err(SignatureError::Mismatch)
        );
        let mut flipped = vector.body();
        if let Some(first) = flipped.first_mut() {
            *first ^= 0x01;
            assert_eq!(
                verifier.verify(&flipped, Some(vector.signature.as_bytes())),
                Err(SignatureError::Mismatch)
            );
        }
    }
}

#[test]
fn refuses_a_body_whose_signature_was_made_with_another_secret() {
    for vector in vectors() {
        let verifier = Verifier::new([Secret::new(format!("{}-other", vector.secret))]).unwrap();
        assert_eq!(
            verifier.verify(&vector.body(), Some(vector.signature.as_bytes())),
            Err(SignatureError::Mismatch)
        );
    }
}

#[test]
fn never_hex_decodes_a_secret_that_looks_like_hex() {
    // "1234" as UTF-8 bytes, not as the two bytes 0x12 0x34.
    let as_text = Verifier::new([Secret::new("1234")]).unwrap();
    let vector = vectors()
        .into_iter()
        .find(|v| v.secret == "1234" && v.body.as_deref() == Some("4567"))
        .unwrap();
    assert_eq!(
        as_text.verify(b"4567", Some(vector.signature.as_bytes())),
        Ok(())
    );
}

#[test]
fn a_truncated_or_padded_signature_is_a_length_error() {
    let verifier = Verifier::new([Secret::new("1234")]).unwrap();
    let signature = sign(&Secret::new("1234"), b"{}");
    assert_eq!(
        verifier.verify(b"{}", Some(&signature.as_bytes()[..63])),
        Err(SignatureError::WrongLength(63))
    );
    assert_eq!(
        verifier.verify(b"{}", Some(format!("{signature}00").as_bytes())),
        Err(SignatureError::WrongLength(66))
    );
}
