// The pages' browser scenario, run by tests/e2e/pages.rs against a real hawker with real ffmpeg
// publishers: Debian's Chromium, headless, driven by playwright-core. Exits non-zero on the
// first failed check; prints what it measured. Screenshots go to $SCREENSHOT_DIR.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { chromium } from 'playwright-core';

const env = process.env;
const base = env.HAWKER_URL;
const shots = env.SCREENSHOT_DIR;
const { STREAM_ID: streamId, PLAYBACK_ID: playbackId, OTHER_STREAM_ID: otherId, UPCOMING_ID: upcomingId } = env;

const browser = await chromium.launch({
  executablePath: env.CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

const consoleProblems = [];
// Console errors a step provokes on purpose (Chromium logs every refused request), each
// allowed once: "page: text".
const expectedConsole = [];
// While a stream ends, a player's waiting request for the next LL-HLS part is answered 404
// (the part will never exist) as the player moves to the replay: allowed in that window only.
let streamEnding = false;
const loadTimes = {};
const contexts = [];

/** A new browser context (its own storage) on `url`; `stored` is put in its localStorage first. */
async function open(name, url, options = {}, stored = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, ...options });
  contexts.push(context);
  await context.addInitScript((entries) => {
    for (const [key, value] of entries) localStorage.setItem(key, value);
  }, Object.entries(stored));
  const page = await context.newPage();
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const line = `${name}: ${message.text()}`;
    if (streamEnding && /\/hls\/.*\.m4s$/.test(message.location().url) && message.text().includes('404')) return;
    const expected = expectedConsole.indexOf(line);
    if (expected >= 0) expectedConsole.splice(expected, 1);
    else consoleProblems.push(line);
  });
  page.on('pageerror', (error) => consoleProblems.push(`${name}: uncaught ${error.message} at ${(error.stack || '').split('\n').slice(1, 4).join(' / ')}`));
  await page.goto(base + url);
  await page.waitForLoadState('load');
  loadTimes[name] = await page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    return Math.round(nav.loadEventEnd - nav.startTime);
  });
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

