//! Script calls that can run alone (`EVALSHA`, loading the script on `NOSCRIPT`) or several in
//! one pipeline: a group's queued messages are stored in one round-trip, in order.

use redis::{Script, ScriptInvocation, ToRedisArgs, Value};

use super::{RedisStore, map_err};
use crate::store::{StoreError, StoreResult};

/// One call of a script: its keys and arguments, kept so that it can be sent alone
/// (`invocation`) or in a pipeline (`evalsha`).
pub(super) struct Call {
    script: &'static Script,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl Call {
    pub(super) fn new(script: &'static Script) -> Call {
        Call {
            script,
            keys: Vec::new(),
            args: Vec::new(),
        }
    }

    pub(super) fn key(&mut self, key: impl ToRedisArgs) -> &mut Call {
        key.write_redis_args(&mut self.keys);
        self
    }

    pub(super) fn arg(&mut self, arg: impl ToRedisArgs) -> &mut Call {
        arg.write_redis_args(&mut self.args);
        self
    }

    pub(super) fn invocation(&self) -> ScriptInvocation<'static> {
        let mut inv = self.script.prepare_invoke();
        for k in &self.keys {
            inv.key(k.as_slice());
        }
        for a in &self.args {
            inv.arg(a.as_slice());
        }
        inv
    }

    fn evalsha(&self) -> redis::Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.script.get_hash()).arg(self.keys.len());
        for k in &self.keys {
            cmd.arg(k.as_slice());
        }
        for a in &self.args {
            cmd.arg(a.as_slice());
        }
        cmd
    }
}

/// A reply that says the script was not in Redis's cache: the call did not run.
fn no_script(r: &redis::RedisResult<Value>) -> bool {
    matches!(r, Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript))
}

impl RedisStore {
    /// Runs `calls` (all of one script) in order in one pipeline: one result per call. A call
    /// refused by Redis fails alone; a round-trip that fails fails them all. A script missing
    /// from Redis's cache (after a restart) misses for every call of the pipeline, none of
    /// which ran: the script is loaded and the pipeline sent once more.
    pub(super) async fn eval_all(&self, calls: &[Call], bulk: bool) -> Vec<StoreResult<Value>> {
        let Some(first) = calls.first() else {
            return Vec::new();
        };
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for c in calls {
            pipe.add_command(c.evalsha());
        }
        let mut replies = self.pipelined(&pipe, bulk).await;
        if let Ok(r) = &replies
            && r.iter().all(no_script)
        {
            replies = match self.load(first.script).await {
                Ok(()) => self.pipelined(&pipe, bulk).await,
                Err(e) => Err(e),
            };
        }
        match replies {
            Ok(r) if r.len() == calls.len() => r.into_iter().map(|v| v.map_err(map_err)).collect(),
            Ok(_) => failed(calls, StoreError::Corrupt("short pipeline reply".into())),
            Err(e) => failed(calls, e),
        }
    }

    async fn pipelined(
        &self,
        pipe: &redis::Pipeline,
        bulk: bool,
    ) -> StoreResult<Vec<redis::RedisResult<Value>>> {
        if bulk {
            return self.bulk(pipe).await;
        }
        let mut c = self.conn()?;
        self.run(pipe.query_async(&mut c)).await
    }

    async fn load(&self, script: &Script) -> StoreResult<()> {
        let mut c = self.conn()?;
        self.run(script.load_async(&mut c)).await.map(|_| ())
    }
}

fn failed(calls: &[Call], e: StoreError) -> Vec<StoreResult<Value>> {
    calls.iter().map(|_| Err(e.clone())).collect()
}
