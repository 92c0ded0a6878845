//! Version strings under each scheme, two per input (a device's and a release's): accepted
//! strings parse again to themselves, and ordered schemes order them consistently.
#![no_main]

use std::cmp::Ordering;

use libfuzzer_sys::fuzz_target;
use otter_core::{Scheme, Version};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = text.parse::<Scheme>();
    let (a, b) = text.split_once('\n').unwrap_or((text, text));
    for scheme in [Scheme::Semver, Scheme::Lexical, Scheme::Opaque] {
        let Ok(v) = Version::parse(scheme, a) else {
            continue;
        };
        assert_eq!(v.as_str(), a);
        let again = Version::parse(scheme, v.as_str()).expect("an accepted version parses again");
        assert!(again == v);
        let Ok(w) = Version::parse(scheme, b) else {
            continue;
        };
        let (vw, wv) = (v.compare(&w), w.compare(&v));
        assert_eq!(vw, wv.map(Ordering::reverse), "{a:?} vs {b:?}");
        assert_eq!(vw.is_some(), scheme.is_ordered());
        // Distinct strings never compare equal: versions are never reused.
        if scheme.is_ordered() {
            assert_eq!(vw == Some(Ordering::Equal), v == w, "{a:?} vs {b:?}");
        }
        assert_eq!(v.same_precedence(&w), w.same_precedence(&v));
    }
});
