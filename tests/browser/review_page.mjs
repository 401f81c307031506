// Drives the coordinator's review page in Debian's Chromium as a reviewer would, and
// reports what it saw (one JSON object): the job list with a running job (left open, it
// follows the job to its end), the job's player opened from the list while the job runs,
// playing the encrypted ladder from 0 and after a seek, the timecode and frame
// number the page shows for the frame on screen (with a screenshot of that frame, for OCR
// of the burn-in), a thumbnail while hovering over the timeline, the selectors, a share
// made with the form, its player without Media Source Extensions (the browser's own HLS,
// as on an iPhone), and the share's player stopping after the share is revoked.
//   node review_page.mjs BASE_URL JOB_ID SCREENSHOT_DIR
import path from 'node:path';
import { chromium } from 'playwright-core';

// `native`: also play the share in the browser's own HLS player (`hls.js-only`: not).
const [base, job, shots, players = 'native'] = process.argv.slice(2);
const report = { errors: [], frames: [], console: [] };
let current = null; // the page being driven, for what it says when something fails
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--autoplay-policy=no-user-gesture-required'],
});
const shot = (name) => path.join(shots, name);

// Collects hls.js errors of a page (once its player exists); what is left to collect is
// collected when something fails, too.
const flushers = [];
async function watchErrors(tab, into) {
  await tab.waitForFunction(() => window.hls, null, { timeout: 60000 });
  await tab.evaluate(() => { window.seen = []; hls.on(Hls.Events.ERROR, (_, d) => seen.push(d.details + (d.fatal ? ' (fatal)' : '') + (d.frag ? ` [${d.frag.type} ${d.frag.level}/${d.frag.sn}]` : '') + (d.error ? ' ' + d.error.message : ''))); });
  const flush = async () => into.push(...(await tab.evaluate(() => seen.splice(0))));
  flushers.push(flush);
  return flush;
}

// Steps one frame and waits until that frame is on screen; returns what the page says.
async function stepAndRead(tab, button) {
  return actAndRead(tab, () => tab.click(button));
}

// Does `act` (a step or a seek to the middle of a frame) and waits until the frame for the
// new time is on screen; returns what the page says.
async function actAndRead(tab, act) {
  // Every frame the compositor is handed, as requestVideoFrameCallback reports it.
  await tab.evaluate(() => {
    if (window.presented !== undefined) return;
    const video = document.getElementById('video');
    window.presented = null;
    const tick = (_, meta) => { window.presented = meta.mediaTime; video.requestVideoFrameCallback(tick); };
    video.requestVideoFrameCallback(tick);
  });
  await act();
  // The page steps to the middle of a frame, so the frame for the new time is the one
  // presented at most one frame before it (the next frame would be after it). `seeked`
  // alone is not enough: the native player may fire it before the frame is presented.
  const fps = 25; // the source review_page.rs makes
  await tab.waitForFunction((period) => {
    const video = document.getElementById('video');
    const lead = video.currentTime - window.presented;
    return !video.seeking && window.presented !== null && lead >= 0 && lead < period;
  }, 1 / fps, { timeout: 60000 }).catch(async (e) => {
    const seen = await tab.evaluate(() => ({ presented: window.presented, time: document.getElementById('video').currentTime }));
    throw new Error(`the stepped-to frame was never presented (${JSON.stringify(seen)}): ${e.message}`);
  });
  // Two animation frames: the compositor has drawn the presented frame.
  await tab.evaluate(() => new Promise((ok) => requestAnimationFrame(() => requestAnimationFrame(ok))));
  return tab.evaluate(() => ({
    timecode: document.getElementById('timecode').textContent,
    frame: Number(/frame (\d+)/.exec(document.getElementById('frame').textContent)[1]),
    time: document.getElementById('video').currentTime,
    presented: window.presented,
  }));
}

async function frameShot(tab, name) {
  await tab.locator('#video').screenshot({ path: shot(name) });
  return shot(name);
}

function newPage(label) {
  return browser.newPage({ viewport: { width: 1280, height: 900 } }).then((p) => {
    p.on('pageerror', (e) => report.errors.push(label + 'page: ' + e.message));
    p.on('console', (m) => report.console.push(label + m.text()));
    return p;
  });
}

