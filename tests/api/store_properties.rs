//! The store contract as a property: random sequences of operations applied to a memory store
//! and a redis store give the same observable results, operation by operation (return values,
//! and what later reads see). Message ids differ between backends only in their absolute value,
//! so they are compared relative to the first id each backend handed out.
//!
//! Users, groups, idempotency keys and tokens come from small pools so that operations meet each
//! other; inboxes keep 5 messages so that trimming is exercised.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;

use im_dispatcher::domain::{AppId, GroupId, GroupKey, PushProvider, Uid, UserKey};
use im_dispatcher::store::{
    Append, Appended, GroupEvent, GroupRecord, MemberRecord, Store, StoreResult, UserPatch,
};
use serde_json::Value;

use crate::fuzz::{runner, shrink};
use crate::helpers::*;

const SEQUENCES: usize = 1_000;
const INBOX_LEN: u64 = 5;
const TTL: u64 = 60;

#[derive(Debug, Clone)]
enum Op {
    Grant {
        user: UserKey,
        name: Option<String>,
    },
    /// Resolves a token handed out before (by its index), or an unknown one.
    Resolve(Index),
    Revoke(UserKey),
    Block(UserKey, bool),
    UpdateUser(UserKey, UserPatch),
    LoadUser(UserKey),
    Bind(UserKey, Vec<(PushProvider, String)>, u64),
    Unbind(UserKey, Vec<(PushProvider, String)>),
    DeviceTokens(Vec<UserKey>),
    NextId,
    Append {
        inboxes: Vec<UserKey>,
        content: String,
        key: Option<String>,
    },
    InboxAfter(UserKey, u64, u64, usize),
    InboxLatest(UserKey, Option<u64>, usize),
    LatestSeq(UserKey),
    SetAck(UserKey, String, u64),
    Unread(UserKey, String),
    CreateGroup(GroupRecord),
    LoadGroup(GroupKey),
    RenameGroup(GroupKey, String),
    UpgradeGroup(GroupKey),
    DeleteGroup(GroupKey),
    AddMembers(GroupKey, Vec<MemberRecord>),
    RemoveMembers(GroupKey, Vec<Uid>, Option<Uid>),
    UserGroups(UserKey),
    UpdateMember(GroupKey, MemberRecord),
    Member(GroupKey, Uid),
    AppendTimeline(GroupKey, Option<String>),
    TimelineAfter(GroupKey, u64, usize),
    TimelineSeq(GroupKey),
}

fn user() -> impl Strategy<Value = UserKey> + Clone {
    (1u64..=2, 1u64..=4).prop_map(|(a, u)| UserKey::new(AppId(a), Uid(u)))
}

fn users() -> impl Strategy<Value = Vec<UserKey>> + Clone {
    vec(user(), 0..4)
}

fn gid() -> impl Strategy<Value = GroupId> + Clone {
    prop_oneof![
        8 => (1u64..=4).prop_map(GroupId),
        1 => Just(GroupId(9_007_199_254_740_993)),
        1 => Just(GroupId(i64::MAX as u64)),
    ]
}

/// A group of app 1 or 2: the same ids in both apps are different groups.
fn gkey() -> impl Strategy<Value = GroupKey> + Clone {
    (1u64..=2, gid()).prop_map(|(app, g)| GroupKey::new(AppId(app), g))
}

fn text() -> impl Strategy<Value = String> + Clone {
    prop_oneof![3 => "[a-z]{0,6}", 1 => "\\PC{0,12}", 1 => "[a-z, ]{1,8}"]
}

/// A stored nickname is absent or non-empty (the dispatcher stores an empty one as absent).
fn nickname() -> impl Strategy<Value = Option<String>> + Clone {
    proptest::option::of(prop_oneof!["[a-z]{1,6}", "[a-z,]{1,8}", "\\PC{1,8}"])
}

fn seq() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![8 => 0u64..=12, 1 => Just(u64::MAX)]
}

fn key() -> impl Strategy<Value = Option<String>> + Clone {
    proptest::option::of((0..4u8).prop_map(|k| format!("k{k}")))
}

fn device() -> impl Strategy<Value = String> + Clone {
    prop_oneof![Just("1:d".to_string()), Just("3:web".to_string())]
}

