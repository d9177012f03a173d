// A stream's watch page: the player (hls.js in low-latency mode, the browser's own HLS in
// Safari), live badge and elapsed time, viewer count, likes, chat and the pinned products;
// for a replay, the product markers of the playlist as chapters on the timeline.
import {
  $, api, attachPlayer, el, formatDuration, formatMoney, plural, say, statusBadge, streamEvents, timeUntil, tokens,
  viewerSession,
} from './common.js';

const streamId = document.body.dataset.streamId;
const video = $('#video');
let stream = null;
let player = null;
let session = null;
let reaction = null; // 'like' | 'dislike' | null
let reminded = false; // the signed-in viewer asked to be reminded
// A clip's page (`?clip=`, the link a clip shares): the clip plays, the stream is a link away.
const clipId = new URLSearchParams(location.search).get('clip');
let clip = null;
const pins = new Map(); // product_id → pin
let oldestMessage = null;

// ---- viewer identity: a shop hands a token in the fragment (#viewer_token=…), or a guest
// signs in by name. The token never goes into a URL sent to a server.
function viewer() {
  return tokens.get('viewer');
}

async function adoptFragmentToken() {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get('viewer_token');
  if (!token) return;
  history.replaceState(null, '', location.pathname + location.search);
  try {
    const me = await api('GET', '/me', { token });
    // A link must not silently swap who a signed-in viewer chats as: inside the shop's frame
    // the shop signs its user in; on a page of its own, the viewer is asked.
    const current = viewer();
    const framed = window.top !== window;
    if (current && current.id !== me.id && !framed
        && !window.confirm(`This link signs you in as ${me.name}. Stop chatting as ${current.name}?`)) {
      return;
    }
    tokens.set('viewer', { token, id: me.id, name: me.name, expires_at: params.get('expires_at') || undefined });
  } catch (e) {
    say($('#chat-status'), `Sign-in failed: ${e.message}`, { error: true });
  }
}

function showSignedIn() {
  const me = viewer();
  $('#signin').hidden = !!me;
  $('#chat-form').hidden = !me;
  if (me) say($('#chat-status'), `Chatting as ${me.name}`);
}

$('#signin').addEventListener('submit', async (event) => {
  event.preventDefault();
  const name = $('#name').value.trim();
  if (!name) return;
  try {
    const issued = await api('POST', '/guest-tokens', { body: { display_name: name } });
    tokens.set('viewer', { token: issued.token, id: issued.user.id, name: issued.user.name, expires_at: issued.expires_at });
    showSignedIn();
    await loadReaction();
    if (stream && stream.status === 'scheduled') await loadReminder();
    $('#text').focus();
  } catch (e) {
    say($('#chat-status'), e.status === 403 ? 'Sign in through the shop to chat and like.' : e.message, { error: true });
  }
});

// ---- the player

function setBadge() {
  $('#badge').replaceChildren(statusBadge(stream.status));
  // A replay shows its products as chapters; the live pins are for live viewers.
  $('#products').hidden = stream.status === 'archived';
  $('#clip').hidden = !['live', 'reconnecting'].includes(stream.status);
  // The replay as one MP4 file, once made after the save.
  const download = $('#download');
  download.hidden = !stream.video_url;
  if (stream.video_url) download.href = stream.video_url;
  // An upcoming stream: a reminder for signed-in viewers, a calendar file for anyone.
  const upcoming = stream.status === 'scheduled';
  $('#remind').hidden = !upcoming;
  $('#calendar').hidden = !upcoming || !stream.scheduled_at;
  $('#calendar').href = `/api/v1/streams/${streamId}/calendar.ics`;
  if (upcoming) loadReminder();
}

// ---- reminders: the site-wide socket tells the home page when the stream goes live, and
// the shop e-mails or pushes its own users.
function showReminder() {
  $('#remind').textContent = reminded ? 'Reminder set' : 'Remind me';
  $('#remind').setAttribute('aria-pressed', String(reminded));
}

