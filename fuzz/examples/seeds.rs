//! Writes the signed seeds under `fuzz/corpus/` with otter's own signing code and fresh keys:
//! a root chain with a check response and a release manifest, IotaWatt blobs, ESP-IDF Secure
//! Boot v2 sectors, ESP8266 signed images, minisign files and keys. The text seeds (headers,
//! bodies, requests, packets) are committed as written by hand.
//!
//! `bash fuzz/run seeds` runs it; the files it writes are committed, so it only needs running
//! again when a format changes.

use std::collections::BTreeMap;
use std::path::Path;

// Built with the fuzz targets' coverage flags (it reuses their dependencies), so it links the
// libFuzzer runtime that provides the coverage callbacks; libFuzzer's own main is not used.
use libfuzzer_sys as _;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::KeyPair;
use otter_core::formats::{esp_idf_sbv2, esp8266_rsa, minisign};
use otter_core::iotawatt::{self, BlobFile, SigningKey};
use otter_core::signing::documents::{
    ArtifactRef, CheckResponse, MANIFEST_TYPE, RESPONSE_TYPE, ROOT_TYPE, ReleaseManifest, Roles,
    Root,
};
use otter_core::signing::dsse::{Envelope, Role};
use otter_core::signing::keys::{Algorithm, PrivateKey};
use otter_fuzz::SEP;
use sha2::{Digest, Sha256};

fn write(target: &str, name: &str, fields: &[&[u8]]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("corpus directory");
    std::fs::write(dir.join(name), fields.join(SEP)).expect("seed written");
}

fn signed(payload_type: &str, document: &impl serde::Serialize, keys: &[&PrivateKey]) -> Vec<u8> {
    let mut envelope = Envelope::new(payload_type, &serde_json::to_vec(document).unwrap());
    for key in keys {
        envelope.sign(key).unwrap();
    }
    envelope.to_json().into_bytes()
}

