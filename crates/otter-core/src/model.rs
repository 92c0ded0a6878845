//! The native model: what otter stores and what its API speaks (camelCase JSON).
//!
//! Device protocols are adapters over these types; nothing protocol-specific belongs here.
//!
//! Times are kept as Unix seconds (what the store holds and the code compares) and spoken as
//! RFC 3339 UTC, like `releaseDate`: see [`rfc3339`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::version::{Scheme, Version, VersionError};

/// Longest release title; it is shown on small device screens.
pub const MAX_TITLE_LEN: usize = 60;
/// Longest release summary.
pub const MAX_SUMMARY_LEN: usize = 200;
/// Longest product name, device id, channel name or file name.
pub const MAX_NAME_LEN: usize = 128;
/// The channel a release goes to, and a device listens on, when none is named.
pub const DEFAULT_CHANNEL: &str = "stable";
/// The most channels one release may be published on: channels are named audiences, and each
/// is a row to match on every check-in.
pub const MAX_CHANNELS: usize = 32;

/// A firmware line, e.g. `door-sensor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Product {
    pub name: String,
    pub scheme: Scheme,
    #[serde(with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: i64,
}

/// An immutable firmware image, addressed by its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    pub sha256: String,
    pub sha1: String,
    pub md5: String,
    pub size: u64,
    /// The file name it was uploaded under; used in download URLs.
    pub filename: String,
    #[serde(with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: i64,
}

/// A published version of a product, pointing at one artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Release {
    /// Publish order across the whole server; for opaque products it is the version order.
    pub seq: i64,
    pub product: String,
    pub version: String,
    pub artifact: Artifact,
    pub channels: Vec<String>,
    /// RFC 3339, with offset.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub release_date: String,
    pub min_source_version: Option<String>,
    pub mandatory: bool,
    pub deprecated: bool,
    pub yanked: bool,
    pub title: Option<String>,
    pub summary: Option<String>,
    pub release_notes_url: Option<String>,
    /// Free-form JSON object the publisher attached.
    pub metadata: serde_json::Value,
    #[serde(with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: i64,
}

/// A client's request to publish a release.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewRelease {
    pub version: String,
    /// SHA-256 of an uploaded artifact.
    pub artifact: String,
    /// Absent (or empty here): `stable`. An explicit `[]` in JSON is refused, since a release on
    /// no channel could never be offered.
    #[serde(
        default,
        deserialize_with = "non_empty_channels",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub channels: Vec<String>,
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub release_date: Option<String>,
    pub min_source_version: Option<String>,
    #[serde(default)]
    pub mandatory: bool,
    pub title: Option<String>,
    pub summary: Option<String>,
    pub release_notes_url: Option<String>,
    pub metadata: Option<serde_json::Value>,
    /// The release manifest signed offline (a DSSE envelope), for products with a root of trust.
    pub signature: Option<serde_json::Value>,
    /// ECDSA P-256 signature of the image by a release key, base64 DER (the manifest
    /// contract's `binarySignature`).
    pub binary_signature: Option<String>,
}

/// Flags that may change after publishing. Everything else about a release is immutable.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReleasePatch {
    pub deprecated: Option<bool>,
    pub yanked: Option<bool>,
    pub mandatory: Option<bool>,
}

/// A field of a client request that otter refuses, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidField {
    #[error(transparent)]
    Version(#[from] VersionError),
    #[error("{field} is longer than {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("{field} {value:?} is invalid: {why}")]
    Invalid {
        field: &'static str,
        value: String,
        why: &'static str,
    },
}

impl InvalidField {
    /// A stable machine-readable code for the API's error body.
    pub fn code(&self) -> &'static str {
        match self {
            InvalidField::Version(_) => "invalid_version",
            InvalidField::TooLong { .. } => "field_too_long",
            InvalidField::Invalid { .. } => "invalid_field",
        }
    }
}

