// The public live page: live now (a large player for the first live stream, cards for the
// others), upcoming streams, recent replays. Refreshed by a light poll, so new streams appear
// without a reload.
import { $, api, attachPlayer, autoplay, el, formatDuration, plural, say, statusBadge, timeUntil, viewerSession } from './common.js';

const POLL_MS = 5000;
let featured = null; // { id, player, session, node }

function poster(stream) {
  if (!stream.poster_url) return null;
  // Live posters are refreshed every few seconds; replays keep theirs.
  const bust = stream.status === 'archived' ? '' : `?v=${Math.floor(Date.now() / 10000)}`;
  return el('img', { src: stream.poster_url + bust, alt: '', loading: 'lazy', onerror: (e) => e.target.remove() });
}

function card(stream, details) {
  return el('a', { class: 'card stream-card', href: `/watch/${stream.playback_id}`, dataset: { streamId: stream.id } },
    el('div', { class: 'thumb' }, poster(stream), statusBadge(stream.status),
      ['live', 'reconnecting'].includes(stream.status) ? el('span', { class: 'count', dataset: { viewers: stream.id } },
        plural(stream.viewers, 'viewer', 'viewers')) : null),
    el('div', { class: 'body' },
      el('div', { class: 'title' }, stream.title),
      el('div', { class: 'small muted' }, stream.seller.name),
      details ? el('div', { class: 'small muted' }, details) : null));
}

function renderFeatured(stream) {
  if (featured && featured.id === stream.id) {
    featured.count.textContent = plural(stream.viewers, 'viewer', 'viewers');
    featured.badge.replaceWith(featured.badge = statusBadge(stream.status));
    return featured.node;
  }
  dropFeatured();
  const video = el('video', { controls: true, playsinline: true, muted: true, 'aria-label': `Live: ${stream.title}` });
  const count = el('span', { dataset: { viewers: stream.id } }, plural(stream.viewers, 'viewer', 'viewers'));
  const badge = statusBadge(stream.status);
  const node = el('div', { class: 'card', id: 'featured' },
    video,
    el('div', { class: 'bar' }, badge, el('strong', {}, stream.title), el('span', { class: 'spacer' }),
      el('span', { class: 'muted' }, count)),
    el('div', { class: 'bar' }, el('span', { class: 'muted' }, stream.seller.name), el('span', { class: 'spacer' }),
      el('a', { class: 'button primary', href: `/watch/${stream.playback_id}` }, 'Watch and shop')));
  featured = { id: stream.id, node, count, badge, player: null, session: null };
  try {
    featured.player = attachPlayer(video, stream.playback_url);
    autoplay(video);
    const current = featured;
    video.addEventListener('playing', () => {
      if (!current.session && current === featured) {
        current.session = viewerSession(stream.id).catch(() => null);
      }
    }, { once: true });
  } catch (e) {
    node.prepend(el('p', { class: 'error' }, e.message));
  }
  return node;
}

function dropFeatured() {
  if (!featured) return;
  if (featured.player) featured.player.destroy();
  if (featured.session) featured.session.then((s) => s && s.leave());
  featured = null;
}

function renderLive(streams) {
  const container = $('#live');
  if (streams.length === 0) {
    dropFeatured();
    container.replaceChildren(el('p', { class: 'muted' }, 'Nobody is live right now. See what is coming up below.'));
    return;
  }
  const [first, ...others] = streams;
  const big = renderFeatured(first);
  const side = el('div', { class: 'grid' }, others.map((s) => card(s)));
  const wrap = container.querySelector('.featured');
  if (wrap && wrap.firstElementChild === big) wrap.replaceChild(side, wrap.children[1]);
  else container.replaceChildren(el('div', { class: 'featured' }, big, side));
}

async function refresh() {
  try {
    const [live, upcoming, replays] = await Promise.all([
      api('GET', '/streams?status=live&limit=13'),
      api('GET', '/streams?status=scheduled&limit=12'),
      api('GET', '/streams?status=archived&limit=12'),
    ]);
    renderLive(live.streams);
    const soonest = [...upcoming.streams].sort((a, b) => Date.parse(a.scheduled_at || 0) - Date.parse(b.scheduled_at || 0));
    $('#upcoming').replaceChildren(...(soonest.length ? soonest.map((s) => card(s, timeUntil(s.scheduled_at)))
      : [el('p', { class: 'muted' }, 'Nothing scheduled yet.')]));
    $('#replays').replaceChildren(...(replays.streams.length ? replays.streams.map((s) => card(s,
      `${formatDuration(s.duration_seconds)} · ${plural(s.peak_viewers, 'peak viewer', 'peak viewers')} · ${plural(s.likes, 'like', 'likes')}`))
      : [el('p', { class: 'muted' }, 'No replays yet.')]));
    say($('#status'), '');
  } catch (e) {
    say($('#status'), `Could not refresh: ${e.message}`, { error: true });
  }
}

// ---- the site-wide socket: "X is live now" the moment a stream starts (and "starts in N
// minutes" when its seller asked for an early reminder), no poll needed. Reconnects with
// backoff when the server goes away.
function announce(event) {
  const what = event.moment === 'live' ? 'is live now'
    : `starts in ${plural(event.minutes_before, 'minute', 'minutes')}`;
  $('#announce').replaceChildren(
    el('strong', {}, event.title), ` by ${event.seller} ${what}. `,
    el('a', { class: 'button primary', href: `/watch/${event.playback_id}` }, event.moment === 'live' ? 'Watch' : 'See it'));
  $('#announce').hidden = false;
  if (event.moment === 'live') refresh();
}

function listen(backoff = 1000) {
  const socket = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/v1/events`);
  socket.onopen = () => { backoff = 1000; };
  socket.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.type === 'reminder') announce(event);
  };
  socket.onclose = () => setTimeout(() => listen(Math.min(backoff * 2, 30000)), backoff);
}

refresh();
setInterval(refresh, POLL_MS);
listen();
