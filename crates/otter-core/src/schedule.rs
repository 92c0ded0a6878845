//! When devices update and when they ask: maintenance windows per channel and poll hints.
//!
//! A [`MaintenanceWindow`] is a set of weekly time slots in one IANA time zone, such as
//! `mon-fri 02:00-05:00` in `Europe/Berlin`. Outside every slot only mandatory releases are
//! offered; a slot whose end is not after its start runs past midnight into the next day
//! (`sat 22:00-04:00` ends on Sunday at 04:00). Times are wall-clock times of the zone, so a
//! window keeps its local hours across daylight-saving changes.
//!
//! A [`PollHint`] is how long a device should wait before its next check, spread by a random
//! jitter so that a fleet told of a release at once does not come back at once.

use std::fmt;
use std::str::FromStr;

use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// Why a window or poll hint is refused; the message says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScheduleError(String);

fn error(message: impl Into<String>) -> ScheduleError {
    ScheduleError(message.into())
}

/// The days of a week, Monday first, as slots spell them.
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// One weekly slot: `DAYS HH:MM-HH:MM`, where DAYS is `daily`, a day (`mon`), a range
/// (`mon-fri`, `fri-mon` wraps) or a comma list of those (`mon,wed,sat-sun`). The slot starts on
/// each of those days; `24:00` ends a slot at midnight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// Bit `n` set: the slot starts on the day `n` days after Monday.
    days: u8,
    /// Minutes after midnight, local time.
    from: u16,
    to: u16,
    /// As written, for showing back.
    text: String,
}

impl Slot {
    fn starts_on(&self, day: Weekday) -> bool {
        self.days & (1 << day.to_monday_zero_offset()) != 0
    }

    /// Whether the slot is open at `minute` (after local midnight) of `day`.
    fn is_open(&self, day: Weekday, minute: u16) -> bool {
        if self.to > self.from {
            self.starts_on(day) && (self.from..self.to).contains(&minute)
        } else {
            // Past midnight: open from `from` on the start day until `to` on the day after.
            (self.starts_on(day) && minute >= self.from)
                || (self.starts_on(day.previous()) && minute < self.to)
        }
    }
}

impl FromStr for Slot {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<Self, ScheduleError> {
        let text = text.trim();
        let usage = || {
            error(format!(
                "window {text:?} is not `DAYS HH:MM-HH:MM` (e.g. `mon-fri 02:00-05:00`, \
                 `daily 22:00-04:00`)"
            ))
        };
        let (days, hours) = text.split_once(' ').ok_or_else(usage)?;
        let (from, to) = hours.trim().split_once('-').ok_or_else(usage)?;
        let (from, to) = (minute_of_day(from)?, minute_of_day(to)?);
        if from == 24 * 60 {
            return Err(error(format!(
                "window {text:?} starts at 24:00: write 00:00"
            )));
        }
        if from == to {
            return Err(error(format!(
                "window {text:?} is empty: for all day write `00:00-24:00`"
            )));
        }
        Ok(Slot {
            days: parse_days(days)?,
            from,
            to,
            text: text.to_owned(),
        })
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_days(spec: &str) -> Result<u8, ScheduleError> {
    if spec == "daily" {
        return Ok(0x7f);
    }
    let day = |name: &str| {
        DAYS.iter().position(|n| *n == name).ok_or_else(|| {
            error(format!(
                "unknown day {name:?}: use mon, tue, wed, thu, fri, sat, sun or daily"
            ))
        })
    };
    let mut days = 0u8;
    for part in spec.split(',') {
        match part.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (day(first)?, day(last)?);
                // `fri-mon` wraps over the weekend.
                let mut d = first;
                loop {
                    days |= 1 << d;
                    if d == last {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days |= 1 << day(part)?,
        }
    }
    Ok(days)
}

fn minute_of_day(text: &str) -> Result<u16, ScheduleError> {
    let invalid = || {
        error(format!(
            "{text:?} is not a time of day (HH:MM, 00:00-24:00)"
        ))
    };
    let (h, m) = text.trim().split_once(':').ok_or_else(invalid)?;
    let (h, m): (u16, u16) = (
        h.parse().map_err(|_| invalid())?,
        m.parse().map_err(|_| invalid())?,
    );
    if m >= 60 || h > 24 || (h == 24 && m != 0) || text.trim().len() != 5 {
        return Err(invalid());
    }
    Ok(h * 60 + m)
}

/// The most slots one window may have: a week of them is plenty, and the check path walks them.
pub const MAX_SLOTS: usize = 32;

/// A channel's maintenance window as the API and the store hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WindowSpec {
    /// An IANA time zone name (`Europe/Berlin`, `UTC`).
    pub timezone: String,
    /// Weekly slots (see [`Slot`]); releases that are not mandatory are offered only inside one.
    pub slots: Vec<String>,
}

/// A checked [`WindowSpec`], ready for the check path.
#[derive(Debug, Clone)]
pub struct MaintenanceWindow {
    zone: TimeZone,
    slots: Vec<Slot>,
}

impl MaintenanceWindow {
    /// Checks `spec`: a known time zone and 1-[`MAX_SLOTS`] valid slots.
    pub fn new(spec: &WindowSpec) -> Result<Self, ScheduleError> {
        let zone = TimeZone::get(&spec.timezone).map_err(|_| {
            error(format!(
                "unknown time zone {:?}: use an IANA name such as Europe/Berlin or UTC",
                spec.timezone
            ))
        })?;
        if spec.slots.is_empty() || spec.slots.len() > MAX_SLOTS {
            return Err(error(format!(
                "a window has 1-{MAX_SLOTS} slots (to remove a window, delete it)"
            )));
        }
        let slots = spec
            .slots
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()?;
        Ok(MaintenanceWindow { zone, slots })
    }

