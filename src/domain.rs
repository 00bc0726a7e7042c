//! Validated identifiers and the small value types every layer shares.
//!
//! Ids arrive from JSON as numbers or decimal strings (SPEC §3); both are accepted here, once,
//! with an error message that says what was wrong. Everything downstream holds a valid id.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// Largest id we accept: ids are signed 64-bit in the original system and in most clients.
pub const MAX_ID: u64 = i64::MAX as u64;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// Parses a decimal string (path segment or query value).
            pub fn parse(s: &str) -> Result<Self, String> {
                parse_id(s).map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(IdVisitor).map($name)
            }
        }
    };
}

id_type!(
    /// An app (tenant): owns users, groups and messages.
    AppId
);
id_type!(
    /// A user id within an app.
    Uid
);
id_type!(
    /// A group id, chosen by its app or allocated per app: two apps can each have a group 5
    /// (`GroupKey` names one).
    GroupId
);
id_type!(
    /// A chat room id, chosen by the app (rooms are not stored; README "Chat rooms").
    RoomId
);

/// Parses a positive decimal id, naming what is wrong.
pub fn parse_id(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("must be a positive integer, got an empty string".into());
    }
    if t.starts_with('-') {
        return Err(format!("must be a positive integer, got {t}"));
    }
    if !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("must be a positive integer, got {t:?}"));
    }
    match t.parse::<u64>() {
        Ok(0) => Err("must be a positive integer, got 0".into()),
        Ok(v) if v <= MAX_ID => Ok(v),
        _ => Err(format!("is out of range (maximum {MAX_ID})")),
    }
}

struct IdVisitor;

impl<'de> Visitor<'de> for IdVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a positive integer (number or decimal string)")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        match v {
            0 => Err(E::custom("must be a positive integer, got 0")),
            v if v > MAX_ID => Err(E::custom(format!("is out of range (maximum {MAX_ID})"))),
            v => Ok(v),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        if v <= 0 {
            Err(E::custom(format!("must be a positive integer, got {v}")))
        } else {
            self.visit_u64(v as u64)
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        if v.fract() == 0.0 && v.abs() >= MAX_ID as f64 {
            Err(E::custom(format!("is out of range (maximum {MAX_ID})")))
        } else {
            Err(E::custom(format!("must be a positive integer, got {v}")))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        parse_id(v).map_err(E::custom)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<u64, E> {
        Err(E::custom(format!("must be a positive integer, got {v}")))
    }

    fn visit_unit<E: de::Error>(self) -> Result<u64, E> {
        Err(E::custom("must be a positive integer, got null"))
    }
}

/// A boolean that also accepts 0/1, as the original API's truthiness checks did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = bool;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a boolean (true/false or 1/0)")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
                Ok(v)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
                match v {
                    0 => Ok(false),
                    1 => Ok(true),
                    _ => Err(E::custom(format!("must be a boolean, got {v}"))),
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
                Err(E::custom(format!("must be a boolean, got {v}")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
                Err(E::custom(format!("must be a boolean, got {v}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
                Err(E::custom(format!("must be a boolean, got {v:?}")))
            }
        }
        d.deserialize_any(V).map(Flag)
    }
}

/// What a message is (SPEC §5.2): decides who receives it, whether it is stored and pushed,
/// and how each protocol writes it. Every entry point (HTTP, JSON WebSocket, binary) names
/// the kind with this one type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    Peer,
    Group,
    GroupNotification,
    System,
    Notification,
    Customer,
    /// A chat-room message: live only (README "Chat rooms").
    Room,
    /// A real-time peer message: live only, never stored or pushed.
    Rt,
}

impl MessageKind {
    /// The `kind` of the JSON wire and of stored records.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Peer => "peer",
            MessageKind::Group => "group",
            MessageKind::GroupNotification => "group_notification",
            MessageKind::System => "system",
            MessageKind::Notification => "notification",
            MessageKind::Customer => "customer",
            MessageKind::Room => "room",
            MessageKind::Rt => "rt",
        }
    }

    /// The kind named `s` (the JSON wire's `kind`), if any.
    pub fn parse(s: &str) -> Option<MessageKind> {
        [
            MessageKind::Peer,
            MessageKind::Group,
            MessageKind::GroupNotification,
            MessageKind::System,
            MessageKind::Notification,
            MessageKind::Customer,
            MessageKind::Room,
            MessageKind::Rt,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One user of one app: the key of sessions, inboxes and settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserKey {
    pub app: AppId,
    pub uid: Uid,
}

impl UserKey {
    pub fn new(app: AppId, uid: Uid) -> Self {
        UserKey { app, uid }
    }
}

/// One group of one app: the key of group actors and of every stored group record. Group ids
/// are per app, so app 8 can create a group with the id of one of app 7's groups and neither
/// learns of the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    pub app: AppId,
    pub id: GroupId,
}

impl GroupKey {
    pub fn new(app: AppId, id: GroupId) -> Self {
        GroupKey { app, id }
    }
}

impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.app, self.id)
    }
}