/// Checks a product name, channel or device id: 1..=128 characters from `A-Z a-z 0-9 . _ -`,
/// not starting with a dot, so it is safe in URLs, file names and MQTT topics.
pub fn validate_name(field: &'static str, value: &str) -> Result<(), InvalidField> {
    if value.len() > MAX_NAME_LEN {
        return Err(InvalidField::TooLong {
            field,
            max: MAX_NAME_LEN,
        });
    }
    let ok = !value.is_empty()
        && !value.starts_with('.')
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(InvalidField::Invalid {
            field,
            value: value.to_owned(),
            why: "use 1-128 characters from A-Z a-z 0-9 . _ - (not starting with a dot)",
        })
    }
}

/// Checks a device id: like [`validate_name`], and `:` is allowed too, so a MAC address
/// (`5C:CF:7F:12:34:56`, what the Arduino update clients send) can be the id.
pub fn validate_device_id(field: &'static str, value: &str) -> Result<(), InvalidField> {
    let without_colons = value.replace(':', "_");
    validate_name(field, &without_colons).map_err(|e| match e {
        InvalidField::Invalid { field, .. } => InvalidField::Invalid {
            field,
            value: value.to_owned(),
            why: "use 1-128 characters from A-Z a-z 0-9 . _ - : (not starting with a dot)",
        },
        other => other,
    })
}

fn check_len(field: &'static str, value: &Option<String>, max: usize) -> Result<(), InvalidField> {
    match value {
        Some(v) if v.chars().count() > max => Err(InvalidField::TooLong { field, max }),
        _ => Ok(()),
    }
}

/// Makes an uploaded file name safe for URLs and `Content-Disposition`: keeps the last path
/// component, maps anything outside `A-Z a-z 0-9 . _ -` to `_`, and falls back to `firmware.bin`.
pub fn sanitize_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .take(MAX_NAME_LEN)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.trim_matches(['.', '_']).is_empty() {
        "firmware.bin".to_owned()
    } else {
        cleaned
    }
}

/// Parses an RFC 3339 timestamp with offset (`2026-05-22T11:30:00-04:00`).
pub fn parse_rfc3339(field: &'static str, value: &str) -> Result<OffsetDateTime, InvalidField> {
    OffsetDateTime::parse(value, &Rfc3339).map_err(|_| InvalidField::Invalid {
        field,
        value: value.to_owned(),
        why: "expected an RFC 3339 timestamp such as 2026-05-22T11:30:00-04:00",
    })
}

/// Formats seconds since the epoch as RFC 3339 UTC.
pub fn format_rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Serde for a time kept as Unix seconds: written as RFC 3339 UTC (`2026-12-05T22:50:08Z`),
/// read from RFC 3339 with any offset or, as otter used to write it, from an integer.
/// Use it as `#[serde(with = "rfc3339")]`.
pub mod rfc3339 {
    use super::{Deserialize, Deserializer, Serializer, format_rfc3339, parse_rfc3339};

    pub fn serialize<S: Serializer>(unix: &i64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_rfc3339(*unix))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        Time::deserialize(deserializer)?.unix()
    }

    /// The same for an optional time (`null` or absent: `None`), as
    /// `#[serde(default, with = "rfc3339::option")]`.
    pub mod option {
        use super::{Deserialize, Deserializer, Serializer, Time};

        pub fn serialize<S: Serializer>(
            unix: &Option<i64>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match unix {
                Some(unix) => super::serialize(unix, serializer),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<i64>, D::Error> {
            Option::<Time>::deserialize(deserializer)?
                .map(Time::unix)
                .transpose()
        }
    }

    /// A time as it may arrive.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Time {
        Unix(i64),
        Text(String),
    }

    impl Time {
        fn unix<E: serde::de::Error>(self) -> Result<i64, E> {
            match self {
                Time::Unix(unix) => Ok(unix),
                Time::Text(text) => parse_rfc3339("time", &text)
                    .map(|t| t.unix_timestamp())
                    .map_err(E::custom),
            }
        }
    }
}

