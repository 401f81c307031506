//! Reading an original from object storage: `Read + Seek` by ranged GETs.
//!
//! Two ways of fetching, chosen by what the demuxer does:
//! - by default the GET size follows the access pattern, like a kernel's readahead: it
//!   doubles (up to [`READ_MAX`]) while reads run on from the end of the last fetch and use
//!   most of it, and shrinks (to about what was used, at least [`READ_MIN`]) while most of
//!   each fetch goes unread. A video chunk reads the original in order in 4 MiB GETs.
//! - with a read plan (the byte ranges the demuxer is going to read, from the container's
//!   index, in the order it reads them: see [`ReaderHandle::plan`]), the ranges are fetched
//!   ahead, [`PLAN_CONCURRENCY`] at a time, ranges closer than [`PLAN_GAP`] joined. An
//!   audio task picks a few kilobytes of PCM out from between video frames: between large
//!   frames it fetches about those bytes only, and the round trips overlap instead of
//!   adding up.

use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::error::to_io;

/// Most bytes fetched per ranged GET (a sequential read): large enough to keep requests
/// few, small enough that memory stays flat whatever the original's size.
const READ_MAX: u64 = 4 * 1024 * 1024;
/// Fewest bytes fetched per ranged GET when reads are sparse.
const READ_MIN: u64 = 64 * 1024;
/// Planned ranges closer than this are fetched as one: reading through such a gap costs
/// less than another request. Measured here, a ranged GET costs SeaweedFS about 8 ms of CPU
/// and reading 1 MB through one about 2.5 ms; on AWS S3 a request waits 20 to 30 ms for its
/// first byte where a connection moves 1 MB in 10 to 20 ms. So the PCM between 1080p
/// ProRes frames (1 MB apart) is read with the frames, in 4 MiB GETs, while the PCM
/// between 4K frames (4 to 5 MB apart) is fetched alone.
const PLAN_GAP: u64 = 1536 * 1024;
/// Planned GETs in flight at once, and the bytes they may hold.
pub const PLAN_CONCURRENCY: usize = 16;
const PLAN_IN_FLIGHT_BYTES: u64 = 32 * 1024 * 1024;

/// What a reader fetched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub requests: u64,
    pub bytes: u64,
}

/// The owner's side of a reader that FFmpeg's I/O context holds: counters, and a way to
/// hand in a read plan.
#[derive(Debug, Default)]
pub struct ReaderHandle {
    requests: AtomicU64,
    bytes: AtomicU64,
    planned: Mutex<Option<Vec<Range<u64>>>>,
}

impl ReaderHandle {
    pub fn stats(&self) -> ReadStats {
        ReadStats { requests: self.requests.load(Ordering::Relaxed), bytes: self.bytes.load(Ordering::Relaxed) }
    }

    /// The byte ranges the reader is going to be asked for, in the order they will be read.
    /// Taken up at the next read that misses the reader's buffer.
    pub fn plan(&self, ranges: Vec<Range<u64>>) {
        if let Ok(mut slot) = self.planned.lock() {
            *slot = Some(ranges);
        }
    }

    fn take_plan(&self) -> Option<Vec<Range<u64>>> {
        self.planned.lock().ok()?.take()
    }

    fn requested(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        crate::metrics::SOURCE_REQUESTS.inc();
    }

    fn received(&self, bytes: usize) {
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        crate::metrics::STORAGE_BYTES.with_label_values(&["read"]).inc_by(bytes as u64);
    }
}

/// Ranges in reading order, neighbours closer than [`PLAN_GAP`] joined (up to [`READ_MAX`]),
/// clamped to the object.
fn coalesce(ranges: Vec<Range<u64>>, size: u64) -> VecDeque<Range<u64>> {
    let mut spans: VecDeque<Range<u64>> = VecDeque::new();
    for r in ranges {
        let r = r.start.min(size)..r.end.min(size);
        if r.is_empty() {
            continue;
        }
        if let Some(last) = spans.back_mut() {
            let joined = last.start.min(r.start)..last.end.max(r.end);
            let near = r.start <= last.end + PLAN_GAP && r.end + PLAN_GAP >= last.start;
            if near && joined.end - joined.start <= READ_MAX {
                *last = joined;
                continue;
            }
        }
        spans.push_back(r);
    }
    spans
}

/// Planned ranges not yet requested, and requests in flight, in reading order.
#[derive(Default)]
struct Plan {
    ahead: VecDeque<Range<u64>>,
    in_flight: VecDeque<(Range<u64>, JoinHandle<object_store::Result<Bytes>>)>,
    in_flight_bytes: u64,
}

impl Plan {
    fn abort(&mut self) {
        for (_, fetch) in self.in_flight.drain(..) {
            fetch.abort();
        }
        self.in_flight_bytes = 0;
        self.ahead.clear();
    }
}

pub struct ObjectReader {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    size: u64,
    pos: u64,
    buf: Bytes,
    buf_start: u64,
    /// Bytes handed out from `buf` so far.
    served: u64,
    /// `buf` came from the plan, not from a fetch sized by the access pattern.
    buf_planned: bool,
    /// Size of the next GET sized by the access pattern.
    window: u64,
    plan: Plan,
    handle: Arc<ReaderHandle>,
    rt: Handle,
}

