// Plays $PLAYBACK_URL in headless Chromium with the watch page's player (hls.js in low-latency
// mode, api/web/pages/common.js attachPlayer) and samples wall clock − PDT of the displayed
// frame. Driven by bench/glass.rs.
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const { chromium } = await import(pathToFileURL(path.join(process.env.WEB_DIR, 'node_modules/playwright-core/index.mjs')));
const base = process.env.HAWKER_URL;
const sampleSeconds = Number(process.env.SAMPLE_SECONDS || 45);

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
});
try {
  const page = await browser.newPage();
  // A page of hawker's origin, so hls.js loads from /assets like the watch page's.
  await page.goto(`${base}/healthz-page-for-bench`);
  await page.addScriptTag({ url: '/assets/hls.min.js' });
  const result = await page.evaluate(async ([src, seconds]) => {
    const video = document.createElement('video');
    video.muted = true;
    document.body.append(video);
    // The watch page's own player (hls.js as it configures it, and its catch-up).
    const { attachPlayer } = await import('/assets/common.js');
    const { hls } = attachPlayer(video, src);
    video.play().catch(() => {});
    const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
    // Warm-up: playing, and a few seconds for hls.js to settle at its target latency.
    for (let i = 0; i < 100 && !(video.currentTime > 0); i++) await sleep(100);
    await sleep(10000);
    const lags = [];
    const edge = [];
    let faster = 0;
    let stalls = 0;
    video.addEventListener('waiting', () => { stalls += 1; });
    for (let i = 0; i < seconds * 4; i++) {
      await sleep(250);
      if (hls.playingDate && !video.paused) {
        lags.push((Date.now() - hls.playingDate.getTime()) / 1000);
        edge.push(hls.latency);
        if (video.playbackRate > 1) faster += 1;
      }
    }
    return { lags, edge, faster, stalls, targetLatency: hls.targetLatency, parts: !!hls.latestLevelDetails?.partList };
  }, [process.env.PLAYBACK_URL, sampleSeconds]);
  const pct = (values, p) => {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.round((sorted.length - 1) * p)];
  };
  if (!result.lags.length) throw new Error('the player never played');
  console.log(`glass-to-glass with LL-HLS (hls.js low-latency mode, headless Chromium, ${result.lags.length} samples over ${sampleSeconds} s, LL parts ${result.parts ? 'on' : 'off'}):`);
  console.log(`  ingest arrival -> displayed (wall clock - PDT of the frame on screen): median ${pct(result.lags, 0.5).toFixed(3)} s, p90 ${pct(result.lags, 0.9).toFixed(3)} s, min ${pct(result.lags, 0).toFixed(3)} s, max ${pct(result.lags, 1).toFixed(3)} s`);
  console.log(`  hls.js's own live-edge latency: median ${pct(result.edge, 0.5).toFixed(3)} s (target ${result.targetLatency?.toFixed(3)} s); playing faster to catch up in ${result.faster} samples; stalls: ${result.stalls}`);
} finally {
  await browser.close();
}