/// `channels` as sent: a list that names at least one channel.
fn non_empty_channels<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let channels = Vec::<String>::deserialize(deserializer)?;
    if channels.is_empty() {
        return Err(serde::de::Error::custom(
            "channels must name at least one channel (leave it out for stable)",
        ));
    }
    Ok(channels)
}

impl NewRelease {
    /// Checks every field against `scheme` and fills in defaults (channel `stable`, release date
    /// `now`, empty metadata object). Returns the parsed version for the caller's convenience.
    pub fn validate(&mut self, scheme: Scheme, now: i64) -> Result<Version, InvalidField> {
        let version = Version::parse(scheme, &self.version)?;
        if !crate::digest::is_hex_digest(&self.artifact, 64) {
            return Err(InvalidField::Invalid {
                field: "artifact",
                value: self.artifact.clone(),
                why: "expected the artifact's SHA-256 as 64 hex characters",
            });
        }
        self.artifact.make_ascii_lowercase();
        if let Some(min) = &self.min_source_version
            && Version::parse(scheme, min)?
                .compare(&version)
                .is_some_and(|o| o.is_ge())
        {
            return Err(InvalidField::Invalid {
                field: "minSourceVersion",
                value: min.clone(),
                why: "must be below the release's own version, or no device could reach it",
            });
        }
        if self.channels.is_empty() {
            self.channels.push(DEFAULT_CHANNEL.to_owned());
        }
        if self.channels.len() > MAX_CHANNELS {
            return Err(InvalidField::Invalid {
                field: "channels",
                value: format!("{} channels", self.channels.len()),
                why: "a release is on at most 32 channels",
            });
        }
        self.channels.sort();
        if let Some(twice) = self.channels.windows(2).find(|w| w[0] == w[1]) {
            return Err(InvalidField::Invalid {
                field: "channels",
                value: twice[0].clone(),
                why: "each channel may be named once",
            });
        }
        for channel in &self.channels {
            validate_name("channel", channel)?;
        }
        check_len("title", &self.title, MAX_TITLE_LEN)?;
        check_len("summary", &self.summary, MAX_SUMMARY_LEN)?;
        check_len("releaseNotesUrl", &self.release_notes_url, 2048)?;
        if let Some(url) = &self.release_notes_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(InvalidField::Invalid {
                field: "releaseNotesUrl",
                value: url.clone(),
                why: "expected an http:// or https:// URL",
            });
        }
        match &self.release_date {
            Some(date) => {
                parse_rfc3339("releaseDate", date)?;
            }
            None => self.release_date = Some(format_rfc3339(now)),
        }
        match &self.metadata {
            None => self.metadata = Some(serde_json::Value::Object(Default::default())),
            Some(serde_json::Value::Object(_)) => {}
            Some(other) => {
                return Err(InvalidField::Invalid {
                    field: "metadata",
                    value: other.to_string(),
                    why: "expected a JSON object",
                });
            }
        }
        Ok(version)
    }
}

/// A device as otter last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Device {
    pub product: String,
    pub id: String,
    pub current_version: Option<String>,
    pub current_hash: Option<String>,
    pub channel: String,
    #[serde(with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub first_seen: i64,
    #[serde(with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub last_seen: i64,
    /// Whether the device installs updates as soon as its check-in offers one (THiNX devices;
    /// off until an operator turns it on, as in THiNX).
    pub auto_update: bool,
    /// What the device says about itself through its protocol (a THiNX device's MAC, alias,
    /// platform…), a JSON object.
    pub attributes: serde_json::Value,
    /// The protocol of its last check-in (`native`, `arduino`, `thinx`, `ota_backend`), as
    /// `otter_checks_total{protocol}` names it; `None` before otter recorded it.
    #[serde(default)]
    pub protocol: Option<String>,
    /// The address its last check-in came from.
    #[serde(default)]
    pub remote_address: Option<String>,
    /// An operator's labels, sorted (rollout stages and filters select by them).
    #[serde(default)]
    pub tags: Vec<String>,
    /// The channel an operator moved it to; it replaces the channel the device asks for.
    #[serde(default)]
    pub assigned_channel: Option<String>,
    /// The only release it is offered, when an operator pinned it (older releases included).
    #[serde(default)]
    pub pinned_version: Option<String>,
}

