//! One-time download tokens (THiNX's OTT): a device that is offered an update gets a token and
//! fetches the image with it, unauthenticated, once.
//!
//! A token is valid for 24 hours from issue and for 1 hour from its first use (whichever ends
//! first), and is spent when a download has sent its last byte; a spent token is refused. It is
//! bound to one device and one artifact. Only its SHA-256 is stored.

/// How long a token is valid after it was issued.
pub const TTL: i64 = 24 * 3600;
/// How long a token stays valid after its first use.
pub const TTL_AFTER_FIRST_USE: i64 = 3600;

/// A stored token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimeToken {
    pub token_sha256: String,
    pub product: String,
    pub device: String,
    /// SHA-256 of the artifact the token downloads.
    pub artifact: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub first_used_at: Option<i64>,
    pub spent_at: Option<i64>,
}

/// Why a token cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Expired,
    Spent,
}

impl OneTimeToken {
    /// A new token for `device` to download `artifact`, issued at `now`.
    pub fn issue(
        token_sha256: String,
        product: &str,
        device: &str,
        artifact: &str,
        now: i64,
    ) -> Self {
        OneTimeToken {
            token_sha256,
            product: product.to_owned(),
            device: device.to_owned(),
            artifact: artifact.to_owned(),
            created_at: now,
            expires_at: now + TTL,
            first_used_at: None,
            spent_at: None,
        }
    }

    /// Whether the token may start a download at `now`.
    pub fn check(&self, now: i64) -> Result<(), Refusal> {
        if self.spent_at.is_some() {
            Err(Refusal::Spent)
        } else if now >= self.expires_at {
            Err(Refusal::Expired)
        } else {
            Ok(())
        }
    }

    /// The expiry once the token has been used at `now` (first use shortens it to an hour).
    pub fn expiry_after_use(&self, now: i64) -> i64 {
        match self.first_used_at {
            Some(_) => self.expires_at,
            None => self.expires_at.min(now + TTL_AFTER_FIRST_USE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_a_day_then_an_hour_after_first_use_then_never_after_spending() {
        let mut t = OneTimeToken::issue("h".into(), "p", "d", "a", 1000);
        assert_eq!(t.check(1000), Ok(()));
        assert_eq!(t.check(1000 + TTL - 1), Ok(()));
        assert_eq!(t.check(1000 + TTL), Err(Refusal::Expired));
        // First use after 10 minutes: an hour from then.
        t.expires_at = t.expiry_after_use(1600);
        t.first_used_at = Some(1600);
        assert_eq!(t.expires_at, 1600 + TTL_AFTER_FIRST_USE);
        assert_eq!(
            t.expiry_after_use(2000),
            t.expires_at,
            "only the first use counts"
        );
        assert_eq!(t.check(1600 + TTL_AFTER_FIRST_USE), Err(Refusal::Expired));
        // First use near the end of the day: the day still ends it.
        let late = OneTimeToken::issue("h".into(), "p", "d", "a", 0);
        assert_eq!(late.expiry_after_use(TTL - 60), TTL);
        t.spent_at = Some(1700);
        assert_eq!(t.check(1700), Err(Refusal::Spent));
    }
}
