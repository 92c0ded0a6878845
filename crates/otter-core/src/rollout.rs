//! Staged rollouts, the pure part: which devices a stage takes in, and what a stage's figures
//! say should happen next (advance, pause, or wait).
//!
//! Membership is a deterministic hash of (rollout, device) into [`BUCKETS`] buckets, so a stage
//! of `p` % takes the devices whose bucket is below `p × 100`: raising the percentage only adds
//! devices, and a device that appears later joins by the same rule as the rest. The hash is
//! keyed by the rollout, so the 1 % of one rollout are not the 1 % of every rollout.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How many buckets devices are hashed into: a percentage has two decimals of resolution.
pub const BUCKETS: u32 = 10_000;

/// The device's bucket in `0..BUCKETS` for `rollout`: the first four bytes of
/// SHA-256(`rollout` ‖ 0 ‖ `device`), big-endian, modulo [`BUCKETS`]. (The bias of the modulo,
/// 2³² mod 10⁴ out of 2³², is far below anything a fleet could notice.)
pub fn bucket(rollout: &str, device: &str) -> u32 {
    let mut hash = Sha256::new();
    hash.update(rollout.as_bytes());
    hash.update([0]);
    hash.update(device.as_bytes());
    let digest = hash.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % BUCKETS
}

/// One stage of a rollout: the devices that have every tag (none: any device) and, with a
/// percentage, whose bucket is below it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Stage {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// 0.01 to 100; none: every device that has the tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
}

impl Stage {
    /// The stage's percentage in buckets (`None`: every bucket).
    fn buckets(&self) -> Option<u32> {
        self.percent.map(|p| (p * 100.0).round() as u32)
    }

    /// Whether a device with `tags` in bucket `bucket` is in this stage.
    pub fn admits(&self, tags: &[String], bucket: u32) -> bool {
        self.tags.iter().all(|t| tags.contains(t)) && self.buckets().is_none_or(|b| bucket < b)
    }

    /// Whether the stage takes in every device: no tag filter, no percentage below 100. Only
    /// then are devices that do not say who they are offered the release.
    pub fn is_everyone(&self) -> bool {
        self.tags.is_empty() && self.buckets().is_none_or(|b| b >= BUCKETS)
    }

    /// Checks the stage makes sense: a percentage in 0.01..=100.
    pub fn validate(&self) -> Result<(), String> {
        match self.percent {
            Some(p) if !(0.01..=100.0).contains(&p) => Err(format!(
                "a stage's percentage must be between 0.01 and 100, not {p}"
            )),
            _ if self.tags.is_empty() && self.percent.is_none() => {
                Err("a stage needs a tag filter, a percentage or both".to_owned())
            }
            _ => Ok(()),
        }
    }
}

/// When a stage advances by itself: `soak_seconds` after it started, once at least
/// `min_installed` of its devices (and, with `min_installed_percent`, that share of the devices
/// it took in) have installed the release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AutoAdvance {
    #[serde(default)]
    pub soak_seconds: u64,
    #[serde(default)]
    pub min_installed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_installed_percent: Option<f64>,
}

/// When a rollout pauses by itself: failed devices in the current stage reach `failures`, or
/// make up `failure_percent` of its finished attempts once there are `min_attempts` of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PauseOn {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_percent: Option<f64>,
    #[serde(default)]
    pub min_attempts: u64,
}

/// How a rollout runs besides its stages; every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    /// None: stages advance only by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_advance: Option<AutoAdvance>,
    /// None: the rollout pauses only by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_on: Option<PauseOn>,
    /// Most devices updating at once; 0: no cap.
    #[serde(default)]
    pub max_concurrent: u32,
    /// A device that failed this many times enters the penalty box.
    #[serde(default = "default_penalty_failures")]
    pub penalty_failures: u32,
    /// How long a device stays in the penalty box.
    #[serde(default = "default_penalty_seconds")]
    pub penalty_seconds: u64,
    /// A device that started downloading and then says nothing for this long has failed; one
    /// that was offered the release and says nothing for this long gives its slot back.
    #[serde(default = "default_device_timeout")]
    pub device_timeout_seconds: u64,
}

fn default_penalty_failures() -> u32 {
    3
}

fn default_penalty_seconds() -> u64 {
    86_400
}

fn default_device_timeout() -> u64 {
    3_600
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            auto_advance: None,
            pause_on: None,
            max_concurrent: 0,
            penalty_failures: default_penalty_failures(),
            penalty_seconds: default_penalty_seconds(),
            device_timeout_seconds: default_device_timeout(),
        }
    }
}

