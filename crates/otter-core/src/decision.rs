//! The update decision: given a product's releases, a device's channel and what it runs now,
//! which release should it be offered?
//!
//! Rules, in order:
//! 1. Only releases on the device's channel count; yanked releases are never offered.
//! 2. Never a downgrade: only releases newer than the device's current one are candidates. The
//!    one exception is a device running a *yanked* release: yanking means "get this off the
//!    field", so it is offered the newest good release even when that is older.
//! 3. A deprecated release is a target only while nothing newer exists on the channel.
//! 4. `minSourceVersion` chains: a device older than a candidate's `minSourceVersion` cannot take
//!    it directly, so it is offered the newest release it *can* take (a stepping stone), and
//!    climbs hop by hop. Deprecated releases serve as stepping stones only when no other path
//!    exists.
//!
//! The device identifies itself by version string or by the hex SHA-256 / SHA-1 / MD5 of the
//! image it runs; a hash that matches a release pins it exactly (the only way for `opaque`
//! products, where versions have no order and publish order decides what is newer).

use crate::FastMap;
use std::cmp::Ordering;

use crate::version::{Scheme, Version, VersionError};

/// What the decision needs to know about one release.
#[derive(Debug, Clone)]
pub struct ReleaseFacts {
    pub version: Version,
    /// Publish order; the version order of `opaque` products.
    pub seq: i64,
    pub sha256: String,
    pub sha1: String,
    pub md5: String,
    pub channels: Vec<String>,
    pub min_source: Option<Version>,
    pub deprecated: bool,
    pub yanked: bool,
    /// When its signed manifest expires: from then on it is offered to no one (devices would
    /// refuse it), until it is signed again. Devices running it are not moved off it.
    pub offer_until: Option<i64>,
}

impl AsRef<ReleaseFacts> for ReleaseFacts {
    fn as_ref(&self) -> &ReleaseFacts {
        self
    }
}

impl ReleaseFacts {
    /// Whether `id` names this release: its version string, or a hex digest of its artifact.
    pub fn is_identified_by(&self, id: &str) -> bool {
        self.version.as_str() == id
            || self.sha256.eq_ignore_ascii_case(id)
            || self.sha1.eq_ignore_ascii_case(id)
            || self.md5.eq_ignore_ascii_case(id)
    }
}

/// What the device says it runs.
#[derive(Debug, Clone, Copy)]
pub enum Current<'a> {
    /// The device did not say (first install, or a client that never sends it).
    Unknown,
    /// A version string or a hex digest of the running image.
    Reported(&'a str),
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing newer to take.
    UpToDate,
    /// Offer `releases[index]`. `stepping_stone` is true when it is an intermediate hop towards a
    /// newer release the device cannot take directly yet.
    Offer { index: usize, stepping_stone: bool },
    /// Newer releases exist but the device meets none of their `minSourceVersion`s.
    NoPath,
}

/// Why no decision could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecisionError {
    #[error("current version is invalid: {0}")]
    InvalidVersion(#[from] VersionError),
}

/// Where the device stands relative to the release list.
enum Position<'a> {
    Unknown,
    Release(&'a ReleaseFacts),
    Unpublished(Version),
}

/// A product's releases arranged for deciding again and again: each channel's releases newest
/// first, and releases by version and by digest. Built once per catalogue change, it makes a
/// decision look at the head of the channel only (the newest release the device can take is
/// nearly always the first one newer than it), so a check costs the same with 10,000 releases
/// as with one. It holds indices into the slice it was built from, which every method takes
/// again.
///
/// Versions are unique within a product (the store refuses a second release of a version) and
/// publish order is unique, so the order of a product's releases is total: the lists here hold
/// exactly what the plain walk over every release would find (see the tests' `walk`).
#[derive(Debug, Clone)]
pub struct Lineup {
    scheme: Scheme,
    /// Per channel, the releases on it that are not yanked, newest first.
    channels: FastMap<String, Vec<usize>>,
    /// The release of each version.
    by_version: FastMap<String, usize>,
    /// The newest release whose artifact has this SHA-256, SHA-1 or MD5 (lowercase hex).
    by_digest: FastMap<String, usize>,
}

