//! Arduino ESP8266 signed updates (esp8266/Arduino `Updater.cpp`, `tools/signing.py`):
//!
//! ```text
//! image || RSA PKCS#1 v1.5 SHA-256 signature of image || u32 little-endian signature length
//! ```
//!
//! The signature is what `openssl dgst -sha256 -sign key.pem image` writes; the core's tooling
//! makes RSA-2048 keys, so the trailer usually ends `00 01 00 00`. `Updater::end` reads the length
//! from the last four bytes, requires it to equal its key's modulus length, hashes everything
//! before the signature and checks it with BearSSL's `br_rsa_pkcs1_vrfy`. Sign the image the
//! device receives (after gzip when it is compressed). Not produced here: the legacy format of
//! core ≤ 2.5.2 (`--legacy`, a raw digest without DigestInfo).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, UnparsedPublicKey};

use super::{FormatError, rsa_private_key, rsa_public_key};

const PRIVATE_KEY: &str = "an RSA private key (PKCS#8 or PKCS#1 DER, 2048-8192 bits)";
const PUBLIC_KEY: &str = "an RSA public key (SubjectPublicKeyInfo or PKCS#1 DER, 2048-8192 bits)";

/// What [`verify`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The length of the unsigned image at the front of the signed output.
    pub image_len: usize,
}

/// What an external signer must sign: the image itself. The signer hashes it with SHA-256 and
/// makes an RSASSA-PKCS1-v1_5 signature (`openssl dgst -sha256 -sign`, KMS
/// `RSASSA_PKCS1_V1_5_SHA_256`).
pub fn to_be_signed(image: &[u8]) -> Vec<u8> {
    image.to_vec()
}

/// Signs `image` with an RSA private key and appends the trailer.
pub fn sign(image: &[u8], private_key: &[u8]) -> Result<Vec<u8>, FormatError> {
    check_image(image)?;
    let key = rsa_private_key(private_key, PRIVATE_KEY)?;
    let mut signature = vec![0u8; key.public_modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        image,
        &mut signature,
    )
    .map_err(|_| FormatError::SigningFailed)?;
    Ok(trailer(image, &signature))
}

/// Appends an externally made `signature` (raw, big-endian, as OpenSSL writes it) after checking
/// it against `public_key`: a signature that does not verify would only brick the update.
pub fn attach(image: &[u8], signature: &[u8], public_key: &[u8]) -> Result<Vec<u8>, FormatError> {
    check_image(image)?;
    let (key, numbers) = rsa_public_key(public_key, PUBLIC_KEY)?;
    if signature.len() != numbers.n.len() {
        return Err(FormatError::BadSignature);
    }
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key.as_ref())
        .verify(image, signature)
        .map_err(|_| FormatError::BadSignature)?;
    Ok(trailer(image, signature))
}

/// Checks `signed` as `Updater::end` does with `public_key` compiled in.
pub fn verify(signed: &[u8], public_key: &[u8]) -> Result<Verified, FormatError> {
    let (key, numbers) = rsa_public_key(public_key, PUBLIC_KEY)?;
    let split = signed.len().checked_sub(4).ok_or(FormatError::Malformed(
        "shorter than the 4-byte length trailer",
    ))?;
    let (body, len) = signed.split_at(split);
    let sig_len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if sig_len != numbers.n.len() {
        return Err(FormatError::Malformed(
            "the trailer's signature length is not the key's modulus length",
        ));
    }
    let image_len = body
        .len()
        .checked_sub(sig_len)
        .ok_or(FormatError::Malformed("shorter than its signature"))?;
    let (image, signature) = body.split_at(image_len);
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key.as_ref())
        .verify(image, signature)
        .map_err(|_| FormatError::BadSignature)?;
    Ok(Verified { image_len })
}

fn check_image(image: &[u8]) -> Result<(), FormatError> {
    if image.is_empty() {
        Err(FormatError::Malformed("the image is empty"))
    } else {
        Ok(())
    }
}

