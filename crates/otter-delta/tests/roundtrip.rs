//! For every format: applying the patch `create` made reproduces the target exactly.

use otter_delta::{Format, apply, create};
use otter_testkit::images::esp32_app;
use proptest::prelude::*;

/// A base and a target made from it by overwrites, insertions and deletions.
fn base_and_target() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    let edit = (
        any::<u16>(),
        0..3u8,
        prop::collection::vec(any::<u8>(), 0..40),
    );
    (
        prop::collection::vec(any::<u8>(), 0..3000),
        prop::collection::vec(edit, 0..6),
    )
        .prop_map(|(base, edits)| {
            let mut target = base.clone();
            for (at, kind, bytes) in edits {
                let at = usize::from(at) % (target.len() + 1);
                let end = (at + bytes.len()).min(target.len());
                match kind {
                    0 => {
                        target.splice(at..end, bytes);
                    }
                    1 => {
                        target.splice(at..at, bytes);
                    }
                    _ => {
                        target.drain(at..end);
                    }
                }
            }
            (base, target)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn apply_of_create_is_the_target((base, target) in base_and_target()) {
        // Every format sees the same ESP app images (esp-delta-ota takes nothing else).
        let (base, target) = (esp32_app(&base), esp32_app(&target));
        for format in Format::ALL {
            let patch = create(format, &base, &target).unwrap();
            let applied = apply(format, &base, &patch, target.len() as u64).unwrap();
            prop_assert_eq!(&applied, &target, "{}", format);
        }
    }

    #[test]
    fn apply_of_create_is_the_target_for_any_bytes((base, target) in base_and_target()) {
        for format in [Format::Bsdiff, Format::Zstd] {
            let patch = create(format, &base, &target).unwrap();
            let applied = apply(format, &base, &patch, target.len() as u64).unwrap();
            prop_assert_eq!(&applied, &target, "{}", format);
        }
    }
}
