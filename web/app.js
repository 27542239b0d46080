// The dashboard: a browser peer of the mesh (wasm client), plus the router's /api and
// /metrics for counters. No framework; plain DOM.
import init, { MeshPeer } from '/pkg/lanmesh_wasm.js';

const $ = (id) => document.getElementById(id);
const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/mesh`;
const meshKey = new URLSearchParams(location.hash.slice(1)).get('key');
// On a keyed mesh /api and /metrics answer the router's machine, or this bearer token
// (`lanmesh router --print-http-token`), passed as #key=…&token=….
const apiToken = new URLSearchParams(location.hash.slice(1)).get('token');
const api = (path) => fetch(path, apiToken ? { headers: { Authorization: `Bearer ${apiToken}` } } : {})
  .then((r) => (r.ok ? r : Promise.reject(new Error(`${path}: ${r.status}`))));
const history = new Array(60).fill(0);
const lastCounts = new Map();
let peer = null;
let lastTotal = null;

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

// Tabs of one browser share one key, and the router lets a join with the same key and
// name replace the older session: so a second tab takes a name of its own (kept across
// reloads of that tab) instead of kicking the first one out.
async function chooseName() {
  const kept = sessionStorage.getItem('lanmesh.dashboard.name');
  if (kept) return kept;
  let taken = false;
  try {
    taken = (await (await api('/api/peers')).json()).some((p) => p.name === 'dashboard');
  } catch {}
  return taken ? `dashboard-${Math.random().toString(36).slice(2, 6)}` : 'dashboard';
}

async function join() {
  await init();
  let name = await chooseName();
  for (let attempt = 0; ; attempt++) {
    try {
      const peer = await MeshPeer.connect(wsUrl, name, { meshKey });
      sessionStorage.setItem('lanmesh.dashboard.name', name);
      return peer;
    } catch (e) {
      // Another dashboard holds the name: take a variant of it.
      if (attempt < 3 && /held|taken/i.test(String(e))) {
        name = `dashboard-${Math.random().toString(36).slice(2, 6)}`;
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

async function refreshPeers() {
  let list;
  try {
    list = await (await api('/api/peers')).json();
  } catch {
    return;
  }
  const tbody = $('peers');
  tbody.innerHTML = '';
  $('peer-count').textContent = list.length;
  for (const p of list) {
    const prev = lastCounts.get(p.name) || { sent: p.messages_sent, received: p.messages_received };
    const sentRate = Math.max(0, p.messages_sent - prev.sent);
    const recvRate = Math.max(0, p.messages_received - prev.received);
    lastCounts.set(p.name, { sent: p.messages_sent, received: p.messages_received });
    const tr = document.createElement('tr');
    if (peer && p.name === peer.name) tr.className = 'self';
    const secure = p.cipher !== 'none';
    tr.innerHTML = `<td><span class="dot"></span><span class="name"></span></td>
      <td><span class="tag"></span></td>
      <td><span class="tag ${secure ? 'ok' : 'warn'}"></span></td>
      <td><span class="tag"></span></td>
      <td class="num"></td><td class="num"></td>`;
    tr.querySelector('.name').textContent = p.name + (peer && p.name === peer.name ? ' (this page)' : '');
    const tags = tr.querySelectorAll('.tag');
    tags[0].textContent = p.transport;
    tags[1].textContent = p.cipher;
    tags[2].textContent = p.compression;
    const nums = tr.querySelectorAll('.num');
    nums[0].textContent = sentRate;
    nums[1].textContent = recvRate;
    tbody.append(tr);
  }
}

async function refreshMetrics() {
  let text;
  try {
    text = await (await api('/metrics')).text();
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
