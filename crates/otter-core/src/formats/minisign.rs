//! minisign signatures (jedisct1/minisign `minisign.c`, `minisign.h`): a detached `.minisig`
//! for any file, checked with `minisign -Vm FILE -P PUBKEY`.
//!
//! ```text
//! untrusted comment: <free text, not signed>
//! base64("ED" || key id (8) || Ed25519(BLAKE2b-512(file)) (64))
//! trusted comment: <text, signed>
//! base64(Ed25519(signature (64) || trusted comment bytes))
//! ```
//!
//! `"ED"` is the prehashed algorithm minisign uses by default since 0.10 (the file's 64-byte
//! BLAKE2b digest is the signed message); the legacy `"Ed"` (the file itself, signify's way) is
//! not made nor accepted here. The trusted comment is authenticated, so otter puts the release
//! in it: `timestamp:<unix>\tfile:<name>\thashed\tversion:<version>` (minisign's own default
//! plus the version, see [`trusted_comment`]).
//!
//! A public key file is `untrusted comment: minisign public key <KEY ID>` and
//! base64(`"Ed" || key id || public key (32)`). minisign picks a random key id when it
//! generates a key; otter signs with an Ed25519 key it did not generate, so it derives the id:
//! the first 8 bytes of SHA-256 of the public key ([`key_id`]). The id only has to match between
//! the signature and the public key; minisign prints it as the little-endian u64 in upper-case
//! hex without leading zeros, and so does [`PublicKey::key_id_hex`].

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::prelude::{BASE64_STANDARD, Engine as _};
use blake2::{Blake2b512, Digest as _};

use super::{FormatError, sha256};

const SIGNATURE_ALGORITHM: &[u8; 2] = b"ED";
const KEY_ALGORITHM: &[u8; 2] = b"Ed";
const UNTRUSTED_PREFIX: &str = "untrusted comment: ";
const TRUSTED_PREFIX: &str = "trusted comment: ";
/// The untrusted comment otter writes.
pub const UNTRUSTED_COMMENT: &str = "signature from otter";
/// minisign reads a comment line into a buffer of this many bytes, prefix and newline included.
const COMMENT_BUFFER: usize = 1024;
const _: () = assert!(UNTRUSTED_PREFIX.len() + UNTRUSTED_COMMENT.len() + 2 <= COMMENT_BUFFER);
/// The same for the trusted comment.
const TRUSTED_COMMENT_BUFFER: usize = 8192;

const PRIVATE_KEY: &str = "an Ed25519 private key (PKCS#8 DER)";

/// A minisign public key: the Ed25519 key and the id signatures name it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey {
    pub key_id: [u8; 8],
    pub key: [u8; 32],
}

/// The key id otter gives `public_key`: the first 8 bytes of its SHA-256.
pub fn key_id(public_key: &[u8; 32]) -> [u8; 8] {
    let digest = sha256(public_key);
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    id
}

impl PublicKey {
    /// The raw 32-byte key, with otter's key id.
    pub fn new(key: [u8; 32]) -> Self {
        PublicKey {
            key_id: key_id(&key),
            key,
        }
    }

    /// The public half of an Ed25519 PKCS#8 private key.
    pub fn from_private_key(private_key: &[u8]) -> Result<Self, FormatError> {
        Ok(Self::new(public_of(&signing_key(private_key)?)))
    }