impl Lineup {
    /// Arranges `releases` (in any order, of every channel) of a product versioned by `scheme`.
    pub fn new<R: AsRef<ReleaseFacts>>(scheme: Scheme, releases: &[R]) -> Self {
        let facts = |i: usize| releases[i].as_ref();
        let mut lineup = Lineup {
            scheme,
            channels: FastMap::default(),
            by_version: FastMap::with_capacity_and_hasher(releases.len(), Default::default()),
            by_digest: FastMap::with_capacity_and_hasher(3 * releases.len(), Default::default()),
        };
        // Where one key names several releases (an image published again), the newest wins;
        // between equals the later one, as `max_by` picks.
        let keep_newest = |slot: &mut usize, i: usize| {
            if order(scheme, facts(i), facts(*slot)) != Ordering::Less {
                *slot = i;
            }
        };
        for (i, r) in releases.iter().map(AsRef::as_ref).enumerate() {
            lineup
                .by_version
                .entry(r.version.as_str().to_owned())
                .and_modify(|slot| keep_newest(slot, i))
                .or_insert(i);
            for digest in [&r.sha256, &r.sha1, &r.md5] {
                lineup
                    .by_digest
                    .entry(digest.to_ascii_lowercase())
                    .and_modify(|slot| keep_newest(slot, i))
                    .or_insert(i);
            }
            if !r.yanked {
                for channel in &r.channels {
                    let list = lineup.channels.entry(channel.clone()).or_default();
                    // A channel named twice on one release lists it once.
                    if list.last() != Some(&i) {
                        list.push(i);
                    }
                }
            }
        }
        for list in lineup.channels.values_mut() {
            // Stable, so equals keep publish-list order, as the plain walk sorts them.
            list.sort_by(|&a, &b| order(scheme, facts(b), facts(a)));
        }
        lineup
    }

    /// The releases on `channel` that are not yanked, newest first.
    fn on_channel(&self, channel: &str) -> &[usize] {
        self.channels.get(channel).map_or(&[], Vec::as_slice)
    }

    /// Decides what to offer at time `now` (Unix seconds); see the module docs for the rules.
    pub fn decide<R: AsRef<ReleaseFacts>>(
        &self,
        releases: &[R],
        channel: &str,
        current: Current<'_>,
        now: i64,
    ) -> Result<Decision, DecisionError> {
        self.decide_withholding(releases, channel, current, now, |_| false)
    }

    /// [`Lineup::decide`] for a device that may not have the releases `withheld` holds back
    /// (outside a rollout's stage, outside a maintenance window…): for this device they are as
    /// if never published, so it is offered what it would have been offered before them and
    /// never a downgrade.
    pub fn decide_withholding<R: AsRef<ReleaseFacts>>(
        &self,
        releases: &[R],
        channel: &str,
        current: Current<'_>,
        now: i64,
        withheld: impl Fn(usize) -> bool,
    ) -> Result<Decision, DecisionError> {
        let scheme = self.scheme;
        let facts = |i: usize| releases[i].as_ref();
        let position = match current {
            Current::Unknown => Position::Unknown,
            Current::Reported(id) => match self.identify(releases, id).map(facts) {
                Some(release) => Position::Release(release),
                // A digest otter never published (a local build, an image pushed over the LAN)
                // says nothing about order: the device is treated as not having said.
                None if is_digest(id) => Position::Unknown,
                None if scheme.is_ordered() => Position::Unpublished(Version::parse(scheme, id)?),
                None => Position::Unknown,
            },
        };
        let current_is_yanked = matches!(position, Position::Release(r) if r.yanked);

        // Looked up once: the closures below walk it several times.
        let list = self.on_channel(channel);
        let on_channel = || list.iter().copied().filter(|&i| !withheld(i));
        let Some(head) = on_channel().next() else {
            return Ok(Decision::UpToDate);
        };
        // Releases newer than the device lead a newest-first list, so the candidates are the
        // list's head up to the first one that is not: usually one or two releases are looked
        // at, however long the history.
        let candidates = || {
            on_channel().take_while(|&i| {
                let r = facts(i);
                match &position {
                    Position::Unknown => true,
                    // A yanked release is on no channel's list: every release is a candidate.
                    Position::Release(_) if current_is_yanked => true,
                    Position::Release(cur) => order(scheme, r, cur) == Ordering::Greater,
                    Position::Unpublished(v) => r.version.compare(v) == Some(Ordering::Greater),
                }
            })
        };
        let Some(first) = candidates().next() else {
            return Ok(Decision::UpToDate);
        };

        let can_take = |i: usize| {
            facts(i).offer_until.is_none_or(|until| now < until)
                && match &facts(i).min_source {
                    None => true,
                    Some(min) => self.meets_min_source(releases, &position, min),
                }
        };
        let preferred = candidates().find(|&i| (i == head || !facts(i).deprecated) && can_take(i));
        let chosen = preferred.or_else(|| candidates().find(|&i| can_take(i)));
        Ok(match chosen {
            Some(index) => Decision::Offer {
                index,
                stepping_stone: index != first,
            },
            None => Decision::NoPath,
        })
    }

    /// The release a device reporting `id` (a version string or a hex digest of its image)
    /// runs. When the same image was published more than once (re-uploaded after other
    /// releases), the newest of those releases is the one: the device already has its bytes.
    pub fn identify<R: AsRef<ReleaseFacts>>(&self, releases: &[R], id: &str) -> Option<usize> {
        let by_version = self.by_version.get(id).copied();
        // Only a digest's length and digits can name one: a version is not looked up there.
        let by_digest = if !is_digest(id) {
            None
        } else if id.bytes().any(|b| b.is_ascii_uppercase()) {
            self.by_digest.get(&id.to_ascii_lowercase())
        } else {
            self.by_digest.get(id)
        }
        .copied();
        match (by_version, by_digest) {
            (Some(a), Some(b)) => {
                let (a, b) = (a.min(b), a.max(b));
                let newer = order(self.scheme, releases[a].as_ref(), releases[b].as_ref());
                Some(if newer == Ordering::Greater { a } else { b })
            }
            (a, b) => a.or(b),
        }
    }