async function loadReminder() {
  const me = viewer();
  if (!me) return;
  try {
    reminded = (await api('GET', `/streams/${streamId}/reminder`, { token: me.token })).reminder;
    showReminder();
  } catch (e) {
    if (e.status === 401) tokens.clear('viewer');
  }
}

async function toggleReminder() {
  const me = viewer();
  if (!me) {
    say($('#reaction-status'), 'Enter your name in the chat box to be reminded.', { error: true });
    $('#name').focus();
    return;
  }
  try {
    const method = reminded ? 'DELETE' : 'PUT';
    reminded = (await api(method, `/streams/${streamId}/reminder`, { token: me.token })).reminder;
    showReminder();
    say($('#reaction-status'), reminded ? "We'll remind you when it starts." : 'Reminder removed.');
  } catch (e) {
    say($('#reaction-status'), e.message, { error: true });
  }
}

$('#remind').addEventListener('click', toggleReminder);

function tickElapsed() {
  if (!stream) return;
  const node = $('#elapsed');
  if (stream.status === 'scheduled') node.textContent = `Starts ${timeUntil(stream.scheduled_at)}`;
  else if (stream.status === 'archived') node.textContent = formatDuration(stream.duration_seconds);
  else if (stream.started_at) node.textContent = formatDuration((Date.now() - Date.parse(stream.started_at)) / 1000);
}

function startPlayer() {
  if (player) player.destroy();
  player = null;
  const archived = stream.status === 'archived';
  if (!clip && !['live', 'reconnecting', 'archived'].includes(stream.status)) {
    video.poster = '';
    return;
  }
  if (stream.poster_url) video.poster = stream.poster_url;
  if (archived && !clip) loadHighlights();
  try {
    player = clip ? attachPlayer(video, clip.playback_url, { lowLatency: false })
      : attachPlayer(video, stream.playback_url, {
        lowLatency: !archived,
        onLevelUpdate: archived ? renderChapters : undefined,
      });
    video.play().catch(() => {
      // Autoplay with sound was refused: start muted, the controls unmute.
      video.muted = true;
      video.play().catch(() => {});
    });
  } catch (e) {
    say($('#player-status'), e.message, { error: true });
  }
}

video.addEventListener('playing', () => {
  // Counted once playback really starts; a replay's join counts as a replay view. A clip
  // is neither: its watchers are not the stream's viewers.
  if (!session && !clip) session = viewerSession(streamId, () => viewer()?.token).catch(() => null);
});

// ---- replay chapters: the playlist's product DATERANGEs placed on the media timeline, each
// with its product's highlight clip (made when the stream was saved) where there is one

/** Highlight clips of this replay by product id; the playlist details chapters were drawn from. */
let highlights = new Map();
let chapterDetails = null;

async function loadHighlights() {
  try {
    const { clips } = await api('GET', `/streams/${streamId}/clips`);
    highlights = new Map(clips.filter((c) => c.kind === 'highlight').map((c) => [c.product_id, c]));
    if (chapterDetails) renderChapters(chapterDetails);
  } catch {
    // Chapters work without their clips.
  }
}

