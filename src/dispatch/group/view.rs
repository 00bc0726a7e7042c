//! What `GET /groups/{gid}` shows: the group and one page of its members, in uid order.

use serde::Serialize;

use super::GroupState;
use crate::domain::{GroupId, Uid};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MemberView {
    pub uid: Uid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    pub mute: bool,
    pub do_not_disturb: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupView {
    pub group_id: GroupId,
    pub name: String,
    pub master: Uid,
    #[serde(rename = "super")]
    pub is_super: bool,
    /// Members in all, whatever the page holds.
    pub member_count: usize,
    /// This page: members with a uid above the requested cursor, ascending.
    pub members: Vec<MemberView>,
    /// The cursor of the next page (the last uid of this one); `None` on the last page.
    pub next_cursor: Option<Uid>,
}

impl GroupState {
    pub(super) fn view(&self, gid: GroupId, after: u64, limit: usize) -> GroupView {
        let (page, more) = self.members.page(after, limit);
        let members: Vec<MemberView> = page
            .map(|m| MemberView {
                uid: m.uid,
                nickname: self.members.nickname(m.uid).map(str::to_string),
                mute: m.mute,
                do_not_disturb: m.dnd,
            })
            .collect();
        GroupView {
            group_id: gid,
            name: self.name.clone(),
            master: self.master,
            is_super: self.is_super,
            member_count: self.members.len(),
            next_cursor: members.last().filter(|_| more).map(|m| m.uid),
            members,
        }
    }
}
