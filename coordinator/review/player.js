// The player of a job (/jobs/{id}, a principal's bearer token) or of a share link
// (/s/{secret}/, the secret in the URL is the credential): hls.js where Media Source
// Extensions exist, native HLS otherwise; SMPTE timecode of the frame on screen from
// review.json; frame stepping; thumbnails over the timeline from the WebVTT sprites;
// audio-rendition and quality selectors; for producers, the job's share links.
'use strict';

const video = document.getElementById('video');
const shareMode = location.pathname.startsWith('/s/');
const jobId = shareMode ? null : decodeURIComponent(location.pathname.split('/')[2] || '');
const base = new URL(shareMode ? 'media/' : `/v1/jobs/${encodeURIComponent(jobId)}/media/`, location.href);
// `offset`: the media time of the first frame. Players put the stream's zero where they
// like (hls.js at the first decode time, before B-frame reordering): frame n is shown
// at offset + n / rate, so the offset is read from the first video fragment.
const state = { review: null, hls: null, cues: [], sprites: new Map(), frame: 0, offset: 0, asked: null, askedFrom: null };
const $ = (id) => document.getElementById(id);

function say(text) { farm.text($('message'), text); $('message').hidden = !text; }
function sameOrigin(url) { return new URL(url, location.href).origin === location.origin; }
// Requests to the coordinator carry the token in job mode; signed storage URLs never do.
function authorise(xhr, url) { if (!shareMode && farm.token() && sameOrigin(url)) xhr.setRequestHeader('Authorization', 'Bearer ' + farm.token()); }
function get(path) { return fetch(new URL(path, base), { headers: shareMode ? {} : farm.headers() }); }

function fps() { const r = state.review.frame_rate; return r.num / r.den; }
function frameAt(seconds) { return Math.max(0, Math.floor((seconds - state.offset) * fps() + 1e-3)); }

function showFrame(mediaTime) {
  if (!state.review) return;
  state.frame = Math.min(frameAt(mediaTime), state.review.frame_count - 1);
  farm.text($('timecode'), smpte.of(state.review, state.frame));
  farm.text($('frame'), `frame ${state.frame} of ${state.review.frame_count}`);
  $('played').style.width = `${(100 * video.currentTime) / state.review.duration}%`;
}

// The frame presented, as the compositor reports it where it can (exact), else currentTime.
function followFrames() {
  if ('requestVideoFrameCallback' in video) {
    const tick = (_, meta) => { showFrame(meta.mediaTime); video.requestVideoFrameCallback(tick); };
    video.requestVideoFrameCallback(tick);
  }
  video.addEventListener('timeupdate', () => { if (!('requestVideoFrameCallback' in video) || video.paused) showFrame(video.currentTime); });
  video.addEventListener('seeked', () => showFrame(video.currentTime));
}

// One frame on or back: from the frame asked for last when the seek to it has shown nothing
// new (Chromium's own HLS player, after a paused seek, goes on showing a P frame for the B
// frame right after it; from the frame on screen, a second step would ask for that B frame
// again), else from the frame on screen.
function step(delta) {
  video.pause();
  const from = state.asked !== null && state.askedFrom === state.frame ? state.asked : state.frame;
  const target = Math.min(Math.max(from + delta, 0), state.review.frame_count - 1);
  state.asked = target;
  state.askedFrom = state.frame;
  video.currentTime = state.offset + (target + 0.5) / fps();
}

// The thumbnail cues; while the job runs the track grows as chunks finish: read it again
// every 4 s until it covers the whole clip.
async function loadThumbnails() {
  const t = state.review.thumbnails;
  if (!t) return;
  const r = await get(t.vtt);
  const vttUrl = new URL(t.vtt, base);
  const seconds = (s) => s.split(':').reduce((acc, v) => acc * 60 + Number(v), 0);
  const cues = [];
  for (const block of r.ok ? (await r.text()).split(/\n\n+/) : []) {
    const m = /([\d:.]+) --> ([\d:.]+)\n(\S+)#xywh=(\d+),(\d+),(\d+),(\d+)/.exec(block);
    if (m) cues.push({ start: seconds(m[1]), end: seconds(m[2]), url: new URL(m[3], vttUrl).href, xywh: m.slice(4).map(Number) });
  }
  state.cues = cues;
  const covered = cues.length ? cues[cues.length - 1].end : 0;
  if (covered < state.review.duration - t.interval) setTimeout(loadThumbnails, 4000);
}

// A sprite as a URL a style can use: the link itself for a share (the coordinator
// redirects to a signed URL), a blob fetched with the token for a principal.
async function spriteUrl(url) {
  if (shareMode) return url;
  if (!state.sprites.has(url)) state.sprites.set(url, get(url).then((r) => r.blob()).then((b) => URL.createObjectURL(b)));
  return state.sprites.get(url);
}

function hoverThumbnails() {
  const bar = $('timeline'), thumb = $('thumb');
  bar.addEventListener('mousemove', async (e) => {
    const box = bar.getBoundingClientRect();
    const at = ((e.clientX - box.left) / box.width) * state.review.duration;
    const cue = state.cues.find((c) => at >= c.start && at < c.end);
    if (!cue) { thumb.hidden = true; return; }
    const [x, y, w, h] = cue.xywh;
    Object.assign(thumb.style, { width: w + 'px', height: h + 'px', left: `${e.clientX - box.left - w / 2}px`, backgroundPosition: `-${x}px -${y}px` });
    thumb.style.backgroundImage = `url("${await spriteUrl(cue.url)}")`;
    thumb.dataset.at = at.toFixed(2);
    thumb.hidden = false;
  });
  bar.addEventListener('mouseleave', () => { thumb.hidden = true; });
  bar.addEventListener('click', (e) => {
    const box = bar.getBoundingClientRect();
    video.currentTime = ((e.clientX - box.left) / box.width) * state.review.duration;
  });
}