try {
  // The list, left open: it follows the job without a reload (checked at the end).
  const lister = await newPage('list: ');
  current = lister;
  await lister.goto(`${base}/`);
  const row = lister.locator(`tr[data-job="${job}"]`);
  await row.waitFor({ timeout: 30000 });
  report.listed_state = await row.getAttribute('data-state');
  report.listed_progress = await row.locator('progress').getAttribute('value');
  await lister.screenshot({ path: shot('list.png'), fullPage: true });

  // The job's player from its link in the list, while the job runs.
  const tab = await newPage('');
  current = tab;
  await tab.goto(new URL(await row.locator('a').getAttribute('href'), base).href);
  report.state_when_opened = await row.getAttribute('data-state');
  const flush = await watchErrors(tab, report.errors);
  await tab.waitForFunction(() => document.querySelectorAll('#quality option').length > 1, null, { timeout: 120000 });
  await tab.click('#play');
  await tab.waitForFunction(() => document.getElementById('video').currentTime > 1.5, null, { timeout: 60000 });
  report.played_from_start = await tab.evaluate(() => document.getElementById('video').currentTime);
  // Then the top rung from the quality selector, so that the burn-in is read at full size.
  await tab.evaluate(() => { const q = document.getElementById('quality'); q.value = String(hls.levels.length - 1); q.dispatchEvent(new Event('change')); });
  await tab.waitForFunction(() => hls.currentLevel === hls.levels.length - 1, null, { timeout: 30000 });
  // The switch empties the buffer (hls.js flushes it for a chosen level): playback goes on
  // from the new rung before the reviewer pauses, as on a slow link a person waits too.
  await tab.waitForFunction(() => { const v = document.getElementById('video'); return v.readyState >= 3 && !v.paused; }, null, { timeout: 60000 });
  await tab.click('#play');
  const first = await stepAndRead(tab, '#step-forward');
  first.screenshot = await frameShot(tab, 'frame-start.png');
  const back = await stepAndRead(tab, '#step-back');
  report.frames.push(first, back);

  // Hover over the middle of the timeline: a thumbnail; click there: a seek.
  const bar = await tab.locator('#timeline').boundingBox();
  // While the job runs, the thumbnails of its middle come when that chunk is done: keep
  // the pointer moving there, as a reviewer would, until one shows (at most 60 s).
  const shown = () => tab.evaluate(() => { const t = document.getElementById('thumb'); return !t.hidden && t.style.backgroundImage.startsWith('url('); });
  for (let i = 0; i < 120 && !(await shown()); i++) {
    await tab.mouse.move(bar.x + bar.width / 2 + (i % 2), bar.y + bar.height / 2);
    await tab.waitForTimeout(500);
  }
  if (!(await shown())) throw new Error('no thumbnail over the middle of the timeline');
  report.thumbnail = await tab.evaluate(() => {
    const t = document.getElementById('thumb');
    return { at: Number(t.dataset.at), width: t.offsetWidth, height: t.offsetHeight, position: t.style.backgroundPosition };
  });
  await tab.screenshot({ path: shot('thumbnail.png'), clip: { x: bar.x, y: bar.y - 200, width: bar.width, height: 220 } });
  await tab.mouse.click(bar.x + bar.width / 2, bar.y + bar.height / 2);
  await tab.click('#play');
  await tab.waitForFunction(() => document.getElementById('video').currentTime > 16.5, null, { timeout: 60000 });
  report.played_after_seek = await tab.evaluate(() => document.getElementById('video').currentTime);
  await tab.click('#play');
  const later = await stepAndRead(tab, '#step-forward');
  later.screenshot = await frameShot(tab, 'frame-after-seek.png');
  report.frames.push(later);
  report.audio = await tab.locator('#audio option').allTextContents();
  report.quality = await tab.locator('#quality option').allTextContents();

  await tab.fill('#share-form [name=viewer]', 'director@studio.example');
  await tab.fill('#share-form [name=hours]', '1');
  await tab.click('#share-form button');
  await tab.waitForFunction(() => document.getElementById('share-url').href.includes('/s/'), null, { timeout: 15000 });
  report.share_url = await tab.evaluate(() => document.getElementById('share-url').href);
  await tab.screenshot({ path: shot('player.png'), fullPage: true });
  await flush();
  current = lister;
  await lister.waitForSelector(`tr[data-job="${job}"][data-state="succeeded"]`, { timeout: 180000 });
  report.listed_final = (await row.locator('td').last().textContent()).trim();

  // The share's player where there are no Media Source Extensions (Safari on iPhone):
  // the browser's own HLS player (Chromium has one too), hls.js not used.
  if (players === 'native') {
  const native = await newPage('native: ');
  current = native;
  await native.addInitScript(() => { delete window.MediaSource; delete window.ManagedMediaSource; delete window.WebKitMediaSource; });
  // The media element's events, with the time and state each came at, for a failure's report.
  await native.addInitScript(() => {
    window.mediaEvents = [];
    for (const type of ['loadstart', 'loadedmetadata', 'canplay', 'play', 'playing', 'pause', 'waiting', 'seeking', 'seeked', 'stalled', 'emptied', 'abort', 'error', 'ended']) {
      document.addEventListener(type, (e) => { const v = e.target; mediaEvents.push(`${type} t=${v.currentTime.toFixed(2)} ready=${v.readyState} paused=${v.paused}${v.error ? ' error=' + v.error.code + ' ' + v.error.message : ''}`); }, true);
    }
  });
  // What the native player fetched, in order (which rung, which segment), for a failure's report.
  report.native_fetched = [];
  native.on('request', (r) => report.native_fetched.push(new URL(r.url()).pathname.split('/').slice(-2).join('/')));
  await native.goto(report.share_url);
  await native.waitForFunction(() => document.getElementById('video').src.includes('/media/index.m3u8'), null, { timeout: 60000 });
  // Play once the first picture is there, as a person does: a click made before it was
  // lost once under load (the player stayed paused at 0 with 12 s buffered, no error).
  await native.waitForFunction(() => document.getElementById('video').readyState >= 2, null, { timeout: 60000 });
  await native.click('#play');
  await native.waitForFunction(() => document.getElementById('video').currentTime > 3, null, { timeout: 60000 });
  await native.click('#play');
  // A step back from the first frame of a segment (4 s), not a step from wherever the pause
  // lands: after a paused seek, Chromium's own HLS player goes on showing a P frame for the
  // B frame right after it (77 for 78 in this clip), so a step onto such a B frame is never
  // presented (the page goes on naming the frame on screen). The frame before a segment's
  // keyframe is never such a B frame: the GOPs are closed, and x264 ends each with a P frame.
  const keyframe = await actAndRead(native, () => native.evaluate(() => { document.getElementById('video').currentTime = 4 + 0.5 / 25; }));
  if (keyframe.frame !== 100) throw new Error(`a seek to 4.02 s showed frame ${keyframe.frame}`);
  const nativeFrame = await stepAndRead(native, '#step-back');
  nativeFrame.screenshot = await frameShot(native, 'frame-native.png');
  report.native = { hls_js: await native.evaluate(() => typeof window.hls), frame: nativeFrame, message: await native.locator('#message').textContent() };
  await native.close();
  }

  // The share's player: plays with nothing but the link, stops once revoked.
  const viewer = await newPage('share: ');
  current = viewer;
  await viewer.goto(report.share_url);
  const shareErrors = [];
  const flushShare = await watchErrors(viewer, shareErrors);
  await viewer.waitForFunction(() => document.querySelectorAll('#quality option').length > 1, null, { timeout: 60000 });
  await viewer.evaluate(() => {
    const v = document.getElementById('video');
    window.furthest = 0;
    v.addEventListener('timeupdate', () => { window.furthest = Math.max(window.furthest, v.currentTime); });
  });
  await viewer.click('#play');
  await viewer.waitForFunction(() => document.getElementById('video').currentTime > 2, null, { timeout: 60000 });
  const shares = await (await fetch(`${base}/v1/jobs/${job}/shares`)).json();
  const revokedAt = await viewer.evaluate(() => document.getElementById('video').currentTime);
  const revoked = await fetch(`${base}/v1/shares/${shares[0].id}`, { method: 'DELETE' });
  report.revoke_status = revoked.status;
  await viewer.waitForFunction(() => /revoked/.test(document.getElementById('message').textContent), null, { timeout: 60000 });
  // Playing on what it had: wait until the furthest position stops moving.
  let last = -1;
  for (let i = 0; i < 120; i++) {
    const now = await viewer.evaluate(() => window.furthest);
    if (now === last) break;
    last = now;
    await viewer.waitForTimeout(1500);
  }
  report.share = { revoked_at: revokedAt, stopped_at: last, message: await viewer.locator('#message').textContent() };
  await viewer.screenshot({ path: shot('share-revoked.png'), fullPage: true });
  await flushShare();
  report.share.errors = shareErrors;
} catch (e) {
  report.failure = String(e.stack || e);
  for (const flush of flushers) await flush().catch(() => {});
  if (current) {
    report.page = await current.evaluate(() => ({
      time: document.getElementById('video').currentTime,
      ready: document.getElementById('video').readyState,
      paused: document.getElementById('video').paused,
      buffered: Array.from({ length: document.getElementById('video').buffered.length }, (_, i) => [document.getElementById('video').buffered.start(i), document.getElementById('video').buffered.end(i)]),
      url: location.href,
      message: document.getElementById('message')?.textContent,
      clip: document.getElementById('clip')?.textContent,
      timecode: document.getElementById('timecode')?.textContent,
      player: typeof window.hls,
      events: window.mediaEvents,
    })).catch((e) => String(e));
    // What was on screen when it failed.
    await current.locator('#video').screenshot({ path: shot('failure.png') }).catch(() => {});
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
