// The admin page: every admin setting of the API, grouped, with the API's own validation
// messages shown at the field they concern; and every stream, with force-end.
import { $, api, el, say, staffPage, statusBadge } from './common.js';

let token = null;
let loaded = null; // the settings as last read

/** The groups and the fields in them; a setting the API adds later shows under "Other". */
const GROUPS = [
  ['RTMP', [
    ['rtmp_public_url', 'RTMP URL shown to sellers', 'text', 'rtmp:// or rtmps:// URL; empty = this server\'s own'],
    ['max_bitrate_kbps', 'Max video bitrate (kbit/s)', 'number', 'Publishers above 1.5 × this are disconnected'],
  ]],
  ['Packaging', [
    ['segment_duration_seconds', 'Segment duration (s)', 'number', '0.5–10'],
    ['playlist_window_segments', 'Live playlist window (segments)', 'number', '3–1000'],
    ['ladder', 'ABR ladder (JSON)', 'json', 'e.g. [{"name":"480p","width":854,"height":480,"video_bitrate_kbps":1200}]; [] = source only'],
    ['thumbnails_enabled', 'Poster thumbnails', 'checkbox', ''],
    ['thumbnail_interval_seconds', 'Poster interval (s)', 'number', '1–3600'],
  ]],
  ['Latency', [
    ['ll_hls', 'Low-latency HLS', 'checkbox', 'Turn off behind a CDN that cannot hold playlist requests'],
    ['part_duration_seconds', 'LL-HLS part duration (s)', 'number', '0.2–1, at most the segment duration'],
  ]],
  ['Recording', [
    ['reconnect_window_seconds', 'Reconnect window (s)', 'number', 'How long a dropped stream waits for its publisher, 0–1800'],
    ['reconnect_default_action', 'When the window expires', 'select:save=Save the replay,delete=Delete the stream', ''],
  ]],
  ['Engagement limits', [
    ['chat_max_length', 'Longest chat message (characters)', 'number', '1–2000'],
    ['chat_rate_limit_messages', 'Chat messages per user…', 'number', '1–100'],
    ['chat_rate_limit_seconds', '…per this many seconds', 'number', '1–3600'],
    ['guest_sign_in', 'Guests may sign in by name', 'checkbox', 'Off when the shop signs viewers in'],
    ['viewer_sessions_per_address', 'Players counted per address and stream', 'number', '1–100000; raise it where many viewers share one address'],
  ]],
  ['Webhooks', [
    ['webhook_url', 'Webhook URL', 'text', 'http:// or https://; empty = off'],
    ['webhook_secret', 'Webhook signing secret', 'password', '16–256 characters; leave as is to keep it'],
    ['allow_private_webhooks', 'Webhooks may go to private addresses', 'checkbox', 'Only for a receiver on this machine or network'],
  ]],
];

function input(name, type, value) {
  const id = `setting-${name}`;
  if (type === 'checkbox') return el('input', { id, name, type: 'checkbox', checked: !!value });
  if (type.startsWith('select:')) {
    return el('select', { id, name }, type.slice(7).split(',').map((option) => {
      const [optionValue, label] = option.split('=');
      return el('option', { value: optionValue, selected: optionValue === value }, label);
    }));
  }
  if (type === 'json') return el('textarea', { id, name, rows: 3, spellcheck: 'false' }, JSON.stringify(value));
  return el('input', { id, name, type: type === 'number' ? 'text' : type, inputmode: type === 'number' ? 'decimal' : null,
    value: value ?? '', autocomplete: 'off' });
}

function renderSettings(settings) {
  const known = new Set(GROUPS.flatMap(([, fields]) => fields.map(([name]) => name)));
  const other = Object.keys(settings).filter((name) => !known.has(name)).map((name) => [name, name, 'json', '']);
  const groups = other.length ? [...GROUPS, ['Other', other]] : GROUPS;
  $('#groups').replaceChildren(...groups.map(([legend, fields]) => el('fieldset', {},
    el('legend', {}, legend),
    fields.filter(([name]) => name in settings).map(([name, label, type, help]) => {
      const control = input(name, type, settings[name]);
      const helpId = `help-${name}`;
      control.setAttribute('aria-describedby', `${helpId} error-${name}`);
      const labelNode = el('label', { for: control.id, class: type === 'checkbox' ? 'inline' : null },
        type === 'checkbox' ? control : null, label);
      return el('div', { class: 'field', dataset: { field: name, type } },
        labelNode, type === 'checkbox' ? null : control,
        el('div', { id: helpId, class: 'small muted' }, help),
        el('div', { id: `error-${name}`, class: 'field-error', role: 'alert' }));
    }))));
}

