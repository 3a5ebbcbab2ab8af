// Beacon's registry page: one snapshot, then the events as they are
// published (server-sent events). Every value shown comes from writers the
// registry does not control, so text is set with textContent only, never
// parsed as HTML. Nothing reads the registry in a loop: the page re-reads
// the snapshot only after a lost connection or a `resync`.
'use strict';

const state = {
  services: new Map(),   // service -> Map(version/instance -> registration)
  consumers: new Map(),  // consumer -> { needs, revision, services }
  seen: new Set(),       // event ids already applied (deliveries repeat)
  feed: [],              // newest first
  clockSkew: 0,          // server now - browser now, seconds
  selected: null,        // { kind: 'service' | 'consumer', name }
};
const FEED_MAX = 500;
let source = null;
let needSnapshot = true;   // on the first connection, and after a lost one
let loading = null;        // events that arrive while a snapshot loads


const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v; else if (k === 'text') e.textContent = v; else e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
};
const svgEl = (tag, attrs = {}) => {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
};
const now = () => Math.floor(Date.now() / 1000) + state.clockSkew;
const instanceKey = (r) => `${r.version}/${r.instance_id}`;
const serviceOf = (requirement) => (requirement.match(/^[A-Za-z][A-Za-z0-9_-]*/) || [requirement])[0];

function setStatus(text, cls) {
  const s = document.getElementById('status');
  s.textContent = text;
  s.className = `status ${cls || ''}`;
}

// Reads the snapshot while the event stream is already open: events that
// arrive meanwhile are applied again on top of it (applying is idempotent),
// so none falls between the read and the stream.
async function loadSnapshot() {
  loading = [];
  try {
    const r = await fetch('/api/snapshot', { cache: 'no-store' });
    if (!r.ok) throw new Error(`snapshot: HTTP ${r.status}`);
    const s = await r.json();
    state.clockSkew = s.now - Math.floor(Date.now() / 1000);
    state.services = new Map();
    for (const reg of s.registrations) putRegistration(reg);
    state.consumers = new Map();
    for (const c of s.consumers) state.consumers.set(c.consumer, { needs: c.needs, revision: c.revision, services: c.services });
    for (const e of loading) applyState(e);
  } finally {
    loading = null;
    render();
  }
}

function putRegistration(r) {
  if (!state.services.has(r.service)) state.services.set(r.service, new Map());
  state.services.get(r.service).set(instanceKey(r), r);
}

function removeRegistration(r) {
  const instances = state.services.get(r.service);
  if (!instances) return;
  instances.delete(instanceKey(r));
  if (instances.size === 0) state.services.delete(r.service);
}

// Applies one published event; false when it was seen already (at-least-
// once delivery: each change is shown once, under its event_id).
function apply(event) {
  if (!event || !event.event_id || state.seen.has(event.event_id)) return false;
  state.seen.add(event.event_id);
  if (loading) loading.push(event);
  applyState(event);
  state.feed.unshift(event);
  if (state.feed.length > FEED_MAX) state.feed.length = FEED_MAX;
  return true;
}

function applyState(event) {
  switch (event.kind) {
    case 'registered': case 'updated': case 'status_changed':
      if (event.after) putRegistration(event.after);
      break;
    case 'deregistered': case 'expired':
      if (event.before) removeRegistration(event.before);
      break;
    case 'resolved': {
      const known = state.consumers.get(event.consumer);
      if (!known || event.revision >= known.revision) {
        state.consumers.set(event.consumer, { needs: event.needs, revision: event.revision, services: event.services });
      }
      break;
    }
    default: break; // `invalid`: shown in the feed only
  }
}

function connect() {
  source = new EventSource('/events');
  source.addEventListener('open', async () => {
    if (needSnapshot) {
      // First load, or catching up: what happened while the connection
      // was down is in the snapshot, not in the stream.
      try { await loadSnapshot(); } catch (e) { setStatus(`connected, but ${e.message}`, 'down'); return; }
      needSnapshot = false;
    }
    setStatus('live: changes appear as they are published', 'live');
  });
  source.addEventListener('change', (m) => {
    let event;
    try { event = JSON.parse(m.data); } catch { return; }
    if (apply(event)) render();
  });
  source.addEventListener('resync', () => { loadSnapshot().catch(() => {}); });
  source.addEventListener('error', () => {
    needSnapshot = true;
    setStatus('connection lost: reconnecting…', 'down');
  });
}

// ---- rendering --------------------------------------------------------------

function expiry(r) {
  const left = r.expires_at - now();
  if (left > 0) return el('span', { 'data-expires-at': String(r.expires_at), text: `${left} s` });
  // Heartbeats publish nothing, so a live instance can pass its last known
  // expiry here; the sweeper's `expired` event removes it if it is gone.
  return el('span', { class: 'due', 'data-expires-at': String(r.expires_at), text: 'due (removed within a minute unless it heartbeated)' });
}