    /// The release of `version`.
    pub fn release(&self, version: &str) -> Option<usize> {
        self.by_version.get(version).copied()
    }

    /// The newest release on `channel` that is neither yanked nor deprecated: what a device
    /// that asks for "the latest firmware" without saying what it runs gets.
    pub fn latest<R: AsRef<ReleaseFacts>>(&self, releases: &[R], channel: &str) -> Option<usize> {
        self.newest_where(releases, channel, |i| !releases[i].as_ref().deprecated)
    }

    /// The newest release on `channel` that is not yanked, deprecated or not: the head of the
    /// channel, which devices are offered while nothing newer exists (rule 3).
    pub fn newest<R: AsRef<ReleaseFacts>>(&self, releases: &[R], channel: &str) -> Option<usize> {
        self.newest_where(releases, channel, |_| true)
    }

    /// The newest release on `channel` that is not yanked and that `withheld` does not hold
    /// back (what a device that does not say who it is may have).
    pub fn newest_withholding<R: AsRef<ReleaseFacts>>(
        &self,
        releases: &[R],
        channel: &str,
        withheld: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        self.newest_where(releases, channel, |i| !withheld(i))
    }

    /// The newest release on `channel` that `keep` keeps; between equals the later one in
    /// `releases`, as `max_by` picks.
    fn newest_where<R: AsRef<ReleaseFacts>>(
        &self,
        releases: &[R],
        channel: &str,
        keep: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        let facts = |i: usize| releases[i].as_ref();
        let mut kept = self
            .on_channel(channel)
            .iter()
            .copied()
            .filter(|&i| keep(i));
        let newest = kept.next()?;
        Some(
            kept.take_while(|&i| order(self.scheme, facts(i), facts(newest)) == Ordering::Equal)
                .last()
                .unwrap_or(newest),
        )
    }

    /// Whether a device at `position` satisfies `min`. A device whose version is unknown is
    /// assumed not to: a minSourceVersion exists to protect migrations, and guessing could
    /// brick a device.
    fn meets_min_source<R: AsRef<ReleaseFacts>>(
        &self,
        releases: &[R],
        position: &Position<'_>,
        min: &Version,
    ) -> bool {
        match position {
            Position::Unknown => false,
            Position::Unpublished(v) => v.compare(min) != Some(Ordering::Less),
            Position::Release(cur) if self.scheme.is_ordered() => {
                cur.version.compare(min) != Some(Ordering::Less)
            }
            // Opaque: compare publish order with the release that carries the minimum version;
            // a minimum that names no release cannot be enforced.
            Position::Release(cur) => self
                .release(min.as_str())
                .is_none_or(|m| cur.seq >= releases[m].as_ref().seq),
        }
    }
}

/// Whether `id` is a hex MD5, SHA-1 or SHA-256 rather than a version string.
pub fn is_digest(id: &str) -> bool {
    [32, 40, 64]
        .into_iter()
        .any(|len| crate::digest::is_hex_digest(id, len))
}