/// Client platform of a connection (SPEC §5.1). Only iOS and Android count as mobile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Platform(pub u8);

impl Platform {
    pub const IOS: Platform = Platform(1);
    pub const ANDROID: Platform = Platform(2);
    pub const WEB: Platform = Platform(3);

    pub fn is_mobile(self) -> bool {
        self.0 == 1 || self.0 == 2
    }
}

/// Push providers whose device tokens a user can bind (SPEC §4.1), in the original field order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PushProvider {
    Apns,
    Pushkit,
    Xg,
    Xm,
    Hw,
    Gcm,
    Jp,
}

impl PushProvider {
    pub const ALL: [PushProvider; 7] = [
        PushProvider::Apns,
        PushProvider::Pushkit,
        PushProvider::Xg,
        PushProvider::Xm,
        PushProvider::Hw,
        PushProvider::Gcm,
        PushProvider::Jp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PushProvider::Apns => "apns",
            PushProvider::Pushkit => "pushkit",
            PushProvider::Xg => "xg",
            PushProvider::Xm => "xm",
            PushProvider::Hw => "hw",
            PushProvider::Gcm => "gcm",
            PushProvider::Jp => "jp",
        }
    }

    /// The JSON field and the Redis hash field holding the token: `<p>_device_token`.
    pub fn token_field(self) -> &'static str {
        match self {
            PushProvider::Apns => "apns_device_token",
            PushProvider::Pushkit => "pushkit_device_token",
            PushProvider::Xg => "xg_device_token",
            PushProvider::Xm => "xm_device_token",
            PushProvider::Hw => "hw_device_token",
            PushProvider::Gcm => "gcm_device_token",
            PushProvider::Jp => "jp_device_token",
        }
    }

    /// The Redis hash field holding the bind time: `<p>_timestamp`.
    pub fn timestamp_field(self) -> &'static str {
        match self {
            PushProvider::Apns => "apns_timestamp",
            PushProvider::Pushkit => "pushkit_timestamp",
            PushProvider::Xg => "xg_timestamp",
            PushProvider::Xm => "xm_timestamp",
            PushProvider::Hw => "hw_timestamp",
            PushProvider::Gcm => "gcm_timestamp",
            PushProvider::Jp => "jp_timestamp",
        }
    }

    pub fn from_token_field(field: &str) -> Option<PushProvider> {
        PushProvider::ALL
            .into_iter()
            .find(|p| p.token_field() == field)
    }
}

/// A bound push device token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceToken {
    pub provider: PushProvider,
    pub token: String,
    /// Bind time, seconds since the epoch.
    pub bound_at: u64,
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_numbers_and_decimal_strings() {
        let v: Uid = serde_json::from_str("42").unwrap();
        assert_eq!(v, Uid(42));
        let v: Uid = serde_json::from_str("\"42\"").unwrap();
        assert_eq!(v, Uid(42));
    }

    #[test]
    fn ids_reject_zero_negative_float_text_and_huge() {
        for bad in [
            "0",
            "-1",
            "1.5",
            "\"abc\"",
            "\"-3\"",
            "true",
            "null",
            "1e30",
            "99999999999999999999",
        ] {
            let r: Result<Uid, _> = serde_json::from_str(bad);
            assert!(r.is_err(), "{bad} should be rejected");
        }
    }
}
