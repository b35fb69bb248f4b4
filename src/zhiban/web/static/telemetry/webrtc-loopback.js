/* A real WebRTC client for zhiban's ingest: a loopback call in one page, getStats() posted every second.
   Parameters (fragment or query): app (app_id), key (ingest key), seconds (stop after; default: run on),
   count (stop once this many snapshots were answered, whatever the time; default: no limit),
   endpoint (default /api/v1/telemetry). State is kept on window.loopback for tests and curious people. */
(function () {
  "use strict";
  const params = new URLSearchParams(location.hash.slice(1) || location.search.slice(1));
  const query = new URLSearchParams(location.search.slice(1));
  const get = name => params.get(name) || query.get(name);
  const appId = get("app") || "";
  const key = get("key") || "";
  const endpoint = get("endpoint") || "/api/v1/telemetry";
  const seconds = +(get("seconds") || 0);
  const count = +(get("count") || 0);
  const sessionId = "web-" + (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2));
  const state = window.loopback = { sessionId: sessionId, sent: 0, accepted: 0, rejected: [], errors: [], state: "starting", done: false };
  const $ = id => document.getElementById(id);
  function show() {
    $("session").textContent = sessionId; $("state").textContent = state.state;
    $("sent").textContent = state.sent; $("accepted").textContent = state.accepted;
  }
  function fail(where, err) { state.errors.push(where + ": " + (err && err.message || err)); state.state = "error"; show(); }

  async function call() {
    const media = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 360, frameRate: 15 } });
    $("local").srcObject = media;
    const caller = new RTCPeerConnection();
    const callee = new RTCPeerConnection();
    caller.onicecandidate = e => e.candidate && callee.addIceCandidate(e.candidate);
    callee.onicecandidate = e => e.candidate && caller.addIceCandidate(e.candidate);
    callee.ontrack = e => { if (!$("remote").srcObject) $("remote").srcObject = e.streams[0]; };
    media.getTracks().forEach(track => caller.addTrack(track, media));
    const offer = await caller.createOffer();
    await caller.setLocalDescription(offer);
    await callee.setRemoteDescription(offer);
    const answer = await callee.createAnswer();
    await callee.setLocalDescription(answer);
    await caller.setRemoteDescription(answer);
    return { caller: caller, callee: callee, media: media };
  }

  async function post(callee) {
    const report = await callee.getStats();
    const snapshot = {
      v: 1, format: "webrtc-stats", app_id: appId, ts: Date.now(), session_id: sessionId,
      platform: "web", sdk_version: "webrtc-loopback/1", network: "loopback",
      stats: Array.from(report.values()),
    };
    state.sent++;
    const r = await fetch(endpoint, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer " + key },
      body: JSON.stringify([snapshot]),
    });
    const body = await r.json().catch(() => ({}));
    $("answer").textContent = r.status + " " + JSON.stringify(body).slice(0, 200);
    if (r.status === 202) {
      state.accepted += body.accepted || 0;
      state.rejected.push(...(body.rejected || []));
    } else {
      state.errors.push("HTTP " + r.status);
    }
    show();
  }

  async function main() {
    show();
    if (!appId || !key) { fail("setup", "give #app=…&key=… in the URL"); return; }
    let peers;
    try { peers = await call(); } catch (e) { fail("call", e); return; }
    state.state = "in call"; show();
    const started = Date.now();
    const inflight = new Set();  // posts still waiting for their answer: "done" waits for them
    const timer = setInterval(async () => {
      const answered = state.accepted + state.rejected.length + state.errors.length;
      if ((seconds && Date.now() - started > seconds * 1000) || (count && answered >= count)) {
        clearInterval(timer);
        peers.caller.close(); peers.callee.close(); peers.media.getTracks().forEach(t => t.stop());
        await Promise.allSettled(Array.from(inflight));
        state.state = "done"; state.done = true; show();
        return;
      }
      // One post at a time: two in flight can arrive out of order, and the converter drops an older snapshot.
      if (inflight.size > 0) return;
      const sending = post(peers.callee).catch(e => { state.errors.push("post: " + e.message); show(); });
      inflight.add(sending);
      await sending;
      inflight.delete(sending);
    }, 1000);
  }
  main();
})();