/** Waits until `check()` (async) holds. */
async function waitFor(check, what, timeout = 10000) {
  const deadline = Date.now() + timeout;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The page's video plays: its currentTime advances by `seconds`. */
async function plays(page, selector = 'video', seconds = 1.5, timeout = 30000) {
  await page.evaluate((sel) => { const video = document.querySelector(sel); if (video) delete video.dataset.t0; }, selector);
  await page.waitForFunction(([sel, s]) => {
    const video = document.querySelector(sel);
    if (!video) return false;
    if (video.dataset.t0 === undefined) {
      if (video.currentTime > 0) video.dataset.t0 = String(video.currentTime);
      return false;
    }
    return video.currentTime - Number(video.dataset.t0) >= s;
  }, [selector, seconds], { timeout, polling: 200 });
}

/** Waits for `selector`'s text to pass `test`; a timeout says what the page showed instead. */
async function textPasses(page, selector, expected, test, timeout) {
  try {
    await page.waitForFunction(([sel, want, how]) => {
      const node = document.querySelector(sel);
      const text = node && node.textContent.trim();
      return text !== null && (how === 'is' ? text === want : text.includes(want));
    }, [selector, expected, test], { timeout, polling: 100 });
  } catch (e) {
    const shown = await page.evaluate((sel) => document.querySelector(sel)?.textContent.trim() ?? null, selector)
      .catch(() => '(page gone)');
    throw new Error(`${selector} ${test === 'is' ? 'is not' : 'does not contain'} ${JSON.stringify(expected)} `
      + `within ${timeout} ms; it shows ${JSON.stringify(shown)}`, { cause: e });
  }
}

const textIs = (page, selector, expected, timeout = 10000) => textPasses(page, selector, expected, 'is', timeout);
const contains = (page, selector, expected, timeout = 10000) => textPasses(page, selector, expected, 'has', timeout);

/** Cheap accessibility checks: labelled controls, alt text, named buttons, one h1, lang. */
async function accessibility(page, name) {
  const problems = await page.evaluate(() => {
    const out = [];
    if (!document.documentElement.lang) out.push('no lang on <html>');
    const visible = (node) => node.offsetParent !== null || node.getClientRects().length > 0;
    for (const control of document.querySelectorAll('input, select, textarea')) {
      if (control.type === 'hidden' || !visible(control)) continue;
      if (!control.labels.length && !control.getAttribute('aria-label')) out.push(`unlabelled ${control.outerHTML.slice(0, 80)}`);
    }
    for (const image of document.querySelectorAll('img')) if (!image.hasAttribute('alt')) out.push(`img without alt ${image.src}`);
    for (const button of document.querySelectorAll('button, a')) {
      if (!visible(button)) continue;
      if (!(button.textContent.trim() || button.getAttribute('aria-label'))) out.push(`unnamed ${button.outerHTML.slice(0, 80)}`);
    }
    if (document.querySelectorAll('h1').length < 1) out.push('no h1');
    return out;
  });
  assert.deepEqual(problems, [], `${name}: accessibility`);
}

async function api(method, url, token, body) {
  const response = await fetch(`${base}/api/v1${url}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  assert.ok(response.ok, `${method} ${url}: ${response.status}`);
  return response.status === 204 ? null : response.json();
}

/** ffmpeg publishing as the harness's does (tests/common/mod.rs ffmpeg_publish). */
function publish(url, seconds) {
  return spawn('ffmpeg', ['-hide_banner', '-nostdin', '-loglevel', 'error', '-re',
    '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-t', String(seconds), '-c:v', 'libx264', '-preset', 'veryfast', '-bf', '2', '-g', '60', '-keyint_min', '60',
    '-sc_threshold', '0', '-pix_fmt', 'yuv420p', '-b:v', '800k', '-c:a', 'aac', '-b:a', '96k', '-f', 'flv', url],
  { stdio: 'ignore' });
}
let republisher = null;

function step(name) {
  console.log(`- ${name}`);
}

try {
  // ---- the public live page: live now, upcoming
  step('home page while live');
  const home = await open('home', '/');
  await contains(home, '#featured', 'Second room'); // the newest live stream is the large one
  await plays(home, '#featured video');
  await contains(home, '#live', 'Spring collection live');
  await contains(home, '#upcoming', 'Autumn preview');
  await contains(home, '#upcoming', 'in 3 h');
  await contains(home, '#upcoming', "Ada's Boutique");
  await accessibility(home, 'home');
  await shot(home, 'home-live');
  // New streams appear without a reload.
  await api('POST', '/streams', env.SELLER_TOKEN, { title: 'Pop-up sale', scheduled_at: new Date(Date.now() + 86400000).toISOString() });
  await contains(home, '#upcoming', 'Pop-up sale', 8000);
  step('a stream goes live: the home page says so at once, from the site-wide socket');
  const flash = await api('POST', '/streams', env.SELLER_TOKEN, { title: 'Flash sale' });
  // Its card may ask for its poster before the first one is made (the card drops it).
  expectedConsole.push('home: Failed to load resource: the server responded with a status of 404 (Not Found)');
  const flashPublisher = publish(env.PUBLISH_URL.replace(/[^/]+$/, flash.stream_key), 20);
  await contains(home, '#announce', 'Flash sale', 15000);
  await contains(home, '#announce', 'is live now');
  await home.waitForSelector(`#announce a[href="/watch/${flash.playback_id}"]`);
  await shot(home, 'home-live-now');
  flashPublisher.kill('SIGKILL');
  await api('POST', `/streams/${flash.id}/end`, env.SELLER_TOKEN, { action: 'delete' });
  await home.context().close();

  // ---- two viewers on the watch page
  step('viewer A plays the live stream, the count shows 1');
  const viewerA = await open('watch-a', `/watch/${playbackId}`);
  await plays(viewerA);
  await contains(viewerA, '#badge', 'Live');
  await textIs(viewerA, '#viewers', '1 viewer', 15000);
  await accessibility(viewerA, 'watch');
  await shot(viewerA, 'watch-live');

  step('viewer A shares the link: the seller counts a share');
  await viewerA.click('#share');
  await viewerA.waitForFunction(() => /Link copied|Copy this link/.test(document.querySelector('#reaction-status').textContent));
  await waitFor(async () => (await api('GET', `/streams/${env.STREAM_ID}/stats`, env.SELLER_TOKEN)).shares === 1, 'the share counted');

  step('viewer B joins: both see 2');
  const viewerB = await open('watch-b', `/watch/${playbackId}`);
  await plays(viewerB);
  await textIs(viewerB, '#viewers', '2 viewers', 15000);
  await textIs(viewerA, '#viewers', '2 viewers', 15000);

  step("the watch page's player catches up to its target latency after its start");
  // attachPlayer on its own (the watch page does not expose hls.js), in a page of hawker's
  // origin. hls.js alone stays where its start left it, about 0.35 s over the target here.
  const probe = await open('latency', '/studio');
  const { latency, target, rate } = await probe.evaluate(async (src) => {
    await new Promise((resolve, reject) => {
      const script = Object.assign(document.createElement('script'), { src: '/assets/hls.min.js', onload: resolve, onerror: reject });
      document.head.append(script);
    });
    const { attachPlayer } = await import('/assets/common.js');
    const video = Object.assign(document.createElement('video'), { muted: true });
    document.body.append(video);
    const { hls, destroy } = attachPlayer(video, src);
    video.play().catch(() => {});
    const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
    for (let i = 0; i < 200 && !(video.currentTime > 0); i++) await sleep(100);
    await sleep(12000);
    const seen = { latency: hls.latency, target: hls.targetLatency, rate: video.playbackRate };
    destroy();
    return seen;
  }, `/hls/${playbackId}/index.m3u8`);
  console.log(`  live-edge latency ${latency.toFixed(3)} s, target ${target.toFixed(3)} s, rate ${rate}`);
  assert.ok(latency - target < 0.2, `the player stays ${(latency - target).toFixed(3)} s over its target latency`);
  await probe.context().close();

  step("viewer A signs in, likes and chats; B sees both within 2 s");
  await viewerA.fill('#name', 'Grace');
  await viewerA.click('#signin button[type=submit]');
  await viewerA.waitForSelector('#chat-form:not([hidden])');
  // Her next heartbeat says who she is: the studio will count a guest (checked below).
  let started = Date.now();
  await viewerA.click('#like');
  await textIs(viewerB, '#likes', '1', 2000);
  const likeSeenMs = Date.now() - started;
  await textIs(viewerA, '#like[aria-pressed="true"] #likes', '1', 2000);
  started = Date.now();
  await viewerA.fill('#text', 'Is the blue one in stock?');
  await viewerA.press('#text', 'Enter');
  await contains(viewerB, '#messages', 'Grace', 2000);
  await contains(viewerB, '#messages', 'Is the blue one in stock?', 2000);
  const chatSeenMs = Date.now() - started;

  step('viewer A clips the last 30 s: a link to a playlist that plays');
  await viewerA.click('#clip');
  await viewerA.waitForFunction(() => /Clip made/.test(document.querySelector('#reaction-status').textContent), null, { timeout: 5000 });
  const shareUrl = (await viewerA.textContent('#reaction-status')).match(/https?:\/\/\S+\?clip=\S+/)[0];
  step("the clip's link opens its page: the clip plays, the stream is a link away");
  const clipPage = await open('watch-clip', new URL(shareUrl).pathname + new URL(shareUrl).search);
  await contains(clipPage, '#clip-banner', 'Clip:');
  await plays(clipPage);
  const clipSrc = await clipPage.evaluate(() => window.performance.getEntriesByType('resource').map((e) => e.name).find((n) => n.includes('/hls/') && n.includes('/clips/')));
  assert.ok(clipSrc && clipSrc.endsWith('/index.m3u8'), `the clip's playlist is played: ${clipSrc}`);
  const viewerClip = await fetch(clipSrc);
  assert.match(await viewerClip.text(), /#EXT-X-ENDLIST/);
  await clipPage.waitForSelector(`#clip-banner a[href="/watch/${playbackId}"]`);
  await clipPage.context().close();

  step('the publisher drops and comes back: the players go on by themselves');
  const before = await viewerA.evaluate(() => document.querySelector('video').currentTime);
  process.kill(Number(env.PUBLISHER_PID), 'SIGKILL');
  await contains(viewerA, '#badge', 'Reconnecting', 10000);
  republisher = publish(env.PUBLISH_URL, 300);
  await contains(viewerA, '#badge', 'Live', 15000);
  await viewerA.waitForFunction((t) => document.querySelector('video').currentTime > t + 4, before, { timeout: 30000 });
  await plays(viewerB, 'video', 2);

  // ---- the seller's studio
  step('seller signs in to the studio and sees the live stats');
  const studio = await open('studio', '/studio');
  await studio.fill('#token', env.SELLER_TOKEN);
  await studio.click('#signin button[type=submit]');
  await studio.getByRole('button', { name: /Spring collection live/ }).click();
  await contains(studio, '#detail h1', 'Spring collection live');
  await textIs(studio, '#stat-viewers', '2', 10000);
  // Failed once in a dozen runs (2026-12-06) showing 0: whether the database agrees tells a
  // lost like from a stale page.
  await textIs(studio, '#stat-likes', '1', 10000).catch(async (e) => {
    const stats = await api('GET', `/streams/${env.STREAM_ID}/stats`, env.SELLER_TOKEN);
    throw new Error(`${e.message}; GET /streams/{id}/stats says likes ${stats.likes}`, { cause: e });
  });
  await textIs(studio, '#stat-comments', '1', 10000);
  await studio.waitForFunction(() => /kb\/s$/.test(document.querySelector('#stat-bitrate')?.textContent || ''), null, { timeout: 10000 });
  await contains(studio, '#stat-health', 'ok');
  assert.equal(await studio.getAttribute('#stream-key', 'type'), 'password', 'the key is hidden until revealed');
  await studio.click('#obs-heading ~ .copy-row button[aria-controls="stream-key"]');
  assert.equal(await studio.getAttribute('#stream-key', 'type'), 'text', 'Reveal shows the key');
  assert.match(await studio.inputValue('#stream-key'), /^sk_/);
  await studio.click('button[aria-controls="stream-key"]');
  await plays(studio, '#preview');
  step('the studio shows who watches: viewer A signed in as a guest, viewer B not signed in');
  await contains(studio, '#audience-counts', '1 guest, 1 not signed in', 20000);
  await accessibility(studio, 'studio');

  step('seller pins a product; viewer A sees it within 2 s');
  await studio.fill('#pin-product_id', 'sku-blue-dress');
  await studio.fill('#pin-title', 'Blue summer dress');
  await studio.fill('#pin-price', '49.90');
  await studio.fill('#pin-currency', 'EUR');
  await studio.fill('#pin-url', 'https://shop.example/products/blue-dress');
  started = Date.now();
  await studio.click('#pin-form button[type=submit]');
  await contains(viewerA, '#pins', 'Blue summer dress', 2000);
  const pinSeenMs = Date.now() - started;
  assert.equal(await viewerA.getAttribute('#pins a', 'href'), 'https://shop.example/products/blue-dress');
  await contains(studio, '#pin-list', 'Blue summer dress');

  step('the shop reports an order; the studio lists it at once, with its stream time');
  await api('POST', `/streams/${env.STREAM_ID}/orders`, env.SHOP_TOKEN,
    { order_id: 'web-1', product_id: 'sku-blue-dress', quantity: 2, amount: '99.80', currency: 'EUR' });
  await contains(studio, '#order-rows', 'sku-blue-dress', 2000);
  assert.doesNotMatch(await studio.textContent('#order-rows tr:first-child td:last-child'), /–/, 'the order has a stream time');

  step('seller clips the last 30 s: it plays at once');
  await studio.click('#clip-last-30');
  await contains(studio, '#clip-status', 'Clip made', 5000);
  await contains(studio, '#clip-list', 'Make MP4');
  const clips = (await api('GET', `/streams/${env.STREAM_ID}/clips`, env.SELLER_TOKEN)).clips.filter((c) => c.kind === 'clip');
  assert.equal(clips.length, 2, "viewer A's clip and the seller's (the order's receipt aside)");
  const clipPlaylist = await fetch(clips[0].playback_url);
  assert.equal(clipPlaylist.status, 200);
  assert.match(await clipPlaylist.text(), /#EXT-X-ENDLIST/);
  step("seller makes a clip's MP4: the studio hears when it is ready");
  await studio.click('#clip-list button:has-text("Make MP4")');
  await contains(studio, '#clip-status', 'MP4 ready', 30000);
  await studio.waitForSelector('#clip-list a[download]:has-text("MP4")', { timeout: 5000 });
  // The MP4 is cut to the span asked for (the playlist to whole segments): the browser plays
  // the playlist's media less what lies outside that span (a reconnect's gap has no media).
  const made = (await api('GET', `/streams/${env.STREAM_ID}/clips`, env.SELLER_TOKEN)).clips.find((c) => c.video_url);
  const media = [...(await (await fetch(made.playback_url)).text()).matchAll(/#EXTINF:([0-9.]+)/g)]
    .reduce((sum, m) => sum + Number(m[1]), 0);
  const shownSeconds = media - Math.max(0, Date.parse(made.requested_start) - Date.parse(made.start)) / 1000
    - Math.max(0, Date.parse(made.end) - Date.parse(made.requested_end)) / 1000;
  const playedSeconds = await studio.evaluate((src) => new Promise((resolve, reject) => {
    const video = document.createElement('video');
    video.muted = true;
    video.onloadedmetadata = () => resolve(video.duration);
    video.onerror = () => reject(new Error(`the clip MP4 does not load: ${video.error && video.error.message}`));
    video.src = src;
  }), made.video_url);
  assert.ok(Math.abs(playedSeconds - shownSeconds) < 0.2,
    `the clip MP4 lasts ${playedSeconds} s in the browser, ${shownSeconds} s asked (segments: ${made.duration_seconds} s)`);
  await shot(studio, 'studio-live');
  await shot(viewerA, 'watch-live-pinned');

  // ---- the admin page
  step('admin: a bad setting is refused at its field, a good one saved; force-end');
  const admin = await open('admin', '/admin');
  await admin.fill('#token', env.ADMIN_TOKEN);
  await admin.click('#signin button[type=submit]');
  await admin.waitForSelector('#setting-chat_max_length');
  await admin.fill('#setting-chat_max_length', '5000');
  expectedConsole.push('admin: Failed to load resource: the server responded with a status of 400 (Bad Request)');
  await admin.click('#settings button[type=submit]');
  await contains(admin, '#error-chat_max_length', 'chat_max_length must be 1 to 2000');
  assert.equal(await admin.getAttribute('#setting-chat_max_length', 'aria-invalid'), 'true');
  await shot(admin, 'admin-validation');
  await admin.fill('#setting-chat_max_length', '300');
  await admin.click('#settings button[type=submit]');
  await contains(admin, '#settings-status', 'Saved chat_max_length');
  await accessibility(admin, 'admin');
  admin.on('dialog', (dialog) => dialog.accept());
  await admin.click(`tr[data-stream-id="${otherId}"] button:has-text("Force end (save)")`);
  await contains(admin, `tr[data-stream-id="${otherId}"]`, 'Replay', 10000);
  await shot(admin, 'admin');

  step('seller creates a practice stream: marked in the studio, never on the home page');
  await studio.fill('#new-title', 'Dry run');
  await studio.check('#new-practice');
  await studio.click('#create button[type=submit]');
  await contains(studio, '#detail h1', 'Dry run');
  await contains(studio, '#streams', 'Dry run (practice)');
  const practiceIds = (await api('GET', '/streams?scope=mine', env.SELLER_TOKEN)).streams.filter((s) => s.practice).map((s) => s.id);
  assert.equal(practiceIds.length, 1, 'one practice stream');
  const publicList = await (await fetch(`${base}/api/v1/streams`)).json();
  assert.ok(!publicList.streams.some((s) => practiceIds.includes(s.id)), 'no practice stream in the public list');

  step('a shopper asks to be reminded of the upcoming stream and gets its calendar file');
  const { playback_id: upcomingPid } = await api('GET', `/streams/${upcomingId}`, env.SELLER_TOKEN);
  const fan = await open('watch-upcoming', `/watch/${upcomingPid}#viewer_token=${env.SHOP_VIEWER_TOKEN}`);
  await fan.waitForSelector('#remind:not([hidden])');
  await fan.click('#remind');
  await textIs(fan, '#remind[aria-pressed="true"]', 'Reminder set', 5000);
  const calendarHref = await fan.getAttribute('#calendar', 'href');
  const calendar = await fetch(new URL(calendarHref, base));
  assert.equal(calendar.status, 200);
  assert.match(calendar.headers.get('content-type'), /^text\/calendar/);
  assert.match(await calendar.text(), /BEGIN:VCALENDAR[\s\S]*SUMMARY:Autumn preview/);
  await accessibility(fan, 'watch-upcoming');
  await shot(fan, 'watch-upcoming');
  await fan.context().close();

  step('seller resets an upcoming stream key with a confirmation');
  await studio.getByRole('button', { name: /Autumn preview/ }).click();
  await contains(studio, '#detail h1', 'Autumn preview');
  await contains(studio, '#reminders', '1 viewer asked to be reminded');
  // The harness published with this key hours early: the studio says why it was refused.
  await contains(studio, '#refusal-detail', 'the key works from');
  await contains(studio, '#refusal-fix', "Fix: Go live within the key's window");
  const oldKey = await studio.inputValue('#stream-key');
  await studio.click('#reset-key');
  await studio.click('#reset-dialog button[value=reset]');
  await contains(studio, '#key-status', 'New key issued');
  assert.notEqual(await studio.inputValue('#stream-key'), oldKey);
  const upcoming = await api('GET', `/streams/${upcomingId}`, env.SELLER_TOKEN);
  assert.equal(upcoming.stream_key, await studio.inputValue('#stream-key'));

  step('seller ends the stream: final stats, Save');
  await studio.getByRole('button', { name: /Spring collection live/ }).click();
  await contains(studio, '#detail h1', 'Spring collection live');
  await studio.click('#end');
  await textIs(studio, '#final-likes', '1', 10000);
  await textIs(studio, '#final-comments', '1');
  await shot(studio, 'studio-end-dialog');
  streamEnding = true;
  await studio.click('#end-dialog button[value=save]');
  await contains(studio, '#detail .bar', 'Replay', 20000);

  step('viewer A is moved to the replay');
  await contains(viewerA, '#badge', 'Replay', 20000);
  await contains(viewerB, '#badge', 'Replay', 20000);
  streamEnding = false;

  // ---- the replay
  step('the replay plays, with the product as a chapter');
  // The replay's MP4 is made just after the save.
  let videoUrl = null;
  for (let i = 0; i < 60 && !videoUrl; i += 1) {
    videoUrl = (await api('GET', `/streams/${env.STREAM_ID}`, env.SELLER_TOKEN)).video_url;
    if (!videoUrl) await new Promise((resolve) => setTimeout(resolve, 500));
  }
  assert.ok(videoUrl && videoUrl.endsWith(`/hls/${playbackId}/replay.mp4`), `video_url ${videoUrl}`);
  const replay = await open('replay', `/watch/${playbackId}`);
  await contains(replay, '#badge', 'Replay');
  await plays(replay);
  await replay.waitForSelector('#chapters:not([hidden]) button', { timeout: 15000 });
  await contains(replay, '#chapter-list', 'Blue summer dress');
  // The pin became a highlight clip of the product when the stream was saved.
  await replay.waitForSelector('#chapter-list a.highlight', { timeout: 10000 });
  const highlightUrl = await replay.getAttribute('#chapter-list a.highlight', 'href');
  assert.match(highlightUrl, new RegExp(`/hls/${playbackId}/clips/[A-Za-z0-9_-]+/index\\.m3u8$`));
  assert.match(await (await fetch(highlightUrl)).text(), /#EXT-X-ENDLIST/);
  const productHighlights = await (await fetch(`${base}/api/v1/products/sku-blue-dress/highlights`)).json();
  assert.equal(productHighlights.clips[0].playback_url, highlightUrl);
  await replay.click('#chapters button');
  await replay.waitForFunction(() => {
    const video = document.querySelector('video');
    return video.currentTime > 0 && !video.seeking;
  }, null, { timeout: 10000 });
  assert.equal(await replay.getAttribute('#download', 'href'), videoUrl, 'the replay offers its MP4');
  const head = await fetch(videoUrl, { method: 'HEAD' });
  assert.equal(head.headers.get('content-type'), 'video/mp4');
  await accessibility(replay, 'replay');
  await shot(replay, 'watch-replay');

  step('a replay link with ?t= starts there');
  const fromSix = await open('replay-t', `/watch/${playbackId}?t=6`);
  await plays(fromSix);
  const startedAt = await fromSix.evaluate(() => document.querySelector('video').currentTime);
  assert.ok(startedAt >= 5, `the replay started at ${startedAt} s, not 6`);
  await fromSix.close();

  step("a shop's viewer token in the fragment signs the viewer in");
  const shopper = await open('shop-viewer', `/watch/${playbackId}#viewer_token=${env.SHOP_VIEWER_TOKEN}`);
  await contains(shopper, '#chat-status', 'Chatting as Linus from the shop');
  assert.equal(new URL(shopper.url()).hash, '', 'the token leaves the address bar');
  await shopper.click('#dislike');
  await textIs(shopper, '#dislikes', '1', 5000);

  step('a link does not silently swap who a signed-in viewer is');
  const other = await api('POST', '/guest-tokens', 'none', { display_name: 'Mallory' });
  let asked = null;
  shopper.once('dialog', (dialog) => { asked = dialog.message(); dialog.dismiss(); });
  await shopper.goto(`${base}/`);
  await shopper.goto(`${base}/watch/${playbackId}#viewer_token=${other.token}`);
  await contains(shopper, '#chat-status', 'Chatting as Linus from the shop');
  assert.ok(asked && asked.includes('Mallory') && asked.includes('Linus'), `asked: ${asked}`);

  const homeAfter = await open('home-after', '/');
  await contains(homeAfter, '#replays', 'Spring collection live');
  await contains(homeAfter, '#replays', '2 peak viewers');
  await contains(homeAfter, '#replays', '1 like');
  await shot(homeAfter, 'home-replays');

  // ---- phone width
  step('phone width: no sideways scrolling');
  const signedIn = {
    'hawker.seller': JSON.stringify({ token: env.SELLER_TOKEN }),
    'hawker.admin': JSON.stringify({ token: env.ADMIN_TOKEN }),
  };
  for (const [name, url, ready] of [['phone-home', '/', '#replays .card'], ['phone-watch', `/watch/${playbackId}`, '#chapters button'],
    ['phone-studio', '/studio', '#detail h1'], ['phone-admin', '/admin', '#streams tr']]) {
    const phone = await open(name, url, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true }, signedIn);
    await phone.waitForSelector(ready, { timeout: 15000 });
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `${name}: the page is ${overflow}px wider than a phone`);
    await shot(phone, name);
  }

  assert.deepEqual(consoleProblems, [], 'console errors');
  assert.deepEqual(expectedConsole, [], 'the refused setting was logged as the refused request');
  console.log(JSON.stringify({ load_ms: loadTimes, like_seen_ms: likeSeenMs, chat_seen_ms: chatSeenMs, pin_seen_ms: pinSeenMs }));
  console.log('browser scenario: all checks passed');
} catch (error) {
  console.error(error);
  console.error('console problems:', consoleProblems);
  for (const context of contexts) {
    for (const page of context.pages()) {
      await page.screenshot({ path: path.join(shots, `failure-${contexts.indexOf(context)}.png`), fullPage: true }).catch(() => {});
    }
  }
  process.exitCode = 1;
} finally {
  if (republisher) republisher.kill('SIGKILL');
  await browser.close();
}
