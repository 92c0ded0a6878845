//! esp-delta-ota patches against the tools ESP-IDF users have:
//!
//! - `detools apply_patch` (PyPI detools, `OTTER_DETOOLS` or `detools` on `PATH`) reproduces the
//!   target from the patch without its 64-byte header, byte for byte; otter applies what
//!   `detools create_patch -c heatshrink` makes;
//! - `esptool image_info` (PyPI esptool, `OTTER_ESPTOOL` or `esptool` on `PATH`) prints, for an
//!   image `esptool elf2image` made from an ELF written here, the validation hash the header
//!   names.
//!
//! A missing tool prints `SKIP <tool>: not installed` (and fails the test under `CI=true`).

use otter_delta::{DeltaError, Format, apply, create, esp_validation_hash};
use otter_testkit::images::{esp32_app, firmware};
use otter_testkit::{run_tool, tool};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Two ESP32 app images: a version string changed, code inserted, a table rewritten.
fn base_and_target() -> (Vec<u8>, Vec<u8>) {
    let payload = firmware(7, 200_000);
    let mut next = payload.clone();
    next[4_000..4_007].copy_from_slice(b"v1.0.1\0");
    next.splice(60_000..60_000, firmware(8, 1_500));
    next[150_000..152_000].copy_from_slice(&firmware(9, 2_000));
    (esp32_app(&payload), esp32_app(&next))
}