/** The value a field holds now, as the API takes it. Throws a message for a bad entry. */
function fieldValue(field) {
  const { field: name, type } = field.dataset;
  const control = field.querySelector('input, select, textarea');
  if (type === 'checkbox') return control.checked;
  const raw = control.value.trim();
  if (type === 'number') {
    const number = Number(raw);
    if (raw === '' || !Number.isFinite(number)) throw new Error(`${name} must be a number`);
    return number;
  }
  if (type === 'json') {
    try {
      return JSON.parse(raw);
    } catch {
      throw new Error(`${name} must be valid JSON`);
    }
  }
  if (type === 'text' || type === 'password') return raw === '' ? null : raw;
  return raw;
}

function clearErrors() {
  for (const node of document.querySelectorAll('.field-error')) node.textContent = '';
  for (const node of document.querySelectorAll('[aria-invalid]')) node.removeAttribute('aria-invalid');
}

/** Puts `message` at the field it names ("max_bitrate_kbps must be …", "ladder[0].name …"). */
function showFieldError(message) {
  const name = [...document.querySelectorAll('[data-field]')].map((f) => f.dataset.field)
    .filter((n) => message.startsWith(n)).sort((a, b) => b.length - a.length)[0];
  if (!name) return false;
  $(`#error-${name}`).textContent = message;
  const control = $(`[data-field="${name}"]`).querySelector('input, select, textarea');
  control.setAttribute('aria-invalid', 'true');
  control.focus();
  return true;
}

$('#settings').addEventListener('submit', async (event) => {
  event.preventDefault();
  clearErrors();
  const patch = {};
  try {
    for (const field of document.querySelectorAll('[data-field]')) {
      const value = fieldValue(field);
      const name = field.dataset.field;
      if (JSON.stringify(value) !== JSON.stringify(loaded[name])) patch[name] = value;
    }
  } catch (e) {
    showFieldError(e.message);
    say($('#settings-status'), e.message, { error: true });
    return;
  }
  if (!Object.keys(patch).length) {
    say($('#settings-status'), 'Nothing changed.');
    return;
  }
  try {
    loaded = await api('PATCH', '/settings', { token, body: patch });
    renderSettings(loaded);
    say($('#settings-status'), `Saved ${Object.keys(patch).join(', ')}.`);
  } catch (e) {
    showFieldError(e.message);
    say($('#settings-status'), e.message, { error: true });
  }
});

// ---- streams

async function loadStreams() {
  try {
    const list = await api('GET', '/streams?scope=all&limit=100', { token });
    $('#streams').replaceChildren(...list.streams.map((stream) => {
      const onAir = ['live', 'reconnecting'].includes(stream.status);
      const end = (action) => async () => {
        const what = action === 'save' ? 'end it and keep the replay' : 'end it and delete its media';
        if (!confirm(`Force-end "${stream.title}" (${what})?`)) return;
        try {
          await api('POST', `/streams/${stream.id}/end`, { token, body: { action } });
          say($('#streams-status'), `Ended "${stream.title}".`);
        } catch (e) {
          say($('#streams-status'), e.message, { error: true });
        }
        loadStreams();
      };
      const playable = onAir || stream.status === 'archived';
      return el('tr', { dataset: { streamId: stream.id } },
        el('td', {}, playable ? el('a', { href: `/watch/${stream.playback_id}` }, stream.title) : stream.title,
          el('div', { class: 'small muted' }, stream.seller.name)),
        el('td', {}, statusBadge(stream.status)),
        el('td', {}, onAir ? String(stream.viewers) : ''),
        el('td', {}, onAir ? [el('button', { type: 'button', class: 'danger', onclick: end('save') }, 'Force end (save)'), ' ',
          el('button', { type: 'button', class: 'danger', onclick: end('delete') }, 'Force end (delete)')] : ''));
    }));
    if (!list.streams.length) $('#streams').append(el('tr', {}, el('td', { colspan: 4, class: 'muted' }, 'No streams.')));
  } catch (e) {
    say($('#streams-status'), e.message, { error: true });
  }
}

// ---- sign-in

staffPage('admin', ['admin'], async (signedIn) => {
  token = signedIn;
  loaded = await api('GET', '/settings', { token });
  renderSettings(loaded);
  await loadStreams();
  setInterval(loadStreams, 5000);
});
