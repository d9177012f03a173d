// What every page shares: the API client, DOM and format helpers, the player, live events
// and viewer sessions. Plain ES modules, no build step: the pages talk to /api/v1 like any
// other client.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls `/api/v1{path}`; resolves to the JSON body (null for 204), rejects with ApiError. */
export async function api(method, path, { token, body } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, 'network', 'hawker cannot be reached; check your connection');
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON: reported below with the status.
  }
  if (!response.ok) {
    const error = json && json.error;
    throw new ApiError(response.status, error ? error.code : 'http', error ? error.message : `HTTP ${response.status}`);
  }
  return json;
}

/** `el('a', {href, class: 'x', onclick}, 'text', child)`: an element with attributes and children. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') node.addEventListener(name.slice(2), value);
    else if (name === 'class') node.className = value;
    else if (name === 'dataset') Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** 3725 → "1:02:05"; 65 → "1:05". */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '–';
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${rest}` : `${m}:${rest}`;
}

/** Time from now until `iso`, in words: "in 2 h 5 min", "starting now". */
export function timeUntil(iso, now = Date.now()) {
  if (!iso) return 'not scheduled';
  const minutes = Math.round((Date.parse(iso) - now) / 60000);
  if (minutes <= 0) return 'starting now';
  if (minutes < 60) return `in ${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `in ${hours} h ${minutes % 60} min`;
  return `in ${Math.round(hours / 24)} days`;
}

export function formatMoney(amount, currency) {
  const value = Number(amount);
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(value);
  } catch {
    return `${amount} ${currency}`;
  }
}

export function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

export function statusBadge(status) {
  const label = { live: 'Live', reconnecting: 'Reconnecting', archived: 'Replay', scheduled: 'Upcoming' }[status] || status;
  return el('span', { class: `badge ${status}` }, label);
}

/** Stored tokens: the seller's and admin's in localStorage, a viewer's (expiring) too. */
export const tokens = {
  get(kind) {
    const raw = localStorage.getItem(`hawker.${kind}`);
    if (!raw) return null;
    try {
      const value = JSON.parse(raw);
      if (value.expires_at && Date.parse(value.expires_at) < Date.now()) {
        localStorage.removeItem(`hawker.${kind}`);
        return null;
      }
      return value;
    } catch {
      return null;
    }
  },
  set(kind, value) {
    localStorage.setItem(`hawker.${kind}`, JSON.stringify(value));
  },
  clear(kind) {
    localStorage.removeItem(`hawker.${kind}`);
  },
};

/**
 * Plays `src` in `video`: hls.js where Media Source Extensions exist (low-latency mode when
 * asked), the browser's own HLS elsewhere (Safari). Recovers by itself from network and
 * media errors (a publisher reconnecting, a stalled edge). Returns { hls, destroy }.
 */
export function attachPlayer(video, src, { lowLatency = true, onLevelUpdate } = {}) {
  const Hls = window.Hls;
  if (Hls && Hls.isSupported()) {
    const hls = new Hls({
      lowLatencyMode: lowLatency,
      // hls.js catches up only with more than a second buffered ahead, which a player near
      // PART-HOLD-BACK never has: `keepAtLiveEdge` does it instead.
      maxLiveSyncPlaybackRate: 1,
      backBufferLength: 30,
      // Keep trying while a publisher comes back: the playlist is there, its edge is late.
      manifestLoadingMaxRetry: 6,
      levelLoadingMaxRetry: 6,
      fragLoadingMaxRetry: 6,
    });
    let retry = null;
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (!data.fatal) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
        hls.recoverMediaError();
      } else {
        clearTimeout(retry);
        retry = setTimeout(() => hls.startLoad(), 2000);
      }
    });
    if (onLevelUpdate) hls.on(Hls.Events.LEVEL_UPDATED, (_event, data) => onLevelUpdate(data.details, hls));
    hls.loadSource(src);
    hls.attachMedia(video);
    const edge = lowLatency ? keepAtLiveEdge(hls, video) : null;
    return {
      hls,
      destroy() {
        clearTimeout(retry);
        edge?.stop();
        hls.destroy();
      },
    };
  }
  if (video.canPlayType('application/vnd.apple.mpegurl')) {
    video.src = src;
    return { hls: null, destroy() { video.removeAttribute('src'); video.load(); } };
  }
  throw new Error('this browser cannot play HLS');
}

/** Fastest catch-up rate; the browser keeps the pitch. */
const MAX_CATCH_UP_RATE = 1.5;

/**
 * Keeps a low-latency live player at its target latency (hls.js's: PART-HOLD-BACK, more after
 * stalls): after a slow start or a stall it plays faster until it is back, as long as at least
 * two parts are buffered ahead (so catching up cannot cause a stall), and not when the viewer
 * is more than a target duration behind (they went back on purpose). Returns { stop }.
 */
function keepAtLiveEdge(hls, video) {
  let catchingUp = false;
  const setRate = (rate) => {
    if (video.playbackRate !== rate) video.playbackRate = rate;
  };
  const onTime = () => {
    const details = hls.latestLevelDetails;
    const target = hls.targetLatency;
    if (!details?.live || !details.partTarget || target === null || video.paused) {
      if (catchingUp) setRate(1);
      catchingUp = false;
      return;
    }
    const over = hls.latency - target;
    const ahead = bufferedAhead(video);
    // Start beyond a tenth of a second over, stop near the target: no flapping around it.
    const keepOn = catchingUp ? over > 0.02 : over > 0.1;
    catchingUp = keepOn && over < details.targetduration && ahead > 2 * details.partTarget;
    setRate(catchingUp ? Math.min(MAX_CATCH_UP_RATE, 1 + over) : 1);
  };
  video.addEventListener('timeupdate', onTime);
  return {
    stop() {
      video.removeEventListener('timeupdate', onTime);
      if (catchingUp) setRate(1);
    },
  };
}

