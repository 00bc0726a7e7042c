//! Group push on several nodes (README "Running several nodes", Presence and caches): a member
//! connected on another node without a device token is not made a push job (as a member
//! connected here is not), and is again as soon as a token is bound — on any node.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::multinode::{Cluster, bind, device, post, pushes};

/// Sends `count` messages to `gid` through `node`; waits until `jobs` push jobs are queued.
async fn send(cluster: &Cluster, node: usize, gid: u64, count: usize, jobs: usize) {
    for i in 0..count {
        let body = json!({"sender": 1, "receiver": gid, "content": format!("m{i}")});
        let (s, r) = post(&cluster.nodes[node], "/messages/groups", body).await;
        assert_eq!(s, 200, "{r}");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while pushes(&cluster.redis).len() < jobs && Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    // Anything more would come now.
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
}

#[actix_web::test]
async fn a_member_without_a_token_on_another_node_is_not_pushed_until_one_is_bound() {
    let cluster = Cluster::start(3);
    cluster.ready().await;
    let n = &cluster.nodes;
    for uid in [3, 4] {
        bind(&n[0], uid).await;
    }
    // On node 1, on the web (not online for push): 2 without a token, 3 with one. 4 offline.
    let _d2 = device(&n[1], 2, 3, "2").await;
    let _d3 = device(&n[1], 3, 3, "3").await;
    for is_super in [false, true] {
        let body = json!({"master": 1, "name": "g", "members": [2, 3, 4], "super": is_super});
        let (s, g) = post(&n[2], "/groups", body).await;
        assert_eq!(s, 200, "{g}");
        let gid = g["data"]["group_id"].as_u64().unwrap();
        let before = pushes(&cluster.redis).len();
        send(&cluster, 0, gid, 3, before + 3).await;
        let jobs = pushes(&cluster.redis);
        let new = &jobs[before..];
        assert_eq!(new.len(), 3, "one job per message: {new:?}");
        for (_, receivers) in new {
            assert_eq!(receivers, &vec![3, 4], "super {is_super}: {new:?}");
        }
        // User 2 binds a token through node 2: pushed from the next message on.
        bind(&n[2], 2).await;
        // Node 0 hears of it by the announcement (as of any settings change made elsewhere).
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
        send(&cluster, 0, gid, 1, before + 4).await;
        let jobs = pushes(&cluster.redis);
        assert_eq!(jobs.len(), before + 4, "{jobs:?}");
        assert_eq!(jobs[before + 3].1, vec![2, 3, 4], "super {is_super}");
        // Unbound again for the next group.
        let (s, r) = post(
            &n[1],
            "/users/2/unbind",
            json!({"apns_device_token": "apns-2"}),
        )
        .await;
        assert_eq!(s, 200, "{r}");
    }
}