fn trailer(image: &[u8], signature: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(image.len() + signature.len() + 4);
    out.extend_from_slice(image);
    out.extend_from_slice(signature);
    // A modulus is at most 1 KiB, so its length always fits the u32 field.
    out.extend_from_slice(&(signature.len() as u32).to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::tests_support::{rsa_key, rsa_spki, scramble};

    fn image() -> Vec<u8> {
        let mut image: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        image[0] = 0xE9;
        image
    }

    #[test]
    fn sign_then_verify_round_trips() {
        let key = rsa_key(2048);
        let signed = sign(&image(), &key).unwrap();
        assert_eq!(signed.len(), image().len() + 256 + 4);
        assert_eq!(&signed[..image().len()], image().as_slice());
        assert_eq!(&signed[signed.len() - 4..], &[0x00, 0x01, 0x00, 0x00]);
        assert_eq!(
            verify(&signed, &rsa_spki(&key)),
            Ok(Verified {
                image_len: image().len()
            })
        );
        // PKCS#1 v1.5 is deterministic: the same image and key give the same bytes.
        assert_eq!(sign(&image(), &key).unwrap(), signed);
        assert_eq!(to_be_signed(&image()), image());
    }

    #[test]
    fn attach_builds_the_same_output_and_refuses_a_bad_signature() {
        let key = rsa_key(2048);
        let signed = sign(&image(), &key).unwrap();
        let signature = &signed[image().len()..signed.len() - 4];
        assert_eq!(
            attach(&image(), signature, &rsa_spki(&key)).unwrap(),
            signed
        );
        let mut bad = signature.to_vec();
        bad[10] ^= 1;
        assert_eq!(
            attach(&image(), &bad, &rsa_spki(&key)),
            Err(FormatError::BadSignature)
        );
        assert_eq!(
            attach(&image(), &signature[1..], &rsa_spki(&key)),
            Err(FormatError::BadSignature)
        );
        let other = rsa_key(2048);
        assert_eq!(
            attach(&image(), signature, &rsa_spki(&other)),
            Err(FormatError::BadSignature)
        );
        assert!(matches!(
            attach(&[], signature, &rsa_spki(&key)),
            Err(FormatError::Malformed(_))
        ));
    }

    #[test]
    fn verify_refuses_tampering_wrong_keys_and_truncation() {
        let key = rsa_key(2048);
        let public = rsa_spki(&key);
        let signed = sign(&image(), &key).unwrap();
        for at in [0, 1000, image().len() - 1, image().len(), signed.len() - 5] {
            let mut bad = signed.clone();
            bad[at] ^= 0x01;
            assert_eq!(
                verify(&bad, &public),
                Err(FormatError::BadSignature),
                "{at}"
            );
        }
        let mut bad_len = signed.clone();
        let last = bad_len.len() - 2;
        bad_len[last] ^= 0x01;
        assert!(matches!(
            verify(&bad_len, &public),
            Err(FormatError::Malformed(_))
        ));
        assert_eq!(
            verify(&signed, &rsa_spki(&rsa_key(2048))),
            Err(FormatError::BadSignature)
        );
        // A 3072-bit key expects a 384-byte signature: the length check fails first.
        assert!(matches!(
            verify(&signed, &rsa_spki(&rsa_key(3072))),
            Err(FormatError::Malformed(_))
        ));
        assert!(matches!(
            verify(&signed, b"not a key"),
            Err(FormatError::BadKey(_))
        ));
        assert!(matches!(
            sign(&image(), b"not a key"),
            Err(FormatError::BadKey(_))
        ));
        for cut in [0, 3, 4, 200, signed.len() - 1] {
            assert!(verify(&signed[..cut], &public).is_err(), "{cut}");
        }
    }

    #[test]
    fn verify_never_panics_on_garbage() {
        let key = rsa_key(2048);
        let public = rsa_spki(&key);
        let signed = sign(&image()[..300], &key).unwrap();
        for input in scramble(&signed) {
            assert!(verify(&input, &public).is_err());
        }
        // Trailers claiming lengths longer than the input.
        for claimed in [256u32, u32::MAX, 0] {
            let mut input = vec![0u8; 100];
            input.extend_from_slice(&claimed.to_le_bytes());
            assert!(verify(&input, &public).is_err());
        }
    }
}