    /// Whether the window is open at `now` (Unix seconds).
    pub fn is_open(&self, now: i64) -> bool {
        let Ok(at) = jiff::Timestamp::from_second(now) else {
            return false;
        };
        let local = at.to_zoned_datetime(self.zone.clone());
        let minute = u16::try_from(i32::from(local.hour()) * 60 + i32::from(local.minute()))
            .unwrap_or_default();
        self.slots
            .iter()
            .any(|slot| slot.is_open(local.weekday(), minute))
    }
}

/// How long a device should wait before its next check, as the native check answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PollHint {
    /// The interval, in seconds.
    pub interval_seconds: u32,
    /// How far, in percent either way, each answer moves it at random.
    #[serde(default = "PollHint::default_jitter")]
    pub jitter_percent: u8,
}

impl PollHint {
    /// The jitter when none is given.
    pub const DEFAULT_JITTER: u8 = 10;
    /// The longest interval: a device told to wait longer could not be reached for a fix.
    pub const MAX_INTERVAL: u32 = 7 * 24 * 3600;

    fn default_jitter() -> u8 {
        Self::DEFAULT_JITTER
    }

    /// Checks the bounds: 1 s to [`PollHint::MAX_INTERVAL`], jitter 0-100 %.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        if !(1..=Self::MAX_INTERVAL).contains(&self.interval_seconds) {
            return Err(error(format!(
                "intervalSeconds must be 1-{} (a week)",
                Self::MAX_INTERVAL
            )));
        }
        if self.jitter_percent > 100 {
            return Err(error("jitterPercent must be 0-100"));
        }
        Ok(())
    }

    /// The seconds to answer, for `random` drawn uniformly from `0.0..1.0`: the interval moved
    /// by up to the jitter either way, at least one second.
    pub fn next_check(&self, random: f64) -> u32 {
        let jitter = f64::from(self.jitter_percent) / 100.0;
        let factor = 1.0 - jitter + 2.0 * jitter * random.clamp(0.0, 1.0);
        (f64::from(self.interval_seconds) * factor).round().max(1.0) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(zone: &str, slots: &[&str]) -> MaintenanceWindow {
        MaintenanceWindow::new(&WindowSpec {
            timezone: zone.to_owned(),
            slots: slots.iter().map(|s| (*s).to_owned()).collect(),
        })
        .unwrap()
    }

    /// Unix seconds of a UTC date-time written `2026-12-07T02:30`.
    fn utc(text: &str) -> i64 {
        format!("{text}:00Z")
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_second()
    }

    #[test]
    fn a_weekday_slot_is_open_inside_its_hours_on_its_days_only() {
        // 2026-12-07 is a Monday.
        let w = window("UTC", &["mon-fri 02:00-05:00"]);
        assert!(w.is_open(utc("2026-12-07T02:00")));
        assert!(w.is_open(utc("2026-12-07T04:59")));
        assert!(!w.is_open(utc("2026-12-07T05:00")));
        assert!(!w.is_open(utc("2026-12-07T01:59")));
        assert!(w.is_open(utc("2026-12-11T03:00")), "Friday");
        assert!(!w.is_open(utc("2026-12-12T03:00")), "Saturday");
    }

    #[test]
    fn a_slot_past_midnight_ends_the_next_day() {
        let w = window("UTC", &["sat 22:00-04:00"]);
        assert!(w.is_open(utc("2026-12-12T22:00")), "Saturday night");
        assert!(w.is_open(utc("2026-12-13T03:59")), "Sunday morning");
        assert!(!w.is_open(utc("2026-12-13T04:00")));
        assert!(!w.is_open(utc("2026-12-13T22:30")), "Sunday night");
        assert!(!w.is_open(utc("2026-12-12T03:00")), "Saturday morning");
    }

    #[test]
    fn slots_keep_local_hours_across_daylight_saving() {
        let w = window("Europe/Berlin", &["daily 02:00-03:00"]);
        // Winter: UTC+1, so 02:30 local is 01:30 UTC.
        assert!(w.is_open(utc("2026-12-07T01:30")));
        assert!(!w.is_open(utc("2026-12-07T02:30")));
        // Summer: UTC+2, so 02:30 local is 00:30 UTC.
        assert!(w.is_open(utc("2026-07-07T00:30")));
        assert!(!w.is_open(utc("2026-07-07T01:30")));
    }

    #[test]
    fn day_lists_ranges_and_all_day() {
        let w = window("UTC", &["fri-mon,wed 00:00-24:00"]);
        let open: Vec<bool> = (7..=13)
            .map(|d| w.is_open(utc(&format!("2026-12-{d:02}T12:00"))))
            .collect();
        // Mon Tue Wed Thu Fri Sat Sun
        assert_eq!(open, [true, false, true, false, true, true, true]);
    }

    #[test]
    fn bad_windows_say_what_is_wrong() {
        let refuse = |zone: &str, slot: &str| {
            MaintenanceWindow::new(&WindowSpec {
                timezone: zone.to_owned(),
                slots: vec![slot.to_owned()],
            })
            .unwrap_err()
            .to_string()
        };
        assert!(refuse("Mars/Olympus", "daily 01:00-02:00").contains("unknown time zone"));
        assert!(refuse("UTC", "someday 01:00-02:00").contains("unknown day"));
        assert!(refuse("UTC", "mon 25:00-02:00").contains("not a time of day"));
        assert!(refuse("UTC", "mon 1:00-02:00").contains("not a time of day"));
        assert!(refuse("UTC", "mon 02:00-02:00").contains("empty"));
        assert!(refuse("UTC", "mon").contains("DAYS HH:MM-HH:MM"));
        let none = MaintenanceWindow::new(&WindowSpec {
            timezone: "UTC".into(),
            slots: vec![],
        });
        assert!(none.unwrap_err().to_string().contains("1-32 slots"));
    }

    #[test]
    fn poll_hints_spread_within_the_jitter() {
        let hint = PollHint {
            interval_seconds: 1000,
            jitter_percent: 20,
        };
        assert_eq!(hint.next_check(0.0), 800);
        assert_eq!(hint.next_check(0.5), 1000);
        assert_eq!(hint.next_check(1.0), 1200);
        let none = PollHint {
            interval_seconds: 1,
            jitter_percent: 100,
        };
        assert_eq!(none.next_check(0.0), 1, "at least a second");
        assert!(
            PollHint {
                interval_seconds: 0,
                jitter_percent: 0
            }
            .validate()
            .is_err()
        );
        assert!(
            PollHint {
                interval_seconds: 60,
                jitter_percent: 101
            }
            .validate()
            .is_err()
        );
    }
}
