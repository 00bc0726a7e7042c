//! Redis backend: inboxes (lists of stored JSON, trimmed), message ids, idempotency records,
//! acknowledged positions.
use redis::AsyncCommands;

use super::RedisStore;
use super::batch::Call;
use super::scripts::{APPEND, APPEND_EACH, INBOX_AFTER, INBOX_LATEST, SET_ACK, UNREAD};
use crate::domain::{AppId, DeviceToken, GroupKey, PushProvider, UserKey};
use crate::store::{Append, AppendEach, Appended, StoreError, StoreResult, keys, sort_tokens};

/// Adds the group check of `APPEND` (ARGV 7 and 8).
pub(super) fn check_group(call: &mut Call, check: Option<(GroupKey, u64)>) {
    if let Some((group, ver)) = check {
        call.arg(keys::group(group)).arg(ver);
    }
}

impl RedisStore {
    pub async fn device_tokens(&self, users: &[UserKey]) -> StoreResult<Vec<Vec<DeviceToken>>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        // Only the token fields: a user hash also holds a field per DND peer and group.
        let fields: Vec<&str> = PushProvider::ALL
            .iter()
            .flat_map(|p| [p.token_field(), p.timestamp_field()])
            .collect();
        let mut c = self.conn()?;
        let mut pipe = redis::pipe();
        for u in users {
            pipe.cmd("HMGET").arg(keys::user(*u)).arg(&fields);
        }
        let all: Vec<Vec<Option<String>>> = self.run(pipe.query_async(&mut c)).await?;
        Ok(all
            .into_iter()
            .map(|values| {
                let mut tokens: Vec<DeviceToken> = PushProvider::ALL
                    .iter()
                    .zip(values.chunks(2))
                    .filter_map(|(&provider, pair)| {
                        let token = pair.first()?.clone().filter(|t| !t.is_empty())?;
                        let bound_at = pair.get(1)?.as_deref().and_then(|t| t.parse().ok());
                        Some(DeviceToken {
                            provider,
                            token,
                            bound_at: bound_at.unwrap_or(0),
                        })
                    })
                    .collect();
                sort_tokens(&mut tokens);
                tokens
            })
            .collect())
    }

    pub async fn next_message_id(&self, app: AppId) -> StoreResult<u64> {
        let mut c = self.conn()?;
        self.run(c.incr(keys::message_id(app), 1)).await
    }

    pub async fn append(&self, a: &Append<'_>, id: Option<u64>) -> StoreResult<Appended> {
        self.append_checked(a, id, None).await
    }

    /// `append`, refused (`Appended::stale`) unless the group's stored `ver` is `check.1`.
    pub async fn append_checked(
        &self,
        a: &Append<'_>,
        id: Option<u64>,
        check: Option<(GroupKey, u64)>,
    ) -> StoreResult<Appended> {
        let lists = a
            .inboxes
            .iter()
            .map(|u| (keys::inbox_seq(*u), keys::inbox(*u)));
        let app = a.inboxes.first().map_or(AppId(0), |u| u.app);
        let mut call = self.append_call(app, lists, a.body, a.idempotency, "seq", id);
        check_group(&mut call, check);
        // Big fan-outs take a dedicated connection so they do not hold up small commands.
        let reply = self.eval(&call.invocation(), a.inboxes.len() > 64).await?;
        parse_appended(reply)
    }

    /// The `APPEND` script for `lists`, (seq counter, list) key pairs; `seq_field` names the
    /// seq in the stored JSON; `id` stores under a given message id instead of a new one.
    pub(super) fn append_call(
        &self,
        app: AppId,
        lists: impl Iterator<Item = (String, String)>,
        body: &str,
        idempotency: Option<(&str, u64)>,
        seq_field: &str,
        id: Option<u64>,
    ) -> Call {
        let mut call = Call::new(&APPEND);
        call.key(keys::message_id(app));
        match idempotency {
            Some((key, _)) => call.key(keys::idempotency(key)),
            None => call.key("imd:idem:-"),
        };
        for (seq, list) in lists {
            call.key(seq).key(list);
        }
        call.arg(body)
            .arg(self.inbox_len)
            .arg(idempotency.map_or(0, |(_, ttl)| ttl.max(1)))
            .arg(seq_field)
            .arg(id.unwrap_or(0))
            .arg(self.node());
        call
    }

    pub async fn append_each(&self, each: &AppendEach<'_>) -> StoreResult<Vec<(u64, u64)>> {
        if each.inboxes.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = APPEND_EACH.prepare_invoke();
        inv.key(keys::message_id(
            each.inboxes.first().map_or(AppId(0), |u| u.app),
        ));
        for u in each.inboxes {
            inv.key(keys::inbox_seq(*u)).key(keys::inbox(*u));
        }
        inv.arg(each.head)
            .arg(each.tail)
            .arg(self.inbox_len)
            .arg(self.node());
        for u in each.inboxes {
            inv.arg(u.uid.0);
        }
        let flat: Vec<u64> = self.eval(&inv, each.inboxes.len() > 64).await?;
        Ok(flat.chunks_exact(2).map(|p| (p[0], p[1])).collect())
    }

    pub async fn latest_seq(&self, user: UserKey) -> StoreResult<u64> {
        let mut c = self.conn()?;
        let v: Option<u64> = self.run(c.get(keys::inbox_seq(user))).await?;
        Ok(v.unwrap_or(0))
    }

    pub async fn inbox_after(
        &self,
        user: UserKey,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let mut c = self.conn()?;
        let mut inv = INBOX_AFTER.prepare_invoke();
        inv.key(keys::inbox_seq(user))
            .key(keys::inbox(user))
            .arg(after)
            .arg(upto)
            .arg(limit);
        self.run(inv.invoke_async(&mut c)).await
    }

    pub async fn inbox_latest(
        &self,
        user: UserKey,
        before: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        if before == Some(0) {
            // No seq is below 0 (and the script reads `before` 0 as no bound).
            return Ok(Vec::new());
        }
        let mut c = self.conn()?;
        let mut inv = INBOX_LATEST.prepare_invoke();
        inv.key(keys::inbox_seq(user))
            .key(keys::inbox(user))
            .arg(before.unwrap_or(0))
            .arg(limit);
        self.run(inv.invoke_async(&mut c)).await
    }

    pub async fn set_ack(&self, user: UserKey, device: &str, seq: u64) -> StoreResult<()> {
        let mut c = self.conn()?;
        let mut inv = SET_ACK.prepare_invoke();
        inv.key(keys::acks(user))
            .key(keys::inbox_seq(user))
            .arg(device)
            .arg(seq);
        let _: i64 = self.run(inv.invoke_async(&mut c)).await?;
        Ok(())
    }

    pub async fn unread_count(&self, user: UserKey, device: &str) -> StoreResult<u64> {
        let mut c = self.conn()?;
        let mut inv = UNREAD.prepare_invoke();
        inv.key(keys::acks(user))
            .key(keys::inbox_seq(user))
            .key(keys::inbox(user))
            .arg(device);
        let n: i64 = self.run(inv.invoke_async(&mut c)).await?;
        Ok(n.max(0) as u64)
    }
}

