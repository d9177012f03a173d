// The seller's studio: sign in with the seller token, create or schedule streams, copy the
// OBS settings (key hidden until revealed), reset the key, preview, follow the live stats,
// pin products, and end a stream with Save (replay) or Delete.
import {
  $, api, attachPlayer, autoplay, el, formatDuration, formatMoney, plural, say, staffPage, statusBadge, streamEvents,
} from './common.js';

let token = null;
let streams = [];
let selected = null; // { stream, events, player, pins: Map, stats }

// ---- sign-in

staffPage('seller', ['seller', 'admin'], async (signedIn) => {
  token = signedIn;
  await loadStreams();
  const wanted = new URLSearchParams(location.hash.slice(1)).get('stream');
  const first = streams.find((s) => s.id === wanted) || streams.find((s) => ['live', 'reconnecting'].includes(s.status)) || streams[0];
  if (first) select(first.id);
});

// ---- the list

async function loadStreams() {
  const list = await api('GET', '/streams?scope=mine&limit=100', { token });
  streams = list.streams;
  renderList();
}

function renderList() {
  $('#streams').replaceChildren(...streams.map((s) => el('li', {},
    el('button', { type: 'button', 'aria-current': String(selected && selected.stream.id === s.id), onclick: () => select(s.id) },
      statusBadge(s.status), ' ', s.title, s.practice ? el('span', { class: 'small muted' }, ' (practice)') : ''))));
  if (!streams.length) $('#streams').append(el('li', { class: 'muted' }, 'No streams yet.'));
}

$('#create').addEventListener('submit', async (event) => {
  event.preventDefault();
  const body = { title: $('#new-title').value };
  const description = $('#new-description').value.trim();
  if (description) body.description = description;
  const scheduled = $('#new-scheduled').value;
  if (scheduled) body.scheduled_at = new Date(scheduled).toISOString();
  if ($('#new-practice').checked) body.practice = true;
  const remind = Number($('#new-remind').value);
  if (scheduled && remind > 0) body.remind_minutes_before = remind;
  try {
    const stream = await api('POST', '/streams', { token, body });
    event.target.reset();
    say($('#create-status'), 'Created. Copy the OBS settings to go live.');
    await loadStreams();
    select(stream.id);
  } catch (e) {
    say($('#create-status'), e.message, { error: true });
  }
});

// ---- one stream

function closeSelected() {
  if (!selected) return;
  if (selected.events) selected.events.close();
  if (selected.player) selected.player.destroy();
  clearInterval(selected.audienceTimer);
  selected = null;
}

async function select(id) {
  closeSelected();
  const stream = await api('GET', `/streams/${id}`, { token });
  selected = { stream, events: null, player: null, pins: new Map(), orders: [], ordersMore: null, audienceTimer: null };
  history.replaceState(null, '', `#stream=${id}`);
  renderList();
  renderDetail();
  if (['live', 'reconnecting', 'scheduled'].includes(stream.status)) {
    const current = selected;
    selected.events = streamEvents(id, (event) => current === selected && onEvent(event), { token });
  }
  api('GET', `/streams/${id}/stats`, { token }).then((stats) => selected && selected.stream.id === id && showStats(stats)).catch(() => {});
  loadOrders(id, null);
  if (['live', 'reconnecting', 'archived'].includes(stream.status)) loadClips(id);
  if (['live', 'reconnecting'].includes(stream.status)) {
    loadAudience(id);
    selected.audienceTimer = setInterval(() => loadAudience(id), AUDIENCE_EVERY_MS);
  }
}

/** How often the studio asks who watches (names arrive with the players' heartbeats). */
const AUDIENCE_EVERY_MS = 5000;

async function loadAudience(id) {
  const node = $('#audience');
  if (!node) return;
  try {
    const audience = await api('GET', `/streams/${id}/audience`, { token });
    if (!selected || selected.stream.id !== id) return;
    const names = audience.signed_in.map((viewer) => el('li', {}, viewer.name));
    const counts = `${plural(audience.guests, 'guest', 'guests')}, ${audience.anonymous} not signed in`;
    node.replaceChildren(el('ul', { class: 'names' }, ...names), el('p', { class: 'small muted', id: 'audience-counts' }, counts));
  } catch (e) {
    node.replaceChildren(el('p', { class: 'error' }, e.message));
  }
}