function renderChapters(details) {
  chapterDetails = details;
  const ranges = Object.values(details.dateRanges || {}).filter((r) => r.class === 'com.hawker.product');
  const first = details.fragments && details.fragments[0];
  if (!ranges.length || !first || !first.programDateTime || !details.totalduration) return;
  const at = (range) => (range.startDate.getTime() - first.programDateTime) / 1000 + first.start;
  ranges.sort((a, b) => at(a) - at(b));
  const bar = $('#chapters');
  const list = $('#chapter-list');
  bar.replaceChildren();
  list.replaceChildren();
  for (const range of ranges) {
    const time = Math.max(0, at(range));
    const title = range.attr['X-TITLE'] || range.attr['X-PRODUCT-ID'];
    const price = range.attr['X-PRICE'] ? formatMoney(range.attr['X-PRICE'], range.attr['X-CURRENCY']) : '';
    const seek = () => { video.currentTime = time; video.play().catch(() => {}); };
    bar.append(el('button', {
      type: 'button', class: 'chapter', style: null, title: `${formatDuration(time)} ${title}`,
      'aria-label': `Jump to ${title} at ${formatDuration(time)}`, onclick: seek,
      dataset: { position: String(time / details.totalduration) },
    }));
    const highlight = highlights.get(range.attr['X-PRODUCT-ID']);
    list.append(productItem({
      title, price, image_url: range.attr['X-IMAGE-URL'], url: range.attr['X-URL'],
      extra: el('div', { class: 'bar' }, el('button', { type: 'button', onclick: seek }, `▶ ${formatDuration(time)}`),
        highlight ? el('a', { class: 'highlight', href: highlight.playback_url, target: '_blank', rel: 'noopener',
          'aria-label': `Highlight clip of ${title}` }, `Highlight (${formatDuration(highlight.duration_seconds)})`) : null),
    }));
  }
  // Positions are set through the CSSOM: the page's CSP allows no inline styles.
  for (const button of bar.children) button.style.left = `${Math.min(100, Number(button.dataset.position) * 100)}%`;
  bar.hidden = false;
  $('#replay-products').hidden = false;
}

// ---- products

function productItem({ title, price, image_url: image, url, extra }) {
  return el('li', { class: 'product card' },
    image ? el('img', { src: image, alt: '', loading: 'lazy', onerror: (e) => { e.target.style.visibility = 'hidden'; } })
      : el('span', {}),
    el('div', {}, el('div', {}, title), el('div', { class: 'price' }, price), extra || null),
    url ? el('a', { class: 'button primary', href: url, target: '_blank', rel: 'noopener', 'aria-label': `Buy ${title}` }, 'Buy')
      : el('span', {}));
}

function renderPins() {
  const node = $('#pins');
  if (!pins.size) {
    node.replaceChildren(el('p', { class: 'muted small' }, 'No product pinned right now.'));
    return;
  }
  node.replaceChildren(el('ul', { class: 'products', role: 'list' },
    [...pins.values()].map((pin) => productItem({ ...pin, price: formatMoney(pin.price, pin.currency) }))));
}

// ---- viewers: live sessions while on air; peak and replay views on a replay

function showViewers(figures) {
  $('#viewers').textContent = stream.status === 'archived'
    ? `${plural(figures.peak, 'peak viewer', 'peak viewers')} · ${plural(figures.replay_views, 'replay view', 'replay views')}`
    : plural(figures.current, 'viewer', 'viewers');
}

// ---- reactions

function showReactions(likes, dislikes) {
  $('#likes').textContent = likes;
  $('#dislikes').textContent = dislikes;
  $('#like').setAttribute('aria-pressed', String(reaction === 'like'));
  $('#dislike').setAttribute('aria-pressed', String(reaction === 'dislike'));
}

async function loadReaction() {
  const me = viewer();
  if (!me) return;
  try {
    const mine = await api('GET', `/streams/${streamId}/reaction`, { token: me.token });
    reaction = mine.reaction;
    showReactions(mine.likes, mine.dislikes);
  } catch (e) {
    if (e.status === 401) tokens.clear('viewer');
    showSignedIn();
  }
}

async function react(kind) {
  const me = viewer();
  if (!me) {
    say($('#reaction-status'), 'Enter your name in the chat box to like.', { error: true });
    $('#name').focus();
    return;
  }
  try {
    const result = reaction === kind
      ? await api('DELETE', `/streams/${streamId}/reaction`, { token: me.token })
      : await api('PUT', `/streams/${streamId}/reaction`, { token: me.token, body: { reaction: kind } });
    reaction = result ? result.reaction : null;
    if (result) showReactions(result.likes, result.dislikes);
    else await loadReaction();
    say($('#reaction-status'), '');
  } catch (e) {
    say($('#reaction-status'), e.message, { error: true });
  }
}

$('#like').addEventListener('click', () => react('like'));
$('#dislike').addEventListener('click', () => react('dislike'));