fn dsse() {
    let (root_key, root_der) = PrivateKey::generate(Algorithm::Ed25519).unwrap();
    let (online_key, online_der) = PrivateKey::generate(Algorithm::P256).unwrap();
    let keys: BTreeMap<_, _> = [&root_key, &online_key]
        .into_iter()
        .map(|k| (k.public_key().key_id(), k.public_key()))
        .collect();
    let role = |key: &PrivateKey| Role {
        keyids: vec![key.public_key().key_id()],
        threshold: 1,
    };
    let root = |version| Root {
        product: "sensor".into(),
        version,
        issued: "2026-01-01T00:00:00Z".into(),
        expires: "2036-01-01T00:00:00Z".into(),
        keys: keys.clone(),
        roles: Roles {
            root: role(&root_key),
            release: role(&root_key),
            online: role(&online_key),
        },
    };
    let manifest = ReleaseManifest {
        product: "sensor".into(),
        version: "1.4.2".into(),
        channel: "stable".into(),
        channels: vec!["beta".into()],
        hw_ids: vec!["hw".into()],
        security_counter: 2,
        artifact: ArtifactRef {
            length: 4,
            sha256: hex(&Sha256::digest(b"fw\n\n")),
            format: "raw".into(),
        },
        issued: "2026-01-01T00:00:00Z".into(),
        expires: "2036-01-01T00:00:00Z".into(),
        root_version: 2,
    };
    let manifest_envelope = signed(MANIFEST_TYPE, &manifest, &[&root_key]);
    let manifest_payload = Envelope::parse(&manifest_envelope)
        .unwrap()
        .payload_bytes()
        .unwrap();
    let response = CheckResponse {
        product: "sensor".into(),
        device: "d1".into(),
        nonce: "nonce".into(),
        current: Some("1.0.0".into()),
        channel: "stable".into(),
        server_time: "2026-06-01T00:00:00Z".into(),
        expires: "2036-01-01T00:00:00Z".into(),
        root_version: 2,
        action: "install".into(),
        version: Some("1.4.2".into()),
        manifest_sha256: Some(hex(&Sha256::digest(&manifest_payload))),
        download_url: Some("http://otter.example/dl/x".into()),
        downgrade: None,
    };
    write(
        "dsse",
        "chain",
        &[
            &signed(ROOT_TYPE, &root(1), &[&root_key]),
            &signed(ROOT_TYPE, &root(2), &[&root_key]),
            &signed(RESPONSE_TYPE, &response, &[&online_key]),
            &manifest_envelope,
        ],
    );
    write("keys", "ed25519-pkcs8", &[&root_der]);
    write("keys", "p256-pkcs8", &[&online_der]);
    write("keys", "ed25519-spki", &[&root_key.public_key().to_spki()]);
    write(
        "keys",
        "p256-pem",
        &[online_key.public_key().to_pem().as_bytes()],
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn iotawatt() {
    let key = SigningKey::generate().unwrap();
    let files = [
        BlobFile {
            name: iotawatt::FIRMWARE_FILE.into(),
            data: b"firmware".to_vec(),
        },
        BlobFile {
            name: "tables.txt".into(),
            data: b"{}".to_vec(),
        },
    ];
    let blob = iotawatt::pack("02_08_02", &files, &key).unwrap();
    let public = key.public_key();
    write(
        "iotawatt",
        "blob-hex-key",
        &[&blob, hex(&public).as_bytes()],
    );
    write(
        "iotawatt",
        "blob-c-array-key",
        &[&blob, iotawatt::c_array(&public).as_bytes()],
    );
    write("keys", "iotawatt-pkcs8", &[&key.to_pkcs8().unwrap()]);
}

fn rsa(size: KeySize) -> (Vec<u8>, Vec<u8>) {
    let key = RsaKeyPair::generate(size).unwrap();
    let pkcs8 = key.as_der().unwrap().as_ref().to_vec();
    let spki = key.public_key().as_der().unwrap().as_ref().to_vec();
    (pkcs8, spki)
}

fn esp() {
    let image = vec![0xE9; esp_idf_sbv2::SECTOR_LEN];
    let (rsa_key, rsa_spki) = rsa(KeySize::Rsa3072);
    let p256 = aws_lc_rs::signature::EcdsaKeyPair::generate(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
    )
    .unwrap();
    let p256_key = p256.to_pkcs8v1().unwrap().as_ref().to_vec();
    for (name, key) in [("rsa3072", &rsa_key), ("p256", &p256_key)] {
        let signed = esp_idf_sbv2::sign(&image, key, esp_idf_sbv2::SECTOR_LEN).unwrap();
        let sector = &signed[esp_idf_sbv2::SECTOR_LEN..];
        // The target pads the sector with 0xFF again: only the blocks need storing.
        let end = sector.iter().rposition(|&b| b != 0xFF).map_or(0, |i| i + 1);
        write("esp_idf_sbv2", name, &[&sector[..end]]);
    }
    write("keys", "rsa3072-spki", &[&rsa_spki]);
    write("keys", "rsa3072-pkcs8", &[&rsa_key]);

    let (rsa_key, rsa_spki) = rsa(KeySize::Rsa2048);
    let signed = esp8266_rsa::sign(b"\xE9\x01\x02\x03 an ESP8266 image", &rsa_key).unwrap();
    write("esp8266_rsa", "rsa2048", &[&rsa_spki, &signed]);
}

fn minisign() {
    let key =
        aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
            .unwrap();
    let key = key.as_ref();
    let file = b"firmware bytes";
    let comment = minisign::trusted_comment(1_796_515_200, "fw.bin", "1.4.2").unwrap();
    let minisig = minisign::sign(file, key, &comment).unwrap();
    let public = minisign::PublicKey::from_private_key(key).unwrap();
    write(
        "minisign",
        "file-key",
        &[file, minisig.as_bytes(), public.to_file().as_bytes()],
    );
    write(
        "minisign",
        "base64-key",
        &[file, minisig.as_bytes(), public.to_base64().as_bytes()],
    );
}

fn main() {
    dsse();
    iotawatt();
    esp();
    minisign();
}
