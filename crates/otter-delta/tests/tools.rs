//! otter's patches applied by independent tools, byte for byte:
//!
//! - `bspatch` (Debian `bsdiff`) applies `bsdiff` patches,
//! - `zstd -d --patch-from=BASE` (Debian `zstd`) applies `zstd` patches.
//!
//! A missing tool prints `SKIP <tool>: not installed` (and fails the test under `CI=true`).

use otter_delta::{Format, apply, create};
use otter_testkit::images::firmware;
use otter_testkit::{run_tool, tool};

/// A base image and a target that differs from it by a 7-byte version string, an insertion and
/// a changed tail: the kinds of change a firmware release makes.
fn base_and_target() -> (Vec<u8>, Vec<u8>) {
    let base = firmware(1, 300_000);
    let mut target = base.clone();
    target[1000..1007].copy_from_slice(b"v1.2.4\0");
    target.splice(50_000..50_000, firmware(2, 3_000));
    target.truncate(290_000);
    target.extend_from_slice(&firmware(3, 20_000));
    (base, target)
}

#[test]
fn bspatch_applies_otters_bsdiff_patches() {
    let Some(bspatch) = tool("bspatch", None) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (base, target) = base_and_target();
    let patch = create(Format::Bsdiff, &base, &target).unwrap();
    assert!(
        patch.len() < target.len() / 4,
        "patch of {} bytes",
        patch.len()
    );
    std::fs::write(dir.path().join("base"), &base).unwrap();
    std::fs::write(dir.path().join("patch"), &patch).unwrap();
    run_tool(dir.path(), &bspatch, &["base", "new", "patch"]);
    assert!(std::fs::read(dir.path().join("new")).unwrap() == target);
}

#[test]
fn zstd_patch_from_applies_otters_zstd_patches() {
    let Some(zstd) = tool("zstd", None) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (base, target) = base_and_target();
    let patch = create(Format::Zstd, &base, &target).unwrap();
    assert!(
        patch.len() < target.len() / 4,
        "patch of {} bytes",
        patch.len()
    );
    std::fs::write(dir.path().join("base"), &base).unwrap();
    std::fs::write(dir.path().join("patch.zst"), &patch).unwrap();
    run_tool(
        dir.path(),
        &zstd,
        &["-q", "-d", "--patch-from=base", "patch.zst", "-o", "new"],
    );
    assert!(std::fs::read(dir.path().join("new")).unwrap() == target);
}

#[test]
fn otter_applies_what_zstd_patch_from_makes() {
    let Some(zstd) = tool("zstd", None) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (base, target) = base_and_target();
    std::fs::write(dir.path().join("base"), &base).unwrap();
    std::fs::write(dir.path().join("new"), &target).unwrap();
    run_tool(
        dir.path(),
        &zstd,
        &["-q", "-19", "--patch-from=base", "new", "-o", "patch.zst"],
    );
    let patch = std::fs::read(dir.path().join("patch.zst")).unwrap();
    let applied = apply(Format::Zstd, &base, &patch, target.len() as u64).unwrap();
    assert!(applied == target);
}

#[test]
fn otter_applies_what_debian_bsdiff_makes() {
    let Some(bsdiff) = tool("bsdiff", None) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (base, target) = base_and_target();
    std::fs::write(dir.path().join("base"), &base).unwrap();
    std::fs::write(dir.path().join("new"), &target).unwrap();
    run_tool(dir.path(), &bsdiff, &["base", "new", "patch"]);
    let patch = std::fs::read(dir.path().join("patch")).unwrap();
    let applied = apply(Format::Bsdiff, &base, &patch, target.len() as u64).unwrap();
    assert!(applied == target);
}