/** Seconds of media buffered ahead of the playhead. */
function bufferedAhead(video) {
  const t = video.currentTime;
  for (let i = 0; i < video.buffered.length; i++) {
    if (video.buffered.start(i) <= t + 0.1 && t < video.buffered.end(i)) return video.buffered.end(i) - t;
  }
  return 0;
}

/** Starts muted playback (browsers allow muted autoplay); the controls unmute. */
export function autoplay(video) {
  video.muted = true;
  const play = () => video.play().catch(() => {});
  if (video.readyState >= 2) play();
  else video.addEventListener('canplay', play, { once: true });
}

/**
 * The stream's event socket, reconnecting after a drop. `onEvent(event)` gets every message,
 * the `hello` snapshot first (again after each reconnect). Returns { close }.
 */
export function streamEvents(streamId, onEvent, { token } = {}) {
  let socket = null;
  let closed = false;
  let delay = 1000;
  const open = async () => {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    // The seller's socket signs in with a single-use ticket, never the token in the URL.
    let query = '';
    if (token) {
      try {
        const issued = await api('POST', `/streams/${streamId}/events/ticket`, { token });
        query = `?ticket=${encodeURIComponent(issued.ticket)}`;
      } catch (e) {
        if (!closed) setTimeout(open, delay);
        delay = Math.min(delay * 2, 15000);
        return;
      }
    }
    if (closed) return;
    socket = new WebSocket(`${scheme}://${location.host}/api/v1/streams/${streamId}/events${query}`);
    socket.addEventListener('open', () => { delay = 1000; });
    socket.addEventListener('message', (message) => {
      try {
        onEvent(JSON.parse(message.data));
      } catch (e) {
        console.warn('bad event', e);
      }
    });
    socket.addEventListener('close', () => {
      if (closed) return;
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 15000);
    });
  };
  open();
  return {
    close() {
      closed = true;
      if (socket) socket.close();
    },
  };
}

/**
 * A counted viewer session for a player that plays the stream: joins, heartbeats as the
 * server asks, leaves when the page goes. Counts only real playback of this page.
 * `viewerToken()` gives the signed-in viewer's token, if any: the session says once who
 * watches (the seller's audience list), at its join or at the first beat after a sign-in.
 */
export async function viewerSession(streamId, viewerToken = () => null) {
  let token = viewerToken();
  let joined;
  try {
    joined = await api('POST', `/streams/${streamId}/viewers`, { token, body: {} });
  } catch (e) {
    // A token no longer valid: the player still counts, anonymously.
    if (e.status !== 401 || !token) throw e;
    token = null;
    joined = await api('POST', `/streams/${streamId}/viewers`, { body: {} });
  }
  let identified = Boolean(token);
  const base = `/streams/${streamId}/viewers/${joined.session_id}`;
  let sessionGone = false;
  const beat = async () => {
    const naming = identified ? null : viewerToken();
    try {
      await api('POST', `${base}/heartbeat`, { token: naming || undefined });
      if (naming) identified = true;
    } catch (e) {
      // Expired (e.g. the tab slept): a new session counts this player again.
      if (e.status === 404 && !sessionGone) {
        sessionGone = true;
        clearInterval(timer);
        viewerSession(streamId, viewerToken).catch(() => {});
      }
      // A token refused: beat on without it.
      if (e.status === 401) identified = true;
    }
  };
  // The session counts from its first heartbeat, which proves the player kept running.
  let timer = null;
  const first = setTimeout(() => {
    beat();
    timer = setInterval(beat, joined.heartbeat_interval_seconds * 1000);
  }, joined.first_heartbeat_after_seconds * 1000);
  const leave = () => {
    clearTimeout(first);
    clearInterval(timer);
    if (sessionGone) return;
    sessionGone = true;
    fetch(`/api/v1${base}`, { method: 'DELETE', keepalive: true }).catch(() => {});
  };
  addEventListener('pagehide', leave, { once: true });
  return { leave };
}

/** Shows `message` in the page's live region `node` (errors in red). */
export function say(node, message, { error = false } = {}) {
  node.textContent = message;
  node.classList.toggle('error', error);
}

/**
 * A page for a signed-in seller or admin: the #signin form (#token, #signin-status), #app,
 * the #who name and the #signout button. `kind` names the stored token ('seller', 'admin'),
 * `roles` the roles it may have; `start(token)` runs once signed in, also with the token an
 * earlier visit stored.
 */
export function staffPage(kind, roles, start) {
  const signIn = async (token) => {
    const me = await api('GET', '/me', { token });
    if (!roles.includes(me.role)) throw new Error(`this is not ${kind === 'admin' ? 'an admin' : 'a seller'} token`);
    tokens.set(kind, { token });
    $('#who').textContent = me.name;
    $('#signin').hidden = true;
    $('#app').hidden = false;
    await start(token);
  };
  const signedOut = () => {
    $('#app').hidden = true;
    $('#signin').hidden = false;
  };
  $('#signin').addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      await signIn($('#token').value.trim());
      $('#token').value = '';
    } catch (e) {
      signedOut();
      say($('#signin-status'), e.status === 401 ? 'This token is not valid.' : e.message, { error: true });
    }
  });
  $('#signout').addEventListener('click', () => {
    tokens.clear(kind);
    location.hash = '';
    location.reload();
  });
  const saved = tokens.get(kind);
  if (!saved) {
    signedOut();
    return;
  }
  signIn(saved.token).catch(() => {
    tokens.clear(kind);
    signedOut();
  });
}