/// One sighting of a device, from a check-in or a report (or several sightings folded into one
/// by [`DeviceSeen::absorb`]); written in batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSeen {
    pub product: String,
    pub id: String,
    pub current_version: Option<String>,
    pub current_hash: Option<String>,
    pub channel: String,
    /// When the device was seen (the newest of folded sightings).
    pub at: i64,
    /// The oldest of folded sightings (`at` for one sighting): a new device's first-seen time.
    pub first_at: i64,
    /// Replaces the device's attributes when given.
    pub attributes: Option<serde_json::Value>,
    /// The protocol it spoke (`otter_checks_total{protocol}`'s name), replacing the one before.
    pub protocol: Option<&'static str>,
    /// The address it spoke from, replacing the one before.
    pub remote_addr: Option<std::net::IpAddr>,
}

impl DeviceSeen {
    /// One sighting of `id` at `at`, with nothing said about what it runs.
    pub fn new(product: String, id: String, channel: String, at: i64) -> Self {
        DeviceSeen {
            product,
            id,
            current_version: None,
            current_hash: None,
            channel,
            at,
            first_at: at,
            attributes: None,
            protocol: None,
            remote_addr: None,
        }
    }

    /// This sighting, saying which protocol the device spoke and from where.
    pub fn via(mut self, protocol: &'static str, remote_addr: Option<std::net::IpAddr>) -> Self {
        self.protocol = Some(protocol);
        self.remote_addr = remote_addr;
        self
    }

    /// Folds `later`, a sighting of the same device that came after this one, into this one,
    /// leaving what writing both in turn would leave: the newer by `at` wins (on a tie, `later`),
    /// a sighting that says what it runs (version or hash) replaces both, and one that says
    /// neither, or no attributes (or no protocol), keeps the ones before.
    /// Lets a batch write a device once however often it was seen.
    pub fn absorb(&mut self, later: DeviceSeen) {
        debug_assert!(self.product == later.product && self.id == later.id);
        self.first_at = self.first_at.min(later.first_at);
        if later.at < self.at {
            return;
        }
        self.at = later.at;
        self.channel = later.channel;
        if later.current_version.is_some() || later.current_hash.is_some() {
            self.current_version = later.current_version;
            self.current_hash = later.current_hash;
        }
        if later.attributes.is_some() {
            self.attributes = later.attributes;
        }
        if later.protocol.is_some() {
            self.protocol = later.protocol;
            self.remote_addr = later.remote_addr;
        }
    }
}

/// A device API key of a product (THiNX's `Authentication` header); the key itself is shown
/// once and only its SHA-256 is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    /// The first 16 hex digits of the key's SHA-256: enough to name it, useless to guess it.
    pub id: String,
    pub product: String,
    pub label: String,
    #[serde(with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: i64,
}

/// What an admin API credential may do; each role may do everything the roles below it may.
/// Ordered: `Viewer < Publisher < Admin`. Lowercase in JSON and on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads admin data (products, releases, devices, reports).
    Viewer,
    /// Also uploads, publishes and flags releases, signs them, manages devices and rollouts.
    Publisher,
    /// Also manages tokens, products and their keys, device admission, and reads the audit log.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Publisher, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Publisher => "publisher",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?} (admin, publisher or viewer)"))
    }
}

/// What kind of principal acted: an API token, or a user logged in to the admin UI; the audit log
/// keeps the kind beside the name, as a token and a user may share one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    Token,
    User,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Token => "token",
            ActorKind::User => "user",
        }
    }
}

impl FromStr for ActorKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "token" => Ok(ActorKind::Token),
            "user" => Ok(ActorKind::User),
            _ => Err(format!("unknown actor kind {s:?}")),
        }
    }
}

/// Who makes an admin request: a name (unique per kind) and the role it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    pub kind: ActorKind,
    pub name: String,
    pub role: Role,
}

