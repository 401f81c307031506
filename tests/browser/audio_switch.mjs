// Plays a ladder in Debian's Chromium with hls.js, switches audio renditions (a number:
// the track) and levels (`L` and a number: the level, whose audio group may differ; a
// smooth switch, at a fragment boundary) while it plays, and reports what it heard: the
// dominant frequency of the element's sound (Web Audio analyser) before and after each
// switch, the audio group and track then playing, whether playback stalled, hls.js errors.
//   node audio_switch.mjs OUTPUT_DIR [Sn] STEP [STEP...]   (prints one JSON object)
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const [root, ...tracks] = process.argv.slice(2);
// `S` and a number first: the level to start at (else hls.js picks).
const startLevel = tracks[0]?.startsWith('S') ? Number(tracks.shift().slice(1)) : -1;
const types = { '.m3u8': 'application/vnd.apple.mpegurl', '.ts': 'video/mp2t', '.js': 'text/javascript', '.html': 'text/html' };
const page = `<!doctype html><video id="v" autoplay playsinline></video>
<script src="/hls.js"></script>
<script>
  const video = document.getElementById('v');
  const hls = new Hls({ startLevel: ${startLevel} });
  window.report = { errors: [], waiting: 0, switched: [] };
  hls.on(Hls.Events.ERROR, (_, d) => report.errors.push(d.details + (d.fatal ? ' (fatal)' : '')));
  hls.on(Hls.Events.AUDIO_TRACK_SWITCHED, (_, d) => report.switched.push(d.id));
  hls.on(Hls.Events.LEVEL_SWITCHED, (_, d) => { report.level = d.level; });
  video.addEventListener('waiting', () => report.waiting++);
  hls.loadSource('/out/index.m3u8');
  hls.attachMedia(video);
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 8192;
  ctx.createMediaElementSource(video).connect(analyser);
  analyser.connect(ctx.destination);
  window.hls = hls;
  window.dominant = () => {
    const bins = new Float32Array(analyser.frequencyBinCount);
    analyser.getFloatFrequencyData(bins);
    let best = 0;
    for (let i = 1; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
    return best * ctx.sampleRate / analyser.fftSize;
  };
</script>`;

const server = http.createServer((req, res) => {
  const url = decodeURIComponent(req.url.split('?')[0]);
  let file = null;
  if (url === '/') { res.writeHead(200, { 'content-type': 'text/html' }); return res.end(page); }
  if (url === '/hls.js') file = path.join(here, 'node_modules/hls.js/dist/hls.min.js');
  if (url.startsWith('/out/') && !url.includes('..')) file = path.join(root, url.slice(5));
  if (!file || !fs.existsSync(file)) { res.writeHead(404); return res.end(); }
  res.writeHead(200, { 'content-type': types[path.extname(file)] || 'application/octet-stream' });
  fs.createReadStream(file).pipe(res);
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--autoplay-policy=no-user-gesture-required'],
});
const result = { tracks: [], errors: [] };
try {
  const tab = await browser.newPage();
  await tab.goto(`http://127.0.0.1:${server.address().port}/`);
  const time = () => tab.evaluate(() => document.getElementById('v').currentTime);
  await tab.waitForFunction(() => document.getElementById('v').currentTime > 1.0, null, { timeout: 30000 });
  result.tracks.push({ track: null, hz: await tab.evaluate(() => dominant()), at: await time() });
  for (const step of tracks) {
    const level = step.startsWith('L') ? Number(step.slice(1)) : null;
    const t = level === null ? Number(step) : null;
    const before = await time();
    const started = Date.now();
    const waitingBefore = await tab.evaluate(() => report.waiting);
    if (level === null) {
      await tab.evaluate((id) => { report.switched = []; hls.audioTrack = id; }, t);
      await tab.waitForFunction((id) => report.switched.includes(id), t, { timeout: 15000 });
    } else {
      // A smooth switch, as the player's own bandwidth estimate makes it: the playing
      // fragment plays out and the rung changes at a fragment boundary. `currentLevel`
      // would flush all buffered video, and a stall then measures how fast hls.js and a
      // loaded machine refill it, not the ladder.
      await tab.evaluate((n) => { hls.nextLevel = n; }, level);
      await tab.waitForFunction((n) => report.level === n, level, { timeout: 15000 });
    }
    // Play on for 1.5 s of media after the switch, then listen.
    await tab.waitForFunction((b) => document.getElementById('v').currentTime > b + 1.5, before, { timeout: 15000 });
    const after = await time();
    result.tracks.push({
      track: t,
      level,
      playing: await tab.evaluate(() => ({ track: hls.audioTrack, group: hls.audioTracks[hls.audioTrack].groupId, name: hls.audioTracks[hls.audioTrack].name })),
      hz: await tab.evaluate(() => dominant()),
      at: after,
      advanced: after - before,
      wall: (Date.now() - started) / 1000,
      waiting: (await tab.evaluate(() => report.waiting)) - waitingBefore,
    });
  }
  result.names = await tab.evaluate(() => hls.audioTracks.map((a) => a.name));
  result.errors = await tab.evaluate(() => report.errors);
} catch (e) {
  result.failure = String(e);
} finally {
  await browser.close();
  server.close();
}
console.log(JSON.stringify(result));