impl Policy {
    /// Checks the figures make sense.
    pub fn validate(&self) -> Result<(), String> {
        let percent_ok = |p: Option<f64>| p.is_none_or(|p| (0.0..=100.0).contains(&p));
        if let Some(a) = &self.auto_advance
            && !percent_ok(a.min_installed_percent)
        {
            return Err("minInstalledPercent must be between 0 and 100".to_owned());
        }
        if let Some(p) = &self.pause_on {
            if !percent_ok(p.failure_percent) {
                return Err("failurePercent must be between 0 and 100".to_owned());
            }
            if p.failures.is_none() && p.failure_percent.is_none() {
                return Err("pauseOn needs failures, failurePercent or both".to_owned());
            }
        }
        if self.penalty_failures == 0 {
            return Err("penaltyFailures must be at least 1".to_owned());
        }
        if self.device_timeout_seconds == 0 {
            return Err("deviceTimeoutSeconds must be at least 1".to_owned());
        }
        Ok(())
    }

    /// Whether a stage with `counts`, started `soaked` seconds ago, should advance, pause or
    /// wait; the pause is judged on `recent`, the attempts that ended since failures were last
    /// forgiven (a resume). Pausing wins: a stage that both failed too much and installed enough
    /// stops.
    pub fn verdict(&self, counts: &StageCounts, recent: &StageCounts, soaked: u64) -> Verdict {
        if let Some(reason) = self.pause_reason(recent) {
            return Verdict::Pause(reason);
        }
        match &self.auto_advance {
            Some(a) if soaked >= a.soak_seconds && counts.installed >= a.min_installed => {
                let admitted = counts.admitted();
                let share_ok = a.min_installed_percent.is_none_or(|p| {
                    admitted > 0 && counts.installed as f64 * 100.0 >= p * admitted as f64
                });
                if share_ok {
                    Verdict::Advance
                } else {
                    Verdict::Hold
                }
            }
            _ => Verdict::Hold,
        }
    }

    /// Why a stage with `counts` should pause, if it should.
    pub fn pause_reason(&self, counts: &StageCounts) -> Option<String> {
        let p = self.pause_on.as_ref()?;
        let failed = counts.failed + counts.penalty;
        if let Some(max) = p.failures
            && failed >= max
        {
            return Some(format!(
                "{failed} devices failed in this stage (pause at {max})"
            ));
        }
        let attempts = counts.attempts();
        if let Some(rate) = p.failure_percent
            && attempts > 0
            && attempts >= p.min_attempts
            && failed as f64 * 100.0 >= rate * attempts as f64
        {
            let share = failed as f64 * 100.0 / attempts as f64;
            return Some(format!(
                "{failed} of {attempts} attempts failed in this stage ({share:.1} %, pause at \
                 {rate} % after {} attempts)",
                p.min_attempts
            ));
        }
        None
    }
}

/// A rollout of one release to one channel of a product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    pub id: i64,
    pub product: String,
    /// The release's version.
    pub version: String,
    pub channel: String,
    pub stages: Vec<Stage>,
    pub policy: Policy,
    /// Index into `stages`.
    pub current_stage: u32,
    pub state: RolloutState,
    /// Failures count toward the automatic pause from this time on (the rollout's start, or its
    /// last resume: resuming forgives the failures that paused it).
    #[serde(with = "crate::model::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub counted_from: i64,
    /// Why it paused or was aborted (by hand, or the threshold that tripped, with figures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(
        default,
        with = "crate::model::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub start_at: Option<i64>,
    #[serde(with = "crate::model::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub stage_started_at: i64,
    /// Devices holding a concurrency slot now.
    pub in_flight: u64,
    #[serde(with = "crate::model::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: i64,
    #[serde(with = "crate::model::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: i64,
}

impl Rollout {
    /// The key devices are bucketed under: unique per rollout across products.
    pub fn key(&self) -> String {
        format!("{}/{}", self.product, self.id)
    }

    /// The stage devices are taken into now.
    pub fn stage(&self) -> &Stage {
        let last = self.stages.len().saturating_sub(1);
        &self.stages[(self.current_stage as usize).min(last)]
    }

    /// Whether the current stage is the last.
    pub fn at_last_stage(&self) -> bool {
        self.current_stage as usize + 1 >= self.stages.len()
    }
}

/// Devices a stage took in, by where their attempt stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct StageCounts {
    /// Offered the release, not heard from since.
    pub offered: u64,
    /// Downloading or installing.
    pub downloading: u64,
    pub installed: u64,
    /// Failed, not in the penalty box.
    pub failed: u64,
    /// Failed and in the penalty box.
    pub penalty: u64,
}

impl StageCounts {
    /// Every device the stage took in.
    pub fn admitted(&self) -> u64 {
        self.offered + self.downloading + self.installed + self.failed + self.penalty
    }

