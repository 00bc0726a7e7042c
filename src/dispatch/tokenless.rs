//! Users this node knows to have no device token bound although it holds no session for them
//! (their connections are on other nodes): a group's push stream skips them without asking the
//! store each message, as it skips a local session that has no token (`PushView::NoTokens`).
//!
//! Learnt from the group push's presence check (`Store::group_push_presence`), forgotten when
//! the user's settings change (the users API here, or its announcement from another node) and
//! all at once on a resync (an announcement may have been lost). A check that overlapped a
//! change learns nothing: every forget advances `epoch`, and what a check found is kept only if
//! the epoch is the one it started at. Bounded: past `MAX` users it starts again empty.

use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

use crate::domain::UserKey;

/// Users remembered at most (~50 bytes each).
const MAX: usize = 1 << 20;

#[derive(Default)]
pub struct Tokenless {
    users: DashMap<UserKey, (), foldhash::fast::RandomState>,
    epoch: AtomicU64,
}

impl Tokenless {
    pub fn knows(&self, user: UserKey) -> bool {
        self.users.contains_key(&user)
    }

    /// Where a check starts: pass it to `learn`.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Remembers `users` as having no token, unless something was forgotten since `epoch`.
    pub fn learn(&self, epoch: u64, users: impl IntoIterator<Item = UserKey>) {
        for user in users {
            if self.epoch() != epoch {
                return;
            }
            if self.users.len() >= MAX {
                self.users.clear();
            }
            self.users.insert(user, ());
        }
        // A forget that raced the inserts above may have run before them: undo them all.
        if self.epoch() != epoch {
            self.users.clear();
        }
    }

    /// The user's settings (tokens among them) changed.
    pub fn forget(&self, user: UserKey) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.users.remove(&user);
    }

    /// An announcement may have been lost: nothing is known any more.
    pub fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.users.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AppId, Uid};

    #[test]
    fn what_a_check_found_is_kept_only_if_nothing_changed_meanwhile() {
        let t = Tokenless::default();
        let u = |uid| UserKey::new(AppId(1), Uid(uid));
        let e = t.epoch();
        t.learn(e, [u(1), u(2)]);
        assert!(t.knows(u(1)) && t.knows(u(2)));
        let e = t.epoch();
        t.forget(u(1)); // a token bound while the next check ran
        t.learn(e, [u(1), u(3)]);
        assert!(!t.knows(u(1)) && !t.knows(u(3)));
        t.clear();
        assert!(!t.knows(u(2)));
    }
}