function renderServices() {
  const root = document.getElementById('services');
  root.replaceChildren();
  if (state.services.size === 0) {
    root.append(el('p', { class: 'hint', text: 'No registrations.' }));
    return;
  }
  const table = el('table');
  table.append(el('thead', {}, el('tr', {}, ...['version', 'instance', 'status', 'expires in', 'endpoint', 'ARN', 'attributes'].map((h) => el('th', { text: h })))));
  const body = el('tbody');
  for (const service of [...state.services.keys()].sort()) {
    body.append(el('tr', {}, el('td', { class: 'service-name', colspan: '7', text: service })));
    const rows = [...state.services.get(service).values()].sort((a, b) => instanceKey(a).localeCompare(instanceKey(b)));
    for (const r of rows) {
      const attrs = Object.entries(r.attributes || {}).map(([k, v]) => `${k}=${v}`).join(', ');
      body.append(el('tr', { 'data-instance': `${r.service}/${r.version}/${r.instance_id}`, 'data-status': r.status },
        el('td', { text: r.version }),
        el('td', { text: r.instance_id }),
        el('td', {}, el('span', { class: `badge ${r.status}`, text: r.status })),
        el('td', {}, expiry(r)),
        el('td', { class: 'wrap', text: r.endpoint_url }),
        el('td', { class: 'wrap', text: r.arn || '' }),
        el('td', { class: 'wrap', text: attrs })));
    }
  }
  table.append(body);
  root.append(table);
}

function outcomeText(v) {
  if (v.resolved) return `${v.resolved.version} → ${v.resolved.endpoints.map((e) => e.endpoint_url).join(', ')}`;
  if (v.unresolved) return `unresolved: ${v.unresolved.reason}${v.unresolved.available ? ` (available: ${v.unresolved.available.join(', ')})` : ''}`;
  return 'not resolved yet';
}

function renderConsumers() {
  const root = document.getElementById('consumers');
  root.replaceChildren();
  if (state.consumers.size === 0) {
    root.append(el('p', { class: 'hint', text: 'No consumer has declared what it needs.' }));
    return;
  }
  for (const name of [...state.consumers.keys()].sort()) {
    const c = state.consumers.get(name);
    const list = el('ul');
    for (const requirement of c.needs) {
      const views = (c.services[serviceOf(requirement)] || []).filter((v) => v.requirement === requirement);
      const v = views[0];
      const cls = v ? (v.resolved ? 'resolved' : 'unresolved') : '';
      list.append(el('li', { 'data-requirement': `${name}:${requirement}`, 'data-state': v ? cls : 'pending' },
        el('code', { text: requirement }), ' ', el('span', { class: cls, text: v ? outcomeText(v) : 'not resolved yet' })));
    }
    root.append(el('div', { class: 'consumer', 'data-consumer': name },
      el('h3', { text: `${name} (revision ${c.revision})` }), list));
  }
}

// The state of an edge consumer -> service: resolved when every
// requirement on the service resolves, unresolved when one does not.
function edgeState(c, service) {
  const views = c.services[service];
  if (!views || views.length === 0) return 'pending';
  return views.every((v) => v.resolved) ? 'resolved' : 'unresolved';
}

function renderGraph() {
  const root = document.getElementById('graph');
  root.replaceChildren();
  const consumers = [...state.consumers.keys()].sort();
  const services = new Set(state.services.keys());
  for (const c of state.consumers.values()) for (const r of c.needs) services.add(serviceOf(r));
  const serviceList = [...services].sort();
  if (consumers.length === 0 && serviceList.length === 0) return;
  const rowH = 36; const nodeW = 190; const width = 640;
  const height = Math.max(consumers.length, serviceList.length, 1) * rowH + 20;
  const svg = svgEl('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'dependency graph' });
  const y = (i) => 10 + i * rowH;
  const left = new Map(consumers.map((c, i) => [c, y(i)]));
  const right = new Map(serviceList.map((s, i) => [s, y(i)]));
  for (const name of consumers) {
    const c = state.consumers.get(name);
    for (const service of new Set(c.needs.map(serviceOf))) {
      const s = edgeState(c, service);
      const y1 = left.get(name) + 13; const y2 = right.get(service) + 13;
      const path = svgEl('path', { class: `edge ${s}`, d: `M ${nodeW} ${y1} C ${width / 2} ${y1}, ${width / 2} ${y2}, ${width - nodeW} ${y2}`, 'data-edge': `${name}->${service}`, 'data-state': s });
      const title = svgEl('title'); title.textContent = `${name} needs ${service}: ${s}`;
      path.append(title);
      svg.append(path);
    }
  }
  const node = (kind, name, x, yy, sub) => {
    const g = svgEl('g', { class: `node ${state.selected && state.selected.kind === kind && state.selected.name === name ? 'selected' : ''}`, tabindex: '0', role: 'button', 'data-node': `${kind}:${name}` });
    g.append(svgEl('rect', { x, y: yy, width: nodeW, height: 26, rx: 5 }));
    const t = svgEl('text', { x: x + 8, y: yy + 18 }); t.textContent = sub ? `${name} · ${sub}` : name;
    g.append(t);
    const select = () => { state.selected = { kind, name }; render(); };
    g.addEventListener('click', select);
    g.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); select(); } });
    svg.append(g);
  };
  for (const name of consumers) node('consumer', name, 0, left.get(name), `rev ${state.consumers.get(name).revision}`);
  for (const name of serviceList) {
    const n = state.services.has(name) ? state.services.get(name).size : 0;
    node('service', name, width - nodeW, right.get(name), `${n} instance${n === 1 ? '' : 's'}`);
  }
  root.append(svg);
}

