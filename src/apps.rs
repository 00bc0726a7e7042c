//! The configured apps (tenants) and their credentials, looked up on every authenticated request.

use std::collections::HashMap;
use std::sync::Arc;

use ipnet::IpNet;
use md5::{Digest, Md5};

use crate::config::AppSettings;
use crate::domain::AppId;
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
}

impl App {
    /// Takes one send from the app's budget; `Err(seconds)` to wait.
    pub fn take_send(&self) -> Result<(), u64> {
        self.sends.check(&())
    }
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
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
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