/** A page of the stream's orders (newest first); `before` continues to older ones. */
async function loadOrders(id, before) {
  try {
    const query = before ? `?before=${encodeURIComponent(before)}` : '';
    const page = await api('GET', `/streams/${id}/orders${query}`, { token });
    if (!selected || selected.stream.id !== id) return;
    selected.orders = before ? [...selected.orders, ...page.orders] : page.orders;
    selected.ordersMore = page.next_before;
    renderOrders();
  } catch (e) {
    say($('#orders-status'), e.message, { error: true });
  }
}

function formatTime(iso) {
  return iso ? new Date(iso).toLocaleTimeString() : '–';
}

function renderOrders() {
  const body = $('#order-rows');
  if (!body) return;
  const rows = selected.orders.map((order) => el('tr', {},
    el('td', {}, formatTime(order.created_at)), el('td', {}, order.product_id), el('td', {}, String(order.quantity)),
    el('td', {}, formatMoney(order.amount, order.currency)),
    el('td', { title: 'When it came, on the stream\'s clock (program date-time)' }, formatTime(order.media_time))));
  body.replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: '5', class: 'muted small' }, 'No orders yet.'))]));
  const more = $('#orders-more');
  if (more) more.hidden = !selected.ordersMore;
}

function ordersPanel() {
  const id = selected.stream.id;
  return el('section', { 'aria-labelledby': 'orders-heading' },
    el('h2', { id: 'orders-heading' }, 'Orders'),
    el('table', { class: 'orders' },
      el('thead', {}, el('tr', {}, ...['Time', 'Product', 'Qty', 'Amount', 'Stream time'].map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', { id: 'order-rows', 'aria-live': 'polite' })),
    el('div', { class: 'bar' }, el('button', { type: 'button', id: 'orders-more', hidden: true,
      onclick: () => loadOrders(id, selected.ordersMore) }, 'Older orders')),
    el('p', { id: 'orders-status', role: 'status' }));
}

// ---- clips: a span of the stream as its own playlist, played at once; its MP4 on request

async function loadClips(id) {
  try {
    const { clips } = await api('GET', `/streams/${id}/clips`, { token });
    if (!selected || selected.stream.id !== id) return;
    selected.clips = clips;
    renderClips();
  } catch (e) {
    say($('#clip-status'), e.message, { error: true });
  }
}

function renderClips() {
  const node = $('#clip-list');
  if (!node) return;
  const items = (selected.clips || []).map((clip) => el('li', { class: 'card' },
    el('span', {}, `${clip.title || 'Clip'} · ${formatDuration(clip.duration_seconds)} · ${new Date(clip.start).toLocaleTimeString()}`),
    el('a', { class: 'button', href: clip.playback_url, target: '_blank', rel: 'noopener' }, 'Playlist'),
    clip.video_url ? el('a', { class: 'button', href: clip.video_url, download: '' }, 'MP4')
      : el('button', { type: 'button', onclick: () => askMp4(clip.id) }, 'Make MP4')));
  node.replaceChildren(...(items.length ? items : [el('li', { class: 'muted small' }, 'No clips yet.')]));
}

async function clipLast(seconds) {
  const id = selected.stream.id;
  const end = new Date();
  const start = new Date(end.getTime() - seconds * 1000);
  try {
    await api('POST', `/streams/${id}/clips`, { token, body: { start: start.toISOString(), end: end.toISOString() } });
    say($('#clip-status'), 'Clip made: it plays now.');
    await loadClips(id);
  } catch (e) {
    say($('#clip-status'), e.message, { error: true });
  }
}

async function askMp4(clipId) {
  const id = selected.stream.id;
  try {
    const clip = await api('POST', `/streams/${id}/clips/${clipId}/mp4`, { token });
    // Made in the background: the stream's socket says when (clip.mp4_ready). An export that
    // failed says nothing: after a minute, look once.
    if (clip.video_url) {
      await loadClips(id);
      return;
    }
    say($('#clip-status'), 'Making the MP4…');
    setTimeout(async () => {
      if (!selected || selected.stream.id !== id) return;
      await loadClips(id);
      if (!(selected.clips || []).some((c) => c.id === clipId && c.video_url)) {
        say($('#clip-status'), 'The MP4 is not ready after a minute: ask again to retry.', { error: true });
      }
    }, 60000);
  } catch (e) {
    say($('#clip-status'), e.message, { error: true });
  }
}

function clipsPanel(onAir) {
  return el('section', { 'aria-labelledby': 'clips-heading' },
    el('h2', { id: 'clips-heading' }, 'Clips'),
    onAir ? el('div', { class: 'bar' }, el('button', { type: 'button', id: 'clip-last-30', onclick: () => clipLast(30) }, 'Clip the last 30 s')) : null,
    el('ul', { id: 'clip-list', class: 'products' }),
    el('p', { id: 'clip-status', role: 'status' }));
}

function copyField(id, label, value, { secret = false } = {}) {
  const input = el('input', { id, readonly: true, value, type: secret ? 'password' : 'text', spellcheck: 'false' });
  const copy = el('button', { type: 'button', onclick: async () => {
    try {
      await navigator.clipboard.writeText(input.value);
      copy.textContent = 'Copied';
    } catch {
      input.type = 'text';
      input.select();
      copy.textContent = 'Press Ctrl+C';
    }
    setTimeout(() => { copy.textContent = 'Copy'; }, 1500);
  } }, 'Copy');
  const row = el('div', { class: 'copy-row' }, input);
  if (secret) {
    const reveal = el('button', { type: 'button', 'aria-pressed': 'false', 'aria-controls': id, onclick: () => {
      const show = input.type === 'password';
      input.type = show ? 'text' : 'password';
      reveal.setAttribute('aria-pressed', String(show));
      reveal.textContent = show ? 'Hide' : 'Reveal';
    } }, 'Reveal');
    row.append(reveal);
  }
  row.append(copy);
  return [el('label', { for: id }, label), row];
}

const STAT_FIELDS = [
  ['viewers', 'Viewers'], ['peak', 'Peak'], ['unique', 'Unique'], ['likes', 'Likes'], ['dislikes', 'Dislikes'],
  ['comments', 'Comments'], ['orders', 'Orders'], ['units', 'Units'], ['revenue', 'Revenue'],
  ['bitrate', 'Ingest bitrate'], ['fps', 'FPS'], ['health', 'Ingest'], ['reconnects', 'Reconnects'], ['duration', 'Duration'],
];

function statValues(stats) {
  const ingest = stats.ingest;
  const revenue = (stats.revenue || []).map((r) => formatMoney(r.amount, r.currency)).join(' + ') || '0';
  let health = 'no publisher';
  if (ingest && ingest.connected) {
    health = ingest.dropped > 0 ? `ok, ${ingest.dropped} dropped` : 'ok';
  } else if (stats.status === 'reconnecting') health = 'reconnecting';
  return {
    viewers: stats.viewers_current, peak: stats.viewers_peak, unique: stats.viewers_unique,
    likes: stats.likes, dislikes: stats.dislikes, comments: stats.comments, orders: stats.orders, units: stats.units, revenue,
    bitrate: ingest ? `${(ingest.bitrate_in_bps / 1000).toFixed(0)} kb/s` : '–',
    fps: ingest ? ingest.fps.toFixed(1) : '–',
    health, reconnects: stats.reconnects, duration: formatDuration(stats.duration_seconds),
  };
}

function statsList(stats, idPrefix) {
  const values = statValues(stats);
  return STAT_FIELDS.map(([key, label]) => el('div', {},
    el('dt', {}, label), el('dd', { id: `${idPrefix}-${key}` }, String(values[key]))));
}

function showStats(stats) {
  selected.stats = stats;
  const list = $('#stats');
  if (list) list.replaceChildren(...statsList(stats, 'stat'));
  showRefusal(stats.last_refusal);
}

/** How long a refusal is shown while the stream is on air (it stays in the stats). */
const REFUSAL_SHOWN_MS = 15 * 60 * 1000;

/**
 * The last publish refused for a reason the seller can fix: what happened, and the fix. Shown
 * while the stream waits to go live, and for a while once on air (a bit rate cut, say).
 */
function showRefusal(refusal) {
  const node = $('#refusal');
  if (!node) return;
  const status = selected.stream.status;
  const recent = refusal && Date.now() - new Date(refusal.at).getTime() < REFUSAL_SHOWN_MS;
  // An ended stream's key was tried (OBS still holds it): shown for a while, whatever the status.
  const shown = refusal && (status === 'scheduled' || (recent
    && (['live', 'reconnecting'].includes(status) || refusal.reason === 'stream_over')));
  node.hidden = !shown;
  if (!shown) return;
  const at = new Date(refusal.at).toLocaleString([], { dateStyle: 'short', timeStyle: 'short' });
  node.replaceChildren(
    el('strong', {}, `OBS was refused (${at}): `), el('span', { id: 'refusal-detail' }, refusal.detail),
    el('br'), el('span', { id: 'refusal-fix' }, `Fix: ${refusal.fix}`));
}

function renderPins() {
  const node = $('#pin-list');
  if (!node) return;
  const items = [...selected.pins.values()].map((pin) => el('li', { class: 'product card' },
    pin.image_url ? el('img', { src: pin.image_url, alt: '' }) : el('span', {}),
    el('div', {}, el('div', {}, pin.title), el('div', { class: 'price' }, formatMoney(pin.price, pin.currency))),
    el('button', { type: 'button', onclick: () => unpin(pin.product_id) }, 'Unpin')));
  node.replaceChildren(...(items.length ? items : [el('li', { class: 'muted small' }, 'Nothing pinned.')]));
}

async function unpin(productId) {
  try {
    await api('DELETE', `/streams/${selected.stream.id}/pins/${encodeURIComponent(productId)}`, { token });
    selected.pins.delete(productId);
    renderPins();
  } catch (e) {
    say($('#pin-status'), e.message, { error: true });
  }
}

function pinForm() {
  const field = (name, label, attributes = {}) => [el('label', { for: `pin-${name}` }, label),
    el('input', { id: `pin-${name}`, name, ...attributes })];
  const form = el('form', { id: 'pin-form', class: 'card' },
    el('h3', {}, 'Pin a product'),
    el('div', { class: 'two' }, el('div', {}, field('product_id', 'Product id', { required: true, maxlength: 200 })),
      el('div', {}, field('title', 'Title', { required: true, maxlength: 200 }))),
    el('div', { class: 'two' }, el('div', {}, field('price', 'Price', { required: true, inputmode: 'decimal', placeholder: '19.99' })),
      el('div', {}, field('currency', 'Currency', { required: true, value: 'EUR', maxlength: 3 }))),
    field('image_url', 'Image URL (optional)', { type: 'url' }),
    field('url', 'Product page URL (the Buy button)', { type: 'url' }),
    el('div', { class: 'bar' }, el('button', { type: 'submit', class: 'primary' }, 'Pin product')),
    el('p', { id: 'pin-status', role: 'status' }));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = Object.fromEntries(new FormData(form).entries());
    for (const key of ['image_url', 'url']) if (!body[key]) delete body[key];
    body.currency = body.currency.toUpperCase();
    try {
      const pin = await api('POST', `/streams/${selected.stream.id}/pins`, { token, body });
      selected.pins.set(pin.product_id, pin);
      renderPins();
      form.reset();
      say($('#pin-status'), `Pinned ${pin.title}: viewers see it now.`);
    } catch (e) {
      say($('#pin-status'), e.message, { error: true });
    }
  });
  return form;
}

function renderDetail() {
  const { stream } = selected;
  const onAir = ['live', 'reconnecting'].includes(stream.status);
  const video = el('video', { id: 'preview', controls: true, playsinline: true, muted: true, 'aria-label': 'Preview' });
  const actions = el('div', { class: 'bar' });
  if (onAir) actions.append(el('button', { type: 'button', class: 'danger', id: 'end', onclick: endStream }, 'End stream'));
  if (stream.status === 'scheduled') actions.append(el('button', { type: 'button', class: 'danger', onclick: cancelStream }, 'Cancel stream'));
  if (['live', 'reconnecting', 'archived'].includes(stream.status)) {
    actions.append(el('a', { class: 'button', href: `/watch/${stream.playback_id}`, target: '_blank', rel: 'noopener' },
      stream.status === 'archived' ? 'Watch the replay' : 'Open the viewer page'));
  }
  const obs = stream.stream_key ? el('section', { class: 'card', 'aria-labelledby': 'obs-heading' },
    el('h2', { id: 'obs-heading' }, 'OBS settings'),
    el('p', { class: 'small muted' }, 'Settings › Stream › Service: Custom. Keyframe interval 2 s, x264 or hardware H.264, AAC audio.'),
    copyField('server', 'Server', stream.rtmp_url),
    stream.rtmps_url ? copyField('server-tls', 'Server (RTMPS)', stream.rtmps_url) : null,
    copyField('stream-key', 'Stream key', stream.stream_key, { secret: true }),
    el('div', { class: 'bar' }, el('button', { type: 'button', class: 'danger', id: 'reset-key', onclick: resetKey }, 'Reset key'),
      el('span', { id: 'key-status', class: 'small', role: 'status' }))) : null;
  $('#detail').replaceChildren(
    el('div', { class: 'bar' }, statusBadge(stream.status), el('h1', {}, stream.title)),
    actions,
    el('p', { id: 'refusal', class: 'notice error', role: 'status', hidden: true }),
    onAir || stream.status === 'archived' ? video : el('p', { class: 'notice' },
      stream.status === 'scheduled' ? 'Start streaming from OBS with these settings: you go live as soon as the video arrives.'
        : `This stream is ${stream.status}.`),
    stream.status === 'scheduled' ? el('p', { id: 'reminders', class: 'small muted' },
      `${plural(stream.reminder_count || 0, 'viewer asked', 'viewers asked')} to be reminded`
      + (stream.remind_minutes_before ? ` (at go-live and ${stream.remind_minutes_before} min before).` : ' (at go-live).')) : null,
    el('section', { 'aria-labelledby': 'stats-heading' }, el('h2', { id: 'stats-heading' }, 'Live stats'),
      el('dl', { id: 'stats', class: 'stats', 'aria-live': 'off' }, selected.stats ? statsList(selected.stats, 'stat') : [])),
    obs,
    ['live', 'reconnecting', 'scheduled'].includes(stream.status) ? el('section', { 'aria-labelledby': 'pins-heading' },
      el('h2', { id: 'pins-heading' }, 'Products'), el('ul', { id: 'pin-list', class: 'products' }), pinForm()) : null,
    onAir ? el('section', { 'aria-labelledby': 'audience-heading' }, el('h2', { id: 'audience-heading' }, 'Watching now'),
      el('div', { id: 'audience', 'aria-live': 'off' })) : null,
    onAir || stream.status === 'archived' ? clipsPanel(onAir) : null,
    ordersPanel());
  renderPins();
  renderOrders();
  renderClips();
  showRefusal(selected.stats?.last_refusal);
  if (onAir || stream.status === 'archived') {
    try {
      selected.player = attachPlayer(video, stream.playback_url, { lowLatency: onAir });
      autoplay(video);
    } catch (e) {
      video.replaceWith(el('p', { class: 'error' }, e.message));
    }
  }
}

function onEvent(event) {
  switch (event.type) {
    case 'hello':
      selected.pins = new Map(event.pins.map((pin) => [pin.product_id, pin]));
      renderPins();
      if (event.status !== selected.stream.status) refreshSelected();
      break;
    case 'stats':
      showStats(event.stats);
      break;
    case 'viewers': {
      const node = $('#stat-viewers');
      if (node) node.textContent = String(event.current);
      const peak = $('#stat-peak');
      if (peak) peak.textContent = String(event.peak);
      break;
    }
    case 'pin':
      selected.pins.set(event.pin.product_id, event.pin);
      renderPins();
      break;
    case 'unpin':
      selected.pins.delete(event.pin.product_id);
      renderPins();
      break;
    case 'orders':
      if (event.order && !selected.orders.some((o) => o.order_id === event.order.order_id)) {
        selected.orders = [event.order, ...selected.orders];
        renderOrders();
      }
      break;
    case 'status':
      refreshSelected();
      break;
    case 'clip.mp4_ready':
      say($('#clip-status'), 'MP4 ready.');
      loadClips(selected.stream.id);
      break;
    default:
      break;
  }
}

async function refreshSelected() {
  if (!selected) return;
  const id = selected.stream.id;
  await loadStreams();
  await select(id);
}

function confirmDialog(dialog) {
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue), { once: true });
    dialog.returnValue = 'cancel';
    dialog.showModal();
  });
}