function selectors(hls) {
  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    const q = $('quality');
    q.replaceChildren(new Option('Auto', '-1'), ...hls.levels.map((l, i) => new Option(`${l.height}p (${Math.round(l.bitrate / 1000)} kb/s)`, String(i))));
    q.onchange = () => { hls.currentLevel = Number(q.value); };
  });
  hls.on(Hls.Events.AUDIO_TRACKS_UPDATED, () => {
    const a = $('audio');
    a.replaceChildren(...hls.audioTracks.map((t, i) => new Option(t.name || `Track ${i}`, String(i))));
    a.selectedIndex = Math.max(hls.audioTrack, 0);
    a.onchange = () => { hls.audioTrack = Number(a.value); };
  });
  hls.on(Hls.Events.AUDIO_TRACK_SWITCHED, (_, d) => { $('audio').value = String(d.id); });
}

function play(master) {
  if (window.Hls && Hls.isSupported()) {
    // A share keeps little ahead, so that a revoked link stops soon: keys are fetched as
    // the buffer reaches their period.
    const hls = new Hls({ xhrSetup: authorise, startPosition: 0, maxBufferLength: shareMode ? 8 : 30, maxMaxBufferLength: shareMode ? 12 : 60 });
    state.hls = hls;
    window.hls = hls;
    selectors(hls);
    hls.on(Hls.Events.FRAG_BUFFERED, (_, d) => {
      const v = d.frag.elementaryStreams && d.frag.elementaryStreams.video;
      if (d.frag.type === 'main' && d.frag.sn === 0 && v) state.offset = v.startPTS;
    });
    let recoveries = 0;
    hls.on(Hls.Events.ERROR, (_, d) => {
      const status = (d.response && d.response.code) || (d.networkDetails && d.networkDetails.status);
      // A media error (the browser's decoder or buffer refused an append): hls.js's own
      // recovery, which rebuilds the media source, twice at most.
      if (d.fatal && d.type === Hls.ErrorTypes.MEDIA_ERROR && recoveries < 2) {
        recoveries += 1;
        hls.recoverMediaError();
        return;
      }
      // A key or a playlist refused: a share revoked or expired, or a role that may not play.
      if (status === 401 || status === 403) say(shareMode ? 'This share link was revoked or has expired.' : 'Refused: your role may not play this job.');
      else if (d.fatal) say(`Playback stopped: ${d.details}`);
      // Stop loading but keep what is buffered and the picture on screen.
      if (d.fatal) hls.stopLoad();
    });
    hls.loadSource(master.href);
    hls.attachMedia(video);
  } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
    if (!shareMode) { say('This browser plays HLS natively and cannot send a token: open a share link instead.'); return; }
    video.src = master.href;
  } else {
    say('This browser cannot play HLS.');
  }
}

async function waitForMaster() {
  for (;;) {
    const r = await get('review.json');
    if (r.status === 401 && !shareMode) { farm.askToken(); throw new Error('a token is needed'); }
    if (r.status === 403) throw new Error((await r.json().catch(() => ({}))).error || 'refused');
    if (r.ok && (await get('index.m3u8')).ok) return r.json();
    say('Waiting for the first segments…');
    await new Promise((ok) => setTimeout(ok, 2000));
  }
}

async function shares() {
  if (shareMode) return;
  const panel = $('shares');
  const list = async () => {
    try {
      const items = await farm.api('GET', `/v1/jobs/${encodeURIComponent(jobId)}/shares`);
      panel.hidden = false;
      $('share-list').replaceChildren(...items.map((s) => {
        const li = document.createElement('li');
        farm.text(li, `${s.viewer}: ${s.status}, until ${s.expires} `);
        if (s.status === 'active') {
          const b = document.createElement('button');
          farm.text(b, 'Revoke');
          b.onclick = async () => { await farm.api('DELETE', `/v1/shares/${encodeURIComponent(s.id)}`); list(); };
          li.append(b);
        }
        return li;
      }));
    } catch (e) { panel.hidden = true; } // not a producer: no share form
  };
  $('share-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = e.target;
    try {
      const body = { viewer: f.viewer.value, expires_in: Math.round(Number(f.hours.value) * 3600) };
      if (f.note.value) body.note = f.note.value;
      const made = await farm.api('POST', `/v1/jobs/${encodeURIComponent(jobId)}/shares`, body);
      const a = $('share-url');
      a.href = made.url;
      farm.text(a, made.url);
      list();
    } catch (err) { farm.text($('share-url'), err.message); }
  });
  list();
}

async function main() {
  if (shareMode) $('home').hidden = true;
  $('step-back').onclick = () => step(-1);
  $('step-forward').onclick = () => step(1);
  // A refused play (no media the browser can decode, autoplay rules) is said, not lost; a
  // play interrupted by a pause or a new load is what the reviewer or the player asked for.
  $('play').onclick = () => {
    if (!video.paused) return video.pause();
    video.play().catch((e) => { if (e.name !== 'AbortError') say(`Playback did not start: ${e.message}`); });
  };
  document.addEventListener('keydown', (e) => {
    if (e.target.tagName === 'INPUT') return;
    if (e.key === 'ArrowLeft') step(-1);
    if (e.key === 'ArrowRight') step(1);
    if (e.key === ' ') { e.preventDefault(); $('play').click(); }
  });
  shares();
  try {
    state.review = await waitForMaster();
  } catch (e) { say(e.message); return; }
  say('');
  farm.text($('clip'), state.review.clip_name);
  followFrames();
  showFrame(0);
  await loadThumbnails();
  hoverThumbnails();
  play(new URL('index.m3u8', base));
}

main();