// ---- share: the Web Share API where the browser has it, else the link is copied. A
// replay's link starts where the viewer is (?t=seconds).

function shareUrl() {
  const url = new URL(`/watch/${stream.playback_id}`, location.origin);
  if (stream.status === 'archived' && video.currentTime >= 1) url.searchParams.set('t', String(Math.floor(video.currentTime)));
  return url.toString();
}

async function share() {
  const url = shareUrl();
  let channel = null;
  try {
    if (navigator.share) {
      await navigator.share({ title: stream.title, url });
      channel = 'native';
    } else {
      await navigator.clipboard.writeText(url);
      channel = 'copy';
      say($('#reaction-status'), 'Link copied.');
    }
  } catch (e) {
    if (e.name === 'AbortError') return; // the viewer closed the share sheet
    say($('#reaction-status'), `Copy this link: ${url}`);
    channel = 'copy';
  }
  api('POST', `/streams/${streamId}/shares`, { body: { channel } }).catch(() => {});
}

$('#share').addEventListener('click', share);

// ---- clip: a signed-in viewer keeps the last 30 s of the live stream as a link (a playlist
// over the stream's own segments; a few an hour).

async function clipLast30() {
  const me = viewer();
  if (!me) {
    say($('#reaction-status'), 'Sign in (below the chat) to clip.');
    return;
  }
  const end = new Date();
  const start = new Date(end.getTime() - 30000);
  try {
    const made = await api('POST', `/streams/${streamId}/clips`,
      { token: me.token, body: { start: start.toISOString(), end: end.toISOString() } });
    try {
      await navigator.clipboard.writeText(made.share_url);
      say($('#reaction-status'), `Clip made, link copied: ${made.share_url}`);
    } catch {
      say($('#reaction-status'), `Clip made: ${made.share_url}`);
    }
  } catch (e) {
    say($('#reaction-status'), e.message, { error: true });
  }
}

$('#clip').addEventListener('click', clipLast30);

/** `?t=` of a replay's link: where playback starts, in seconds. */
const startAt = Number(new URLSearchParams(location.search).get('t')) || 0;
let startApplied = false;
video.addEventListener('loadedmetadata', () => {
  if (startApplied || !startAt || stream.status !== 'archived') return;
  startApplied = true;
  video.currentTime = Math.min(startAt, Math.max(0, video.duration - 1));
});

// ---- chat

function messageItem(message) {
  const time = new Date(message.created_at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return el('li', { dataset: { messageId: String(message.id) } },
    el('span', { class: 'who' }, message.user.name),
    // Only the server marks the seller and the moderators: a name alone proves nothing.
    message.user.role ? el('span', { class: `badge role ${message.user.role}` }, message.user.role) : null,
    el('span', { class: 'text' }, message.text),
    el('span', { class: 'small muted' }, ` ${time}`));
}

function addMessage(message) {
  const list = $('#messages');
  if (list.querySelector(`[data-message-id="${message.id}"]`)) return;
  const stick = list.scrollTop + list.clientHeight >= list.scrollHeight - 20;
  list.append(messageItem(message));
  if (stick) list.scrollTop = list.scrollHeight;
}

async function loadOlder() {
  const query = oldestMessage ? `?before=${oldestMessage}&limit=50` : '?limit=50';
  const page = await api('GET', `/streams/${streamId}/chat${query}`);
  const list = $('#messages');
  const older = page.messages.filter((m) => !list.querySelector(`[data-message-id="${m.id}"]`)).map(messageItem);
  const more = list.querySelector('.older');
  if (more) more.remove();
  list.prepend(...older);
  if (page.messages.length) oldestMessage = page.messages[0].id;
  if (page.next_before) {
    list.prepend(el('li', { class: 'older' }, el('button', { type: 'button', onclick: () => loadOlder() }, 'Earlier messages')));
  }
  if (!oldestMessage || !query.includes('before')) list.scrollTop = list.scrollHeight;
}

$('#chat-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const me = viewer();
  const text = $('#text').value.trim();
  if (!me || !text) return;
  try {
    const message = await api('POST', `/streams/${streamId}/chat`, { token: me.token, body: { text } });
    addMessage(message);
    $('#text').value = '';
    say($('#chat-status'), `Chatting as ${me.name}`);
  } catch (e) {
    if (e.status === 401) {
      tokens.clear('viewer');
      showSignedIn();
    }
    say($('#chat-status'), e.message, { error: true });
  }
});