    /// Attempts that ended, well or not.
    pub fn attempts(&self) -> u64 {
        self.installed + self.failed + self.penalty
    }
}

/// What a stage's figures call for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Advance,
    /// Pause, for this reason (with the figures).
    Pause(String),
    Hold,
}

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum RolloutState {
    /// Waits for its start time; nobody gets the release.
    Scheduled,
    /// Takes in devices of its current stage.
    Running,
    /// Takes in no new device; devices already let in may finish.
    Paused,
    /// Past its last stage: the release is everyone's, as if published without a rollout.
    Completed,
    /// Stopped for good (by hand, or because the release was yanked); nobody new gets it.
    Aborted,
}

impl RolloutState {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::Scheduled => "scheduled",
            RolloutState::Running => "running",
            RolloutState::Paused => "paused",
            RolloutState::Completed => "completed",
            RolloutState::Aborted => "aborted",
        }
    }

    /// Whether the rollout counts against "one active rollout per channel".
    pub fn is_active(self) -> bool {
        matches!(
            self,
            RolloutState::Scheduled | RolloutState::Running | RolloutState::Paused
        )
    }
}

impl std::str::FromStr for RolloutState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "scheduled" => RolloutState::Scheduled,
            "running" => RolloutState::Running,
            "paused" => RolloutState::Paused,
            "completed" => RolloutState::Completed,
            "aborted" => RolloutState::Aborted,
            other => return Err(format!("unknown rollout state {other:?}")),
        })
    }
}

/// Where one device's attempt stands in a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum DeviceState {
    /// Offered the release; holds a slot.
    Offered,
    /// Said it is downloading or installing; holds a slot.
    Downloading,
    Installed,
    /// Its attempt failed; not offered the release again until `retry-failed`.
    Failed,
    /// Let in again by `retry-failed`; takes a slot at its next check.
    Retry,
}

impl DeviceState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Offered => "offered",
            DeviceState::Downloading => "downloading",
            DeviceState::Installed => "installed",
            DeviceState::Failed => "failed",
            DeviceState::Retry => "retry",
        }
    }

    /// Whether a device in this state holds a concurrency slot.
    pub fn in_flight(self) -> bool {
        matches!(self, DeviceState::Offered | DeviceState::Downloading)
    }
}

/// One device's attempt in one rollout, as `GET …/devices/{device}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DeviceAttempt {
    pub rollout: i64,
    pub version: String,
    pub channel: String,
    /// The rollout's state.
    pub rollout_state: RolloutState,
    /// The stage that let the device in (from 0).
    pub stage: u32,
    pub state: DeviceState,
    /// Its failures in this rollout.
    pub failures: u32,
    /// When its time in the penalty box ends, if it is in it or was.
    #[serde(default, with = "crate::model::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub penalty_until: Option<i64>,
}