/// An admin API token as listed: never the token itself, which is shown once and kept only as
/// its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ApiToken {
    pub name: String,
    pub role: Role,
    #[serde(with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: i64,
    /// Known to within a minute (it is written at most once a minute per token).
    #[serde(default, with = "rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_used_at: Option<i64>,
    #[serde(default, with = "rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub expires_at: Option<i64>,
    #[serde(default, with = "rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub revoked_at: Option<i64>,
}

/// A user account of the admin web UI as listed: never the password, which is kept only as an
/// argon2id hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub name: String,
    pub role: Role,
    /// A disabled user cannot log in and has no live session.
    pub disabled: bool,
    #[serde(with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: i64,
    #[serde(with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub password_changed_at: i64,
    #[serde(default, with = "rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_login_at: Option<i64>,
}

/// One entry of the audit log: a successful admin change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub id: i64,
    #[serde(with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: i64,
    pub actor: String,
    pub actor_kind: ActorKind,
    pub role: Role,
    /// The client's address as otter saw it (a proxy's, behind one).
    pub remote: Option<String>,
    pub request_id: Option<String>,
    /// What was done, e.g. `release.publish`.
    pub action: String,
    /// What it was done to, e.g. `door-sensor/1.1.0`.
    pub target: String,
    /// What changed, in a few words, when the route says.
    pub summary: Option<String>,
}

/// The signatures a release carries (signed releases).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ReleaseSignatures {
    pub version: String,
    /// The signed release manifest, a DSSE envelope exactly as uploaded.
    pub manifest: Option<String>,
    pub security_counter: Option<u32>,
    /// When the manifest's signature expires.
    #[serde(default, with = "rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub expires_at: Option<i64>,
    /// ECDSA P-256 over the image, base64 DER (the manifest contract's `binarySignature`).
    pub binary_signature: Option<String>,
}

/// Where a device is in installing a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReportState {
    Downloading,
    Downloaded,
    Installing,
    Installed,
    Failed,
    RolledBack,
}

impl ReportState {
    pub const ALL: [ReportState; 6] = [
        ReportState::Downloading,
        ReportState::Downloaded,
        ReportState::Installing,
        ReportState::Installed,
        ReportState::Failed,
        ReportState::RolledBack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportState::Downloading => "downloading",
            ReportState::Downloaded => "downloaded",
            ReportState::Installing => "installing",
            ReportState::Installed => "installed",
            ReportState::Failed => "failed",
            ReportState::RolledBack => "rolled_back",
        }
    }
}

impl fmt::Display for ReportState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ReportState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ReportState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown report state {s:?}"))
    }
}

/// A device's statement about one release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UpdateReport {
    pub id: i64,
    pub product: String,
    pub device: String,
    /// The release the report is about.
    pub version: String,
    pub state: ReportState,
    pub message: Option<String>,
    #[serde(with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: i64,
}

/// A resumable upload in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UploadSession {
    pub id: String,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    /// Bytes received so far; the next chunk must start here.
    pub offset: u64,
    #[serde(with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: i64,
    #[serde(with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: i64,
}

