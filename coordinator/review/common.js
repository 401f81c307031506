// The review page's calls to the coordinator: the bearer token (asked for once, kept in
// this tab's sessionStorage only), JSON requests, and SMPTE timecode from review.json.
'use strict';

const farm = {
  token() { return sessionStorage.getItem('farm-token') || ''; },
  headers(extra) {
    const h = Object.assign({}, extra || {});
    if (farm.token()) h.Authorization = 'Bearer ' + farm.token();
    return h;
  },
  // A JSON request; on 401 asks for a token (shown in #login) and throws.
  async api(method, path, body) {
    const init = { method, headers: farm.headers(body ? { 'content-type': 'application/json' } : {}) };
    if (body) init.body = JSON.stringify(body);
    const r = await fetch(path, init);
    if (r.status === 401) { farm.askToken(); throw new Error('a token is needed'); }
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(data.error || ('HTTP ' + r.status));
    return data;
  },
  askToken() {
    const box = document.getElementById('login');
    if (!box || !box.hidden) return;
    box.hidden = false;
    box.querySelector('form').addEventListener('submit', (e) => {
      e.preventDefault();
      sessionStorage.setItem('farm-token', box.querySelector('input').value.trim());
      location.reload();
    });
  },
  text(el, value) { el.textContent = value == null ? '' : String(value); },
};

// SMPTE timecode: start + frames, drop-frame counting at 29.97 and 59.94 (frames 0 and 1,
// or 0 to 3, skipped at each minute but every tenth).
const smpte = {
  nominal(rate) { return Math.round(rate.num / rate.den); },
  parse(tc) {
    const m = /^(\d\d):(\d\d):(\d\d)[:;.](\d\d)$/.exec(tc);
    return m ? m.slice(1).map(Number) : [0, 0, 0, 0];
  },
  toFrames(tc, rate, drop) {
    const fps = smpte.nominal(rate);
    const [h, m, s, f] = smpte.parse(tc);
    const minutes = h * 60 + m;
    const dropped = drop ? (fps / 15) * (minutes - Math.floor(minutes / 10)) : 0;
    return (minutes * 60 + s) * fps + f - dropped;
  },
  fromFrames(n, rate, drop) {
    const fps = smpte.nominal(rate);
    if (drop) {
      const d = fps / 15, perTen = fps * 600 - 9 * d, perMinute = fps * 60 - d;
      const tens = Math.floor(n / perTen), rest = n % perTen;
      n += 9 * d * tens + (rest > d ? d * Math.floor((rest - d) / perMinute) : 0);
    }
    const pad = (v) => String(v).padStart(2, '0');
    const f = n % fps, s = Math.floor(n / fps) % 60, m = Math.floor(n / (fps * 60)) % 60, h = Math.floor(n / (fps * 3600)) % 24;
    return `${pad(h)}:${pad(m)}:${pad(s)}${drop ? ';' : ':'}${pad(f)}`;
  },
  // The timecode of frame `index` of a review copy described by `review`.
  of(review, index) {
    const start = smpte.toFrames(review.start_timecode, review.frame_rate, review.drop_frame);
    return smpte.fromFrames(start + index, review.frame_rate, review.drop_frame);
  },
};