impl std::str::FromStr for DeviceState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "offered" => DeviceState::Offered,
            "downloading" => DeviceState::Downloading,
            "installed" => DeviceState::Installed,
            "failed" => DeviceState::Failed,
            "retry" => DeviceState::Retry,
            other => return Err(format!("unknown device state {other:?}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(tags: &[&str], percent: Option<f64>) -> Stage {
        Stage {
            tags: tags.iter().map(|t| t.to_string()).collect(),
            percent,
        }
    }

    #[test]
    fn buckets_are_uniform() {
        // 100,000 ids into 100 groups of 100 buckets each: chi-square with 99 degrees of
        // freedom; its 0.99 quantile is about 134.6, so a fair hash fails this 1 time in 100
        // ids sets, and this set is fixed.
        let n = 100_000;
        let mut groups = [0u64; 100];
        for i in 0..n {
            groups[(bucket("r-1", &format!("device-{i}")) / 100) as usize] += 1;
        }
        let expected = n as f64 / 100.0;
        let chi2: f64 = groups
            .iter()
            .map(|&o| (o as f64 - expected).powi(2) / expected)
            .sum();
        assert!(chi2 < 134.6, "chi-square {chi2} over 99 degrees of freedom");
    }

    #[test]
    fn raising_the_percentage_only_adds_devices() {
        let percents = [0.5, 1.0, 5.0, 10.0, 33.3, 50.0, 99.99, 100.0];
        let mut before: Vec<bool> = vec![false; 20_000];
        for p in percents {
            let s = stage(&[], Some(p));
            let mut count = 0;
            for (i, was) in before.iter_mut().enumerate() {
                let now = s.admits(&[], bucket("r-7", &format!("d{i}")));
                assert!(now || !*was, "device d{i} left the rollout at {p} %");
                *was = now;
                count += usize::from(now);
            }
            let share = count as f64 * 100.0 / 20_000.0;
            assert!((share - p).abs() < 1.0, "{p} % took {share} %");
        }
        assert!(before.iter().all(|&b| b), "100 % takes everyone");
    }

    #[test]
    fn buckets_depend_on_the_rollout() {
        let same = (0..1000)
            .filter(|i| {
                let d = format!("d{i}");
                bucket("a", &d) == bucket("b", &d)
            })
            .count();
        assert!(
            same < 5,
            "{same} of 1000 devices share a bucket across rollouts"
        );
    }

    #[test]
    fn tags_must_all_match() {
        let canary = stage(&["canary", "eu"], None);
        let tags = |t: &[&str]| t.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        assert!(canary.admits(&tags(&["eu", "canary", "x"]), 9_999));
        assert!(!canary.admits(&tags(&["canary"]), 0));
        assert!(!canary.is_everyone());
        assert!(stage(&[], Some(100.0)).is_everyone());
        assert!(!stage(&[], Some(99.99)).is_everyone());
        assert!(stage(&[], Some(0.0)).validate().is_err());
        assert!(stage(&[], None).validate().is_err());
        assert!(stage(&["canary"], Some(50.0)).validate().is_ok());
    }

    fn counts(offered: u64, installed: u64, failed: u64) -> StageCounts {
        StageCounts {
            offered,
            installed,
            failed,
            ..StageCounts::default()
        }
    }

    #[test]
    fn auto_advance_waits_for_soak_and_installs() {
        let policy = Policy {
            auto_advance: Some(AutoAdvance {
                soak_seconds: 60,
                min_installed: 5,
                min_installed_percent: Some(80.0),
            }),
            ..Policy::default()
        };
        let none = StageCounts::default();
        assert_eq!(policy.verdict(&counts(0, 10, 0), &none, 59), Verdict::Hold);
        assert_eq!(policy.verdict(&counts(0, 4, 0), &none, 600), Verdict::Hold);
        assert_eq!(policy.verdict(&counts(3, 10, 0), &none, 60), Verdict::Hold);
        assert_eq!(
            policy.verdict(&counts(2, 8, 0), &none, 60),
            Verdict::Advance
        );
        assert_eq!(
            Policy::default().verdict(&counts(0, 1000, 0), &none, 1_000_000),
            Verdict::Hold,
            "without autoAdvance only an operator advances"
        );
    }

    #[test]
    fn auto_pause_by_count_and_by_rate() {
        let by_count = Policy {
            pause_on: Some(PauseOn {
                failures: Some(3),
                failure_percent: None,
                min_attempts: 0,
            }),
            ..Policy::default()
        };
        assert_eq!(by_count.pause_reason(&counts(0, 100, 2)), None);
        let reason = by_count.pause_reason(&counts(0, 100, 3)).unwrap();
        assert!(reason.contains("3 devices failed"), "{reason}");

        let by_rate = Policy {
            pause_on: Some(PauseOn {
                failures: None,
                failure_percent: Some(20.0),
                min_attempts: 10,
            }),
            auto_advance: Some(AutoAdvance {
                soak_seconds: 0,
                min_installed: 0,
                min_installed_percent: None,
            }),
            ..Policy::default()
        };
        // 2 of 5: 40 %, but too few attempts yet.
        assert_eq!(by_rate.pause_reason(&counts(0, 3, 2)), None);
        assert_eq!(by_rate.pause_reason(&counts(0, 9, 1)), None);
        let reason = by_rate.pause_reason(&counts(0, 8, 2)).unwrap();
        assert!(reason.contains("2 of 10 attempts"), "{reason}");
        let bad = counts(0, 8, 2);
        assert!(
            matches!(by_rate.verdict(&bad, &bad, 10), Verdict::Pause(_)),
            "pausing wins over advancing"
        );
        assert_eq!(
            by_rate.verdict(&bad, &counts(0, 2, 0), 10),
            Verdict::Advance,
            "failures forgiven by a resume pause nothing"
        );
    }

    #[test]
    fn policy_defaults_and_validation() {
        let p: Policy = serde_json::from_str("{}").unwrap();
        assert_eq!(p, Policy::default());
        assert_eq!((p.penalty_failures, p.penalty_seconds), (3, 86_400));
        assert!(
            Policy {
                pause_on: Some(PauseOn {
                    failures: None,
                    failure_percent: None,
                    min_attempts: 1
                }),
                ..Policy::default()
            }
            .validate()
            .is_err()
        );
        assert!(serde_json::from_str::<Policy>(r#"{"maxConcurent":1}"#).is_err());
    }
}
