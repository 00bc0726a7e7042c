//! The store contract, run unchanged against memory and redis.

use im_dispatcher::config::StoreKind;
use im_dispatcher::domain::{AppId, PushProvider, Uid, UserKey};
use im_dispatcher::store::{Store, UserPatch};

use crate::helpers::*;

pub async fn stores() -> Vec<Store> {
    let mut out = Vec::new();
    for backend in BACKENDS {
        let (settings, _) = test_settings(backend);
        let store = Store::open(&settings.store, settings.limits.inbox_len)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            store.kind(),
            if backend == Backend::Redis {
                "redis"
            } else {
                "memory"
            }
        );
        assert!(matches!(
            settings.store.kind,
            StoreKind::Memory | StoreKind::Redis
        ));
        out.push(store);
    }
    out
}

fn u(app: u64, uid: u64) -> UserKey {
    UserKey::new(AppId(app), Uid(uid))
}

#[actix_web::test]
async fn tokens_are_get_or_create_resolvable_and_revocable() {
    for store in stores().await {
        let t1 = store
            .grant_token(u(1, 1), Some("a"), "fresh-1")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t1.as_deref(), Some("fresh-1"));
        let t2 = store
            .grant_token(u(1, 1), None, "fresh-2")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t2.as_deref(), Some("fresh-1"), "{}", store.kind());
        assert_eq!(
            store.load_user(u(1, 1)).await.map(|r| r.name).ok(),
            Some("a".into()),
            "no name keeps the name"
        );
        assert_eq!(
            store.resolve_token("fresh-1").await.ok().flatten(),
            Some(u(1, 1))
        );
        assert_eq!(store.resolve_token("fresh-2").await.ok().flatten(), None);
        assert_eq!(store.revoke_token(u(1, 1)).await.ok(), Some(true));
        assert_eq!(store.resolve_token("fresh-1").await.ok().flatten(), None);
        assert_eq!(store.revoke_token(u(1, 1)).await.ok(), Some(false));
        let t3 = store
            .grant_token(u(1, 1), None, "fresh-3")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            t3.as_deref(),
            Some("fresh-3"),
            "a revoked user gets a new token"
        );
        // A blocked user gets no token (and keeps none) until unblocked.
        assert_eq!(store.set_blocked(u(1, 1), true).await.ok(), Some(true));
        assert_eq!(store.set_blocked(u(1, 1), true).await.ok(), Some(false));
        assert_eq!(store.revoke_token(u(1, 1)).await.ok(), Some(true));
        let blocked = store.grant_token(u(1, 1), None, "fresh-4").await;
        assert_eq!(blocked.ok(), Some(None), "{}", store.kind());
        assert_eq!(store.resolve_token("fresh-4").await.ok().flatten(), None);
        assert_eq!(store.set_blocked(u(1, 1), false).await.ok(), Some(true));
        let t5 = store.grant_token(u(1, 1), None, "fresh-5").await;
        assert_eq!(t5.ok().flatten().as_deref(), Some("fresh-5"));
        assert_eq!(store.set_blocked(u(1, 1), false).await.ok(), Some(false));
    }
}

