//! Device access rules of a product (ota-backend's "firewall"): which devices may check for and
//! download its firmware.
//!
//! A rule names one device, or every device through the wildcard [`ALL`]. Allowing `all` lets
//! any device in; removing it (denying `all`) closes the product again. Unlike the original
//! ota-backend, where denying a device only deleted its allowance (so `all` still let it in), a
//! device denied by name stays out even while `all` is allowed.

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

/// The rule to store when a client allows or denies `device`: `None` deletes the device's rule.
/// Denying [`ALL`] deletes the wildcard rather than denying everyone, as in ota-backend.
pub fn rule_for(device: &str, access: Access) -> Option<Access> {
    match access {
        Access::Deny if device == ALL => None,
        other => Some(other),
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

    /// Whether `device` may use the product: its own rule decides; without one, the `all` rule.
    pub fn admits(&self, device: &str) -> bool {
        match self.rules.get(device) {
            Some(access) => *access == Access::Allow,
            None => self.rules.get(ALL) == Some(&Access::Allow),
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
    fn closed_until_allowed() {
        assert!(!Firewall::default().admits("dev-1"));
        let fw = firewall(&[("dev-1", Access::Allow)]);
        assert!(fw.admits("dev-1"));
        assert!(!fw.admits("dev-2"));
    }

    #[test]
    fn all_admits_everyone_but_the_denied() {
        let fw = firewall(&[(ALL, Access::Allow), ("dev-2", Access::Deny)]);
        assert!(fw.admits("dev-1"));
        assert!(!fw.admits("dev-2"), "a device denied by name stays out");
    }

    #[test]
    fn denying_all_removes_the_wildcard() {
        assert_eq!(rule_for(ALL, Access::Deny), None);
        assert_eq!(rule_for(ALL, Access::Allow), Some(Access::Allow));
        assert_eq!(rule_for("dev-1", Access::Deny), Some(Access::Deny));
    }
}