#[test]
fn the_header_names_the_base_and_detools_applies_the_rest() {
    let Some(detools) = tool("detools", Some("OTTER_DETOOLS")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (base, target) = base_and_target();
    let patch = create(Format::EspDeltaOta, &base, &target).unwrap();
    assert_eq!(patch[..4], 0xfccd_de10u32.to_le_bytes());
    assert_eq!(patch[4..36], esp_validation_hash(&base).unwrap());
    assert_eq!(patch[36..64], [0; 28]);
    assert!(
        patch.len() < target.len() / 10,
        "patch of {} bytes",
        patch.len()
    );
    std::fs::write(dir.path().join("base.bin"), &base).unwrap();
    std::fs::write(dir.path().join("body.patch"), &patch[64..]).unwrap();
    run_tool(
        dir.path(),
        &detools,
        &["apply_patch", "base.bin", "body.patch", "new.bin"],
    );
    assert!(std::fs::read(dir.path().join("new.bin")).unwrap() == target);
    let info = run_tool(dir.path(), &detools, &["patch_info", "body.patch"]);
    for line in [
        "Type:               sequential",
        "Compression:        heatshrink",
    ] {
        assert!(info.contains(line), "{line:?} not in:\n{info}");
    }
}

#[test]
fn otter_applies_what_detools_create_patch_makes() {
    let Some(detools) = tool("detools", Some("OTTER_DETOOLS")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (base, target) = base_and_target();
    std::fs::write(dir.path().join("base.bin"), &base).unwrap();
    std::fs::write(dir.path().join("new.bin"), &target).unwrap();
    run_tool(
        dir.path(),
        &detools,
        &[
            "create_patch",
            "-c",
            "heatshrink",
            "base.bin",
            "new.bin",
            "body.patch",
        ],
    );
    let mut patch = 0xfccd_de10u32.to_le_bytes().to_vec();
    patch.extend_from_slice(&esp_validation_hash(&base).unwrap());
    patch.resize(64, 0);
    patch.extend_from_slice(&std::fs::read(dir.path().join("body.patch")).unwrap());
    let applied = apply(Format::EspDeltaOta, &base, &patch, target.len() as u64).unwrap();
    assert!(applied == target);
}

/// A minimal ESP32 (Xtensa) ELF: one flash-data section holding `rodata`, one IRAM section,
/// and the section-name table, which is what `esptool elf2image` reads.
fn xtensa_elf(rodata: &[u8]) -> Vec<u8> {
    const EHDR: usize = 52;
    const SHDR: u32 = 40;
    let iram = [0x06u8, 0xff, 0xff, 0x00]; // `j .` (loop forever)
    let names = b"\0.flash.rodata\0.iram0.text\0.shstrtab\0";
    let (rodata_off, iram_off) = (EHDR, EHDR + rodata.len());
    let names_off = iram_off + iram.len();
    let shoff = (names_off + names.len()).div_ceil(4) * 4;
    let mut elf = vec![0x7f, b'E', b'L', b'F', 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let u16s = |v: &mut Vec<u8>, xs: &[u16]| xs.iter().for_each(|x| v.extend(x.to_le_bytes()));
    let u32s = |v: &mut Vec<u8>, xs: &[u32]| xs.iter().for_each(|x| v.extend(x.to_le_bytes()));
    u16s(&mut elf, &[2, 0x5E]); // executable, Xtensa
    u32s(&mut elf, &[1, 0x4008_0000, 0, shoff as u32, 0x300]); // version, entry, phoff, shoff, flags
    u16s(&mut elf, &[EHDR as u16, 32, 0, SHDR as u16, 4, 3]); // sizes, 0 phdrs, 4 shdrs, shstrndx
    elf.extend_from_slice(rodata);
    elf.extend_from_slice(&iram);
    elf.extend_from_slice(names);
    elf.resize(shoff, 0);
    let section = |elf: &mut Vec<u8>, name, kind, flags, addr, off, size| {
        u32s(
            elf,
            &[name, kind, flags, addr, off as u32, size as u32, 0, 0, 4, 0],
        );
    };
    section(&mut elf, 0, 0, 0, 0, 0, 0);
    section(&mut elf, 1, 1, 2, 0x3F40_0020, rodata_off, rodata.len()); // PROGBITS, ALLOC
    section(&mut elf, 15, 1, 6, 0x4008_0000, iram_off, iram.len()); // PROGBITS, ALLOC|EXEC
    section(&mut elf, 27, 3, 0, 0, names_off, names.len()); // STRTAB
    elf
}

#[test]
fn esptool_image_info_prints_the_hash_the_header_names() {
    let Some(esptool) = tool("esptool", Some("OTTER_ESPTOOL")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rodata = firmware(11, 50_000);
    let mut next = rodata.clone();
    next[100..107].copy_from_slice(b"v2.0.0\0");
    for (name, data) in [("base", &rodata), ("new", &next)] {
        std::fs::write(dir.path().join(format!("{name}.elf")), xtensa_elf(data)).unwrap();
        run_tool(
            dir.path(),
            &esptool,
            &[
                "--chip",
                "esp32",
                "elf2image",
                "-o",
                &format!("{name}.bin"),
                &format!("{name}.elf"),
            ],
        );
    }
    let base = std::fs::read(dir.path().join("base.bin")).unwrap();
    let target = std::fs::read(dir.path().join("new.bin")).unwrap();
    let patch = create(Format::EspDeltaOta, &base, &target).unwrap();
    let info = run_tool(dir.path(), &esptool, &["image-info", "base.bin"]);
    let printed = format!("Validation hash: {} (valid)", hex(&patch[4..36]));
    assert!(info.contains(&printed), "{printed:?} not in:\n{info}");
    assert_eq!(
        apply(Format::EspDeltaOta, &base, &patch, target.len() as u64).unwrap(),
        target
    );

    // The images the other tests build are ESP32 app images by esptool's reading too.
    std::fs::write(dir.path().join("built.bin"), esp32_app(&rodata)).unwrap();
    let info = run_tool(dir.path(), &esptool, &["image-info", "built.bin"]);
    let printed = format!(
        "Validation hash: {} (valid)",
        hex(&esp_validation_hash(&esp32_app(&rodata)).unwrap())
    );
    assert!(info.contains(&printed), "{printed:?} not in:\n{info}");
    assert!(
        info.contains("Checksum: 0x") && info.contains("(valid)"),
        "{info}"
    );
}

#[test]
fn a_patch_is_refused_for_another_base_and_beyond_max_len() {
    let (base, target) = base_and_target();
    let patch = create(Format::EspDeltaOta, &base, &target).unwrap();
    let other = esp32_app(&firmware(99, 1_000));
    assert_eq!(
        apply(Format::EspDeltaOta, &other, &patch, 1 << 30),
        Err(DeltaError::WrongBase)
    );
    let len = target.len() as u64;
    assert_eq!(
        apply(Format::EspDeltaOta, &base, &patch, len - 1),
        Err(DeltaError::TooLarge { max_len: len - 1 })
    );
    assert!(matches!(
        apply(Format::EspDeltaOta, &firmware(1, 1_000), &patch, 1 << 30),
        Err(DeltaError::NotEspImage(_))
    ));
    assert!(matches!(
        create(Format::EspDeltaOta, &base, &firmware(1, 1_000)),
        Err(DeltaError::NotEspImage(_))
    ));
}