/// Orders two releases: by version for ordered schemes, by publish order otherwise.
fn order(scheme: Scheme, a: &ReleaseFacts, b: &ReleaseFacts) -> Ordering {
    match scheme {
        Scheme::Opaque => a.seq.cmp(&b.seq),
        _ => a
            .version
            .compare(&b.version)
            .unwrap_or_else(|| a.seq.cmp(&b.seq)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The rules as first written: a plain walk over every release per decision, kept as the
    /// specification [`Lineup`] must agree with.
    mod walk {
        use super::super::{
            Current, Decision, DecisionError, Ordering, Position, ReleaseFacts, Scheme, Version,
            is_digest, order,
        };

        /// Decides what to offer; see the module docs for the rules. `releases` may come in any order and
        /// include every channel.
        pub fn decide<R: AsRef<ReleaseFacts>>(
            scheme: Scheme,
            releases: &[R],
            channel: &str,
            current: Current<'_>,
        ) -> Result<Decision, DecisionError> {
            let facts = |i: usize| releases[i].as_ref();
            let position = match current {
                Current::Unknown => Position::Unknown,
                Current::Reported(id) => match identify(scheme, releases, id).map(facts) {
                    Some(release) => Position::Release(release),
                    // A digest otter never published (a local build, an image pushed over the LAN)
                    // says nothing about order: the device is treated as not having said.
                    None if is_digest(id) => Position::Unknown,
                    None if scheme.is_ordered() => {
                        Position::Unpublished(Version::parse(scheme, id)?)
                    }
                    None => Position::Unknown,
                },
            };
            let current_is_yanked = matches!(position, Position::Release(r) if r.yanked);

            // Newest first.
            let mut on_channel: Vec<usize> = (0..releases.len())
                .filter(|&i| !facts(i).yanked && facts(i).channels.iter().any(|c| c == channel))
                .collect();
            on_channel.sort_by(|&a, &b| newer_first(scheme, facts(a), facts(b)));
            let Some(&head) = on_channel.first() else {
                return Ok(Decision::UpToDate);
            };

            let candidates: Vec<usize> = on_channel
                .into_iter()
                .filter(|&i| {
                    let r = facts(i);
                    match &position {
                        Position::Unknown => true,
                        Position::Release(cur) if current_is_yanked => !std::ptr::eq(r, *cur),
                        Position::Release(cur) => order(scheme, r, cur) == Ordering::Greater,
                        Position::Unpublished(v) => r.version.compare(v) == Some(Ordering::Greater),
                    }
                })
                .collect();
            if candidates.is_empty() {
                return Ok(Decision::UpToDate);
            }

            let can_take = |i: usize| match &facts(i).min_source {
                None => true,
                Some(min) => meets_min_source(scheme, releases, &position, min),
            };
            let preferred = candidates
                .iter()
                .copied()
                .find(|&i| (i == head || !facts(i).deprecated) && can_take(i));
            let chosen = preferred.or_else(|| candidates.iter().copied().find(|&i| can_take(i)));
            Ok(match chosen {
                Some(index) => Decision::Offer {
                    index,
                    stepping_stone: index != candidates[0],
                },
                None => Decision::NoPath,
            })
        }

        /// The release a device reporting `id` (a version string or a hex digest of its image) runs.
        /// When the same image was published more than once (re-uploaded after other releases), the
        /// newest of those releases is the one: the device already has its bytes.
        pub fn identify<R: AsRef<ReleaseFacts>>(
            scheme: Scheme,
            releases: &[R],
            id: &str,
        ) -> Option<usize> {
            (0..releases.len())
                .filter(|&i| releases[i].as_ref().is_identified_by(id))
                .max_by(|&a, &b| order(scheme, releases[a].as_ref(), releases[b].as_ref()))
        }

        /// The newest release on `channel` that is neither yanked nor deprecated: what a device that
        /// asks for "the latest firmware" without saying what it runs gets.
        pub fn latest<R: AsRef<ReleaseFacts>>(
            scheme: Scheme,
            releases: &[R],
            channel: &str,
        ) -> Option<usize> {
            newest_where(scheme, releases, |r| {
                !r.yanked && !r.deprecated && r.channels.iter().any(|c| c == channel)
            })
        }

        /// The newest release on `channel` that is not yanked, deprecated or not: the head of the
        /// channel, which devices are offered while nothing newer exists (rule 3).
        pub fn newest<R: AsRef<ReleaseFacts>>(
            scheme: Scheme,
            releases: &[R],
            channel: &str,
        ) -> Option<usize> {
            newest_where(scheme, releases, |r| {
                !r.yanked && r.channels.iter().any(|c| c == channel)
            })
        }

        fn newest_where<R: AsRef<ReleaseFacts>>(
            scheme: Scheme,
            releases: &[R],
            keep: impl Fn(&ReleaseFacts) -> bool,
        ) -> Option<usize> {
            (0..releases.len())
                .filter(|&i| keep(releases[i].as_ref()))
                .max_by(|&a, &b| order(scheme, releases[a].as_ref(), releases[b].as_ref()))
        }

        /// Orders two releases newest first: by version for ordered schemes, by publish order otherwise.
        fn newer_first(scheme: Scheme, a: &ReleaseFacts, b: &ReleaseFacts) -> Ordering {
            order(scheme, b, a)
        }

        /// Whether a device at `position` satisfies `min`. A device whose version is unknown is assumed
        /// not to: a minSourceVersion exists to protect migrations, and guessing could brick a device.
        fn meets_min_source<R: AsRef<ReleaseFacts>>(
            scheme: Scheme,
            releases: &[R],
            position: &Position<'_>,
            min: &Version,
        ) -> bool {
            match position {
                Position::Unknown => false,
                Position::Unpublished(v) => v.compare(min) != Some(Ordering::Less),
                Position::Release(cur) if scheme.is_ordered() => {
                    cur.version.compare(min) != Some(Ordering::Less)
                }
                // Opaque: compare publish order with the release that carries the minimum version; a
                // minimum that names no release cannot be enforced.
                Position::Release(cur) => releases
                    .iter()
                    .map(AsRef::as_ref)
                    .find(|r| r.version == *min)
                    .is_none_or(|m| cur.seq >= m.seq),
            }
        }
    }

    fn decide(
        scheme: Scheme,
        releases: &[ReleaseFacts],
        channel: &str,
        current: Current<'_>,
    ) -> Result<Decision, DecisionError> {
        Lineup::new(scheme, releases).decide(releases, channel, current, 0)
    }

    fn identify(scheme: Scheme, releases: &[ReleaseFacts], id: &str) -> Option<usize> {
        Lineup::new(scheme, releases).identify(releases, id)
    }

    fn latest(scheme: Scheme, releases: &[ReleaseFacts], channel: &str) -> Option<usize> {
        Lineup::new(scheme, releases).latest(releases, channel)
    }

    fn newest(scheme: Scheme, releases: &[ReleaseFacts], channel: &str) -> Option<usize> {
        Lineup::new(scheme, releases).newest(releases, channel)
    }

    fn rel(scheme: Scheme, seq: i64, version: &str, min: Option<&str>) -> ReleaseFacts {
        ReleaseFacts {
            version: Version::parse(scheme, version).unwrap(),
            seq,
            sha256: format!("{seq:064x}"),
            sha1: format!("{seq:040x}"),
            md5: format!("{seq:032x}"),
            channels: vec!["stable".into()],
            min_source: min.map(|m| Version::parse(scheme, m).unwrap()),
            deprecated: false,
            yanked: false,
            offer_until: None,
        }
    }

    fn offered(scheme: Scheme, releases: &[ReleaseFacts], current: Option<&str>) -> Option<String> {
        let current = current.map_or(Current::Unknown, Current::Reported);
        match decide(scheme, releases, "stable", current).unwrap() {
            Decision::Offer { index, .. } => Some(releases[index].version.to_string()),
            _ => None,
        }
    }

    fn semver_line() -> Vec<ReleaseFacts> {
        vec![
            rel(Scheme::Semver, 1, "1.0.0", None),
            rel(Scheme::Semver, 2, "1.1.0", None),
            rel(Scheme::Semver, 3, "2.0.0", Some("1.1.0")),
            rel(Scheme::Semver, 4, "3.0.0", Some("2.0.0")),
        ]
    }

    #[test]
    fn offers_newest_and_nothing_when_current() {
        let rs = vec![
            rel(Scheme::Semver, 1, "1.0.0", None),
            rel(Scheme::Semver, 2, "1.2.0", None),
        ];
        assert_eq!(
            offered(Scheme::Semver, &rs, Some("1.0.0")).as_deref(),
            Some("1.2.0")
        );
        assert_eq!(offered(Scheme::Semver, &rs, Some("1.2.0")), None);
        assert_eq!(offered(Scheme::Semver, &rs, None).as_deref(), Some("1.2.0"));
    }

    #[test]
    fn never_downgrades_a_device_ahead_of_the_server() {
        let rs = vec![rel(Scheme::Semver, 1, "1.0.0", None)];
        assert_eq!(
            decide(Scheme::Semver, &rs, "stable", Current::Reported("9.9.9")).unwrap(),
            Decision::UpToDate
        );
    }

    #[test]
    fn chains_hop_by_hop_through_min_source_versions() {
        let rs = semver_line();
        assert_eq!(
            offered(Scheme::Semver, &rs, Some("1.0.0")).as_deref(),
            Some("1.1.0")
        );
        assert_eq!(
            offered(Scheme::Semver, &rs, Some("1.1.0")).as_deref(),
            Some("2.0.0")
        );
        assert_eq!(
            offered(Scheme::Semver, &rs, Some("2.0.0")).as_deref(),
            Some("3.0.0")
        );
        assert_eq!(offered(Scheme::Semver, &rs, Some("3.0.0")), None);
        // An unpublished version in between still compares.
        assert_eq!(
            offered(Scheme::Semver, &rs, Some("2.5.0")).as_deref(),
            Some("3.0.0")
        );
        let d = decide(Scheme::Semver, &rs, "stable", Current::Reported("1.0.0")).unwrap();
        assert_eq!(
            d,
            Decision::Offer {
                index: 1,
                stepping_stone: true
            }
        );
    }

    #[test]
    fn unknown_current_takes_only_releases_without_a_minimum() {
        let rs = semver_line();
        assert_eq!(offered(Scheme::Semver, &rs, None).as_deref(), Some("1.1.0"));
    }

    #[test]
    fn reports_no_path_when_no_minimum_is_met() {
        let rs = vec![rel(Scheme::Semver, 1, "2.0.0", Some("1.5.0"))];
        assert_eq!(
            decide(Scheme::Semver, &rs, "stable", Current::Reported("1.0.0")).unwrap(),
            Decision::NoPath
        );
    }

    #[test]
    fn yanked_is_never_offered_and_its_devices_move_off_it() {
        let mut rs = vec![
            rel(Scheme::Semver, 1, "1.0.0", None),
            rel(Scheme::Semver, 2, "1.1.0", None),
            rel(Scheme::Semver, 3, "1.2.0", None),
        ];
        rs[2].yanked = true;
        assert_eq!(
            offered(Scheme::Semver, &rs, Some("1.0.0")).as_deref(),
            Some("1.1.0")
        );
        assert_eq!(
            offered(Scheme::Semver, &rs, Some("1.2.0")).as_deref(),
            Some("1.1.0")
        );
        // By hash too.
        let by_hash = rs[2].sha256.to_uppercase();
        assert_eq!(
            offered(Scheme::Semver, &rs, Some(&by_hash)).as_deref(),
            Some("1.1.0")
        );
    }

    #[test]
    fn a_withheld_release_is_as_if_never_published() {
        let releases = vec![
            rel(Scheme::Semver, 1, "1.0.0", None),
            rel(Scheme::Semver, 2, "1.1.0", None),
            rel(Scheme::Semver, 3, "2.0.0", None),
        ];
        let lineup = Lineup::new(Scheme::Semver, &releases);
        let offer = |current, withheld: &[usize]| {
            lineup
                .decide_withholding(&releases, "stable", current, 0, |i| withheld.contains(&i))
                .unwrap()
        };
        let direct = |index| Decision::Offer {
            index,
            stepping_stone: false,
        };
        // The release before the withheld one, offered directly (not as a stepping stone).
        assert_eq!(offer(Current::Reported("1.0.0"), &[2]), direct(1));
        assert_eq!(offer(Current::Unknown, &[2]), direct(1));
        // Never a downgrade: a device on the withheld release keeps it.
        assert_eq!(offer(Current::Reported("2.0.0"), &[2]), Decision::UpToDate);
        assert_eq!(offer(Current::Reported("1.1.0"), &[2]), Decision::UpToDate);
        assert_eq!(
            offer(Current::Reported("1.0.0"), &[1, 2]),
            Decision::UpToDate
        );
        assert_eq!(offer(Current::Reported("1.0.0"), &[]), direct(2));
    }

    #[test]
    fn a_release_whose_signature_expired_is_offered_to_no_one() {
        let mut releases = vec![
            rel(Scheme::Semver, 1, "1.0.0", None),
            rel(Scheme::Semver, 2, "1.1.0", None),
            rel(Scheme::Semver, 3, "2.0.0", None),
        ];
        releases[2].offer_until = Some(1_000);
        let lineup = Lineup::new(Scheme::Semver, &releases);
        let offered = |current: &str, now| match lineup
            .decide(&releases, "stable", Current::Reported(current), now)
            .unwrap()
        {
            Decision::Offer { index, .. } => Some(releases[index].version.to_string()),
            _ => None,
        };
        assert_eq!(offered("1.0.0", 999).as_deref(), Some("2.0.0"));
        // Expired: the newest release still signed instead; a device running the expired
        // release is not moved off it.
        assert_eq!(offered("1.0.0", 1_000).as_deref(), Some("1.1.0"));
        assert_eq!(offered("2.0.0", 1_000), None);
    }

    #[test]
    fn deprecated_is_a_target_only_while_newest() {
        let mut rs = vec![
            rel(Scheme::Semver, 1, "1.0.0", None),
            rel(Scheme::Semver, 2, "1.1.0", None),
        ];
        rs[1].deprecated = true;
        assert_eq!(
            offered(Scheme::Semver, &rs, Some("1.0.0")).as_deref(),
            Some("1.1.0")
        );
        rs.push(rel(Scheme::Semver, 3, "1.2.0", None));
        rs[1].deprecated = true;
        assert_eq!(
            offered(Scheme::Semver, &rs, Some("1.0.0")).as_deref(),
            Some("1.2.0")
        );
        // ...but it serves as a stepping stone when nothing else leads on.
        rs[2].min_source = Some(Version::parse(Scheme::Semver, "1.1.0").unwrap());
        assert_eq!(
            offered(Scheme::Semver, &rs, Some("1.0.0")).as_deref(),
            Some("1.1.0")
        );
    }

    #[test]
    fn channels_are_separate() {
        let mut rs = vec![
            rel(Scheme::Semver, 1, "1.0.0", None),
            rel(Scheme::Semver, 2, "2.0.0-beta.1", None),
        ];
        rs[1].channels = vec!["beta".into()];
        assert_eq!(offered(Scheme::Semver, &rs, Some("1.0.0")), None);
        let d = decide(Scheme::Semver, &rs, "beta", Current::Reported("1.0.0")).unwrap();
        assert_eq!(
            d,
            Decision::Offer {
                index: 1,
                stepping_stone: false
            }
        );
    }

    #[test]
    fn opaque_uses_publish_order_and_hashes() {
        let rs = vec![
            rel(Scheme::Opaque, 10, "zeta", None),
            rel(Scheme::Opaque, 20, "alpha", None),
        ];
        assert_eq!(
            offered(Scheme::Opaque, &rs, Some("zeta")).as_deref(),
            Some("alpha")
        );
        assert_eq!(
            offered(Scheme::Opaque, &rs, Some(&rs[0].sha1.clone())).as_deref(),
            Some("alpha")
        );
        assert_eq!(offered(Scheme::Opaque, &rs, Some(&rs[1].md5.clone())), None);
        // A hash otter never served: offer the latest.
        assert_eq!(
            offered(Scheme::Opaque, &rs, Some("deadbeef")).as_deref(),
            Some("alpha")
        );
    }

    #[test]
    fn latest_skips_yanked_deprecated_and_other_channels() {
        let mut rs = semver_line();
        // minSourceVersion does not matter: the caller did not say what it runs.
        assert_eq!(latest(Scheme::Semver, &rs, "stable"), Some(3));
        rs[3].deprecated = true;
        assert_eq!(latest(Scheme::Semver, &rs, "stable"), Some(2));
        assert_eq!(newest(Scheme::Semver, &rs, "stable"), Some(3));
        rs[2].yanked = true;
        assert_eq!(latest(Scheme::Semver, &rs, "stable"), Some(1));
        assert_eq!(latest(Scheme::Semver, &rs, "beta"), None);
    }

    #[test]
    fn an_image_published_again_is_identified_as_its_newest_release() {
        // zeta's bytes were uploaded again after alpha (ota-backend's "re-upload").
        let mut again = rel(Scheme::Opaque, 30, "zeta-again", None);
        let rs = vec![
            rel(Scheme::Opaque, 10, "zeta", None),
            rel(Scheme::Opaque, 20, "alpha", None),
        ];
        again.sha1 = rs[0].sha1.clone();
        let rs = [rs, vec![again]].concat();
        assert_eq!(identify(Scheme::Opaque, &rs, &rs[0].sha1), Some(2));
        assert_eq!(
            offered(Scheme::Opaque, &rs, Some(&rs[0].sha1.clone())),
            None,
            "a device running the re-uploaded image is up to date"
        );
        assert_eq!(
            offered(Scheme::Opaque, &rs, Some(&rs[1].sha1.clone())).as_deref(),
            Some("zeta-again")
        );
    }

    #[test]
    fn an_unknown_digest_counts_as_not_saying() {
        let rs = semver_line();
        assert_eq!(
            offered(Scheme::Semver, &rs, Some(&"ab".repeat(32))),
            offered(Scheme::Semver, &rs, None)
        );
    }

    #[test]
    fn invalid_current_version_is_an_error() {
        let rs = semver_line();
        assert!(
            decide(
                Scheme::Semver,
                &rs,
                "stable",
                Current::Reported("not a version")
            )
            .is_err()
        );
    }

    #[test]
    fn ten_thousand_releases_decide_as_the_plain_walk() {
        // A CI pipeline's history: a release per build, some yanked, deprecated, on beta, or
        // with a minimum; every device position asked about.
        let releases: Vec<ReleaseFacts> = (0..10_000i64)
            .map(|i| {
                let min = (i % 97 == 0 && i > 0).then(|| format!("1.{}.0", i - 50));
                let mut r = rel(Scheme::Semver, i, &format!("1.{i}.0"), min.as_deref());
                r.yanked = i % 31 == 0;
                r.deprecated = i % 17 == 0;
                if i % 5 == 0 {
                    r.channels.push("beta".into());
                }
                r
            })
            .collect();
        let lineup = Lineup::new(Scheme::Semver, &releases);
        let mut reports: Vec<String> = (0..10_050)
            .step_by(229)
            .map(|i| format!("1.{i}.0"))
            .collect();
        reports.extend(releases.iter().step_by(487).map(|r| r.sha256.clone()));
        for channel in ["stable", "beta"] {
            for id in &reports {
                let current = Current::Reported(id);
                assert_eq!(
                    lineup.decide(&releases, channel, current, 0),
                    walk::decide(Scheme::Semver, &releases, channel, current),
                    "{id} on {channel}"
                );
            }
            assert_eq!(
                lineup.decide(&releases, channel, Current::Unknown, 0),
                walk::decide(Scheme::Semver, &releases, channel, Current::Unknown)
            );
        }
    }

    /// A random product line: (minor version, publish seq, min-source offset, deprecated, yanked).
    fn line() -> impl Strategy<Value = Vec<ReleaseFacts>> {
        proptest::collection::btree_set(0u64..40, 1..12).prop_flat_map(|minors| {
            let minors: Vec<u64> = minors.into_iter().collect();
            let n = minors.len();
            (
                Just(minors),
                proptest::collection::vec(
                    (
                        proptest::option::of(0usize..4),
                        any::<bool>(),
                        any::<bool>(),
                        0i64..1000,
                    ),
                    n,
                ),
            )
                .prop_map(|(minors, extras)| {
                    minors
                        .iter()
                        .zip(extras)
                        .enumerate()
                        .map(|(i, (minor, (min_back, deprecated, yanked, seq)))| {
                            let version = format!("1.{minor}.0");
                            let min = min_back
                                .filter(|&back| back <= i && back > 0)
                                .map(|back| format!("1.{}.0", minors[i - back]));
                            let mut r = rel(Scheme::Semver, seq, &version, min.as_deref());
                            r.deprecated = deprecated;
                            r.yanked = yanked && i % 3 == 0;
                            r
                        })
                        .collect()
                })
        })
    }

    /// A random history of either scheme, with what the plain line above leaves out: releases
    /// on several channels (or none, or one twice), images published again under a new
    /// version, minimums that name releases or not.
    fn history() -> impl Strategy<Value = (Scheme, Vec<ReleaseFacts>)> {
        let scheme = prop_oneof![Just(Scheme::Semver), Just(Scheme::Opaque)];
        let release = (
            0u64..60,
            proptest::sample::subsequence(vec!["stable", "beta", "stable"], 0..3),
            proptest::option::of(0u64..60),
            proptest::option::of(any::<proptest::sample::Index>()),
            any::<bool>(),
            any::<bool>(),
        );
        (
            scheme,
            proptest::collection::vec(release, 1..40),
            proptest::collection::btree_set(0i64..10_000, 40),
        )
            .prop_map(|(scheme, releases, seqs)| {
                let seqs: Vec<i64> = seqs.into_iter().collect();
                let mut seen = std::collections::HashSet::new();
                let mut out: Vec<ReleaseFacts> = Vec::new();
                for (i, (minor, channels, min, again, deprecated, yanked)) in
                    releases.into_iter().enumerate()
                {
                    // Versions are unique within a product.
                    if !seen.insert(minor) {
                        continue;
                    }
                    // Opaque versions may be any string, even another release's digest.
                    let version = if scheme == Scheme::Opaque && minor % 4 == 0 {
                        format!("{:032x}", seqs[minor as usize % seqs.len()])
                    } else {
                        format!("1.{minor}.0")
                    };
                    let min = min.map(|m| format!("1.{m}.0"));
                    let mut r = rel(scheme, seqs[i], &version, min.as_deref());
                    r.channels = channels.into_iter().map(String::from).collect();
                    r.deprecated = deprecated;
                    r.yanked = yanked && i % 3 == 0;
                    if let Some(again) = again.filter(|_| !out.is_empty()) {
                        let earlier = &out[again.index(out.len())];
                        r.sha256 = earlier.sha256.clone();
                        r.sha1 = earlier.sha1.clone();
                        r.md5 = earlier.md5.clone();
                    }
                    out.push(r);
                }
                (scheme, out)
            })
    }

    /// Everything a device might say it runs, against `releases`.
    fn reports(releases: &[ReleaseFacts]) -> Vec<Option<String>> {
        let mut all = vec![None, Some("ab".repeat(32))];
        all.extend((0..62).map(|m| Some(format!("1.{m}.0"))));
        for r in releases {
            all.push(Some(r.version.to_string()));
            all.push(Some(r.sha256.to_uppercase()));
            all.push(Some(r.sha1.clone()));
            all.push(Some(r.md5.clone()));
        }
        all
    }

    proptest! {
        #[test]
        fn offers_respect_the_rules(releases in line(), start in 0u64..45) {
            let current = format!("1.{start}.0");
            let current_release = releases.iter().find(|r| r.version.as_str() == current);
            let current_yanked = current_release.is_some_and(|r| r.yanked);
            let current_v = Version::parse(Scheme::Semver, &current).unwrap();
            if let Decision::Offer { index, .. } =
                decide(Scheme::Semver, &releases, "stable", Current::Reported(&current)).unwrap()
            {
                let offer = &releases[index];
                prop_assert!(!offer.yanked, "offered a yanked release");
                if !current_yanked {
                    prop_assert_eq!(offer.version.compare(&current_v), Some(Ordering::Greater), "downgrade");
                }
                if let Some(min) = &offer.min_source {
                    prop_assert!(current_v.compare(min) != Some(Ordering::Less), "skipped a minSourceVersion");
                }
            }
        }

        #[test]
        fn following_offers_terminates_at_the_newest_reachable(releases in line(), start in 0u64..45) {
            let mut current = format!("1.{start}.0");
            let mut hops = 0;
            while let Decision::Offer { index, .. } =
                decide(Scheme::Semver, &releases, "stable", Current::Reported(&current)).unwrap()
            {
                current = releases[index].version.to_string();
                hops += 1;
                prop_assert!(hops <= releases.len(), "no progress: looped");
            }
            // Once a walk stops on a good release, it is the newest good one, unless the newest
            // has a minimum nothing reaches.
            let newest = releases.iter().filter(|r| !r.yanked).max_by(|a, b| a.version.compare(&b.version).unwrap());
            if let Some(newest) = newest {
                let reachable = newest.min_source.is_none();
                let cur = Version::parse(Scheme::Semver, &current).unwrap();
                if reachable && hops > 0 {
                    prop_assert_ne!(cur.compare(&newest.version), Some(Ordering::Less), "stopped short of {}", newest.version);
                }
            }
        }

        #[test]
        fn the_lineup_decides_as_the_plain_walk((scheme, releases) in history()) {
            let lineup = Lineup::new(scheme, &releases);
            for channel in ["stable", "beta", "nightly"] {
                for current in reports(&releases) {
                    let current = current.as_deref().map_or(Current::Unknown, Current::Reported);
                    prop_assert_eq!(
                        lineup.decide(&releases, channel, current, 0),
                        walk::decide(scheme, &releases, channel, current),
                        "{:?} on {}", current, channel
                    );
                    if let Current::Reported(id) = current {
                        prop_assert_eq!(
                            lineup.identify(&releases, id),
                            walk::identify(scheme, &releases, id)
                        );
                    }
                }
                prop_assert_eq!(
                    lineup.latest(&releases, channel),
                    walk::latest(scheme, &releases, channel)
                );
                prop_assert_eq!(
                    lineup.newest(&releases, channel),
                    walk::newest(scheme, &releases, channel)
                );
            }
        }
    }
}
