//! The configured apps (tenants) and their credentials, looked up on every authenticated request.

use std::collections::HashMap;
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use ipnet::IpNet;
use md5::{Digest, Md5};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::{AppSettings, CustomerRegistration};
use crate::domain::{AppId, Uid};
use crate::ratelimit::RateLimiter;

/// One app as the request path needs it.
pub struct App {
    pub id: AppId,
    pub name: String,
    /// `md5hex(secret)` in lower case: what server auth compares against (SPEC §3.1).
    pub secret_md5_hex: String,
    /// Customer-service store id; 0 = none.
    pub store_id: u64,
    /// Peers allowed to use the server credentials; empty = any.
    pub allowed_ips: Vec<IpNet>,
    /// Messages this app may send per second (HTTP sends and WebSocket sends together).
    pub sends: RateLimiter<()>,
    /// The app key in lower case: what `POST /customer/register` compares (the original's
    /// client credential; not a secret, every client app carries it).
    key_lower: String,
    /// Whether customer registrations must be signed by the app server.
    pub customer_registration: CustomerRegistration,
    /// HMAC-SHA256 keyed with the app secret, ready to check customer signatures (HMAC takes
    /// keys of any length, so it is always there).
    customer_mac: Option<Hmac<Sha256>>,
}

impl App {
    /// Takes one send from the app's budget; `Err(seconds)` to wait.
    pub fn take_send(&self) -> Result<(), u64> {
        self.sends.check(&())
    }

    /// Whether `given` is this app's key (case-insensitive, in constant time).
    pub fn key_matches(&self, given: &str) -> bool {
        given
            .to_ascii_lowercase()
            .as_bytes()
            .ct_eq(self.key_lower.as_bytes())
            .into()
    }

    /// Whether `signature_hex` is the app server's signature of this customer registration:
    /// hex HMAC-SHA256(app secret, `customer:<appid>:<customer_id>:<expires>`), compared in
    /// constant time.
    pub fn customer_signature_matches(
        &self,
        customer_id: &str,
        expires: u64,
        signature_hex: &str,
    ) -> bool {
        let (Some(given), Some(mut mac)) = (decode_hex(signature_hex), self.customer_mac.clone())
        else {
            return false;
        };
        mac.update(customer_message(self.id, customer_id, expires).as_bytes());
        mac.verify_slice(&given).is_ok()
    }

    /// An opaque tag of one device of one user: 16 hex digits of HMAC-SHA256(app secret,
    /// `device:<uid>:<platform>:<device_id>`). Stored with the peer and customer messages the
    /// device sends, so that a sync can tell the device which are its own (GoBelieve's SELF
    /// flag) without naming the device to anyone. `None` without a device id.
    pub fn device_tag(&self, uid: Uid, platform: u8, device_id: &str) -> Option<String> {
        let mut mac = self
            .customer_mac
            .clone()
            .filter(|_| !device_id.is_empty())?;
        mac.update(format!("device:{uid}:{platform}:{device_id}").as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(16);
        for b in digest.iter().take(8) {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
        Some(out)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// What the app server signs to vouch for a customer.
pub fn customer_message(app: AppId, customer_id: &str, expires: u64) -> String {
    format!("customer:{app}:{customer_id}:{expires}")
}

/// Bytes of a hex string (either case); `None` if it is not hex.
fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    let bytes = hex.trim().as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Lower-case hex MD5 of `s`.
pub fn md5_hex(s: impl AsRef<[u8]>) -> String {
    let digest = Md5::digest(s.as_ref());
    let mut out = String::with_capacity(32);
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

#[derive(Debug, Default)]
pub struct Apps {
    by_id: HashMap<AppId, Arc<App>>,
}

impl Apps {
    /// `default_sends_per_sec` applies to apps without their own `sends_per_sec`.
    pub fn new(settings: &[AppSettings], default_sends_per_sec: u32) -> Apps {
        let by_id = settings
            .iter()
            .map(|a| {
                let app = App {
                    id: AppId(a.id),
                    name: a.name.clone(),
                    secret_md5_hex: md5_hex(&a.secret),
                    store_id: a.store_id,
                    allowed_ips: a.allowed_ips.clone(),
                    sends: RateLimiter::per_second(
                        a.sends_per_sec.unwrap_or(default_sends_per_sec),
                    ),
                    key_lower: a.key.to_ascii_lowercase(),
                    customer_registration: a.customer_registration,
                    customer_mac: Hmac::new_from_slice(a.secret.as_bytes()).ok(),
                };
                (app.id, Arc::new(app))
            })
            .collect();
        Apps { by_id }
    }

    pub fn get(&self, id: AppId) -> Option<&Arc<App>> {
        self.by_id.get(&id)
    }
}