#[actix_web::test]
async fn patches_apply_every_given_field() {
    for store in stores().await {
        let user = u(1, 2);
        assert_eq!(store.load_user(user).await.ok(), Some(Default::default()));
        let patch = UserPatch {
            name: Some("n".into()),
            avatar: Some("pic".into()),
            do_not_disturb: Some((Uid(9), true)),
            mute: Some(true),
            forbidden: None,
        };
        store
            .update_user(user, &patch)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .update_user(
                user,
                &UserPatch {
                    do_not_disturb: Some((Uid(3), true)),
                    ..Default::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let r = store
            .load_user(user)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (r.name.as_str(), r.avatar.as_str(), r.mute, r.forbidden),
            ("n", "pic", true, false)
        );
        assert_eq!(r.dnd_peers, vec![Uid(3), Uid(9)], "{}", store.kind());
        store
            .update_user(
                user,
                &UserPatch {
                    do_not_disturb: Some((Uid(9), false)),
                    forbidden: Some(true),
                    ..Default::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let r = store
            .load_user(user)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.dnd_peers, vec![Uid(3)]);
        assert!(r.forbidden && r.mute);
    }
}

#[actix_web::test]
async fn device_tokens_list_newest_binding_first_and_unbind_only_matching() {
    for store in stores().await {
        let user = u(1, 3);
        store
            .bind_device_tokens(user, &[(PushProvider::Apns, "a1".into())], 100)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .bind_device_tokens(user, &[(PushProvider::Gcm, "g1".into())], 200)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .bind_device_tokens(user, &[(PushProvider::Xm, "x1".into())], 150)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let r = store
            .load_user(user)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let order: Vec<_> = r
            .device_tokens
            .iter()
            .map(|t| (t.token.as_str(), t.bound_at))
            .collect();
        assert_eq!(
            order,
            vec![("g1", 200), ("x1", 150), ("a1", 100)],
            "{}",
            store.kind()
        );
        // One slot per provider: a rebind replaces.
        store
            .bind_device_tokens(user, &[(PushProvider::Apns, "a2".into())], 300)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let n = store
            .unbind_device_tokens(
                user,
                &[
                    (PushProvider::Apns, "a1".into()),
                    (PushProvider::Gcm, "g1".into()),
                ],
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n, 1);
        let r = store
            .load_user(user)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let order: Vec<_> = r.device_tokens.iter().map(|t| t.token.as_str()).collect();
        assert_eq!(order, vec!["a2", "x1"]);
    }
}

async fn small_stores(inbox_len: u64) -> Vec<Store> {
    let mut out = Vec::new();
    for backend in BACKENDS {
        let (settings, _) = test_settings(backend);
        out.push(
            Store::open(&settings.store, inbox_len)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    out
}

fn seqs(stored: &[String]) -> Vec<u64> {
    stored
        .iter()
        .filter_map(|s| im_dispatcher::store::stored_seq(s))
        .collect()
}

/// One message stored in several appends (a notification to many inboxes) keeps one id.
#[actix_web::test]
async fn an_append_under_a_given_id_stores_under_it_and_numbers_as_usual() {
    use im_dispatcher::store::Append;
    for store in small_stores(5).await {
        let (a, b) = (u(1, 1), u(1, 2));
        let body = r#""kind":"group_notification","content":"n"}"#;
        let append = |inboxes| Append {
            inboxes,
            body,
            idempotency: None,
        };
        let (only_a, both) = ([a], [a, b]);
        let first = store.append(&append(&only_a)).await.unwrap();
        let again = store
            .append_as(&append(&both), Some(first.id))
            .await
            .unwrap();
        assert_eq!(
            (again.id, again.seqs),
            (first.id, vec![2, 1]),
            "{}",
            store.kind()
        );
        for user in [a, b] {
            let stored = store.inbox_after(user, 0, u64::MAX, 10).await.unwrap();
            let ids: Vec<Option<u64>> = stored
                .iter()
                .map(|s| serde_json::from_str::<serde_json::Value>(s).unwrap()["id"].as_u64())
                .collect();
            assert!(ids.iter().all(|id| *id == Some(first.id)), "{ids:?}");
        }
        let next = store.append_as(&append(&both[1..]), None).await.unwrap();
        assert!(next.id > first.id, "{}: None allocates", store.kind());
    }
}

#[actix_web::test]
async fn appends_number_each_inbox_without_gaps_and_share_one_id() {
    use im_dispatcher::store::Append;
    for store in small_stores(5).await {
        let (a, b) = (u(1, 1), u(1, 2));
        let first = store
            .append(&Append {
                inboxes: &[a, b],
                body: r#""kind":"peer","content":"x"}"#,
                idempotency: None,
            })
            .await
            .unwrap();
        assert_eq!((first.seqs.clone(), first.replayed), (vec![1, 1], false));
        let second = store
            .append(&Append {
                inboxes: &[b],
                body: r#""kind":"system","content":"y"}"#,
                idempotency: None,
            })
            .await
            .unwrap();
        assert_eq!(second.seqs, vec![2]);
        assert!(second.id > first.id, "{}", store.kind());
        let stored = store.inbox_after(b, 0, u64::MAX, 10).await.unwrap();
        let v: serde_json::Value = serde_json::from_str(&stored[0]).unwrap();
        assert_eq!(
            (v["id"].as_u64(), v["seq"].as_u64(), v["content"].as_str()),
            (Some(first.id), Some(1), Some("x"))
        );
        assert_eq!(store.latest_seq(b).await.unwrap(), 2);
        assert_eq!(store.latest_seq(u(1, 77)).await.unwrap(), 0);
        // Trimmed to the newest 5; seqs keep counting.
        for i in 0..6 {
            store
                .append(&Append {
                    inboxes: &[b],
                    body: &format!(r#""kind":"system","content":"{i}"}}"#),
                    idempotency: None,
                })
                .await
                .unwrap();
        }
        assert_eq!(
            seqs(&store.inbox_after(b, 0, u64::MAX, 100).await.unwrap()),
            vec![4, 5, 6, 7, 8],
            "{}",
            store.kind()
        );
        assert_eq!(
            seqs(&store.inbox_after(b, 5, 7, 100).await.unwrap()),
            vec![6, 7]
        );
        assert_eq!(
            seqs(&store.inbox_after(b, 4, u64::MAX, 2).await.unwrap()),
            vec![5, 6]
        );
        assert!(
            store
                .inbox_after(b, 8, u64::MAX, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            seqs(&store.inbox_latest(b, None, 2).await.unwrap()),
            vec![7, 8]
        );
        assert_eq!(
            seqs(&store.inbox_latest(b, Some(7), 2).await.unwrap()),
            vec![5, 6]
        );
        assert_eq!(
            seqs(&store.inbox_latest(b, Some(2), 5).await.unwrap()),
            Vec::<u64>::new()
        );
    }
}

#[actix_web::test]
async fn an_idempotency_key_replays_the_first_result() {
    use im_dispatcher::store::Append;
    for store in small_stores(100).await {
        let (a, b) = (u(1, 1), u(1, 2));
        let req = Append {
            inboxes: &[a, b],
            body: r#""kind":"peer","content":"x"}"#,
            idempotency: Some(("k1", 60)),
        };
        let first = store.append(&req).await.unwrap();
        let again = store.append(&req).await.unwrap();
        assert!(again.replayed && !first.replayed);
        assert_eq!((again.id, again.first_seq), (first.id, first.seqs[0]));
        assert_eq!(
            store.latest_seq(b).await.unwrap(),
            1,
            "{}: stored once",
            store.kind()
        );
        let other = store
            .append(&Append {
                idempotency: Some(("k2", 60)),
                ..req
            })
            .await
            .unwrap();
        assert!(!other.replayed);
        let m1 = store.next_message_id(AppId(1)).await.unwrap();
        let m2 = store.next_message_id(AppId(1)).await.unwrap();
        assert!(m2 > m1 && m1 > other.id);
    }
}

#[actix_web::test]
async fn acks_only_move_forward_and_drive_unread_counts() {
    use im_dispatcher::store::Append;
    for store in small_stores(3).await {
        let b = u(1, 2);
        assert_eq!(store.unread_count(b, "1:d").await.unwrap(), 0);
        for _ in 0..5 {
            store
                .append(&Append {
                    inboxes: &[b],
                    body: r#""kind":"system","content":"z"}"#,
                    idempotency: None,
                })
                .await
                .unwrap();
        }
        assert_eq!(
            store.unread_count(b, "1:d").await.unwrap(),
            3,
            "{}: bounded by what the inbox holds",
            store.kind()
        );
        store.set_ack(b, "1:d", 4).await.unwrap();
        assert_eq!(store.unread_count(b, "1:d").await.unwrap(), 1);
        store.set_ack(b, "1:d", 2).await.unwrap();
        assert_eq!(
            store.unread_count(b, "1:d").await.unwrap(),
            1,
            "never backwards"
        );
        store.set_ack(b, "1:d", 50).await.unwrap();
        assert_eq!(store.unread_count(b, "1:d").await.unwrap(), 0);
        store
            .append(&Append {
                inboxes: &[b],
                body: r#""kind":"system","content":"z"}"#,
                idempotency: None,
            })
            .await
            .unwrap();
        assert_eq!(
            store.unread_count(b, "1:d").await.unwrap(),
            1,
            "an ack past the end was capped at the end"
        );
        assert_eq!(store.unread_count(b, "3:other").await.unwrap(), 3);
    }
}

#[actix_web::test]
async fn device_tokens_of_many_users_come_back_in_order() {
    for store in stores().await {
        store
            .bind_device_tokens(u(1, 5), &[(PushProvider::Hw, "h5".into())], 10)
            .await
            .unwrap();
        store
            .bind_device_tokens(u(1, 7), &[(PushProvider::Jp, "j7".into())], 10)
            .await
            .unwrap();
        let all = store
            .device_tokens(&[u(1, 7), u(1, 6), u(1, 5)])
            .await
            .unwrap();
        let firsts: Vec<Option<&str>> = all
            .iter()
            .map(|t| t.first().map(|t| t.token.as_str()))
            .collect();
        assert_eq!(
            firsts,
            vec![Some("j7"), None, Some("h5")],
            "{}",
            store.kind()
        );
    }
}

#[actix_web::test]
async fn nothing_in_an_inbox_is_older_than_seq_one() {
    use im_dispatcher::store::Append;
    for store in stores().await {
        let b = u(1, 2);
        store
            .append(&Append {
                inboxes: &[b],
                body: r#""kind":"system","content":"z"}"#,
                idempotency: None,
            })
            .await
            .unwrap();
        for before in [0, 1] {
            assert_eq!(
                store.inbox_latest(b, Some(before), 10).await.unwrap(),
                Vec::<String>::new(),
                "{}: before {before}",
                store.kind()
            );
        }
    }
}

#[actix_web::test]
async fn renaming_a_group_that_does_not_exist_leaves_its_id_free() {
    use im_dispatcher::domain::{GroupId, GroupKey};
    use im_dispatcher::store::GroupRecord;
    let g3 = GroupKey::new(AppId(1), GroupId(3));
    for store in stores().await {
        store.rename_group(g3, "ghost").await.unwrap();
        assert_eq!(store.load_group(g3).await.unwrap(), None);
        let group = GroupRecord {
            id: GroupId(3),
            app: AppId(1),
            name: "real".into(),
            master: Uid(1),
            is_super: false,
            members: vec![],
        };
        assert_eq!(
            store.create_group(&group).await.unwrap(),
            Some(GroupId(3)),
            "{}",
            store.kind()
        );
        assert_eq!(
            store.load_group(g3).await.unwrap().map(|g| g.name),
            Some("real".into())
        );
    }
}

#[actix_web::test]
async fn deleting_a_group_takes_its_timeline_even_when_the_group_is_gone() {
    use im_dispatcher::domain::{GroupId, GroupKey};
    use im_dispatcher::store::GroupEvent;
    for store in stores().await {
        let gid = GroupKey::new(AppId(1), GroupId(5));
        store
            .append_timeline(gid, r#""kind":"group","content":"late"}"#, None)
            .await
            .unwrap();
        store
            .delete_group(gid, &[GroupEvent::Disband])
            .await
            .unwrap();
        assert_eq!(
            store.timeline_seq(gid).await.unwrap(),
            0,
            "{}",
            store.kind()
        );
        assert!(store.timeline_after(gid, 0, 10).await.unwrap().is_empty());
    }
}

#[actix_web::test]
async fn group_ids_and_message_ids_belong_to_their_app() {
    use im_dispatcher::domain::{GroupId, GroupKey};
    use im_dispatcher::store::{Append, GroupRecord};
    for store in stores().await {
        let group = |app: u64, id: u64, name: &str| GroupRecord {
            id: GroupId(id),
            app: AppId(app),
            name: name.into(),
            master: Uid(1),
            is_super: false,
            members: vec![],
        };
        let seven = store.create_group(&group(7, 0, "seven")).await.unwrap();
        let seven = seven.expect("app 7 allocates a group id");
        // App 8 names app 7's id, and gets it: ids are per app.
        let eight = store
            .create_group(&group(8, seven.0, "eight"))
            .await
            .unwrap();
        assert_eq!(
            eight,
            Some(seven),
            "{}: app 8 takes the same id",
            store.kind()
        );
        let name = |app: u64| {
            let store = store.clone();
            async move {
                let key = GroupKey::new(AppId(app), seven);
                store.load_group(key).await.unwrap().map(|g| g.name)
            }
        };
        assert_eq!(name(7).await.as_deref(), Some("seven"));
        assert_eq!(name(8).await.as_deref(), Some("eight"));
        assert_eq!(name(9).await, None, "app 9 sees neither");
        // Allocated ids count per app: app 9's first is 1, whatever app 7 made.
        for _ in 0..3 {
            store.create_group(&group(7, 0, "more")).await.unwrap();
        }
        let nine = store.create_group(&group(9, 0, "nine")).await.unwrap();
        assert_eq!(nine, Some(GroupId(1)), "{}", store.kind());
        // Message ids too: app 9's count is its own.
        let body = r#""kind":"peer","content":"x"}"#;
        for _ in 0..5 {
            let inboxes = [u(7, 1)];
            let append = Append {
                inboxes: &inboxes,
                body,
                idempotency: None,
            };
            store.append(&append).await.unwrap();
        }
        let inboxes = [u(9, 1)];
        let append = Append {
            inboxes: &inboxes,
            body,
            idempotency: None,
        };
        assert_eq!(
            store.append(&append).await.unwrap().id,
            1,
            "{}",
            store.kind()
        );
        assert_eq!(store.next_message_id(AppId(9)).await.unwrap(), 2);
    }
}
