//! Version schemes and ordering.
//!
//! A product picks one scheme when it is created:
//! - `semver`: SemVer 2.0 precedence (`1.2.0-rc.1 < 1.2.0`; build metadata is ignored for ordering),
//! - `lexical`: plain byte-wise string order, made for date stamps such as `v202605221130`,
//! - `opaque`: versions are labels with no order; the newest *published* release is the latest and
//!   devices are best identified by the hash of what they run.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest version string otter accepts; versions appear in URLs and device displays.
pub const MAX_VERSION_LEN: usize = 64;

/// How a product's versions are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Semver,
    Lexical,
    Opaque,
}

impl Scheme {
    /// The name used in the API, the CLI and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Semver => "semver",
            Scheme::Lexical => "lexical",
            Scheme::Opaque => "opaque",
        }
    }

    /// Whether versions of this scheme can be compared with each other.
    pub fn is_ordered(self) -> bool {
        self != Scheme::Opaque
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scheme {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "semver" => Ok(Scheme::Semver),
            "lexical" => Ok(Scheme::Lexical),
            "opaque" => Ok(Scheme::Opaque),
            other => Err(VersionError::UnknownScheme(other.to_owned())),
        }
    }
}

/// Why a version string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("version must not be empty")]
    Empty,
    #[error("version is longer than {MAX_VERSION_LEN} characters")]
    TooLong,
    #[error("version {0:?} contains characters outside A-Z a-z 0-9 . _ + ~ -")]
    BadCharacters(String),
    #[error("{0:?} is not a semantic version (expected MAJOR.MINOR.PATCH, e.g. 1.4.2)")]
    NotSemver(String),
    #[error("unknown version scheme {0:?} (expected semver, lexical or opaque)")]
    UnknownScheme(String),
}

/// A validated version string together with its sort key under the product's scheme.
#[derive(Debug, Clone)]
pub struct Version {
    raw: String,
    key: Key,
}

#[derive(Debug, Clone)]
enum Key {
    Semver(semver::Version),
    Lexical,
    Opaque,
}

impl Version {
    /// Validates `raw` under `scheme`. Every scheme limits the alphabet so a version can sit in a
    /// URL path segment and a file name unescaped.
    pub fn parse(scheme: Scheme, raw: &str) -> Result<Self, VersionError> {
        if raw.is_empty() {
            return Err(VersionError::Empty);
        }
        if raw.len() > MAX_VERSION_LEN {
            return Err(VersionError::TooLong);
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'~' | b'-'))
        {
            return Err(VersionError::BadCharacters(raw.to_owned()));
        }
        let key = match scheme {
            Scheme::Semver => Key::Semver(
                semver::Version::parse(raw).map_err(|_| VersionError::NotSemver(raw.to_owned()))?,
            ),
            Scheme::Lexical => Key::Lexical,
            Scheme::Opaque => Key::Opaque,
        };
        Ok(Version {
            raw: raw.to_owned(),
            key,
        })
    }

    /// The string as published.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Order between two versions of the same scheme; `None` for opaque versions, which have none.
    pub fn compare(&self, other: &Version) -> Option<Ordering> {
        match (&self.key, &other.key) {
            // SemVer precedence ignores build metadata; fall back to the raw string so that two
            // distinct strings never compare equal (versions are never reused).
            (Key::Semver(a), Key::Semver(b)) => {
                Some(a.cmp_precedence(b).then_with(|| self.raw.cmp(&other.raw)))
            }
            (Key::Lexical, Key::Lexical) => Some(self.raw.cmp(&other.raw)),
            _ => None,
        }
    }

    /// Whether two distinct strings are one version to SemVer (`6.0.0+build.1` and
    /// `6.0.0+build.2`: build metadata does not count), so a device could not tell which is
    /// newer.
    pub fn same_precedence(&self, other: &Version) -> bool {
        match (&self.key, &other.key) {
            (Key::Semver(a), Key::Semver(b)) => a.cmp_precedence(b).is_eq(),
            _ => false,
        }
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(scheme: Scheme, s: &str) -> Version {
        Version::parse(scheme, s).unwrap()
    }

    #[test]
    fn semver_orders_by_precedence() {
        let ordered = [
            "0.9.0",
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-beta",
            "1.0.0",
            "1.2.0",
            "1.10.0",
        ];
        for pair in ordered.windows(2) {
            assert_eq!(
                v(Scheme::Semver, pair[0]).compare(&v(Scheme::Semver, pair[1])),
                Some(Ordering::Less),
                "{} < {}",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn lexical_orders_date_stamps() {
        let a = v(Scheme::Lexical, "v202510020734");
        let b = v(Scheme::Lexical, "v202605221130");
        assert_eq!(a.compare(&b), Some(Ordering::Less));
    }

    #[test]
    fn opaque_has_no_order() {
        assert_eq!(
            v(Scheme::Opaque, "a").compare(&v(Scheme::Opaque, "b")),
            None
        );
    }

    #[test]
    fn rejects_bad_versions() {
        assert!(matches!(
            Version::parse(Scheme::Lexical, ""),
            Err(VersionError::Empty)
        ));
        assert!(matches!(
            Version::parse(Scheme::Lexical, &"a".repeat(65)),
            Err(VersionError::TooLong)
        ));
        assert!(matches!(
            Version::parse(Scheme::Lexical, "v1/../x"),
            Err(VersionError::BadCharacters(_))
        ));
        assert!(matches!(
            Version::parse(Scheme::Semver, "1.2"),
            Err(VersionError::NotSemver(_))
        ));
        assert!("weird".parse::<Scheme>().is_err());
    }

    fn semver_string() -> impl Strategy<Value = String> {
        (
            0u64..20,
            0u64..20,
            0u64..20,
            proptest::option::of("[a-z]{1,3}(\\.[1-9][0-9]?)?"),
        )
            .prop_map(|(a, b, c, pre)| match pre {
                Some(p) => format!("{a}.{b}.{c}-{p}"),
                None => format!("{a}.{b}.{c}"),
            })
    }

    proptest! {
        #[test]
        fn semver_order_matches_the_semver_crate(a in semver_string(), b in semver_string()) {
            let ours = v(Scheme::Semver, &a).compare(&v(Scheme::Semver, &b)).unwrap();
            let theirs = semver::Version::parse(&a).unwrap().cmp(&semver::Version::parse(&b).unwrap());
            prop_assert_eq!(ours, theirs);
        }

        #[test]
        fn ordering_is_total_and_antisymmetric(a in "[a-z0-9._-]{1,12}", b in "[a-z0-9._-]{1,12}") {
            let (va, vb) = (v(Scheme::Lexical, &a), v(Scheme::Lexical, &b));
            let ab = va.compare(&vb).unwrap();
            prop_assert_eq!(ab, vb.compare(&va).unwrap().reverse());
            prop_assert_eq!(ab == Ordering::Equal, a == b);
        }
    }
}
