//! Device access rules of a product (ota-backend's "firewall"): which devices may check for and
//! download its firmware.
//!
//! A rule names one device, or every device through the wildcard [`ALL`], which is the
//! product's [`Admission`] mode: no `all` rule or `all` allowed lets any device in (`open`),
//! `all` denied lets in only devices allowed by name (`allowlist`). Deny always wins: unlike the
//! original ota-backend, where denying a device only deleted its allowance (so `all` still let
//! it in), a device denied by name stays out whatever the mode. ota-backend firmwares are
//! created in the allowlist mode, as closed as they always were.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// The device id that stands for every device.
pub const ALL: &str = "all";

/// What a rule says about a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    Allow,
    Deny,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Allow => "allow",
            Access::Deny => "deny",
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Access {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "allow" => Ok(Access::Allow),
            "deny" => Ok(Access::Deny),
            other => Err(format!("unknown access rule {other:?}")),
        }
    }
}

/// Who a product lets in when a device has no rule of its own: everyone (`open`, the default),
/// or only devices allowed by name (`allowlist`). Stored as the [`ALL`] rule: denying `all` is
/// the allowlist, so ota-backend's `/v1/firewall/allow|deny all` and the admin API's admission
/// mode are one setting seen two ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Admission {
    #[default]
    Open,
    Allowlist,
}

impl Admission {
    pub fn as_str(self) -> &'static str {
        match self {
            Admission::Open => "open",
            Admission::Allowlist => "allowlist",
        }
    }

    /// The [`ALL`] rule that stands for this mode.
    pub fn rule(self) -> Access {
        match self {
            Admission::Open => Access::Allow,
            Admission::Allowlist => Access::Deny,
        }
    }
}

impl fmt::Display for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Admission {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "open" => Ok(Admission::Open),
            "allowlist" => Ok(Admission::Allowlist),
            other => Err(format!(
                "unknown admission mode {other:?} (expected open or allowlist)"
            )),
        }
    }
}

/// A product's rules, as the check path consults them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Firewall {
    rules: HashMap<String, Access>,
}

impl Firewall {
    pub fn new(rules: impl IntoIterator<Item = (String, Access)>) -> Self {
        Firewall {
            rules: rules.into_iter().collect(),
        }
    }

    /// Whether `device` may use the product: its own rule decides; without one, the mode.
    pub fn admits(&self, device: &str) -> bool {
        match self.rules.get(device) {
            Some(access) => *access == Access::Allow,
            None => self.admission() == Admission::Open,
        }
    }

    /// The product's admission mode (its `all` rule).
    pub fn admission(&self) -> Admission {
        match self.rules.get(ALL) {
            Some(Access::Deny) => Admission::Allowlist,
            _ => Admission::Open,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn firewall(rules: &[(&str, Access)]) -> Firewall {
        Firewall::new(rules.iter().map(|(d, a)| (d.to_string(), *a)))
    }

    #[test]
    fn open_by_default_and_deny_wins() {
        assert!(Firewall::default().admits("dev-1"));
        assert_eq!(Firewall::default().admission(), Admission::Open);
        let fw = firewall(&[("dev-2", Access::Deny)]);
        assert!(fw.admits("dev-1"));
        assert!(
            !fw.admits("dev-2"),
            "a device denied by name stays out of an open product"
        );
        let fw = firewall(&[(ALL, Access::Allow), ("dev-2", Access::Deny)]);
        assert!(fw.admits("dev-1"));
        assert!(!fw.admits("dev-2"));
    }

    #[test]
    fn the_allowlist_lets_in_only_devices_allowed_by_name() {
        let fw = firewall(&[
            (ALL, Access::Deny),
            ("dev-1", Access::Allow),
            ("dev-2", Access::Deny),
        ]);
        assert_eq!(fw.admission(), Admission::Allowlist);
        assert!(fw.admits("dev-1"));
        assert!(!fw.admits("dev-2"));
        assert!(!fw.admits("dev-3"), "unknown devices stay out");
    }

    #[test]
    fn admission_modes_round_trip() {
        for mode in [Admission::Open, Admission::Allowlist] {
            assert_eq!(mode.as_str().parse::<Admission>(), Ok(mode));
        }
        assert!("closed".parse::<Admission>().is_err());
    }
}
