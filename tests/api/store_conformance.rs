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
        assert_eq!(t1, "fresh-1");
        let t2 = store
            .grant_token(u(1, 1), None, "fresh-2")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t2, "fresh-1", "{}", store.kind());
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
        assert_eq!(t3, "fresh-3", "a revoked user gets a new token");
    }
}

#[actix_web::test]
async fn patches_apply_every_given_field() {
    for store in stores().await {
        let user = u(1, 2);
        assert_eq!(store.load_user(user).await.ok(), Some(Default::default()));
        let patch = UserPatch {
            name: Some("n".into()),
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
        assert_eq!((r.name.as_str(), r.mute, r.forbidden), ("n", true, false));
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