fn tokens() -> impl Strategy<Value = Vec<(PushProvider, String)>> + Clone {
    vec(
        (
            proptest::sample::select(PushProvider::ALL.to_vec()),
            prop_oneof![Just("a".to_string()), Just("b".to_string()), "\\PC{1,6}"],
        ),
        1..4,
    )
}

fn member() -> impl Strategy<Value = MemberRecord> + Clone {
    (
        1u64..=5,
        0u64..3,
        0u64..3,
        any::<bool>(),
        any::<bool>(),
        nickname(),
    )
        .prop_map(
            |(uid, joined_at, join_seq, mute, dnd, nickname)| MemberRecord {
                uid: Uid(uid),
                joined_at,
                join_seq,
                mute,
                dnd,
                nickname,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    let patch = (
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::option::of((1u64..=4, any::<bool>()).prop_map(|(p, on)| (Uid(p), on))),
        proptest::option::of(any::<bool>()),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(
            |(name, avatar, do_not_disturb, mute, forbidden)| UserPatch {
                name,
                avatar,
                do_not_disturb,
                mute,
                forbidden,
            },
        );
    let group = (
        prop_oneof![3 => Just(GroupId(0)), 4 => gid()],
        1u64..=2,
        text(),
        1u64..=5,
        any::<bool>(),
        vec(member(), 0..4),
    )
        .prop_map(|(id, app, name, master, is_super, members)| GroupRecord {
            id,
            app: AppId(app),
            name,
            master: Uid(master),
            is_super,
            members,
        });
    prop_oneof![
        3 => (user(), proptest::option::of(text())).prop_map(|(user, name)| Op::Grant { user, name }),
        2 => any::<Index>().prop_map(Op::Resolve),
        1 => user().prop_map(Op::Revoke),
        1 => (user(), any::<bool>()).prop_map(|(u, on)| Op::Block(u, on)),
        2 => (user(), patch).prop_map(|(u, p)| Op::UpdateUser(u, p)),
        2 => user().prop_map(Op::LoadUser),
        2 => (user(), tokens(), 100u64..=102).prop_map(|(u, t, now)| Op::Bind(u, t, now)),
        1 => (user(), tokens()).prop_map(|(u, t)| Op::Unbind(u, t)),
        1 => users().prop_map(Op::DeviceTokens),
        1 => Just(Op::NextId),
        6 => (vec(user(), 1..4), "[a-z]{0,6}", key())
            .prop_map(|(inboxes, content, key)| Op::Append { inboxes, content, key }),
        3 => (user(), seq(), seq(), 0usize..=6).prop_map(|(u, a, b, l)| Op::InboxAfter(u, a, b, l)),
        3 => (user(), proptest::option::of(seq()), 0usize..=6)
            .prop_map(|(u, b, l)| Op::InboxLatest(u, b, l)),
        1 => user().prop_map(Op::LatestSeq),
        2 => (user(), device(), seq()).prop_map(|(u, d, s)| Op::SetAck(u, d, s)),
        2 => (user(), device()).prop_map(|(u, d)| Op::Unread(u, d)),
        3 => group.prop_map(Op::CreateGroup),
        2 => gkey().prop_map(Op::LoadGroup),
        1 => (gkey(), text()).prop_map(|(g, n)| Op::RenameGroup(g, n)),
        1 => gkey().prop_map(Op::UpgradeGroup),
        1 => gkey().prop_map(Op::DeleteGroup),
        2 => (gkey(), vec(member(), 0..3)).prop_map(|(g, m)| Op::AddMembers(g, m)),
        1 => (gkey(), vec(1u64..=5, 0..3))
            .prop_map(|(g, m)| Op::RemoveMembers(g, m.into_iter().map(Uid).collect(), None)),
        1 => (gkey(), vec(1u64..=5, 0..3), 1u64..=5).prop_map(|(g, m, master)| {
            Op::RemoveMembers(g, m.into_iter().map(Uid).collect(), Some(Uid(master)))
        }),
        2 => user().prop_map(Op::UserGroups),
        2 => (gkey(), member()).prop_map(|(g, m)| Op::UpdateMember(g, m)),
        1 => (gkey(), 1u64..=5).prop_map(|(g, u)| Op::Member(g, Uid(u))),
        3 => (gkey(), key()).prop_map(|(g, k)| Op::AppendTimeline(g, k)),
        2 => (gkey(), seq(), 0usize..=6).prop_map(|(g, a, l)| Op::TimelineAfter(g, a, l)),
        1 => gkey().prop_map(Op::TimelineSeq),
    ]
}

/// One backend's side of a run: message ids relative to the first one it handed out, and the
/// tokens it granted.
struct Side {
    store: Store,
    first_id: Option<u64>,
    tokens: Vec<String>,
}

impl Side {
    fn id(&mut self, id: u64) -> i128 {
        let first = *self.first_id.get_or_insert(id);
        i128::from(id) - i128::from(first)
    }

    /// Stored records with their id made relative.
    /// An append's outcome, with the message id relative to the first one seen.
    fn appended(&mut self, r: StoreResult<Appended>) -> String {
        match r {
            Ok(a) => format!(
                "id {} seqs {:?} first {} replayed {}",
                self.id(a.id),
                a.seqs,
                a.first_seq,
                a.replayed
            ),
            Err(e) => format!("{e:?}"),
        }
    }

    fn records(&mut self, records: Vec<String>) -> Vec<Value> {
        records
            .iter()
            .map(|r| {
                let mut v: Value = serde_json::from_str(r).unwrap_or_else(|e| panic!("{e}: {r}"));
                let id = v["id"].as_u64().unwrap_or_else(|| panic!("no id: {r}"));
                v["id"] = self.id(id).to_string().into();
                v
            })
            .collect()
    }

    /// Applies one operation; what a caller can observe of it, as text.
    async fn apply(&mut self, n: usize, op: &Op) -> String {
        let s = self.store.clone();
        match op {
            Op::Grant { user, name } => {
                let r = s
                    .grant_token(*user, name.as_deref(), &format!("fresh-{n}"))
                    .await;
                if let Ok(Some(t)) = &r {
                    self.tokens.push(t.clone());
                }
                format!("{r:?}")
            }
            Op::Resolve(i) => {
                let token = if self.tokens.is_empty() {
                    "unknown".to_string()
                } else {
                    self.tokens[i.index(self.tokens.len())].clone()
                };
                format!("{:?}", s.resolve_token(&token).await)
            }
            Op::Revoke(u) => format!("{:?}", s.revoke_token(*u).await),
            Op::Block(u, on) => format!("{:?}", s.set_blocked(*u, *on).await),
            Op::UpdateUser(u, p) => format!("{:?}", s.update_user(*u, p).await),
            Op::LoadUser(u) => format!("{:?}", s.load_user(*u).await),
            Op::Bind(u, t, now) => format!("{:?}", s.bind_device_tokens(*u, t, *now).await),
            Op::Unbind(u, t) => format!("{:?}", s.unbind_device_tokens(*u, t).await),
            Op::DeviceTokens(us) => format!("{:?}", s.device_tokens(us).await),
            Op::NextId => match s.next_message_id(AppId(1)).await {
                Ok(id) => format!("id {}", self.id(id)),
                Err(e) => format!("{e:?}"),
            },
            Op::Append {
                inboxes,
                content,
                key,
            } => {
                let body = format!(r#""kind":"peer","content":"{content}"}}"#);
                let r = s
                    .append(&Append {
                        inboxes,
                        body: &body,
                        idempotency: key.as_deref().map(|k| (k, TTL)),
                    })
                    .await;
                self.appended(r)
            }
            Op::InboxAfter(u, after, upto, limit) => {
                match s.inbox_after(*u, *after, *upto, *limit).await {
                    Ok(r) => format!("{:?}", self.records(r)),
                    Err(e) => format!("{e:?}"),
                }
            }
            Op::InboxLatest(u, before, limit) => match s.inbox_latest(*u, *before, *limit).await {
                Ok(r) => format!("{:?}", self.records(r)),
                Err(e) => format!("{e:?}"),
            },
            Op::LatestSeq(u) => format!("{:?}", s.latest_seq(*u).await),
            Op::SetAck(u, d, seq) => format!("{:?}", s.set_ack(*u, d, *seq).await),
            Op::Unread(u, d) => format!("{:?}", s.unread_count(*u, d).await),
            Op::CreateGroup(g) => format!("{:?}", s.create_group(g).await),
            Op::LoadGroup(g) => format!("{:?}", s.load_group(*g).await),
            Op::RenameGroup(g, name) => format!("{:?}", s.rename_group(*g, name).await),
            Op::UpgradeGroup(g) => {
                let events = [GroupEvent::Upgrade { app: g.app }];
                format!("{:?}", s.upgrade_group(*g, &events).await)
            }
            Op::DeleteGroup(g) => format!("{:?}", s.delete_group(*g, &[GroupEvent::Disband]).await),
            Op::AddMembers(g, m) => format!("{:?}", s.add_members(*g, m).await),
            Op::RemoveMembers(g, m, master) => {
                format!("{:?}", s.remove_members(*g, m, *master).await)
            }
            Op::UserGroups(u) => format!("{:?}", s.user_groups(*u).await),
            Op::UpdateMember(g, m) => {
                let events = [GroupEvent::MemberMute(m.uid, m.mute)];
                format!("{:?}", s.update_member(*g, m, &events).await)
            }
            Op::Member(g, u) => format!("{:?}", s.member(*g, *u).await),
            Op::AppendTimeline(g, key) => {
                let body = r#""kind":"group","content":"t"}"#;
                let r = s
                    .append_timeline(*g, body, key.as_deref().map(|k| (k, TTL)))
                    .await;
                self.appended(r)
            }
            Op::TimelineAfter(g, after, limit) => {
                match s.timeline_after(*g, *after, *limit).await {
                    Ok(r) => format!("{:?}", self.records(r)),
                    Err(e) => format!("{e:?}"),
                }
            }
            Op::TimelineSeq(g) => format!("{:?}", s.timeline_seq(*g).await),
        }
    }
}

/// Both stores, empty: a new memory store, and the redis database flushed.
struct Pair {
    redis: Store,
    redis_url: String,
}

impl Pair {
    async fn open() -> Pair {
        let (settings, url) = test_settings(Backend::Redis);
        let redis = Store::open(&settings.store, INBOX_LEN)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Pair {
            redis,
            redis_url: url.unwrap(),
        }
    }

    async fn fresh(&self) -> (Side, Side) {
        let (settings, _) = test_settings(Backend::Memory);
        let memory = Store::open(&settings.store, INBOX_LEN).await.unwrap();
        let mut con = crate::redis_server::connect(&self.redis_url);
        let _: () = redis::cmd("FLUSHDB").query(&mut con).unwrap();
        let side = |store| Side {
            store,
            first_id: None,
            tokens: Vec::new(),
        };
        (side(memory), side(self.redis.clone()))
    }

    /// Runs `ops` on both stores from empty; the first operation they disagree on.
    async fn differ(&self, ops: &[Op]) -> Result<(), String> {
        let (mut memory, mut redis) = self.fresh().await;
        for (n, op) in ops.iter().enumerate() {
            let (m, r) = (memory.apply(n, op).await, redis.apply(n, op).await);
            if m != r {
                return Err(format!(
                    "operation {n} {op:?}:\n  memory: {m}\n  redis:  {r}"
                ));
            }
        }
        Ok(())
    }
}

#[actix_web::test]
async fn memory_and_redis_stores_agree_on_every_sequence_of_operations() {
    let pair = Pair::open().await;
    let (mut runner, seed) = runner(SEQUENCES);
    let strategy = vec(op(), 1..=25);
    let started = std::time::Instant::now();
    let mut ops = 0;
    for case in 1..=SEQUENCES {
        let mut tree = strategy.new_tree(&mut runner).unwrap();
        let sequence = tree.current();
        ops += sequence.len();
        if let Err(why) = pair.differ(&sequence).await {
            let check = async |s: &Vec<Op>| pair.differ(s).await;
            let (sequence, why) = shrink(&mut tree, why, check).await;
            panic!(
                "sequence {case} (seed {seed}): the stores disagree on {why}\nthe sequence:\n{sequence:#?}"
            );
        }
    }
    println!(
        "store properties: {SEQUENCES} sequences, {ops} operations (seed {seed}) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
