// The watch page with S3 `redirect` delivery, run by tests/e2e/pages.rs: hawker serves the page
// and the playlists, the bucket (presigned URLs, behind the README's CORS rule) the media.
// Checks that the page's Content-Security-Policy and the bucket's CORS let Chromium play from
// the bucket's origin, and that a returning viewer takes the assets (hls.js) from its cache.
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const { HAWKER_URL: base, PLAYBACK_ID: playbackId, BUCKET_ORIGIN: bucket, CHROMIUM } = process.env;

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const problems = [];
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('console', (message) => { if (message.type() === 'error') problems.push(message.text()); });
  page.on('pageerror', (error) => problems.push(`uncaught ${error.message}`));
  page.on('requestfailed', (request) => {
    // Leaving a page aborts its player's requests.
    if (request.failure()?.errorText !== 'net::ERR_ABORTED') problems.push(`failed ${request.url()}: ${request.failure()?.errorText}`);
  });
  const fromBucket = [];
  const assets = {};
  page.on('response', (response) => {
    const url = response.url();
    if (url.startsWith(bucket + '/') && response.status() === 200) fromBucket.push(url.split('?')[0]);
    if (url.startsWith(`${base}/assets/`)) assets[url.slice(base.length)] = response.headers()['content-encoding'] || 'identity';
  });
  // Which requests the browser answers from its cache, by Chromium's own account.
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  const urls = new Map();
  const cached = new Set();
  cdp.on('Network.requestWillBeSent', (event) => urls.set(event.requestId, event.request.url));
  cdp.on('Network.requestServedFromCache', (event) => cached.add(urls.get(event.requestId)));
  cdp.on('Network.responseReceived', (event) => {
    if (event.response.fromDiskCache || event.response.fromPrefetchCache) cached.add(event.response.url);
  });

  const first = await page.goto(`${base}/watch/${playbackId}`);
  const policy = first.headers()['content-security-policy'];
  assert.ok(policy.includes(`connect-src 'self' ${bucket}`), `the page's CSP allows the bucket: ${policy}`);
  const plays = async () => {
    await page.waitForFunction(() => {
      const video = document.querySelector('video');
      if (!video || video.currentTime === 0) return false;
      video.dataset.t0 ??= String(video.currentTime);
      return video.currentTime - Number(video.dataset.t0) >= 2;
    }, null, { timeout: 30000, polling: 200 });
  };
  await plays();
  const segments = fromBucket.filter((url) => url.endsWith('.m4s'));
  assert.ok(segments.length >= 2, `segments came from the bucket: ${JSON.stringify(fromBucket)}`);
  assert.ok(fromBucket.some((url) => url.endsWith('.mp4')), `the init segment came from the bucket: ${JSON.stringify(fromBucket)}`);
  const hlsJs = Object.keys(assets).find((url) => /^\/assets\/hls\.min\.[0-9a-f]{12}\.js$/.test(url));
  assert.ok(hlsJs, `the page loads hls.js by its hashed name: ${JSON.stringify(assets)}`);
  assert.equal(assets[hlsJs], 'br', 'hls.js arrives brotli-compressed');

  // The viewer comes back: the page is fetched again, hls.js and the scripts are not.
  cached.clear();
  await page.goto(`${base}/watch/${playbackId}`);
  await plays();
  const again = [...cached].filter((url) => url?.startsWith(`${base}/assets/`)).map((url) => url.slice(base.length));
  assert.ok(again.includes(hlsJs), `hls.js came from the cache on the second visit: ${JSON.stringify(again)}`);
  console.log(`bucket responses: ${fromBucket.length} (${segments.length} segments); assets ${JSON.stringify(assets)}; from cache on return: ${again.join(', ')}`);
  assert.deepEqual(problems, [], 'no console errors, failed requests or CSP refusals');
} finally {
  await browser.close();
}