function renderDetails() {
  const root = document.getElementById('details');
  root.replaceChildren();
  const sel = state.selected;
  if (!sel) return;
  if (sel.kind === 'service') {
    const instances = state.services.get(sel.name);
    root.append(el('h3', { text: `service ${sel.name}` }));
    if (!instances) { root.append(el('p', { class: 'unresolved', text: 'Needed, but not registered.' })); return; }
    const list = el('ul');
    for (const r of instances.values()) list.append(el('li', { text: `${r.version} ${r.instance_id}: ${r.status}, ${r.endpoint_url}${r.arn ? `, ${r.arn}` : ''}` }));
    root.append(list);
  } else {
    const c = state.consumers.get(sel.name);
    if (!c) return;
    root.append(el('h3', { text: `consumer ${sel.name}, revision ${c.revision}` }));
    const list = el('ul');
    for (const [service, views] of Object.entries(c.services)) for (const v of views) list.append(el('li', { text: `${v.requirement}: ${outcomeText(v)}` }));
    root.append(list);
  }
}

function renderFeed() {
  const service = document.getElementById('filter-service');
  const kind = document.getElementById('filter-kind').value;
  const wanted = service.value;
  const known = new Set(state.feed.map((e) => e.service).filter(Boolean));
  for (const s of state.services.keys()) known.add(s);
  const options = ['', ...[...known].sort()];
  if (options.join('\n') !== [...service.options].map((o) => o.value).join('\n')) {
    service.replaceChildren(...options.map((s) => el('option', { value: s, text: s || 'all' })));
    service.value = options.includes(wanted) ? wanted : '';
  }
  const root = document.getElementById('feed');
  root.replaceChildren();
  for (const e of state.feed) {
    if (kind && e.kind !== kind) continue;
    if (service.value && e.service !== service.value) continue;
    const what = e.kind === 'resolved' ? `${e.consumer} revision ${e.revision}${e.service ? ` (after ${e.service})` : ''}`
      : e.kind === 'invalid' ? `${e.pk || '?'} / ${e.sk || '?'}: ${e.reason}`
      : `${e.service} ${e.version} ${e.instance_id} (${e.status})`;
    const when = e.changed_at ? new Date(e.changed_at * 1000).toLocaleTimeString() : '';
    root.append(el('li', { 'data-event-id': e.event_id, 'data-kind': e.kind },
      el('span', { class: 'kind', text: e.kind }), el('span', { text: what }), el('span', { class: 'when', text: when })));
  }
}

function render() {
  document.getElementById('empty').hidden = !(state.services.size === 0 && state.consumers.size === 0);
  renderServices();
  renderGraph();
  renderDetails();
  renderConsumers();
  renderFeed();
}

// Countdowns tick on the browser's clock; the registry is not read.
setInterval(() => {
  for (const span of document.querySelectorAll('[data-expires-at]')) {
    const left = Number(span.dataset.expiresAt) - now();
    if (left > 0) span.textContent = `${left} s`;
    else if (!span.classList.contains('due')) { span.className = 'due'; span.textContent = 'due (removed within a minute unless it heartbeated)'; }
  }
}, 1000);
document.getElementById('filter-service').addEventListener('change', renderFeed);
document.getElementById('filter-kind').addEventListener('change', renderFeed);

// For tests and the curious: the state, and a way to drop the connection
// (the page then reconnects and catches up from a fresh snapshot).
window.beaconUi = {
  state,
  killConnection() {
    if (source) source.close();
    needSnapshot = true;
    setStatus('connection lost: reconnecting…', 'down');
    setTimeout(connect, 500);
  },
};

render();
connect();