/// One page of a list, with the cursor for the next page when there is one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release() -> NewRelease {
        NewRelease {
            version: "1.0.0".into(),
            artifact: "AB".repeat(32),
            ..Default::default()
        }
    }

    #[test]
    fn validate_fills_defaults() {
        let mut r = release();
        r.validate(Scheme::Semver, 0).unwrap();
        assert_eq!(r.channels, vec!["stable"]);
        assert_eq!(r.release_date.as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(r.artifact, "ab".repeat(32));
        assert_eq!(r.metadata, Some(serde_json::json!({})));
    }

    #[test]
    fn validate_rejects_long_title_and_bad_fields() {
        let mut r = release();
        r.title = Some("x".repeat(61));
        assert_eq!(
            r.validate(Scheme::Semver, 0).unwrap_err().code(),
            "field_too_long"
        );
        let mut r = release();
        r.summary = Some("x".repeat(201));
        assert_eq!(
            r.validate(Scheme::Semver, 0).unwrap_err().code(),
            "field_too_long"
        );
        let mut r = release();
        r.version = "1.0".into();
        assert_eq!(
            r.validate(Scheme::Semver, 0).unwrap_err().code(),
            "invalid_version"
        );
        let mut r = release();
        r.release_date = Some("yesterday".into());
        assert_eq!(
            r.validate(Scheme::Semver, 0).unwrap_err().code(),
            "invalid_field"
        );
        let mut r = release();
        r.channels = vec!["bad channel".into()];
        assert_eq!(
            r.validate(Scheme::Semver, 0).unwrap_err().code(),
            "invalid_field"
        );
    }

    #[test]
    fn validate_rejects_releases_no_device_could_get() {
        for min in ["1.0.0", "2.0.0", "1.0.0+other"] {
            let mut r = release();
            r.min_source_version = Some(min.into());
            let e = r.validate(Scheme::Semver, 0).unwrap_err();
            assert!(e.to_string().contains("minSourceVersion"), "{min}: {e}");
        }
        let mut r = release();
        r.min_source_version = Some("0.9.0".into());
        r.validate(Scheme::Semver, 0).unwrap();

        let mut r = release();
        r.channels = vec!["beta".into(), "stable".into(), "beta".into()];
        let e = r.validate(Scheme::Semver, 0).unwrap_err();
        assert!(e.to_string().contains("once"), "{e}");
        let mut r = release();
        r.channels = (0..=MAX_CHANNELS).map(|i| format!("c{i}")).collect();
        let e = r.validate(Scheme::Semver, 0).unwrap_err();
        assert!(e.to_string().contains("at most 32"), "{e}");

        let json = r#"{"version":"1.0.0","artifact":"x","channels":[]}"#;
        let e = serde_json::from_str::<NewRelease>(json).unwrap_err();
        assert!(e.to_string().contains("at least one channel"), "{e}");
    }

    #[test]
    fn names_are_url_safe() {
        assert!(validate_name("product", "door-sensor_v2.1").is_ok());
        assert!(validate_name("product", "").is_err());
        assert!(validate_name("product", "..").is_err());
        assert!(validate_name("product", "a/b").is_err());
        assert!(validate_name("product", "a:b").is_err());
        assert!(validate_device_id("device", "5C:CF:7F:12:34:56").is_ok());
        assert!(validate_device_id("device", "a/b").is_err());
        assert!(validate_device_id("device", ":").is_ok());
        assert!(validate_device_id("device", "").is_err());
    }

    #[test]
    fn filenames_are_sanitized() {
        assert_eq!(sanitize_filename("build/out/fw v2.bin"), "fw_v2.bin");
        assert_eq!(sanitize_filename("C:\\x\\a.bin"), "a.bin");
        assert_eq!(sanitize_filename(".."), "firmware.bin");
        assert_eq!(sanitize_filename(""), "firmware.bin");
    }

    #[test]
    fn times_are_written_as_rfc3339_and_read_from_either_form() {
        let report = UpdateReport {
            id: 1,
            product: "door".into(),
            device: "d1".into(),
            version: "1.0.0".into(),
            state: ReportState::Installed,
            message: None,
            created_at: 1_796_511_008,
        };
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["createdAt"], "2026-12-05T22:50:08Z");
        assert_eq!(
            serde_json::from_value::<UpdateReport>(json).unwrap(),
            report
        );

        let mut old = serde_json::to_value(&report).unwrap();
        old["createdAt"] = serde_json::json!(1_796_511_008);
        assert_eq!(
            serde_json::from_value::<UpdateReport>(old.clone()).unwrap(),
            report
        );
        old["createdAt"] = serde_json::json!("2026-12-05T23:50:08+01:00");
        assert_eq!(
            serde_json::from_value::<UpdateReport>(old.clone()).unwrap(),
            report
        );
        old["createdAt"] = serde_json::json!("yesterday");
        let err = serde_json::from_value::<UpdateReport>(old).unwrap_err();
        assert!(err.to_string().contains("RFC 3339"), "{err}");
    }

    #[test]
    fn an_optional_time_may_be_absent_null_or_either_form() {
        let read = |json: serde_json::Value| {
            serde_json::from_value::<ReleaseSignatures>(json)
                .unwrap()
                .expires_at
        };
        assert_eq!(read(serde_json::json!({"version": "1.0.0"})), None);
        assert_eq!(
            read(serde_json::json!({"version": "1.0.0", "expiresAt": null})),
            None
        );
        assert_eq!(
            read(serde_json::json!({"version": "1.0.0", "expiresAt": 60})),
            Some(60)
        );
        let at = serde_json::json!({"version": "1.0.0", "expiresAt": "1970-01-01T00:01:00Z"});
        assert_eq!(read(at), Some(60));
        let signatures = ReleaseSignatures {
            expires_at: Some(60),
            ..Default::default()
        };
        let json = serde_json::to_value(&signatures).unwrap();
        assert_eq!(json["expiresAt"], "1970-01-01T00:01:00Z");
        assert_eq!(
            serde_json::to_value(ReleaseSignatures::default()).unwrap()["expiresAt"],
            serde_json::Value::Null
        );
    }

    #[test]
    fn report_states_round_trip() {
        for state in ReportState::ALL {
            assert_eq!(state.as_str().parse::<ReportState>(), Ok(state));
        }
    }

    /// Folding sightings leaves what writing them in turn would: the newest wins (the later on
    /// a tie), one that says nothing of its version keeps the one before, first_at is the oldest.
    #[test]
    fn absorb_keeps_what_writing_in_turn_would() {
        let seen = |version: Option<&str>, channel: &str, at| DeviceSeen {
            current_version: version.map(str::to_owned),
            ..DeviceSeen::new("p".into(), "d".into(), channel.into(), at)
        };
        let mut folded = seen(Some("1.0.0"), "stable", 10);
        folded.absorb(seen(None, "beta", 12));
        assert_eq!(folded.current_version.as_deref(), Some("1.0.0"));
        assert_eq!((folded.channel.as_str(), folded.at), ("beta", 12));
        folded.absorb(seen(Some("2.0.0"), "beta", 12));
        assert_eq!(folded.current_version.as_deref(), Some("2.0.0"));
        // A hash alone (an image the server could not name) replaces the version too.
        let mut unknown = seen(None, "beta", 12);
        unknown.current_hash = Some("ab".repeat(32));
        let mut hashed = folded.clone();
        hashed.absorb(unknown);
        assert_eq!(hashed.current_version, None);
        assert_eq!(hashed.current_hash, Some("ab".repeat(32)));
        // An older sighting, arriving late, changes nothing but the first-seen time.
        folded.absorb(seen(Some("0.9.0"), "stable", 7));
        assert_eq!(folded.current_version.as_deref(), Some("2.0.0"));
        assert_eq!((folded.first_at, folded.at), (7, 12));
        // The protocol and address of the last check-in that named them win; a report's
        // sighting (no protocol) keeps them.
        let address = Some("192.0.2.1".parse().unwrap());
        folded.absorb(seen(None, "beta", 13).via("arduino", address));
        folded.absorb(seen(None, "beta", 14));
        assert_eq!(
            (folded.protocol, folded.remote_addr),
            (Some("arduino"), address)
        );
        folded.absorb(seen(None, "beta", 15).via("native", None));
        assert_eq!(
            (folded.protocol, folded.remote_addr),
            (Some("native"), None)
        );
    }

    #[test]
    fn roles_are_ordered_and_lowercase() {
        assert!(Role::Viewer < Role::Publisher && Role::Publisher < Role::Admin);
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(
                serde_json::to_value(role).unwrap(),
                serde_json::json!(role.as_str())
            );
        }
        assert!("Admin".parse::<Role>().is_err());
    }
}
