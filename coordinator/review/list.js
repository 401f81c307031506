// The job list: every job with its live state and progress, refreshed every 2 s.
'use strict';

async function refresh() {
  const body = document.getElementById('jobs');
  try {
    const page = await farm.api('GET', '/v1/jobs?limit=100');
    // The list has no progress: a job's own answer has (for the live ones only).
    await Promise.all(page.jobs.map(async (job) => {
      if (job.state === 'succeeded') job.progress = 1;
      else if (job.state === 'queued' || job.state === 'running') job.progress = (await farm.api('GET', '/v1/jobs/' + encodeURIComponent(job.id))).progress;
    }));
    const rows = page.jobs.map((job) => {
      const tr = document.createElement('tr');
      tr.dataset.job = job.id;
      tr.dataset.state = job.state;
      const link = document.createElement('a');
      link.href = '/jobs/' + encodeURIComponent(job.id);
      farm.text(link, job.id);
      const cells = [link, job.source, job.state];
      const bar = document.createElement('progress');
      bar.max = 1;
      bar.value = job.progress || 0;
      const pct = document.createElement('span');
      farm.text(pct, Math.round((job.progress || 0) * 100) + ' %');
      for (const c of cells) {
        const td = document.createElement('td');
        if (c instanceof Node) td.append(c); else farm.text(td, c);
        tr.append(td);
      }
      const td = document.createElement('td');
      td.append(bar, ' ', pct);
      tr.append(td);
      return tr;
    });
    body.replaceChildren(...rows);
    farm.text(document.getElementById('status'), page.jobs.length ? '' : 'No jobs yet.');
  } catch (e) {
    farm.text(document.getElementById('status'), e.message);
  }
}

refresh();
setInterval(refresh, 2000);