async function resetKey() {
  if ((await confirmDialog($('#reset-dialog'))) !== 'reset') return;
  try {
    const stream = await api('POST', `/streams/${selected.stream.id}/reset-key`, { token });
    selected.stream = stream;
    $('#stream-key').value = stream.stream_key;
    say($('#key-status'), 'New key issued: paste it into OBS.');
  } catch (e) {
    say($('#key-status'), e.message, { error: true });
  }
}

async function endStream() {
  const dialog = $('#end-dialog');
  try {
    const stats = await api('GET', `/streams/${selected.stream.id}/stats`, { token });
    $('#end-stats').replaceChildren(...statsList(stats, 'final'));
  } catch (e) {
    $('#end-stats').replaceChildren(el('p', { class: 'error' }, e.message));
  }
  const choice = await confirmDialog(dialog);
  if (choice !== 'save' && choice !== 'delete') return;
  // The live preview ends with the stream; the replay (if saved) gets a player of its own.
  if (selected.player) selected.player.destroy();
  selected.player = null;
  try {
    await api('POST', `/streams/${selected.stream.id}/end`, { token, body: { action: choice } });
  } catch (e) {
    alert(e.message);
  }
  await refreshSelected();
}

async function cancelStream() {
  try {
    await api('POST', `/streams/${selected.stream.id}/cancel`, { token });
  } catch (e) {
    alert(e.message);
  }
  await refreshSelected();
}
