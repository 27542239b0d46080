// The dashboard: a browser peer of the mesh (wasm client), plus the router's /api and
// /metrics for counters. No framework; plain DOM.
import init, { MeshPeer } from '/pkg/lanmesh_wasm.js';

const $ = (id) => document.getElementById(id);
const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/mesh`;
const meshKey = new URLSearchParams(location.hash.slice(1)).get('key');
// On a keyed mesh /api and /metrics answer the router's machine, or this bearer token
// (`lanmesh router --print-http-token`), passed as #key=…&token=….
const apiToken = new URLSearchParams(location.hash.slice(1)).get('token');
const history = new Array(60).fill(0);
// Per name, the counters of /api/peers seen over the last RATE_WINDOW_MS. The rates are
// taken over that window, from whatever samples it holds: a name that is only present
// now and then (a loop of `lanmesh send`, each one a short session) still gets its
// rate, since the router counts per name, across its sessions.
const samples = new Map();
const RATE_WINDOW_MS = 5000;
let peer = null;
let lastTotal = null;

// Reads one of the router's HTTP endpoints (`/api/peers` as JSON, `/metrics` as text).
// Every fetch goes through here, so that what the router may ask of a caller (a header,
// credentials) is added in one place.
async function api(path, as = 'json') {
  const headers = apiToken ? { Authorization: `Bearer ${apiToken}` } : {};
  const res = await fetch(path, { cache: 'no-store', headers });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return as === 'json' ? res.json() : res.text();
}

function setStatus(text, kind) {
  const el = $('status');
  el.textContent = text;
  el.className = `pill pill-${kind}`;
}

function fmtBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function logLine(kind, who, body, extra = '') {
  const li = document.createElement('li');
  li.className = kind;
  const time = new Date().toLocaleTimeString();
  li.innerHTML = `<time>${time}</time><b></b><span class="body"></span><small></small>`;
  li.querySelector('b').textContent = who;
  li.querySelector('.body').textContent = body;
  li.querySelector('small').textContent = extra;
  const log = $('log');
  log.prepend(li);
  while (log.children.length > 200) log.lastChild.remove();
}

function describe(data) {
  return typeof data === 'string' ? data : `‹${data.length} bytes of binary data›`;
}

// The dashboard's name. The router binds a name to the key that first took it, and every
// browser (profile, device) has a key of its own, kept in localStorage: so the first
// browser to open the dashboard is `dashboard` and any other one is `dashboard-XXXX`,
// XXXX being the start of its key's fingerprint (what a refusal prints as "this peer's
// key is …"), which stays the same for that browser. The name that worked is kept
// (localStorage), so a browser goes to it straight away next time. Tabs of one browser
// share one key, and a join with the same key and name replaces the older session: a
// tab whose name is already connected takes the next one (`dashboard-XXXX-2`, …), kept
// across reloads of that tab (sessionStorage).
const NAME_KEPT = 'lanmesh.dashboard.name';

// The first 4 hex digits of this browser's public key (the wasm client stores the
// identity as hex: secret, then public key), or null before its first connection.
function keyTag() {
  const id = localStorage.getItem('lanmesh.identity') || '';
  return /^[0-9a-f]{128}$/.test(id) ? id.slice(64, 68) : null;
}

// What the router says when a name is not this key's to take (bound to another key, or
// held right now by another key's session).
const NAME_REFUSED = /belongs to another key|is already held by|is in use/i;

// Names this tab may take, best first.
function candidates(tried) {
  const tag = keyTag();
  const names = [sessionStorage.getItem(NAME_KEPT), localStorage.getItem(NAME_KEPT), 'dashboard'];
  if (tag) {
    names.push(`dashboard-${tag}`);
    for (let n = 2; n <= 9; n++) names.push(`dashboard-${tag}-${n}`);
  }
  return [...new Set(names.filter((n) => n && !tried.has(n)))];
}

// Names connected right now (empty when /api/peers cannot be read).
async function connectedNames() {
  try {
    return new Set((await api('/api/peers')).map((p) => p.name));
  } catch {
    return new Set();
  }
}

async function join() {
  await init();
  const tried = new Set();
  const kept = sessionStorage.getItem(NAME_KEPT);
  for (;;) {
    const busy = await connectedNames();
    // A reload of this tab takes its name again, even if its old session still shows.
    const name = candidates(tried).find((n) => n === kept || !busy.has(n))
      || candidates(tried)[0]
      || `dashboard-${Math.random().toString(16).slice(2, 8)}`;
    tried.add(name);
    try {
      const joined = await MeshPeer.connect(wsUrl, name, { meshKey });
      sessionStorage.setItem(NAME_KEPT, name);
      // The browser's own name, not a tab's extra one.
      if (name === 'dashboard' || name === `dashboard-${keyTag()}`) localStorage.setItem(NAME_KEPT, name);
      return joined;
    } catch (e) {
      if (NAME_REFUSED.test(String(e.message || e)) && tried.size < 12) {
        logLine('err', '…', `${String(e.message || e)}; trying another name`);
        continue;
      }
      throw e;
    }
  }
}

function fillRecipients(names) {
  const select = $('to');
  const current = select.value;
  select.innerHTML = '<option value="*">everyone</option>';
  for (const n of names) {
    if (peer && n === peer.name) continue;
    const opt = document.createElement('option');
    opt.value = opt.textContent = n;
    select.append(opt);
  }
  select.value = [...select.options].some((o) => o.value === current) ? current : '*';
}

// Messages per second each way for member `p`, over the samples of the last window.
function rates(p, now) {
  let kept = (samples.get(p.name) || []).filter((s) => now - s.t <= RATE_WINDOW_MS);
  // Lower counters: a new router process; start again.
  if (kept.length && kept[kept.length - 1].sent > p.messages_sent) kept = [];
  kept.push({ t: now, sent: p.messages_sent, received: p.messages_received });
  samples.set(p.name, kept);
  const first = kept[0];
  const seconds = (now - first.t) / 1000;
  if (seconds < 0.5) return [0, 0];
  return [(p.messages_sent - first.sent) / seconds, (p.messages_received - first.received) / seconds];
}

function fmtRate(r) {
  return r >= 10 || r === 0 ? String(Math.round(r)) : r.toFixed(1);
}

async function refreshPeers() {
  let list;
  try {
    list = await api('/api/peers');
  } catch {
    return;
  }
  const tbody = $('peers');
  tbody.innerHTML = '';
  for (const [name, kept] of samples) {
    if (performance.now() - kept[kept.length - 1].t > RATE_WINDOW_MS) samples.delete(name);
  }
  $('peer-count').textContent = list.length;
  // A federated router lists the whole mesh, each peer with the router it is on; the
  // column shows only then. This router is the one this page's own entry is on.
  const federated = list.some((p) => p.router);
  $('router-col').hidden = !federated;
  const self = list.find((p) => peer && p.name === peer.name);
  const here = self ? self.router : undefined;
  const now = performance.now();
  for (const p of list) {
    // Another router's member: its traffic is counted there (no counters here).
    const local = p.messages_sent !== undefined;
    const [sentRate, recvRate] = local ? rates(p, now) : [null, null];
    const tr = document.createElement('tr');
    if (peer && p.name === peer.name) tr.className = 'self';
    else if (!local) tr.className = 'remote';
    const secure = p.cipher !== 'none';
    tr.innerHTML = `<td><span class="dot"></span><span class="name"></span></td>
      <td class="router"><span class="tag"></span></td>
      <td><span class="tag"></span></td>
      <td><span class="tag ${secure ? 'ok' : 'warn'}"></span></td>
      <td><span class="tag"></span></td>
      <td class="num"></td><td class="num"></td>`;
    tr.querySelector('.name').textContent = p.name + (peer && p.name === peer.name ? ' (this page)' : '');
    const routerCell = tr.querySelector('.router');
    routerCell.hidden = !federated;
    routerCell.firstChild.textContent = (p.router || '') + (here && p.router === here ? ' (this one)' : '');
    const tags = tr.querySelectorAll('td:not(.router) .tag');
    tags[0].textContent = p.transport;
    tags[1].textContent = p.cipher;
    tags[2].textContent = p.compression;
    const nums = tr.querySelectorAll('.num');
    nums[0].textContent = local ? fmtRate(sentRate) : '–';
    nums[1].textContent = local ? fmtRate(recvRate) : '–';
    tbody.append(tr);
  }
}

async function refreshMetrics() {
  let text;
  try {
    text = await api('/metrics', 'text');
  } catch {
    return;
  }
  const value = (name) => Number((text.match(new RegExp(`^${name} (\\d+)`, 'm')) || [0, 0])[1]);
  const total = value('lanmesh_messages_total');
  const rate = lastTotal === null ? 0 : Math.max(0, total - lastTotal);
  lastTotal = total;
  history.push(rate);
  history.shift();
  $('rate-now').textContent = `${rate}/s`;
  $('total-messages').textContent = total.toLocaleString();
  $('total-bytes').textContent = fmtBytes(value('lanmesh_bytes_in_total'));
  $('handshake-failures').textContent = value('lanmesh_handshake_failures_total');
  // Only a federated router has the NATS rows.
  const nats = $('nats');
  if (/^lanmesh_nats_connected /m.test(text)) {
    const up = value('lanmesh_nats_connected') === 1;
    nats.hidden = false;
    nats.textContent = up ? 'NATS connected' : 'NATS unreachable: this router serves its own peers only';
    nats.className = `pill pill-${up ? 'ok' : 'bad'}`;
  } else {
    nats.hidden = true;
  }
  drawChart();
}

function drawChart() {
  const canvas = $('chart');
  const ctx = canvas.getContext('2d');
  const w = canvas.width;
  const h = canvas.height;
  const pad = 24;
  ctx.clearRect(0, 0, w, h);
  const max = Math.max(5, ...history);
  ctx.strokeStyle = 'rgba(148,163,184,0.15)';
  ctx.fillStyle = 'rgba(148,163,184,0.7)';
  ctx.font = '11px system-ui, sans-serif';
  for (let i = 0; i <= 4; i++) {
    const y = pad + ((h - 2 * pad) * i) / 4;
    ctx.beginPath(); ctx.moveTo(pad * 2, y); ctx.lineTo(w - 8, y); ctx.stroke();
    ctx.fillText(String(Math.round(max * (1 - i / 4))), 4, y + 4);
  }
  const x = (i) => pad * 2 + ((w - 8 - pad * 2) * i) / (history.length - 1);
  const y = (v) => h - pad - ((h - 2 * pad) * v) / max;
  const grad = ctx.createLinearGradient(0, pad, 0, h - pad);
  grad.addColorStop(0, 'rgba(56,189,248,0.45)');
  grad.addColorStop(1, 'rgba(56,189,248,0.02)');
  ctx.beginPath();
  ctx.moveTo(x(0), y(0));
  history.forEach((v, i) => ctx.lineTo(x(i), y(v)));
  ctx.lineTo(x(history.length - 1), y(0));
  ctx.closePath();
  ctx.fillStyle = grad;
  ctx.fill();
  ctx.beginPath();
  history.forEach((v, i) => (i ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v))));
  ctx.strokeStyle = '#38bdf8';
  ctx.lineWidth = 2;
  ctx.stroke();
}

async function send(event) {
  event.preventDefault();
  const text = $('text').value;
  if (!text || !peer) return;
  const to = $('to').value;
  const started = performance.now();
  const status = $('send-status');
  try {
    if (to === '*') {
      await peer.broadcast(text);
      status.textContent = 'broadcast to everyone';
    } else if ($('ack').checked) {
      await peer.sendAcked(to, text);
      status.textContent = `acknowledged by ${to} in ${(performance.now() - started).toFixed(1)} ms`;
    } else {
      await peer.send(to, text);
      status.textContent = `sent to ${to}`;
    }
    logLine('out', `→ ${to === '*' ? 'everyone' : to}`, text);
    $('text').value = '';
  } catch (e) {
    status.textContent = String(e.message || e);
    logLine('err', '✕', String(e.message || e));
  }
}

async function sendFile() {
  const file = $('file').files[0];
  const to = $('to').value;
  const status = $('send-status');
  if (!file || !peer) return;
  if (to === '*') {
    status.textContent = 'choose one recipient for a file';
    return;
  }
  try {
    const sent = await peer.sendFile(to, file, {
      onprogress: (p) => { status.textContent = `sending ${file.name}: ${Math.floor((100 * p.acked) / Math.max(1, p.total))} %`; },
    });
    status.textContent = `${to} has ${sent.name} (${fmtBytes(sent.bytes)})`;
    logLine('out', `→ ${to}`, `file ${sent.name}`, fmtBytes(sent.bytes));
  } catch (e) {
    status.textContent = String(e.message || e);
    logLine('err', '✕', String(e.message || e));
  }
}

async function main() {
  drawChart();
  setInterval(refreshMetrics, 1000);
  setInterval(refreshPeers, 1000);
  refreshMetrics();
  try {
    peer = await join();
  } catch (e) {
    setStatus('not connected', 'bad');
    logLine('err', '✕', String(e.message || e));
    return;
  }
  window.lanmeshPeer = peer;
  setStatus('connected', 'ok');
  $('me').textContent = `as ${peer.name}`;
  peer.onmessage = (from, data, id) => logLine('in', from, describe(data), `#${id}`);
  peer.onpeers = (names) => { fillRecipients(names); refreshPeers(); };
  peer.onclose = (reason) => { setStatus('disconnected', 'bad'); logLine('err', '✕', reason || 'connection closed'); };
  // The peer reconnects by itself (and resumes its session): say so while it does.
  peer.onstatus = (status, detail) => {
    if (status === 'reconnecting') {
      setStatus('reconnecting…', 'wait');
      logLine('err', '…', `connection lost; reconnecting (${detail})`);
    } else if (status === 'connected') {
      setStatus('connected', 'ok');
    }
  };
  peer.onfile = (from, blob, name) => {
    const link = URL.createObjectURL(blob);
    logLine('in', from, `file ${name}`, fmtBytes(blob.size));
    const a = document.createElement('a');
    a.href = link;
    a.download = name;
    a.textContent = 'save';
    $('log').firstChild.querySelector('small').append(' ', a);
  };
  fillRecipients(peer.peers());
  refreshPeers();
  $('send-form').addEventListener('submit', send);
  $('send-file').addEventListener('click', sendFile);
}

main();
