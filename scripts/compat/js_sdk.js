// The unmodified GoBelieve JS SDK (lib/im.js of im_js, copied beside this file by
// scripts/compat/run) against im-dispatcher's /ws: peer, group, room and RT messages between two
// users; exits 0 when each arrived exactly once (and each send was acknowledged).
global.WebSocket = require('ws');
const IMService = require('./im.js');
const crypto = require('crypto');
const [httpPort] = process.argv.slice(2);
const auth = 'Basic ' + Buffer.from('7:' + crypto.createHash('md5').update('demo-secret').digest('hex')).toString('base64');
async function grant(uid) {
  const r = await fetch(`http://127.0.0.1:${httpPort}/auth/grant`, {method: 'POST', headers: {authorization: auth, 'content-type': 'application/json'}, body: JSON.stringify({uid, user_name: 'u' + uid})});
  return (await r.json()).data.token;
}
const got = {};
function note(k, v) { got[k] = (got[k] || []).concat([v]); console.log('EVENT', k, JSON.stringify(v)); }
function service(uid, token) {
  const im = new IMService();
  im.host = '127.0.0.1'; im.port = Number(httpPort); im.protocol = 'ws://'; im.accessToken = token;
  im.observer = {onConnectState: s => note(uid + ':state', s), saveSyncKey: k => note(uid + ':synckey', k), handleSyncEnd: () => {}, handleNotification: n => note(uid + ':notification', n), saveSuperGroupSyncKey: () => {}};
  im.peerMessageObserver = {handlePeerMessage: m => note(uid + ':peer', m.content), handlePeerMessageACK: m => note(uid + ':peer_ack', m.content), handlePeerMessageFailure: m => note(uid + ':peer_fail', m.content)};
  im.groupMessageObserver = {handleGroupMessage: m => note(uid + ':group', m.content), handleGroupMessageACK: m => note(uid + ':group_ack', m.content), handleGroupMessageFailure: m => note(uid + ':group_fail', m.content), handleGroupNotification: n => note(uid + ':group_note', n)};
  im.roomMessageObserver = {handleRoomMessage: m => note(uid + ':room', m.content)};
  im.rtMessageObserver = {handleRTMessage: m => note(uid + ':rt', m.content)};
  im.systemMessageObserver = {handleSystemMessage: m => note(uid + ':system', m)};
  im.start();
  return im;
}
const sleep = ms => new Promise(r => setTimeout(r, ms));
(async () => {
  const a = service(1, await grant(1)), b = service(2, await grant(2));
  await sleep(800);
  a.enterRoom(55); b.enterRoom(55);
  a.sendPeerMessage({sender: 1, receiver: 2, content: 'first from js', msgLocalID: 1});
  await sleep(500);
  a.sendPeerMessage({sender: 1, receiver: 2, content: 'second from js', msgLocalID: 2});
  a.sendGroupMessage({sender: 1, receiver: 3110, content: 'group from js', msgLocalID: 3});
  a.sendRoomMessage({sender: 1, receiver: 55, content: 'room from js'});
  a.sendRTMessage({sender: 1, receiver: 2, content: 'rt from js'});
  await sleep(1500);
  const want = [['1:peer_ack', 'first from js'], ['1:peer_ack', 'second from js'], ['2:peer', 'first from js'], ['2:peer', 'second from js'], ['1:group_ack', 'group from js'], ['2:group', 'group from js'], ['2:room', 'room from js'], ['2:rt', 'rt from js']];
  let ok = true;
  for (const [k, v] of want) {
    const n = (got[k] || []).filter(x => x === v).length;
    console.log(n === 1 ? 'OK  ' : 'FAIL', k, v, 'x' + n);
    if (n !== 1) ok = false;
  }
  process.exit(ok ? 0 : 1);
})();
