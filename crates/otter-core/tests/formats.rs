//! The native signature formats against the vendors' and other independent tools: what otter
//! signs, they verify; what they sign, otter attaches or verifies.
//!
//! - OpenSSL (`openssl`): keys for every test; the ESP8266 trailer's PKCS#1 signature, the
//!   Secure Boot v2 RSA-PSS and ECDSA signatures (rebuilt big-endian / as DER), IotaWatt's
//!   Ed25519 signature; and signatures it makes, attached by otter.
//! - minisign (Debian `minisign`): `minisign -V` on otter's `.minisig`, otter on minisign's.
//! - espsecure (PyPI `esptool`; `OTTER_ESPSECURE` or `espsecure` on `PATH`): `verify-signature`
//!   and `digest-sbv2-public-key` on otter's output, otter on `sign-data`'s, and the block's
//!   key bytes (n, e, R, M' / curve, X, Y) compared byte-for-byte.
//!
//! A missing tool prints `SKIP <tool>: not installed` (and fails the test under `CI=true`).

use std::path::Path;
use std::process::Command;

use otter_core::formats::{FormatError, esp_idf_sbv2, esp8266_rsa, iotawatt, minisign};
use otter_testkit::{run_tool, tool};

/// Whether `program` with `args` succeeds.
fn succeeds(dir: &Path, program: &Path, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
        .status
        .success()
}

