//! Unit tests: format names, and what `apply` refuses.

use super::*;

#[test]
fn formats_are_spelled_alike_by_serde_display_and_from_str() {
    for format in Format::ALL {
        let name = format.to_string();
        assert_eq!(name.parse::<Format>(), Ok(format));
        assert_eq!(
            serde_json::to_string(&format).unwrap(),
            format!("\"{name}\"")
        );
        assert_eq!(
            serde_json::from_str::<Format>(&format!("\"{name}\"")).unwrap(),
            format
        );
    }
    assert_eq!(
        ["esp-delta-ota", "bsdiff", "zstd"].map(|n| n.parse::<Format>().unwrap()),
        Format::ALL
    );
    let err = "xdelta3".parse::<Format>().unwrap_err();
    assert!(err.to_string().contains("xdelta3"), "{err}");
}

fn image(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 7) as u8)
        .collect()
}

#[test]
fn apply_refuses_output_beyond_max_len_for_every_format_it_applies() {
    let base = image(1, 20_000);
    let mut target = base.clone();
    target.extend_from_slice(&image(2, 5_000));
    for format in [Format::Bsdiff, Format::Zstd] {
        let patch = create(format, &base, &target).unwrap();
        let len = target.len() as u64;
        assert_eq!(
            apply(format, &base, &patch, len).unwrap(),
            target,
            "{format}"
        );
        assert_eq!(
            apply(format, &base, &patch, len - 1),
            Err(DeltaError::TooLarge { max_len: len - 1 }),
            "{format}"
        );
    }
}

#[test]
fn apply_calls_garbage_and_truncated_patches_corrupt() {
    let base = image(1, 10_000);
    let mut target = base.clone();
    target[5_000..5_007].copy_from_slice(b"1.2.3-x");
    for format in [Format::Bsdiff, Format::Zstd] {
        let patch = create(format, &base, &target).unwrap();
        for bad in [&b"garbage"[..], &patch[..patch.len() / 2]] {
            let err = apply(format, &base, bad, 1 << 20).unwrap_err();
            assert!(matches!(err, DeltaError::Corrupt(_)), "{format}: {err}");
        }
    }
}

#[test]
fn a_zstd_patch_applied_to_another_base_fails_its_checksum() {
    let base = image(1, 10_000);
    let mut target = base.clone();
    target[100] ^= 0xFF;
    let patch = create(Format::Zstd, &base, &target).unwrap();
    let err = apply(Format::Zstd, &image(9, 10_000), &patch, 1 << 20).unwrap_err();
    assert!(matches!(err, DeltaError::Corrupt(_)), "{err}");
}

#[test]
fn a_bsdiff_header_announcing_more_than_max_len_is_refused_before_reading() {
    let mut patch = b"BSDIFF40".to_vec();
    patch.extend_from_slice(&0u64.to_le_bytes());
    patch.extend_from_slice(&0u64.to_le_bytes());
    patch.extend_from_slice(&(1u64 << 40).to_le_bytes());
    assert_eq!(
        apply(Format::Bsdiff, b"", &patch, 1 << 20),
        Err(DeltaError::TooLarge { max_len: 1 << 20 })
    );
}

#[test]
fn esp_delta_ota_refuses_images_that_are_not_esp_app_images() {
    let err = create(Format::EspDeltaOta, &image(1, 4096), &image(2, 4096)).unwrap_err();
    assert!(matches!(err, DeltaError::NotEspImage(_)), "{err}");
    assert!(matches!(
        esp_validation_hash(b"\xE9"),
        Err(DeltaError::NotEspImage(_))
    ));
}

#[test]
fn empty_bases_and_targets_make_patches_that_apply() {
    let some = image(3, 5_000);
    for format in [Format::Bsdiff, Format::Zstd] {
        for (base, target) in [(&[][..], &some[..]), (&some, &[]), (&[], &[])] {
            let patch = create(format, base, target).unwrap();
            let applied = apply(format, base, &patch, target.len() as u64).unwrap();
            assert_eq!(
                applied,
                target,
                "{format}: {} → {}",
                base.len(),
                target.len()
            );
        }
    }
}