    /// An Ed25519 SubjectPublicKeyInfo (`openssl pkey -pubout`), with otter's key id.
    pub fn from_spki(der: &[u8]) -> Result<Self, FormatError> {
        // SEQUENCE { SEQUENCE { OID 1.3.101.112 } BIT STRING { 0 unused bits, key } }.
        const PREFIX: [u8; 12] = [
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        der.strip_prefix(&PREFIX)
            .and_then(|key| <[u8; 32]>::try_from(key).ok())
            .map(Self::new)
            .ok_or(FormatError::BadKey(
                "an Ed25519 public key (SubjectPublicKeyInfo DER)",
            ))
    }

    /// The key id as minisign prints it.
    pub fn key_id_hex(&self) -> String {
        format!("{:X}", u64::from_le_bytes(self.key_id))
    }

    /// The base64 line, what `minisign -P` takes.
    pub fn to_base64(&self) -> String {
        let mut bytes = Vec::with_capacity(42);
        bytes.extend_from_slice(KEY_ALGORITHM);
        bytes.extend_from_slice(&self.key_id);
        bytes.extend_from_slice(&self.key);
        BASE64_STANDARD.encode(bytes)
    }

    /// A public key file as `minisign -G` writes it (`minisign.pub`).
    pub fn to_file(&self) -> String {
        format!(
            "{UNTRUSTED_PREFIX}minisign public key {}\n{}\n",
            self.key_id_hex(),
            self.to_base64()
        )
    }

    /// A public key file, or its base64 line alone.
    pub fn parse(text: &str) -> Result<Self, FormatError> {
        const WANTED: &str = "a minisign public key (file or base64 line)";
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        let mut line = lines.next().ok_or(FormatError::BadKey(WANTED))?;
        if line.starts_with(UNTRUSTED_PREFIX.trim_end()) {
            line = lines.next().ok_or(FormatError::BadKey(WANTED))?;
        }
        let bytes = BASE64_STANDARD
            .decode(line)
            .map_err(|_| FormatError::BadKey(WANTED))?;
        match bytes.split_first_chunk::<2>() {
            Some((alg, rest)) if alg == KEY_ALGORITHM && rest.len() == 40 => {
                let (id, key) = rest.split_at(8);
                Ok(PublicKey {
                    key_id: id.try_into().map_err(|_| FormatError::BadKey(WANTED))?,
                    key: key.try_into().map_err(|_| FormatError::BadKey(WANTED))?,
                })
            }
            _ => Err(FormatError::BadKey(WANTED)),
        }
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The trusted comment, authenticated by the signature.
    pub trusted_comment: String,
    pub key_id: [u8; 8],
}

impl Verified {
    /// The value of `name` in a trusted comment of tab-separated `name:value` fields (minisign's
    /// default shape and [`trusted_comment`]'s), e.g. `field("version")`.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.trusted_comment
            .split('\t')
            .filter_map(|f| f.split_once(':'))
            .find(|(n, _)| *n == name)
            .map(|(_, value)| value)
    }
}

/// The trusted comment otter signs: minisign's default (`timestamp:<unix>\tfile:<name>\thashed`)
/// and the release's version.
pub fn trusted_comment(
    timestamp: i64,
    file_name: &str,
    version: &str,
) -> Result<String, FormatError> {
    if [file_name, version]
        .iter()
        .any(|v| v.is_empty() || v.contains(['\t', '\r', '\n', '\0']))
    {
        return Err(FormatError::BadComment(
            "the file name and version must be non-empty, without tabs or line breaks",
        ));
    }
    Ok(format!(
        "timestamp:{timestamp}\tfile:{file_name}\thashed\tversion:{version}"
    ))
}

/// What an external Ed25519 signer must sign first: the file's BLAKE2b-512 digest (64 bytes).
/// The signer signs these bytes as they are (plain Ed25519, which hashes internally with
/// SHA-512); the second signature is over [`global_to_be_signed`].
pub fn to_be_signed(file: &[u8]) -> Vec<u8> {
    Blake2b512::digest(file).to_vec()
}

/// What the external signer must sign second: the first signature and the trusted comment.
pub fn global_to_be_signed(
    signature: &[u8],
    trusted_comment: &str,
) -> Result<Vec<u8>, FormatError> {
    check_trusted_comment(trusted_comment)?;
    let mut message = Vec::with_capacity(signature.len() + trusted_comment.len());
    message.extend_from_slice(signature);
    message.extend_from_slice(trusted_comment.as_bytes());
    Ok(message)
}

/// Signs `file` with an Ed25519 key (PKCS#8 DER): the `.minisig` text.
pub fn sign(file: &[u8], private_key: &[u8], trusted_comment: &str) -> Result<String, FormatError> {
    let key = signing_key(private_key)?;
    let public = PublicKey::new(public_of(&key));
    let signature = key.sign(&to_be_signed(file));
    let global = key.sign(&global_to_be_signed(signature.as_ref(), trusted_comment)?);
    Ok(render(
        &public,
        signature.as_ref(),
        trusted_comment,
        global.as_ref(),
    ))
}

/// Builds the `.minisig` text from the two external signatures, after checking both with
/// `public_key`.
pub fn attach(
    file: &[u8],
    signature: &[u8],
    global_signature: &[u8],
    trusted_comment: &str,
    public_key: &PublicKey,
) -> Result<String, FormatError> {
    let key = UnparsedPublicKey::new(&ED25519, &public_key.key);
    key.verify(&to_be_signed(file), signature)
        .map_err(|_| FormatError::BadSignature)?;
    key.verify(
        &global_to_be_signed(signature, trusted_comment)?,
        global_signature,
    )
    .map_err(|_| FormatError::BadSignature)?;
    Ok(render(
        public_key,
        signature,
        trusted_comment,
        global_signature,
    ))
}

/// Checks `minisig` (the `.minisig` text) for `file` with `public_key` (a public key file or its
/// base64 line), as `minisign -V` does: key ids must match, then the file's signature, then the
/// trusted comment's.
pub fn verify(file: &[u8], minisig: &str, public_key: &str) -> Result<Verified, FormatError> {
    let public = PublicKey::parse(public_key)?;
    let mut lines = minisig.split('\n').map(|l| l.trim_end_matches('\r'));
    let mut next = |what| lines.next().ok_or(FormatError::Malformed(what));
    if !next("no untrusted comment")?.starts_with(UNTRUSTED_PREFIX) {
        return Err(FormatError::Malformed(
            "the first line must start with \"untrusted comment: \"",
        ));
    }
    let signature_line = next("no signature line")?;
    let trusted = next("no trusted comment")?
        .strip_prefix(TRUSTED_PREFIX)
        .ok_or(FormatError::Malformed(
            "the third line must start with \"trusted comment: \"",
        ))?;
    let global = BASE64_STANDARD
        .decode(next("no trusted comment signature")?)
        .map_err(|_| FormatError::Malformed("the trusted comment signature is not base64"))?;
    let signature = BASE64_STANDARD
        .decode(signature_line)
        .map_err(|_| FormatError::Malformed("the signature line is not base64"))?;
    let (algorithm, rest) = signature
        .split_first_chunk::<2>()
        .filter(|(_, rest)| rest.len() == 72)
        .ok_or(FormatError::Malformed("the signature is not 74 bytes"))?;
    if algorithm != SIGNATURE_ALGORITHM {
        return Err(FormatError::Malformed(
            "not a prehashed (\"ED\") signature: legacy \"Ed\" signatures are not accepted",
        ));
    }
    let (id, signature) = rest.split_at(8);
    if id != public.key_id {
        return Err(FormatError::WrongKey(format!(
            "the signature names key {:X}, the public key is {}",
            u64::from_le_bytes(id.try_into().unwrap_or_default()),
            public.key_id_hex()
        )));
    }
    let key = UnparsedPublicKey::new(&ED25519, &public.key);
    key.verify(&to_be_signed(file), signature)
        .map_err(|_| FormatError::BadSignature)?;
    let mut message = signature.to_vec();
    message.extend_from_slice(trusted.as_bytes());
    key.verify(&message, &global)
        .map_err(|_| FormatError::BadSignature)?;
    Ok(Verified {
        trusted_comment: trusted.to_owned(),
        key_id: public.key_id,
    })
}

fn signing_key(private_key: &[u8]) -> Result<Ed25519KeyPair, FormatError> {
    Ed25519KeyPair::from_pkcs8(private_key).map_err(|_| FormatError::BadKey(PRIVATE_KEY))
}

fn public_of(key: &Ed25519KeyPair) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(key.public_key().as_ref());
    out
}