/// Reads the APPEND script's reply.
pub(super) fn parse_appended(reply: redis::Value) -> StoreResult<Appended> {
    use redis::Value;
    let corrupt = || StoreError::Corrupt("unexpected reply from the append script".into());
    let int = |v: &Value| match v {
        Value::Int(n) => Some(*n as u64),
        _ => None,
    };
    let Value::Array(items) = reply else {
        return Err(corrupt());
    };
    match items.as_slice() {
        [Value::Int(2)] => Ok(Appended {
            id: 0,
            seqs: Vec::new(),
            first_seq: 0,
            replayed: false,
            elsewhere: Vec::new(),
            stale: true,
        }),
        [Value::Int(0), prev] => {
            let text: String = redis::from_redis_value_ref(prev).map_err(|_| corrupt())?;
            let (id, seq) = text.split_once(':').ok_or_else(corrupt)?;
            Ok(Appended {
                id: id.parse().map_err(|_| corrupt())?,
                seqs: Vec::new(),
                first_seq: seq.parse().map_err(|_| corrupt())?,
                replayed: true,
                elsewhere: Vec::new(),
                stale: false,
            })
        }
        [Value::Int(1), id, seqs, rest @ ..] => {
            let id = int(id).ok_or_else(corrupt)?;
            let ints = |v: &Value| match v {
                Value::Array(v) => v.iter().map(int).collect::<Option<Vec<u64>>>(),
                _ => None,
            };
            let seqs = ints(seqs).ok_or_else(corrupt)?;
            let elsewhere = match rest.first() {
                Some(v) => ints(v).ok_or_else(corrupt)?,
                None => Vec::new(),
            };
            Ok(Appended {
                id,
                first_seq: seqs.first().copied().unwrap_or(0),
                seqs,
                replayed: false,
                elsewhere: elsewhere.into_iter().map(|e| e == 1).collect(),
                stale: false,
            })
        }
        _ => Err(corrupt()),
    }
}