/// An OpenSSL key in `dir`: `<name>.pem`, `<name>.der` (PKCS#8), `<name>.pub.pem`,
/// `<name>.pub.der` (SubjectPublicKeyInfo). Returns (private DER, public DER).
fn openssl_key(openssl: &Path, dir: &Path, name: &str, genpkey: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let pem = format!("{name}.pem");
    let mut args = vec!["genpkey", "-out", &pem];
    args.extend_from_slice(genpkey);
    run_tool(dir, openssl, &args);
    let der = format!("{name}.der");
    run_tool(
        dir,
        openssl,
        &["pkey", "-in", &pem, "-outform", "DER", "-out", &der],
    );
    let pub_pem = format!("{name}.pub.pem");
    run_tool(
        dir,
        openssl,
        &["pkey", "-in", &pem, "-pubout", "-out", &pub_pem],
    );
    let pub_der = format!("{name}.pub.der");
    run_tool(
        dir,
        openssl,
        &[
            "pkey", "-in", &pem, "-pubout", "-outform", "DER", "-out", &pub_der,
        ],
    );
    (read(dir, &der), read(dir, &pub_der))
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// A firmware-looking image: the ESP image magic, then bytes that are not all alike.
fn image(len: usize) -> Vec<u8> {
    let mut image: Vec<u8> = (0..len as u32).map(|i| (i * 31 % 253) as u8).collect();
    image[0] = 0xE9;
    image
}

fn reversed(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().rev().copied().collect()
}

/// ECDSA `r || s` (big-endian, 32 bytes each) as DER `SEQUENCE { INTEGER r, INTEGER s }`.
fn ecdsa_der(rs: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for half in rs.chunks(32) {
        let zeros = half.iter().take_while(|&&b| b == 0).count();
        let mut int = half[zeros..].to_vec();
        if int.first().is_none_or(|&b| b & 0x80 != 0) {
            int.insert(0, 0);
        }
        body.push(0x02);
        body.push(int.len() as u8);
        body.extend(int);
    }
    let mut der = vec![0x30, body.len() as u8];
    der.extend(body);
    der
}

#[test]
fn esp8266_trailer_verifies_with_openssl_and_openssl_signatures_attach() {
    let Some(openssl) = tool("openssl", None) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (key, public) = openssl_key(
        &openssl,
        dir,
        "rsa",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    );
    let image = image(70_001);
    let signed = esp8266_rsa::sign(&image, &key).unwrap();
    assert_eq!(&signed[signed.len() - 4..], &256u32.to_le_bytes());
    write(dir, "image.bin", &image);
    write(dir, "image.sig", &signed[image.len()..signed.len() - 4]);
    let out = run_tool(
        dir,
        &openssl,
        &[
            "dgst",
            "-sha256",
            "-verify",
            "rsa.pub.pem",
            "-signature",
            "image.sig",
            "image.bin",
        ],
    );
    assert!(out.contains("Verified OK"), "{out}");

    // The signing.py way: `openssl dgst -sha256 -sign`, then the trailer.
    run_tool(
        dir,
        &openssl,
        &[
            "dgst",
            "-sha256",
            "-sign",
            "rsa.pem",
            "-out",
            "openssl.sig",
            "image.bin",
        ],
    );
    let attached = esp8266_rsa::attach(&image, &read(dir, "openssl.sig"), &public).unwrap();
    assert_eq!(attached, signed, "PKCS#1 v1.5 is deterministic");
    assert_eq!(
        esp8266_rsa::verify(&attached, &public).unwrap().image_len,
        image.len()
    );
}

#[test]
fn sbv2_rsa_pss_verifies_with_openssl_and_openssl_signatures_attach() {
    let Some(openssl) = tool("openssl", None) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (key, public) = openssl_key(
        &openssl,
        dir,
        "rsa",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"],
    );
    let image = image(100_000);
    let signed = esp_idf_sbv2::sign(&image, &key, esp_idf_sbv2::SECTOR_LEN).unwrap();
    let sector = signed.len() - esp_idf_sbv2::SECTOR_LEN;
    assert_eq!(sector, 102_400);
    let block = &signed[sector..sector + esp_idf_sbv2::BLOCK_LEN];
    // The modulus as OpenSSL sees it: the last 384 bytes of the RSAPublicKey's INTEGER n
    // sit at a fixed place in a 3072-bit SubjectPublicKeyInfo (…02 82 01 81 00 n).
    let n_at = public
        .windows(5)
        .position(|w| w == [0x02, 0x82, 0x01, 0x81, 0x00])
        .unwrap()
        + 5;
    assert_eq!(reversed(&block[36..420]), &public[n_at..n_at + 384]);
    assert_eq!(&block[420..424], &65537u32.to_le_bytes());

    write(dir, "padded.bin", &signed[..sector]);
    write(dir, "pss.sig", &reversed(&block[812..1196]));
    let pss = [
        "-sigopt",
        "rsa_padding_mode:pss",
        "-sigopt",
        "rsa_pss_saltlen:32",
        "-sigopt",
        "rsa_mgf1_md:sha256",
    ];
    let mut args = vec!["dgst", "-sha256"];
    args.extend(pss);
    args.extend([
        "-verify",
        "rsa.pub.pem",
        "-signature",
        "pss.sig",
        "padded.bin",
    ]);
    let out = run_tool(dir, &openssl, &args);
    assert!(out.contains("Verified OK"), "{out}");
    // pkeyutl on the digest stored in the block, as espsecure's Prehashed check does.
    write(dir, "digest.bin", &block[4..36]);
    run_tool(
        dir,
        &openssl,
        &[
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "rsa.pub.pem",
            "-in",
            "digest.bin",
            "-sigfile",
            "pss.sig",
            "-pkeyopt",
            "digest:sha256",
            "-pkeyopt",
            "rsa_padding_mode:pss",
            "-pkeyopt",
            "rsa_pss_saltlen:32",
        ],
    );

    // An HSM-style signature made outside otter, attached.
    let mut args = vec!["dgst", "-sha256"];
    args.extend(pss);
    args.extend(["-sign", "rsa.pem", "-out", "openssl.sig", "padded.bin"]);
    run_tool(dir, &openssl, &args);
    let attached = esp_idf_sbv2::attach(
        &image,
        &read(dir, "openssl.sig"),
        &public,
        esp_idf_sbv2::SECTOR_LEN,
    )
    .unwrap();
    assert_eq!(attached[..sector + 812], signed[..sector + 812]);
    let verified = esp_idf_sbv2::verify(&attached, &public).unwrap();
    assert_eq!(verified.scheme, esp_idf_sbv2::Scheme::Rsa3072Pss);
    // A PKCS#1 v1.5 signature is not what the device checks.
    run_tool(
        dir,
        &openssl,
        &[
            "dgst",
            "-sha256",
            "-sign",
            "rsa.pem",
            "-out",
            "v15.sig",
            "padded.bin",
        ],
    );
    assert_eq!(
        esp_idf_sbv2::attach(
            &image,
            &read(dir, "v15.sig"),
            &public,
            esp_idf_sbv2::SECTOR_LEN
        ),
        Err(FormatError::BadSignature)
    );
}

#[test]
fn sbv2_ecdsa_verifies_with_openssl_and_openssl_signatures_attach() {
    let Some(openssl) = tool("openssl", None) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (key, public) = openssl_key(
        &openssl,
        dir,
        "ec",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    let image = image(5000);
    let signed = esp_idf_sbv2::sign(&image, &key, esp_idf_sbv2::SECTOR_LEN).unwrap();
    let sector = signed.len() - esp_idf_sbv2::SECTOR_LEN;
    let block = &signed[sector..sector + esp_idf_sbv2::BLOCK_LEN];
    // X || Y: the last 64 bytes of a P-256 SubjectPublicKeyInfo, each half byte-reversed.
    let point = &public[public.len() - 64..];
    assert_eq!(reversed(&block[37..69]), &point[..32]);
    assert_eq!(reversed(&block[69..101]), &point[32..]);

    let mut rs = reversed(&block[101..133]);
    rs.extend(reversed(&block[133..165]));
    write(dir, "padded.bin", &signed[..sector]);
    write(dir, "ecdsa.sig", &ecdsa_der(&rs));
    let out = run_tool(
        dir,
        &openssl,
        &[
            "dgst",
            "-sha256",
            "-verify",
            "ec.pub.pem",
            "-signature",
            "ecdsa.sig",
            "padded.bin",
        ],
    );
    assert!(out.contains("Verified OK"), "{out}");

    run_tool(
        dir,
        &openssl,
        &[
            "dgst",
            "-sha256",
            "-sign",
            "ec.pem",
            "-out",
            "openssl.sig",
            "padded.bin",
        ],
    );
    let attached = esp_idf_sbv2::attach(
        &image,
        &read(dir, "openssl.sig"),
        &public,
        esp_idf_sbv2::SECTOR_LEN,
    )
    .unwrap();
    assert_eq!(
        esp_idf_sbv2::verify(&attached, &public).unwrap().scheme,
        esp_idf_sbv2::Scheme::EcdsaP256
    );
    assert_eq!(attached[..sector + 101], signed[..sector + 101]);
}

#[test]
fn sbv2_matches_espsecure_both_ways() {
    let Some(openssl) = tool("openssl", None) else {
        return;
    };
    let Some(espsecure) = tool("espsecure", Some("OTTER_ESPSECURE")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let image = image(50_000);
    write(dir, "image.bin", &image);
    let keys = [
        ("rsa", "RSA", "rsa_keygen_bits:3072", 812),
        ("ec", "EC", "ec_paramgen_curve:P-256", 101),
    ];
    for (name, algorithm, option, key_end) in keys {
        let (key, public) = openssl_key(
            &openssl,
            dir,
            name,
            &["-algorithm", algorithm, "-pkeyopt", option],
        );
        let pub_pem = format!("{name}.pub.pem");
        let key_pem = format!("{name}.pem");

        // otter signs, espsecure verifies, and agrees on the eFuse digest.
        let signed = esp_idf_sbv2::sign(&image, &key, esp_idf_sbv2::SECTOR_LEN).unwrap();
        let ours = format!("{name}-otter.bin");
        write(dir, &ours, &signed);
        run_tool(
            dir,
            &espsecure,
            &[
                "verify-signature",
                "--version",
                "2",
                "--keyfile",
                &pub_pem,
                &ours,
            ],
        );
        let digest_file = format!("{name}-digest.bin");
        run_tool(
            dir,
            &espsecure,
            &[
                "digest-sbv2-public-key",
                "--keyfile",
                &pub_pem,
                "--output",
                &digest_file,
            ],
        );
        let efuse = read(dir, &digest_file);
        assert_eq!(esp_idf_sbv2::key_digest(&public).unwrap().as_slice(), efuse);
        assert_eq!(
            esp_idf_sbv2::verify(&signed, &public)
                .unwrap()
                .key_digest
                .as_slice(),
            efuse
        );

        // espsecure signs, otter verifies; everything up to the signature is the same bytes
        // (magic, version, digest and the key: n, e, R, M' or curve, X, Y).
        let theirs = format!("{name}-espsecure.bin");
        run_tool(
            dir,
            &espsecure,
            &[
                "sign-data",
                "--version",
                "2",
                "--keyfile",
                &key_pem,
                "--output",
                &theirs,
                "image.bin",
            ],
        );
        let espsecure_signed = read(dir, &theirs);
        assert_eq!(espsecure_signed.len(), signed.len());
        let sector = signed.len() - esp_idf_sbv2::SECTOR_LEN;
        assert_eq!(
            espsecure_signed[..sector + key_end],
            signed[..sector + key_end],
            "{name}"
        );
        assert_eq!(
            espsecure_signed[sector + esp_idf_sbv2::BLOCK_LEN..],
            signed[sector + esp_idf_sbv2::BLOCK_LEN..]
        );
        esp_idf_sbv2::verify(&espsecure_signed, &public).unwrap();

        // A tampered image: espsecure refuses it as otter does.
        let mut bad = signed.clone();
        bad[1000] ^= 1;
        write(dir, "bad.bin", &bad);
        assert!(!succeeds(
            dir,
            &espsecure,
            &[
                "verify-signature",
                "--version",
                "2",
                "--keyfile",
                &pub_pem,
                "bad.bin"
            ],
        ));
        assert_eq!(
            esp_idf_sbv2::verify(&bad, &public),
            Err(FormatError::ImageMismatch)
        );
    }
}

#[test]
fn minisign_verifies_otters_signatures_and_otter_verifies_minisigns() {
    let Some(openssl) = tool("openssl", None) else {
        return;
    };
    let Some(minisign_bin) = tool("minisign", None) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (key, _) = openssl_key(&openssl, dir, "ed", &["-algorithm", "ed25519"]);
    let file = image(200_000);
    write(dir, "fw.bin", &file);
    let comment = minisign::trusted_comment(1_760_000_000, "fw.bin", "1.4.0").unwrap();
    let minisig = minisign::sign(&file, &key, &comment).unwrap();
    write(dir, "fw.bin.minisig", minisig.as_bytes());
    let public = minisign::PublicKey::from_private_key(&key).unwrap();
    let out = run_tool(
        dir,
        &minisign_bin,
        &["-Vm", "fw.bin", "-P", &public.to_base64()],
    );
    assert!(
        out.contains(&format!("Trusted comment: {comment}")),
        "{out}"
    );
    write(dir, "otter.pub", public.to_file().as_bytes());
    run_tool(dir, &minisign_bin, &["-Vm", "fw.bin", "-p", "otter.pub"]);
    // minisign refuses what otter refuses.
    let mut changed = file.clone();
    changed[7] ^= 1;
    write(dir, "fw.bin", &changed);
    assert!(!succeeds(
        dir,
        &minisign_bin,
        &["-Vm", "fw.bin", "-p", "otter.pub"]
    ));
    write(dir, "fw.bin", &file);
    let forged = minisig.replace("version:1.4.0", "version:9.9.9");
    write(dir, "fw.bin.minisig", forged.as_bytes());
    assert!(!succeeds(
        dir,
        &minisign_bin,
        &["-Vm", "fw.bin", "-p", "otter.pub"]
    ));
    assert_eq!(
        minisign::verify(&file, &forged, &public.to_file()),
        Err(FormatError::BadSignature)
    );

    // minisign's own key and signature, verified by otter.
    run_tool(
        dir,
        &minisign_bin,
        &["-G", "-W", "-p", "mini.pub", "-s", "mini.key"],
    );
    run_tool(
        dir,
        &minisign_bin,
        &[
            "-S",
            "-s",
            "mini.key",
            "-m",
            "fw.bin",
            "-x",
            "mini.minisig",
            "-t",
            &comment,
        ],
    );
    let mini_pub = String::from_utf8(read(dir, "mini.pub")).unwrap();
    let mini_sig = String::from_utf8(read(dir, "mini.minisig")).unwrap();
    let verified = minisign::verify(&file, &mini_sig, &mini_pub).unwrap();
    assert_eq!(verified.field("version"), Some("1.4.0"));
    assert!(matches!(
        minisign::verify(&file, &mini_sig, &public.to_file()),
        Err(FormatError::WrongKey(_))
    ));
}

#[test]
fn iotawatt_signature_verifies_with_openssl() {
    let Some(openssl) = tool("openssl", None) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (key, _) = openssl_key(&openssl, dir, "ed", &["-algorithm", "ed25519"]);
    let key = iotawatt::SigningKey::from_pkcs8(&key).unwrap();
    let files = [iotawatt::BlobFile {
        name: iotawatt::FIRMWARE_FILE.into(),
        data: image(3000),
    }];
    let blob = iotawatt::pack("02_08_04", &files, &key).unwrap();
    let (body, signature) = blob.split_at(blob.len() - iotawatt::SIGNATURE_LEN);
    // The signed message is the body's SHA-256, not the body.
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
    write(dir, "digest.bin", digest.as_ref());
    write(dir, "blob.sig", signature);
    run_tool(
        dir,
        &openssl,
        &[
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "ed.pub.pem",
            "-rawin",
            "-in",
            "digest.bin",
            "-sigfile",
            "blob.sig",
        ],
    );
}