// ---- live events

function onEvent(event) {
  switch (event.type) {
    case 'hello':
      showViewers(event.viewers);
      if (reaction === null) showReactions(event.likes, event.dislikes);
      else { $('#likes').textContent = event.likes; $('#dislikes').textContent = event.dislikes; }
      pins.clear();
      for (const pin of event.pins) pins.set(pin.product_id, pin);
      renderPins();
      if (event.status !== stream.status) statusChanged(event.status);
      break;
    case 'viewers':
      showViewers(event);
      break;
    case 'reactions':
      $('#likes').textContent = event.likes;
      $('#dislikes').textContent = event.dislikes;
      break;
    case 'chat':
      addMessage(event.message);
      break;
    case 'chat_deleted': {
      const item = $(`#messages [data-message-id="${event.message_id}"]`);
      if (item) item.remove();
      break;
    }
    case 'pin':
      pins.set(event.pin.product_id, event.pin);
      renderPins();
      break;
    case 'unpin':
      pins.delete(event.pin.product_id);
      renderPins();
      break;
    case 'status':
      statusChanged(event.status);
      break;
    case 'replay_ready':
      statusChanged('archived');
      break;
    case 'replay.mp4_ready':
      stream = { ...stream, video_url: event.video_url };
      setBadge();
      break;
    default:
      break;
  }
}

async function statusChanged(status) {
  const before = stream.status;
  stream = await api('GET', `/streams/${streamId}`).catch(() => ({ ...stream, status }));
  setBadge();
  tickElapsed();
  if (status === 'ended' || status === 'cancelled') {
    if (player) player.destroy();
    player = null;
    say($('#player-status'), status === 'ended' ? 'This stream has ended.' : 'This stream was cancelled.');
    return;
  }
  if (status === 'reconnecting') say($('#player-status'), 'The seller is reconnecting; the video resumes by itself.');
  else say($('#player-status'), '');
  // Going live, or the live stream becoming its replay: (re)start the player. A publisher
  // coming back (reconnecting → live) needs nothing: the player follows the same playlist.
  if (clip) return; // the clip plays on, whatever the stream does
  const wasPlaying = ['live', 'reconnecting'].includes(before);
  if ((status === 'live' && !wasPlaying) || (status === 'archived' && before !== 'archived')) startPlayer();
}

async function showClip() {
  clip = await api('GET', `/streams/${streamId}/clips/${encodeURIComponent(clipId)}`).catch(() => null);
  const banner = $('#clip-banner');
  banner.replaceChildren(clip
    ? `Clip: ${clip.title || 'a moment of this stream'} · ${formatDuration(clip.duration_seconds)}. `
    : 'This clip is gone. ',
  el('a', { href: `/watch/${document.body.dataset.playbackId}` }, 'Watch the whole stream'));
  banner.hidden = false;
}

async function main() {
  await adoptFragmentToken();
  stream = await api('GET', `/streams/${streamId}`);
  $('#seller').textContent = `by ${stream.seller.name}`;
  $('#description').textContent = stream.description || '';
  showReactions(stream.likes, stream.dislikes);
  setBadge();
  tickElapsed();
  setInterval(tickElapsed, 1000);
  showSignedIn();
  if (clipId) await showClip();
  startPlayer();
  streamEvents(streamId, onEvent);
  await Promise.all([loadReaction(), loadOlder().catch((e) => say($('#chat-status'), e.message, { error: true }))]);
}

main().catch((e) => say($('#player-status'), e.message, { error: true }));