impl ObjectReader {
    /// Opens an object; fails with `NotFound` when it does not exist.
    pub fn open(store: Arc<dyn ObjectStore>, key: &str, rt: Handle) -> std::io::Result<Self> {
        let path = ObjectPath::from(key);
        let meta = rt.block_on(store.head(&path)).map_err(to_io)?;
        Ok(Self {
            store,
            path,
            size: meta.size,
            pos: 0,
            buf: Bytes::new(),
            buf_start: 0,
            served: 0,
            buf_planned: false,
            window: READ_MAX,
            plan: Plan::default(),
            handle: Arc::default(),
            rt,
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn stats(&self) -> ReadStats {
        self.handle.stats()
    }

    /// The owner's handle, to keep after the reader has been handed to FFmpeg.
    pub fn handle(&self) -> Arc<ReaderHandle> {
        self.handle.clone()
    }

    /// Size of the next GET, from how the last one was used.
    fn next_window(&self) -> u64 {
        let len = self.buf.len() as u64;
        if len == 0 || self.buf_planned {
            return self.window;
        }
        let end = self.buf_start + len;
        let runs_on = self.pos >= end && self.pos - end <= READ_MIN;
        if runs_on && self.served * 4 >= len * 3 {
            (self.window * 2).min(READ_MAX)
        } else if self.served * 2 < len {
            // Down to about what was used, at once: sparse reads stay sparse.
            (self.window / 2).min(self.served.next_power_of_two()).max(READ_MIN)
        } else {
            self.window
        }
    }

    fn fetch(&mut self, range: Range<u64>) -> std::io::Result<()> {
        self.handle.requested();
        let bytes = self.rt.block_on(self.store.get_range(&self.path, range.clone())).map_err(to_io)?;
        self.hold(range.start, bytes, false);
        Ok(())
    }

    /// Makes fetched bytes, starting at offset `start` of the object, the buffer.
    fn hold(&mut self, start: u64, bytes: Bytes, planned: bool) {
        self.handle.received(bytes.len());
        self.buf = bytes;
        self.buf_start = start;
        self.served = 0;
        self.buf_planned = planned;
    }

    /// Requests planned ranges until the limits of what may be in flight.
    fn top_up(&mut self) {
        while self.plan.in_flight.len() < PLAN_CONCURRENCY
            && (self.plan.in_flight.is_empty() || self.plan.in_flight_bytes < PLAN_IN_FLIGHT_BYTES)
        {
            let Some(range) = self.plan.ahead.pop_front() else { break };
            let (store, path, r) = (self.store.clone(), self.path.clone(), range.clone());
            self.handle.requested();
            self.plan.in_flight_bytes += range.end - range.start;
            self.plan.in_flight.push_back((range, self.rt.spawn(async move { store.get_range(&path, r).await })));
        }
    }

    /// Serves `pos` from the plan when a planned range holds it; `false` when none does.
    fn serve_from_plan(&mut self) -> std::io::Result<bool> {
        if let Some(ranges) = self.handle.take_plan() {
            self.plan.abort();
            self.plan.ahead = coalesce(ranges, self.size);
        }
        self.top_up();
        let pos = self.pos;
        let Some(k) = self.plan.in_flight.iter().position(|(r, _)| r.contains(&pos)) else {
            return Ok(false);
        };
        // Ranges planned before this one were not read after all: drop them.
        for (r, fetch) in self.plan.in_flight.drain(..k) {
            fetch.abort();
            self.plan.in_flight_bytes -= r.end - r.start;
        }
        let (range, fetch) = self.plan.in_flight.pop_front().expect("position k exists");
        self.plan.in_flight_bytes -= range.end - range.start;
        let bytes = match self.rt.block_on(fetch) {
            Ok(result) => result.map_err(to_io)?,
            Err(e) => return Err(std::io::Error::other(format!("planned read: {e}"))),
        };
        self.hold(range.start, bytes, true);
        self.top_up();
        Ok(true)
    }
}

impl Drop for ObjectReader {
    fn drop(&mut self) {
        self.plan.abort();
    }
}

impl Read for ObjectReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.size || out.is_empty() {
            return Ok(0);
        }
        let buf_end = self.buf_start + self.buf.len() as u64;
        if !(self.buf_start..buf_end).contains(&self.pos) && !self.serve_from_plan()? {
            self.window = self.next_window();
            // A large read (a whole video frame) gets all it asks for in one GET.
            let len = self.window.max(out.len() as u64);
            let end = (self.pos + len).min(self.size);
            self.fetch(self.pos..end)?;
        }
        let offset = (self.pos - self.buf_start) as usize;
        let n = out.len().min(self.buf.len() - offset);
        out[..n].copy_from_slice(&self.buf[offset..offset + n]);
        self.pos += n as u64;
        self.served += n as u64;
        Ok(n)
    }
}

impl Seek for ObjectReader {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => p as i128,
            SeekFrom::End(d) => self.size as i128 + d as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
        };
        if target < 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start"));
        }
        self.pos = target as u64;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An object of `len` bytes whose byte at offset i is (i mod 251): spots misplaced reads.
    fn reader_over(len: usize) -> (tokio::runtime::Runtime, ObjectReader) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        rt.block_on(store.put(&ObjectPath::from("clip.mov"), data.into())).unwrap();
        let reader = ObjectReader::open(store, "clip.mov", rt.handle().clone()).unwrap();
        (rt, reader)
    }

    fn expect_bytes_at(at: u64, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            assert_eq!(*b, ((at + i as u64) % 251) as u8, "byte at {}", at + i as u64);
        }
    }

    /// Reads `len` bytes at `at` the way FFmpeg's AVIO does: seek, then fill a 64 KiB
    /// buffer, keeping only what the demuxer wants.
    fn pick(reader: &mut ObjectReader, at: u64, len: usize) {
        reader.seek(SeekFrom::Start(at)).unwrap();
        let mut got = Vec::new();
        while got.len() < len {
            let mut buf = vec![0u8; 64 * 1024];
            let n = reader.read(&mut buf).unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        expect_bytes_at(at, &got[..len]);
    }

    #[test]
    fn sequential_reads_fetch_large_ranges() {
        let size = 40 * 1024 * 1024;
        let (_rt, mut reader) = reader_over(size);
        let mut all = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        assert_eq!(all.len(), size);
        expect_bytes_at(0, &all);
        assert_eq!(reader.stats(), ReadStats { requests: 10, bytes: size as u64 });
    }

    #[test]
    fn sparse_reads_fetch_only_around_what_is_read_and_sequential_reads_grow_again() {
        // An interleaved original: 1 MB video frames, each followed by 12 KB of PCM; an
        // audio task reads only the PCM.
        let (frame, pcm, frames) = (1_000_000u64, 12_000usize, 300u64);
        let size = ((frame + pcm as u64) * frames) as usize;
        let (_rt, mut reader) = reader_over(size);
        for f in 0..frames {
            pick(&mut reader, f * (frame + pcm as u64) + frame, pcm);
        }
        let sparse = reader.stats();
        assert!(
            sparse.bytes * 10 < size as u64,
            "fetched {} of {size} bytes to read {} bytes of PCM",
            sparse.bytes,
            frames as usize * pcm
        );
        assert!(sparse.requests <= frames + 2, "{sparse:?}");

        // A whole-file pass afterwards (a video chunk) is back to 4 MiB GETs within a few.
        reader.seek(SeekFrom::Start(0)).unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut read = 0u64;
        while read < 64 * 1024 * 1024 {
            let n = reader.read(&mut buf).unwrap();
            expect_bytes_at(read, &buf[..n.min(16)]);
            read += n as u64;
        }
        let sequential = reader.stats().requests - sparse.requests;
        assert!(sequential <= 16 + 7, "{sequential} GETs for 64 MiB read in order");
    }

    #[test]
    fn planned_reads_fetch_the_planned_ranges_only_and_fall_back_outside_them() {
        // 4K frames: far enough apart that the PCM is fetched alone.
        let (frame, pcm, frames) = (4_000_000u64, 12_000u64, 30u64);
        let size = ((frame + pcm) * frames) as usize;
        let (_rt, mut reader) = reader_over(size);
        let at = |f: u64| f * (frame + pcm) + frame;
        reader.handle().plan((0..frames).map(|f| at(f)..at(f) + pcm).collect());
        // The demuxer reads every planned range but skips frames 10 to 19.
        for f in (0..frames).filter(|f| !(10..20).contains(f)) {
            pick(&mut reader, at(f), pcm as usize);
        }
        let planned = reader.stats();
        // Ranges fetched ahead but skipped may or may not have arrived: at most the plan.
        assert!(planned.requests <= frames && planned.requests >= frames - 10, "{planned:?}");
        assert!(planned.bytes <= frames * pcm, "{planned:?}");
        // Outside the plan the reader fetches by itself.
        pick(&mut reader, 5, 100);
        assert_eq!(reader.stats().requests, planned.requests + 1);
    }

    #[test]
    fn planned_ranges_close_together_are_fetched_as_one() {
        // Near neighbours in reading order join (also backwards); far ones do not; nothing
        // past the end of the object.
        let ranges = vec![0..10, 20..30, 3_000_000..3_000_010, 2_000_000..2_000_100, 9_000_000..9_000_010, 20_000_000..20_000_001];
        assert_eq!(coalesce(ranges, 10_000_000), [0..30, 2_000_000..3_000_010, 9_000_000..9_000_010]);
        // Never more than READ_MAX in one.
        let many: Vec<_> = (0..100u64).map(|i| i * 100_000..i * 100_000 + 50_000).collect();
        let spans = coalesce(many, u64::MAX);
        assert!(spans.iter().all(|r| r.end - r.start <= READ_MAX), "{spans:?}");
        assert_eq!(spans.front().unwrap().start, 0);
        assert_eq!(spans.back().unwrap().end, 99 * 100_000 + 50_000);
    }
}
