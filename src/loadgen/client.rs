//! HTTP plumbing of the client threads: awc clients bound to source addresses, one POST helper
//! that classifies failures the way the report counts them, and token grants.
//!
//! Every client socket binds to one of 127.0.0.1, 127.0.0.2, … (round-robin by a caller-given
//! slot) when the server is on loopback, so a run is not capped by one address's ~28k
//! ephemeral ports.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;

use super::shared::Shared;

/// The awc clients of one thread.
pub struct Clients {
    /// Unlimited connections per source address, for WebSocket handshakes (an upgraded
    /// connection keeps its pool permit for life, so a limit would cap open sockets).
    ws: Vec<awc::Client>,
    /// Shared keep-alive clients for set-up requests (grants, groups).
    setup: Vec<awc::Client>,
    /// Source address per slot (`None`: the OS chooses), for dedicated clients.
    sources: Vec<Option<IpAddr>>,
    /// Request and connect timeout of every client built here.
    timeout: Duration,
}

impl Clients {
    pub fn new(shared: &Shared) -> Clients {
        let sources: Vec<Option<IpAddr>> = if shared.sources.is_empty() {
            vec![None]
        } else {
            shared.sources.iter().copied().map(Some).collect()
        };
        let build = |ip: &Option<IpAddr>, limit: usize| build(*ip, limit, shared.timeout);
        Clients {
            ws: sources.iter().map(|ip| build(ip, 0)).collect(),
            setup: sources.iter().map(|ip| build(ip, 32)).collect(),
            sources,
            timeout: shared.timeout,
        }
    }

    pub fn ws(&self, slot: u64) -> &awc::Client {
        &self.ws[slot as usize % self.ws.len()]
    }

    pub fn setup(&self, slot: u64) -> &awc::Client {
        &self.setup[slot as usize % self.setup.len()]
    }

    /// A client with exactly one keep-alive connection, for a sender that owns it.
    pub fn dedicated(&self, slot: u64) -> awc::Client {
        build(
            self.sources[slot as usize % self.sources.len()],
            1,
            self.timeout,
        )
    }
}

fn build(ip: Option<IpAddr>, limit: usize, timeout: Duration) -> awc::Client {
    let mut connector = awc::Connector::new()
        .limit(limit)
        .timeout(timeout)
        .conn_keep_alive(Duration::from_secs(60));
    if let Some(ip) = ip {
        connector = connector.local_address(ip);
    }
    awc::Client::builder()
        .connector(connector)
        .timeout(timeout)
        .disable_redirects()
        .finish()
}

/// Why a request did not succeed.
#[derive(Debug)]
pub struct Failure {
    /// The HTTP status, or `None` when there was no response (connect error, timeout).
    pub status: Option<u16>,
    /// What happened, naming the request (kept as an error sample).
    pub text: String,
}

impl Failure {
    /// The key it is counted under in the report.
    pub fn key(&self) -> String {
        self.status
            .map_or_else(|| "transport".to_string(), |s| s.to_string())
    }
}

/// POSTs a JSON body with server authentication; `Ok(body)` on 200.
pub async fn post(
    client: &awc::Client,
    shared: &Shared,
    path: &str,
    body: String,
) -> Result<Bytes, Failure> {
    let req = client.post(format!("{}{path}", shared.base));
    with_body(req, "POST", shared, path, body).await
}

/// DELETEs with a JSON body and server authentication; `Ok(body)` on 200.
pub async fn delete(
    client: &awc::Client,
    shared: &Shared,
    path: &str,
    body: String,
) -> Result<Bytes, Failure> {
    let req = client.delete(format!("{}{path}", shared.base));
    with_body(req, "DELETE", shared, path, body).await
}

/// Sends `req` (`method`, for the failure text) with a JSON body and server authentication.
async fn with_body(
    req: awc::ClientRequest,
    method: &str,
    shared: &Shared,
    path: &str,
    body: String,
) -> Result<Bytes, Failure> {
    let sent = req
        .insert_header(("Authorization", shared.auth.as_str()))
        .insert_header(("Content-Type", "application/json"))
        .send_body(body);
    reply(method, path, sent, 1 << 20).await
}

/// GETs with server authentication; `Ok(body)` on 200.
pub async fn get(client: &awc::Client, shared: &Shared, path: &str) -> Result<Bytes, Failure> {
    let sent = client
        .get(format!("{}{path}", shared.base))
        .insert_header(("Authorization", shared.auth.as_str()))
        .send();
    reply("GET", path, sent, 16 << 20).await
}

/// The body of a 200 answer (at most `limit` bytes); anything else as a `Failure` naming the
/// request.
async fn reply(
    method: &str,
    path: &str,
    sent: awc::SendClientRequest,
    limit: usize,
) -> Result<Bytes, Failure> {
    let mut res = sent.await.map_err(|e| Failure {
        status: None,
        text: format!("{method} {path}: {e}"),
    })?;
    let status = res.status().as_u16();
    let bytes = res.body().limit(limit).await.map_err(|e| Failure {
        status: Some(status),
        text: format!("{method} {path}: reading the body: {e}"),
    })?;
    if status == 200 {
        Ok(bytes)
    } else {
        Err(Failure {
            status: Some(status),
            text: format!(
                "{method} {path}: {status} {}",
                String::from_utf8_lossy(&bytes)
            ),
        })
    }
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

#[derive(Deserialize)]
struct Token {
    token: String,
}

/// `data` of a success envelope.
pub fn data<T: serde::de::DeserializeOwned>(path: &str, body: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice::<Envelope<T>>(body)
        .map(|e| e.data)
        .map_err(|e| Failure {
            status: Some(200),
            text: format!(
                "POST {path}: unexpected answer ({e}): {}",
                String::from_utf8_lossy(body)
            ),
        })
}

/// A client token for `uid` (`POST /auth/grant`).
pub async fn grant(client: &awc::Client, shared: &Shared, uid: u64) -> Result<String, Failure> {
    let body = post(client, shared, "/auth/grant", format!(r#"{{"uid":{uid}}}"#)).await?;
    data::<Token>("/auth/grant", &body).map(|t| t.token)
}