/// A trusted comment minisign can read back: one line that fits its buffer.
fn check_trusted_comment(comment: &str) -> Result<(), FormatError> {
    if comment.contains(['\r', '\n', '\0']) {
        Err(FormatError::BadComment(
            "a trusted comment is one line without NUL",
        ))
    } else if TRUSTED_PREFIX.len() + comment.len() + 2 > TRUSTED_COMMENT_BUFFER {
        Err(FormatError::BadComment("the trusted comment is too long"))
    } else {
        Ok(())
    }
}

fn render(public: &PublicKey, signature: &[u8], trusted_comment: &str, global: &[u8]) -> String {
    let mut line = Vec::with_capacity(74);
    line.extend_from_slice(SIGNATURE_ALGORITHM);
    line.extend_from_slice(&public.key_id);
    line.extend_from_slice(signature);
    format!(
        "{UNTRUSTED_PREFIX}{UNTRUSTED_COMMENT}\n{}\n{TRUSTED_PREFIX}{trusted_comment}\n{}\n",
        BASE64_STANDARD.encode(line),
        BASE64_STANDARD.encode(global)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::tests_support::scramble;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rand::SystemRandom;

    fn new_key() -> Vec<u8> {
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .unwrap()
            .as_ref()
            .to_vec()
    }

    fn file() -> Vec<u8> {
        (0..3000u32).map(|i| (i % 253) as u8).collect()
    }

    /// Made by minisign 0.11 itself (`minisign -S -t hello`) for the file "hi\n".
    const MINISIGN_PUB: &str = "untrusted comment: minisign public key 92CD83721B168A4B\n\
        RWRLihYbcoPNkmRMeUqlkUd725SdyIbFrK2ri5Px4bdpkfK4F2KM1qdN\n";
    const MINISIGN_SIG: &str = "untrusted comment: signature from minisign secret key\n\
        RURLihYbcoPNkvxE+PBEH+19DWC1FxuVmwLEOL7QsW2R7drCPvK24QmcHScKWvuSRUO1Cl46YA+U4mXV7mv6eeXjdXmophKZzgA=\n\
        trusted comment: hello\n\
        pTGwe2DSS1+87AGeojnEy6AWn2Qv4TwIc3jZNldCV8tbFQIpcQyhsFL6QBrE5Y3ZFw0TU4oNVP23UABskvDmCg==\n";

    #[test]
    fn verifies_what_minisign_made() {
        let verified = verify(b"hi\n", MINISIGN_SIG, MINISIGN_PUB).unwrap();
        assert_eq!(verified.trusted_comment, "hello");
        let public = PublicKey::parse(MINISIGN_PUB).unwrap();
        assert_eq!(public.key_id_hex(), "92CD83721B168A4B");
        assert_eq!(public.to_file(), MINISIGN_PUB);
        assert_eq!(
            verify(b"hi!", MINISIGN_SIG, MINISIGN_PUB),
            Err(FormatError::BadSignature)
        );
    }

    #[test]
    fn sign_then_verify_round_trips_with_the_version_in_the_trusted_comment() {
        let key = new_key();
        let public = PublicKey::from_private_key(&key).unwrap();
        let comment = trusted_comment(1_700_000_000, "fw.bin", "1.2.3").unwrap();
        assert_eq!(
            comment,
            "timestamp:1700000000\tfile:fw.bin\thashed\tversion:1.2.3"
        );
        let minisig = sign(&file(), &key, &comment).unwrap();
        let lines: Vec<&str> = minisig.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], "untrusted comment: signature from otter");
        assert_eq!(lines[2], format!("trusted comment: {comment}"));
        let raw = BASE64_STANDARD.decode(lines[1]).unwrap();
        assert_eq!(&raw[..2], b"ED");
        assert_eq!(&raw[2..10], &public.key_id);

        for key_text in [public.to_file(), public.to_base64()] {
            let verified = verify(&file(), &minisig, &key_text).unwrap();
            assert_eq!(verified.trusted_comment, comment);
            assert_eq!(verified.field("version"), Some("1.2.3"));
            assert_eq!(verified.field("file"), Some("fw.bin"));
            assert_eq!(verified.field("nope"), None);
            assert_eq!(verified.key_id, public.key_id);
        }
        // Ed25519 is deterministic: the same inputs give the same text.
        assert_eq!(sign(&file(), &key, &comment).unwrap(), minisig);
    }

    #[test]
    fn public_keys_in_every_spelling() {
        let key = new_key();
        let public = PublicKey::from_private_key(&key).unwrap();
        assert_eq!(public.key_id, key_id(&public.key));
        assert_eq!(&public.key_id, &sha256(&public.key)[..8]);
        let spki = Ed25519KeyPair::from_pkcs8(&key)
            .unwrap()
            .public_key()
            .as_der()
            .unwrap();
        assert_eq!(PublicKey::from_spki(spki.as_ref()).unwrap(), public);
        assert_eq!(PublicKey::parse(&public.to_file()).unwrap(), public);
        assert_eq!(PublicKey::parse(&public.to_base64()).unwrap(), public);
        let file = public.to_file();
        assert!(file.starts_with("untrusted comment: minisign public key "));
        assert!(file.contains(&public.key_id_hex()));
        assert!(PublicKey::parse("").is_err());
        assert!(PublicKey::parse("untrusted comment: x\nnot base64!").is_err());
        assert!(PublicKey::from_spki(&spki.as_ref()[1..]).is_err());
        assert!(PublicKey::from_private_key(b"nope").is_err());
    }

    #[test]
    fn attach_builds_the_same_text_from_external_signatures() {
        let key = new_key();
        let pair = Ed25519KeyPair::from_pkcs8(&key).unwrap();
        let public = PublicKey::from_private_key(&key).unwrap();
        let comment = trusted_comment(1, "fw.bin", "2.0.0").unwrap();
        let signature = pair.sign(&to_be_signed(&file()));
        let global = pair.sign(&global_to_be_signed(signature.as_ref(), &comment).unwrap());
        let minisig = attach(
            &file(),
            signature.as_ref(),
            global.as_ref(),
            &comment,
            &public,
        )
        .unwrap();
        assert_eq!(minisig, sign(&file(), &key, &comment).unwrap());
        assert_eq!(
            attach(
                &file(),
                signature.as_ref(),
                global.as_ref(),
                "other",
                &public
            ),
            Err(FormatError::BadSignature)
        );
        assert_eq!(
            attach(
                &file()[1..],
                signature.as_ref(),
                global.as_ref(),
                &comment,
                &public
            ),
            Err(FormatError::BadSignature)
        );
        let other = PublicKey::from_private_key(&new_key()).unwrap();
        assert_eq!(
            attach(
                &file(),
                signature.as_ref(),
                global.as_ref(),
                &comment,
                &other
            ),
            Err(FormatError::BadSignature)
        );
    }

    #[test]
    fn comments_that_minisign_could_not_read_back_are_refused() {
        assert!(trusted_comment(1, "a\tb", "1").is_err());
        assert!(trusted_comment(1, "fw.bin", "1\n2").is_err());
        assert!(trusted_comment(1, "fw.bin", "").is_err());
        let key = new_key();
        assert!(matches!(
            sign(&file(), &key, "two\nlines"),
            Err(FormatError::BadComment(_))
        ));
        assert!(matches!(
            sign(&file(), &key, &"x".repeat(9000)),
            Err(FormatError::BadComment(_))
        ));
        assert!(matches!(
            sign(&file(), b"not a key", "c"),
            Err(FormatError::BadKey(_))
        ));
    }

    #[test]
    fn verify_refuses_tampering_wrong_keys_and_truncation() {
        let key = new_key();
        let public = PublicKey::from_private_key(&key).unwrap().to_file();
        let comment = trusted_comment(5, "fw.bin", "1.0.0").unwrap();
        let minisig = sign(&file(), &key, &comment).unwrap();

        let mut changed = file();
        changed[1234] ^= 1;
        assert_eq!(
            verify(&changed, &minisig, &public),
            Err(FormatError::BadSignature)
        );
        let forged = minisig.replace("version:1.0.0", "version:9.0.0");
        assert_eq!(
            verify(&file(), &forged, &public),
            Err(FormatError::BadSignature)
        );
        // The untrusted comment is not signed.
        let relabelled = minisig.replace("from otter", "from anyone");
        assert!(verify(&file(), &relabelled, &public).is_ok());

        // A flipped bit in the signature (inside the base64 line) and in the global signature.
        let lines: Vec<&str> = minisig.lines().collect();
        for (line, at) in [(1, 40), (3, 10)] {
            let mut raw = BASE64_STANDARD.decode(lines[line]).unwrap();
            raw[at] ^= 1;
            let mut bad = lines.clone();
            let encoded = BASE64_STANDARD.encode(&raw);
            bad[line] = &encoded;
            assert_eq!(
                verify(&file(), &bad.join("\n"), &public),
                Err(FormatError::BadSignature),
                "line {line}"
            );
        }

        let other = PublicKey::from_private_key(&new_key()).unwrap();
        assert!(matches!(
            verify(&file(), &minisig, &other.to_file()),
            Err(FormatError::WrongKey(_))
        ));
        // Another key under this key's id.
        let impostor = PublicKey {
            key_id: PublicKey::parse(&public).unwrap().key_id,
            ..other
        };
        assert_eq!(
            verify(&file(), &minisig, &impostor.to_file()),
            Err(FormatError::BadSignature)
        );
        for cut in 0..minisig.len() - 1 {
            if minisig.is_char_boundary(cut) {
                assert!(verify(&file(), &minisig[..cut], &public).is_err(), "{cut}");
            }
        }
    }

    #[test]
    fn verify_never_panics_on_garbage() {
        let key = new_key();
        let public = PublicKey::from_private_key(&key).unwrap().to_file();
        let minisig = sign(&file(), &key, "c").unwrap();
        for input in scramble(minisig.as_bytes()) {
            let text = String::from_utf8_lossy(&input);
            let _ = verify(&file(), &text, &public);
        }
        for input in scramble(public.as_bytes()) {
            let text = String::from_utf8_lossy(&input);
            let _ = verify(&file(), &minisig, &text);
        }
    }
}
