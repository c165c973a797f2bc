//! The durable alert journal: alerts are never lost.
//!
//! The sink thread [`Journal::append`]s each alert before handing it to any sink; `append`
//! returns only once the record is written and `fdatasync`'d, so an alert the producer saw
//! accepted survives a power cut. Each sink then [`Journal::ack`]s what it delivered, and after
//! a crash or restart [`Journal::pending`] replays to each sink, in id order, what it had not
//! acknowledged.
//!
//! # Delivery is at least once: sinks deduplicate by id
//!
//! Acknowledgements are persisted lazily (at most every [`JournalConfig::ack_sync_interval`],
//! on [`Journal::sync_acks`], [`Journal::compact`], [`Journal::close`] and drop), because
//! replaying an alert a sink already delivered is a duplicate, not a loss, while an fsync per
//! ack would double the disk traffic of the hot path. After a crash a sink may therefore see
//! alerts again; [`Alert::id`] is unique and never reused, so sinks deduplicate on it.
//!
//! # Ids
//!
//! `append` assigns [`Alert::id`]: consecutive within a journal, monotonic across restarts.
//! Reopening continues after the newest durable record (and after the highest id any sink ever
//! acknowledged). A brand-new journal starts at the current Unix time in microseconds rather
//! than at 1, so that wiping the journal directory does not hand out ids that sinks have
//! already seen and would drop as duplicates (this holds as long as the clock does not go
//! back). An id is taken only when `append` returns `Ok`; the id of a torn record (see below)
//! was never returned, never delivered, and is assigned again.
//!
//! # Sinks
//!
//! The sinks are named at [`Journal::open`]. A sink the journal has never seen starts with
//! nothing acknowledged: everything the journal still holds is pending for it, including
//! alerts other sinks delivered long ago but that were not compacted away yet (at most about
//! one segment's worth once every other sink is caught up). A sink in the ack file that is no
//! longer named is forgotten, so that a removed sink cannot pin the journal forever.
//!
//! # On disk
//!
//! A directory holding:
//! - `seg-<first id, 20 digits>.log`: append-only segments, rotated when the next record would
//!   take one past [`JournalConfig::segment_bytes`], so that compaction deletes whole files.
//!   A segment starts with a 32-byte header: magic `VIGJRNL1`, the first id (u64 LE), the
//!   id of the last record of the preceding segment when this one was started (u64 LE; it
//!   lets a replay prove that no records went missing at a segment boundary), a CRC-32 of
//!   those 24 bytes (u32 LE) and 4 zero bytes. Then records, each
//!   `len: u32 LE | crc: u32 LE | id: u64 LE | payload: len bytes`, where the payload is the
//!   alert's JSON and the CRC-32 (IEEE) covers `len`, `id` and the payload. Alert fields must
//!   therefore evolve compatibly (new fields with `#[serde(default)]`), or the journal must be
//!   drained before an upgrade.
//! - `acks.json`: `{"version":1,"acked":{"<sink>":<id>,...}}`, the cumulative ack per sink,
//!   rewritten atomically (write `acks.json.tmp`, fsync, rename, fsync the directory). A
//!   separate small file rather than ack records in the segments, because ack records would
//!   keep otherwise fully acknowledged segments alive and make compaction depend on parsing
//!   them; a rename of a few dozen bytes is atomic on every file system we run on.
//! - `LOCK`: `flock`ed while a [`Journal`] is open, so two processes (or two handles) never
//!   append to the same files.
//!
//! # Recovery
//!
//! A power cut can only tear the last append. On open, the newest segment is read through:
//! an invalid record (short, bad length, bad CRC, or zeros) followed by no valid record is a
//! torn tail and is truncated away with a `log::warn!` naming the file and byte offset
//! (its alert was never acknowledged to the producer, so nothing accepted is lost). An
//! invalid record with a valid one after it, or any invalid record in an older segment, is
//! [`JournalError::Corrupt`]: never skipped silently. Older segments are checked when they are
//! replayed, so opening costs one segment's read, not the whole backlog.
//!
//! Any I/O error while writing poisons the journal ([`JournalError::Poisoned`]): after a
//! failed `fdatasync` the page cache can no longer be trusted. Drop it and open it again,
//! which re-reads what is durable.
//!
//! # Bounded
//!
//! The journal holds at most [`JournalConfig::max_bytes`] (segment files, headers included).
//! When an append would exceed it even after compacting, `append` returns
//! [`JournalError::Full`] and takes nothing: the caller must hold the alert and retry after
//! sinks made progress, blocking its input, which applies backpressure up the pipeline.
//! Alerts are never dropped; a sink that is down long enough stalls alerting rather than
//! losing it. `max_bytes` must be at least `2 * (segment_bytes + MAX_RECORD_BYTES)`, which
//! guarantees that `Full` only happens while a sink has unacknowledged records in an older
//! segment.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::alert::Alert;

/// First bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"VIGJRNL1";
/// Size of a segment header.
pub const SEGMENT_HEADER_BYTES: u64 = 32;
/// Size of a record header (length, CRC, id).
pub const RECORD_HEADER_BYTES: u64 = 16;
/// Largest record payload. An alert's JSON is bounded by its heapless fields to about 4 KiB;
/// a longer length field is damage, not data.
pub const MAX_RECORD_PAYLOAD: u32 = 8 * 1024;
/// Largest record, header included.
pub const MAX_RECORD_BYTES: u64 = RECORD_HEADER_BYTES + MAX_RECORD_PAYLOAD as u64;
/// Smallest segment size accepted.
pub const MIN_SEGMENT_BYTES: u64 = 4 * 1024;

const ACKS_FILE: &str = "acks.json";
const ACKS_TMP_FILE: &str = "acks.json.tmp";
const LOCK_FILE: &str = "LOCK";
const ACKS_VERSION: u32 = 1;

/// Why the journal could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal I/O failed while {op}: {err}: {path}")]
    Io {
        op: &'static str,
        err: io::Error,
        path: PathBuf,
    },
    #[error("journal is corrupt at byte {offset}: {detail}: {path}")]
    Corrupt {
        offset: u64,
        detail: String,
        path: PathBuf,
    },
    #[error(
        "journal is full: {used} bytes held, {needed} more needed, limit {limit}; \
         a sink is not acknowledging"
    )]
    Full { used: u64, needed: u64, limit: u64 },
    #[error("sink {sink:?} was not named when the journal was opened")]
    UnknownSink { sink: String },
    #[error("sink {sink:?} acknowledged id {id}, but the newest id assigned is {newest}")]
    AckBeyondEnd { sink: String, id: u64, newest: u64 },
    #[error("alert {id} cannot be journaled (scores must be finite): {err}")]
    Encode { id: u64, err: serde_json::Error },
    #[error("alert {id} encodes to {len} bytes, more than the record limit of {limit}")]
    TooLarge { id: u64, len: usize, limit: u32 },
    #[error("invalid journal configuration: {detail}")]
    Config { detail: String },
    #[error("journal is already open in another process or handle: {path}")]
    Locked { path: PathBuf },
    #[error("journal is unusable after a failed write (drop it and open it again): {detail}")]
    Poisoned { detail: String },
}

/// Sizes and timings of a journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalConfig {
    /// A segment is rotated when the next record would take it past this size.
    pub segment_bytes: u64,
    /// Most bytes the journal holds; past it `append` returns [`JournalError::Full`].
    pub max_bytes: u64,
    /// Acks are persisted at most this often unless forced; zero persists every ack.
    pub ack_sync_interval: Duration,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 4 * 1024 * 1024,
            max_bytes: 256 * 1024 * 1024,
            ack_sync_interval: Duration::from_secs(1),
        }
    }
}

impl JournalConfig {
    fn validate(&self) -> Result<(), JournalError> {
        if self.segment_bytes < MIN_SEGMENT_BYTES {
            return Err(JournalError::Config {
                detail: format!(
                    "segment_bytes {} is below the minimum of {MIN_SEGMENT_BYTES}",
                    self.segment_bytes
                ),
            });
        }
        let floor = self
            .segment_bytes
            .saturating_add(MAX_RECORD_BYTES)
            .saturating_mul(2);
        if self.max_bytes < floor {
            return Err(JournalError::Config {
                detail: format!(
                    "max_bytes {} is below 2 * (segment_bytes + {MAX_RECORD_BYTES}) = {floor}",
                    self.max_bytes
                ),
            });
        }
        Ok(())
    }
}

/// A segment file as the journal tracks it.
#[derive(Debug, Clone)]
struct Segment {
    path: PathBuf,
    first_id: u64,
    /// Last id of the preceding segment when this one was started (from the header).
    prev_id: u64,
    len: u64,
}

/// Persistent form of the ack state.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckFile {
    version: u32,
    acked: BTreeMap<String, u64>,
}

/// The alert journal of one box. Owned by the sink thread; see the module docs.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    config: JournalConfig,
    /// Held for its `flock`; released when the journal is dropped.
    _lock: File,
    /// Older segments, oldest first; never written again.
    sealed: Vec<Segment>,
    active: Segment,
    active_file: File,
    /// Id of the newest record in the active segment, `first_id - 1` when it is empty.
    active_last_id: u64,
    next_id: u64,
    used_bytes: u64,
    /// Cumulative ack per named sink; 0 is "nothing acknowledged" (ids start above 0).
    acks: BTreeMap<String, u64>,
    acks_dirty: bool,
    acks_synced_at: Instant,
    /// Encoding buffer reused across appends.
    buf: Vec<u8>,
    poisoned: Option<String>,
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir` for the given sinks, with the default
    /// [`JournalConfig`], recovering from whatever a crash left behind.
    pub fn open(dir: &Path, sinks: &[&str]) -> Result<Journal, JournalError> {
        Self::open_with(dir, sinks, JournalConfig::default())
    }

    /// Opens the journal with an explicit configuration.
    pub fn open_with(
        dir: &Path,
        sinks: &[&str],
        config: JournalConfig,
    ) -> Result<Journal, JournalError> {
        config.validate()?;
        for (i, sink) in sinks.iter().enumerate() {
            if sink.is_empty() {
                return Err(JournalError::Config {
                    detail: "a sink name is empty".to_string(),
                });
            }
            if sinks[..i].contains(sink) {
                return Err(JournalError::Config {
                    detail: format!("sink {sink:?} is named twice"),
                });
            }
        }
        fs::create_dir_all(dir).map_err(io_err("creating the directory", dir))?;
        let lock = lock_dir(dir)?;

        // A temp file left by a crash mid-rewrite; the rename never happened, so the previous
        // acks.json is the valid one.
        let tmp = dir.join(ACKS_TMP_FILE);
        if tmp.exists() {
            fs::remove_file(&tmp).map_err(io_err("removing a stale ack temp file", &tmp))?;
        }

        let stored = read_acks(dir)?;
        // Every id any sink (named now or not) has seen must stay taken.
        let max_acked = stored.values().copied().max().unwrap_or(0);
        let mut acks = BTreeMap::new();
        let mut acks_dirty = false;
        for sink in sinks {
            let acked = stored.get(*sink).copied().unwrap_or_else(|| {
                acks_dirty = true;
                0
            });
            acks.insert((*sink).to_string(), acked);
        }
        for (sink, acked) in &stored {
            if !acks.contains_key(sink) {
                log::info!(
                    "journal: forgetting sink {sink:?} (acknowledged up to {acked}), \
                     it is no longer configured: {}",
                    dir.display()
                );
                acks_dirty = true;
            }
        }

        let mut segments = list_segments(dir)?;
        let mut sealed = Vec::with_capacity(segments.len());
        let tail = loop {
            let Some((first_id, path)) = segments.pop_front() else {
                break None;
            };
            let len = fs::metadata(&path)
                .map_err(io_err("reading segment metadata", &path))?
                .len();
            if !segments.is_empty() {
                let prev_id = read_header(&path, first_id)?;
                sealed.push(Segment {
                    path,
                    first_id,
                    prev_id,
                    len,
                });
                continue;
            }
            match recover_tail(&path, first_id)? {
                Some(tail) => break Some(tail),
                None => {
                    // The newest segment was cut before its header was durable: a crash during
                    // rotation. The segment before it becomes the newest again.
                    log::warn!(
                        "journal: removing segment with a torn header: {}",
                        path.display()
                    );
                    fs::remove_file(&path).map_err(io_err("removing a torn segment", &path))?;
                    sync_dir(dir)?;
                    if let Some(prev) = sealed.pop() {
                        segments.push_back((prev.first_id, prev.path));
                    }
                }
            }
        };

        let (active, active_last_id) = match tail {
            Some(tail) => tail,
            None => {
                let first_id = fresh_first_id(max_acked);
                let segment = create_segment(dir, first_id, 0)?;
                (segment, first_id - 1)
            }
        };
        let active_file = open_append(&active.path)?;
        let used_bytes = sealed.iter().map(|s| s.len).sum::<u64>() + active.len;

        let mut journal = Journal {
            dir: dir.to_path_buf(),
            config,
            _lock: lock,
            sealed,
            active,
            active_file,
            active_last_id,
            next_id: active_last_id + 1,
            used_bytes,
            acks,
            acks_dirty,
            acks_synced_at: Instant::now(),
            buf: Vec::with_capacity(4096),
            poisoned: None,
        };

        if max_acked >= journal.next_id {
            // A sink acknowledged ids the journal no longer holds: files were removed, or the
            // disk lost writes it had reported durable. Jump past them, since a reused id would
            // be dropped by the sinks as a duplicate.
            log::warn!(
                "journal: a sink acknowledged id {max_acked} but the newest record is {}; \
                 continuing at {}: {}",
                journal.active_last_id,
                max_acked + 1,
                dir.display()
            );
            journal.next_id = max_acked + 1;
            journal.rotate()?;
        }
        Ok(journal)
    }

    /// Makes `alert` durable and returns the id it assigned (also written to `alert.id`).
    ///
    /// On `Ok` the record is on disk (`fdatasync`'d); only then may the alert go to a sink.
    /// On [`JournalError::Full`] nothing was written and `alert` is unchanged: hold it and
    /// retry once sinks have acknowledged more. [`JournalError::Encode`] means the alert
    /// cannot round-trip through JSON (a NaN or infinite float); retrying will not help.
    pub fn append(&mut self, alert: &mut Alert) -> Result<u64, JournalError> {
        if let Some(detail) = &self.poisoned {
            return Err(JournalError::Poisoned {
                detail: detail.clone(),
            });
        }
        let id = self.next_id;
        let previous_id = alert.id;
        alert.id = id;
        let encoded = encode_record(&mut self.buf, alert);
        alert.id = previous_id;
        encoded?;
        // A record that would not decode would stall every replay behind it. serde_json writes
        // a NaN or infinite score as null, for one; refuse such an alert here, before it is
        // durable, rather than find out after a restart.
        let payload = &self.buf[RECORD_HEADER_BYTES as usize..];
        if let Err(err) = serde_json::from_slice::<Alert>(payload) {
            return Err(JournalError::Encode { id, err });
        }
        let record_len = self.buf.len() as u64;

        if self.active_last_id >= self.active.first_id
            && self.active.len + record_len > self.config.segment_bytes
        {
            self.rotate()?;
        }
        if self.used_bytes + record_len > self.config.max_bytes {
            self.compact()?;
            if self.used_bytes + record_len > self.config.max_bytes {
                return Err(JournalError::Full {
                    used: self.used_bytes,
                    needed: record_len,
                    limit: self.config.max_bytes,
                });
            }
        }

        let written = self
            .active_file
            .write_all(&self.buf)
            .and_then(|()| self.active_file.sync_data());
        if let Err(err) = written {
            return Err(self.poison("appending a record", err, self.active.path.clone()));
        }
        self.active.len += record_len;
        self.used_bytes += record_len;
        self.active_last_id = id;
        self.next_id = id + 1;
        alert.id = id;
        Ok(id)
    }

    /// Records that `sink` delivered every alert with an id up to and including `id`.
    ///
    /// Acks are cumulative and never move back; an older id is ignored. The ack is persisted
    /// if the last persist is at least [`JournalConfig::ack_sync_interval`] old, otherwise
    /// later (see the module docs on duplicates).
    pub fn ack(&mut self, sink: &str, id: u64) -> Result<(), JournalError> {
        let newest = self.next_id - 1;
        let Some(acked) = self.acks.get_mut(sink) else {
            return Err(JournalError::UnknownSink {
                sink: sink.to_string(),
            });
        };
        if id > newest {
            return Err(JournalError::AckBeyondEnd {
                sink: sink.to_string(),
                id,
                newest,
            });
        }
        if id > *acked {
            *acked = id;
            self.acks_dirty = true;
        }
        if self.acks_dirty && self.acks_synced_at.elapsed() >= self.config.ack_sync_interval {
            self.sync_acks()?;
        }
        Ok(())
    }

    /// Persists the acks now if any changed since the last persist. Call it when the sink
    /// thread goes idle, so that a crash after a quiet period replays nothing.
    pub fn sync_acks(&mut self) -> Result<(), JournalError> {
        if !self.acks_dirty {
            return Ok(());
        }
        write_acks(&self.dir, &self.acks)?;
        self.acks_dirty = false;
        self.acks_synced_at = Instant::now();
        Ok(())
    }

    /// The alerts `sink` has not acknowledged, oldest first, as held when this is called.
    ///
    /// The [`Replay`] reads the segment files lazily, one at a time, checking every record;
    /// appends made after this call are not included. Interleaving acks and compaction with
    /// the replay is fine as long as the sink acknowledges only what the replay yielded.
    pub fn pending(&self, sink: &str) -> Result<Replay, JournalError> {
        let Some(&after) = self.acks.get(sink) else {
            return Err(JournalError::UnknownSink {
                sink: sink.to_string(),
            });
        };
        let all: Vec<&Segment> = self
            .sealed
            .iter()
            .chain(std::iter::once(&self.active))
            .collect();
        let mut segments = VecDeque::with_capacity(all.len());
        for (i, segment) in all.iter().enumerate() {
            // A segment ends where the next one says its predecessor ended.
            let last_id = all
                .get(i + 1)
                .map_or(self.active_last_id, |next| next.prev_id);
            if last_id <= after {
                continue;
            }
            segments.push_back(ReplaySegment {
                path: segment.path.clone(),
                first_id: segment.first_id,
                len: segment.len,
                last_id,
            });
        }
        Ok(Replay {
            after,
            segments,
            current: None,
            done: false,
        })
    }

    /// Deletes the oldest segments that every sink has acknowledged completely and returns how
    /// many bytes that freed. The active segment is never deleted. Acks are persisted first,
    /// so the ack file on disk never lags behind what was deleted. `append` compacts on its own
    /// before reporting [`JournalError::Full`] and after each rotation.
    pub fn compact(&mut self) -> Result<u64, JournalError> {
        let min_acked = self.acks.values().copied().min().unwrap_or(u64::MAX);
        let mut deletable = 0;
        while deletable < self.sealed.len() {
            let last_id = self
                .sealed
                .get(deletable + 1)
                .unwrap_or(&self.active)
                .prev_id;
            if last_id > min_acked {
                break;
            }
            deletable += 1;
        }
        if deletable == 0 {
            return Ok(0);
        }
        self.sync_acks()?;
        let mut freed = 0;
        // Oldest first, so that a crash in between leaves a contiguous run of segments.
        for _ in 0..deletable {
            let segment = self.sealed.remove(0);
            if let Err(err) = fs::remove_file(&segment.path) {
                let path = segment.path.clone();
                self.sealed.insert(0, segment);
                return Err(JournalError::Io {
                    op: "deleting an acknowledged segment",
                    err,
                    path,
                });
            }
            freed += segment.len;
            self.used_bytes -= segment.len;
        }
        sync_dir(&self.dir)?;
        Ok(freed)
    }

    /// Persists the acks and closes the journal. Dropping does the same, logging failures.
    pub fn close(mut self) -> Result<(), JournalError> {
        self.sync_acks()
    }

    /// The id the next `append` will assign.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Bytes held in segment files.
    pub fn used_bytes(&self) -> u64 {
        self.used_bytes
    }

    /// What `sink` has acknowledged (0: nothing), or `None` if it was not named at open.
    pub fn acked(&self, sink: &str) -> Option<u64> {
        self.acks.get(sink).copied()
    }

    /// The directory the journal lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Seals the active segment and starts a new one at `next_id`.
    fn rotate(&mut self) -> Result<(), JournalError> {
        let segment = match create_segment(&self.dir, self.next_id, self.active_last_id) {
            Ok(segment) => segment,
            Err(err) => {
                self.poisoned = Some(err.to_string());
                return Err(err);
            }
        };
        let file = match open_append(&segment.path) {
            Ok(file) => file,
            Err(err) => {
                self.poisoned = Some(err.to_string());
                return Err(err);
            }
        };
        self.used_bytes += segment.len;
        let old = std::mem::replace(&mut self.active, segment);
        self.sealed.push(old);
        self.active_file = file;
        self.active_last_id = self.next_id - 1;
        self.compact()?;
        Ok(())
    }

    fn poison(&mut self, op: &'static str, err: io::Error, path: PathBuf) -> JournalError {
        let error = JournalError::Io { op, err, path };
        self.poisoned = Some(error.to_string());
        error
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        if let Err(err) = self.sync_acks() {
            log::warn!("journal: acks not persisted on close, sinks will see duplicates: {err}");
        }
    }
}

/// A segment a [`Replay`] still has to read.
#[derive(Debug)]
struct ReplaySegment {
    path: PathBuf,
    first_id: u64,
    /// Bytes to read: the whole file when sealed, the length at snapshot for the active one.
    len: u64,
    /// Id the segment's last record must have.
    last_id: u64,
}

/// The segment a [`Replay`] is reading.
#[derive(Debug)]
struct ReplayCursor {
    segment: ReplaySegment,
    bytes: Vec<u8>,
    offset: usize,
    expected_id: u64,
}

/// Alerts not yet acknowledged by one sink, oldest first; see [`Journal::pending`].
///
/// Yields `Err` once (then ends) if a segment cannot be read or holds a damaged record.
#[derive(Debug)]
pub struct Replay {
    after: u64,
    segments: VecDeque<ReplaySegment>,
    current: Option<ReplayCursor>,
    done: bool,
}

impl Replay {
    fn advance(&mut self) -> Result<Option<Alert>, JournalError> {
        loop {
            if self.current.is_none() {
                let Some(segment) = self.segments.pop_front() else {
                    return Ok(None);
                };
                self.current = Some(open_cursor(segment)?);
            }
            let Some(cursor) = self.current.as_mut() else {
                continue;
            };
            if cursor.offset == cursor.bytes.len() {
                let found_last = cursor.expected_id - 1;
                if found_last != cursor.segment.last_id {
                    return Err(JournalError::Corrupt {
                        offset: cursor.offset as u64,
                        detail: format!(
                            "segment ends at id {found_last} but the journal expected {}: \
                             records are missing",
                            cursor.segment.last_id
                        ),
                        path: cursor.segment.path.clone(),
                    });
                }
                self.current = None;
                continue;
            }
            let offset = cursor.offset;
            let corrupt = |detail: String| JournalError::Corrupt {
                offset: offset as u64,
                detail,
                path: cursor.segment.path.clone(),
            };
            let record = match parse_record(&cursor.bytes, offset) {
                Ok(record) => record,
                Err(detail) => return Err(corrupt(detail)),
            };
            if record.id != cursor.expected_id {
                return Err(corrupt(format!(
                    "record has id {} where {} was expected",
                    record.id, cursor.expected_id
                )));
            }
            cursor.offset = record.end;
            cursor.expected_id += 1;
            if record.id <= self.after {
                continue;
            }
            let alert: Alert = serde_json::from_slice(record.payload)
                .map_err(|err| corrupt(format!("record payload is not an alert: {err}")))?;
            if alert.id != record.id {
                return Err(corrupt(format!(
                    "record {} carries an alert with id {}",
                    record.id, alert.id
                )));
            }
            return Ok(Some(alert));
        }
    }
}

impl Iterator for Replay {
    type Item = Result<Alert, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.advance() {
            Ok(Some(alert)) => Some(Ok(alert)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(err) => {
                self.done = true;
                Some(Err(err))
            }
        }
    }
}

fn open_cursor(segment: ReplaySegment) -> Result<ReplayCursor, JournalError> {
    let path = &segment.path;
    let mut file = File::open(path).map_err(io_err("opening a segment to replay", path))?;
    let mut bytes = Vec::new();
    // Only the length known at snapshot: the active segment may have grown since.
    (&mut file)
        .take(segment.len)
        .read_to_end(&mut bytes)
        .map_err(io_err("reading a segment to replay", path))?;
    if (bytes.len() as u64) < segment.len {
        return Err(JournalError::Corrupt {
            offset: bytes.len() as u64,
            detail: format!("segment is shorter than the {} bytes it had", segment.len),
            path: path.clone(),
        });
    }
    parse_header(&bytes, segment.first_id).map_err(|detail| JournalError::Corrupt {
        offset: 0,
        detail,
        path: path.clone(),
    })?;
    Ok(ReplayCursor {
        expected_id: segment.first_id,
        segment,
        bytes,
        offset: SEGMENT_HEADER_BYTES as usize,
    })
}

/// A record parsed out of a segment's bytes.
struct Record<'a> {
    id: u64,
    payload: &'a [u8],
    /// Offset just past the record.
    end: usize,
}

/// Parses and CRC-checks the record at `offset`, or says what is wrong with it.
fn parse_record(bytes: &[u8], offset: usize) -> Result<Record<'_>, String> {
    let rest = &bytes[offset..];
    let header_len = RECORD_HEADER_BYTES as usize;
    if rest.len() < header_len {
        return Err(format!(
            "record header cut short: {} of {header_len} bytes",
            rest.len()
        ));
    }
    let len = u32_at(rest, 0);
    let crc = u32_at(rest, 4);
    let id = u64_at(rest, 8);
    if len == 0 || len > MAX_RECORD_PAYLOAD {
        return Err(format!(
            "record length {len} is outside 1..={MAX_RECORD_PAYLOAD}"
        ));
    }
    let end = header_len + len as usize;
    if rest.len() < end {
        return Err(format!("record cut short: {} of {end} bytes", rest.len()));
    }
    let actual = crc32_update(crc32_update(0, &rest[0..4]), &rest[8..end]);
    if actual != crc {
        return Err(format!(
            "record CRC mismatch: stored {crc:08x}, computed {actual:08x}"
        ));
    }
    Ok(Record {
        id,
        payload: &rest[header_len..end],
        end: offset + end,
    })
}

/// Whether a valid record with an id of at least `min_id` starts anywhere after `offset`:
/// what tells damage in the middle of a segment from a torn last append.
fn valid_record_after(bytes: &[u8], offset: usize, min_id: u64) -> bool {
    let header_len = RECORD_HEADER_BYTES as usize;
    // A later record's id is at most one per record header beyond min_id; checking the id
    // first keeps this scan cheap.
    let max_id = min_id.saturating_add((bytes.len() / header_len) as u64);
    let mut pos = offset + 1;
    while pos + header_len <= bytes.len() {
        let id = u64_at(bytes, pos + 8);
        if (min_id..=max_id).contains(&id) && parse_record(bytes, pos).is_ok() {
            return true;
        }
        pos += 1;
    }
    false
}

/// Reads the newest segment through, truncating a torn tail. Returns `None` when the header
/// itself is torn, or the segment and the id of its last record.
fn recover_tail(path: &Path, first_id: u64) -> Result<Option<(Segment, u64)>, JournalError> {
    let bytes = fs::read(path).map_err(io_err("reading the newest segment", path))?;
    let header_len = SEGMENT_HEADER_BYTES as usize;
    let prev_id = match parse_header(&bytes, first_id) {
        Ok(prev_id) => prev_id,
        // The header is written and synced before any record, so a short or zeroed file is
        // a rotation cut by a crash; anything longer with a bad header is damage.
        Err(_) if bytes.len() < header_len || bytes.iter().all(|&b| b == 0) => return Ok(None),
        Err(detail) => {
            return Err(JournalError::Corrupt {
                offset: 0,
                detail,
                path: path.to_path_buf(),
            });
        }
    };
    let mut offset = header_len;
    let mut expected_id = first_id;
    while offset < bytes.len() {
        match parse_record(&bytes, offset) {
            Ok(record) if record.id == expected_id => {
                offset = record.end;
                expected_id += 1;
            }
            Ok(record) => {
                return Err(JournalError::Corrupt {
                    offset: offset as u64,
                    detail: format!(
                        "record has id {} where {expected_id} was expected",
                        record.id
                    ),
                    path: path.to_path_buf(),
                });
            }
            Err(detail) if !valid_record_after(&bytes, offset, expected_id) => {
                log::warn!(
                    "journal: truncating a torn record at byte {offset} ({detail}, {} bytes \
                     dropped); its alert was never acknowledged to the producer: {}",
                    bytes.len() - offset,
                    path.display()
                );
                let file = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(io_err("opening the newest segment", path))?;
                file.set_len(offset as u64)
                    .and_then(|()| file.sync_all())
                    .map_err(io_err("truncating a torn record", path))?;
                break;
            }
            Err(detail) => {
                return Err(JournalError::Corrupt {
                    offset: offset as u64,
                    detail: format!("{detail}, with valid records after it"),
                    path: path.to_path_buf(),
                });
            }
        }
    }
    let segment = Segment {
        path: path.to_path_buf(),
        first_id,
        prev_id,
        len: offset as u64,
    };
    Ok(Some((segment, expected_id - 1)))
}

/// Checks a segment header and returns the previous segment's last id recorded in it.
fn parse_header(bytes: &[u8], first_id: u64) -> Result<u64, String> {
    let header_len = SEGMENT_HEADER_BYTES as usize;
    if bytes.len() < header_len {
        return Err(format!(
            "segment header cut short: {} of {header_len} bytes",
            bytes.len()
        ));
    }
    if bytes[0..8] != SEGMENT_MAGIC {
        return Err("not a journal segment (bad magic)".to_string());
    }
    let crc = u32_at(bytes, 24);
    let actual = crc32_update(0, &bytes[0..24]);
    if crc != actual {
        return Err(format!(
            "segment header CRC mismatch: stored {crc:08x}, computed {actual:08x}"
        ));
    }
    let header_first = u64_at(bytes, 8);
    if header_first != first_id {
        return Err(format!(
            "segment header says first id {header_first}, its file name {first_id}"
        ));
    }
    Ok(u64_at(bytes, 16))
}

fn read_header(path: &Path, first_id: u64) -> Result<u64, JournalError> {
    let mut bytes = [0u8; SEGMENT_HEADER_BYTES as usize];
    let mut file = File::open(path).map_err(io_err("opening a segment", path))?;
    let read =
        read_full(&mut file, &mut bytes).map_err(io_err("reading a segment header", path))?;
    parse_header(&bytes[..read], first_id).map_err(|detail| JournalError::Corrupt {
        offset: 0,
        detail,
        path: path.to_path_buf(),
    })
}

/// Reads until `buf` is full or the file ends; returns how much was read.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut read = 0;
    while read < buf.len() {
        match file.read(&mut buf[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(read)
}

/// Creates a segment with its header durable, and its directory entry too.
fn create_segment(dir: &Path, first_id: u64, prev_id: u64) -> Result<Segment, JournalError> {
    let path = dir.join(segment_name(first_id));
    let mut header = [0u8; SEGMENT_HEADER_BYTES as usize];
    header[0..8].copy_from_slice(&SEGMENT_MAGIC);
    header[8..16].copy_from_slice(&first_id.to_le_bytes());
    header[16..24].copy_from_slice(&prev_id.to_le_bytes());
    let crc = crc32_update(0, &header[0..24]);
    header[24..28].copy_from_slice(&crc.to_le_bytes());
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io_err("creating a segment", &path))?;
    file.write_all(&header)
        .and_then(|()| file.sync_all())
        .map_err(io_err("writing a segment header", &path))?;
    sync_dir(dir)?;
    Ok(Segment {
        path,
        first_id,
        prev_id,
        len: SEGMENT_HEADER_BYTES,
    })
}

fn open_append(path: &Path) -> Result<File, JournalError> {
    OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(io_err("opening the active segment", path))
}

fn segment_name(first_id: u64) -> String {
    format!("seg-{first_id:020}.log")
}

/// The segment files in `dir`, oldest first, with their first ids.
fn list_segments(dir: &Path) -> Result<VecDeque<(u64, PathBuf)>, JournalError> {
    let mut segments = Vec::new();
    let entries = fs::read_dir(dir).map_err(io_err("listing the directory", dir))?;
    for entry in entries {
        let entry = entry.map_err(io_err("listing the directory", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let first_id = name
            .strip_prefix("seg-")
            .and_then(|rest| rest.strip_suffix(".log"))
            .filter(|digits| digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u64>().ok());
        if let Some(first_id) = first_id {
            segments.push((first_id, entry.path()));
        }
    }
    segments.sort_unstable_by_key(|(first_id, _)| *first_id);
    Ok(segments.into())
}

fn lock_dir(dir: &Path) -> Result<File, JournalError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err("creating the lock file", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(JournalError::Locked { path }),
        Err(TryLockError::Error(err)) => Err(JournalError::Io {
            op: "locking the journal",
            err,
            path,
        }),
    }
}

fn read_acks(dir: &Path) -> Result<BTreeMap<String, u64>, JournalError> {
    let path = dir.join(ACKS_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(err) => {
            return Err(JournalError::Io {
                op: "reading the ack file",
                err,
                path,
            });
        }
    };
    let file: AckFile = serde_json::from_slice(&bytes).map_err(|err| JournalError::Corrupt {
        offset: 0,
        detail: format!("ack file is not valid: {err}"),
        path: path.clone(),
    })?;
    if file.version != ACKS_VERSION {
        return Err(JournalError::Corrupt {
            offset: 0,
            detail: format!("ack file version {} is not {ACKS_VERSION}", file.version),
            path,
        });
    }
    Ok(file.acked)
}

/// Replaces the ack file atomically: readers see the old or the new content, never a mix.
fn write_acks(dir: &Path, acks: &BTreeMap<String, u64>) -> Result<(), JournalError> {
    let tmp = dir.join(ACKS_TMP_FILE);
    let path = dir.join(ACKS_FILE);
    let content = AckFile {
        version: ACKS_VERSION,
        acked: acks.clone(),
    };
    let bytes = serde_json::to_vec(&content).map_err(|err| JournalError::Io {
        op: "encoding the ack file",
        err: io::Error::other(err),
        path: tmp.clone(),
    })?;
    let mut file = File::create(&tmp).map_err(io_err("creating the ack temp file", &tmp))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_err("writing the ack temp file", &tmp))?;
    fs::rename(&tmp, &path).map_err(io_err("replacing the ack file", &path))?;
    sync_dir(dir)
}

/// Makes creations, renames and deletions in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing the directory", dir))
}

/// Encodes `alert` as one record into `buf`.
fn encode_record(buf: &mut Vec<u8>, alert: &Alert) -> Result<(), JournalError> {
    let header_len = RECORD_HEADER_BYTES as usize;
    buf.clear();
    buf.resize(header_len, 0);
    serde_json::to_writer(&mut *buf, alert)
        .map_err(|err| JournalError::Encode { id: alert.id, err })?;
    let len = buf.len() - header_len;
    if len > MAX_RECORD_PAYLOAD as usize {
        return Err(JournalError::TooLarge {
            id: alert.id,
            len,
            limit: MAX_RECORD_PAYLOAD,
        });
    }
    buf[0..4].copy_from_slice(&(len as u32).to_le_bytes());
    buf[8..16].copy_from_slice(&alert.id.to_le_bytes());
    let crc = crc32_update(crc32_update(0, &buf[0..4]), &buf[8..]);
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// First id of a brand-new journal; see "Ids" in the module docs.
fn fresh_first_id(max_acked: u64) -> u64 {
    let now_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2))
        .unwrap_or(0);
    now_us.max(max_acked + 1).max(1)
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> JournalError {
    move |err| JournalError::Io {
        op,
        err,
        path: path.to_path_buf(),
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), table-driven.
const CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

/// Continues a CRC-32 over `bytes`; start with 0. `update(update(0, a), b) == crc(a ++ b)`.
fn crc32_update(crc: u32, bytes: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in bytes {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Name, Phase, Region};

    fn name(s: &str) -> Name {
        let mut n = Name::new();
        n.push_str(s).unwrap();
        n
    }

    fn alert(event: u64) -> Alert {
        let mut regions = heapless::Vec::new();
        regions
            .push(Region {
                x: 10,
                y: 20,
                width: 30,
                height: 40,
                score: 0.75,
                map_xy: Some([500_030.0, 4_199_970.0]),
            })
            .unwrap();
        Alert {
            id: 0,
            event,
            phase: Phase::New,
            stream: name("cam0"),
            model: name("padim"),
            label: name("scratch"),
            score: 0.9,
            peak: 0.95,
            threshold: 0.5,
            start_pts_ns: 1_000,
            pts_ns: 2_000 + event,
            captured_at_ns: 1_700_000_000_000_000_000,
            decided_at_ns: 1_700_000_000_010_000_000,
            regions,
            threshold_rule: Some(name("cfar-chi2")),
            snapshot: Some(
                heapless::String::try_from(format!("cam0-{event}-7.heatmap.png").as_str()).unwrap(),
            ),
            evidence: None,
            modalities: None,
        }
    }

    /// Small segments so that tests rotate after a dozen alerts; acks persisted on every ack.
    fn small() -> JournalConfig {
        JournalConfig {
            segment_bytes: MIN_SEGMENT_BYTES,
            max_bytes: 2 * (MIN_SEGMENT_BYTES + MAX_RECORD_BYTES),
            ack_sync_interval: Duration::ZERO,
        }
    }

    fn append_n(journal: &mut Journal, n: u64) -> Vec<Alert> {
        (0..n)
            .map(|event| {
                let mut a = alert(event);
                let id = journal.append(&mut a).unwrap();
                assert_eq!(a.id, id);
                a
            })
            .collect()
    }

    fn pending_ids(journal: &Journal, sink: &str) -> Vec<u64> {
        journal
            .pending(sink)
            .unwrap()
            .map(|r| r.unwrap().id)
            .collect()
    }

    fn segment_files(dir: &Path) -> Vec<PathBuf> {
        list_segments(dir)
            .unwrap()
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }

    /// Byte offsets of the records in a segment file.
    fn record_offsets(path: &Path) -> Vec<usize> {
        let bytes = fs::read(path).unwrap();
        let mut offsets = Vec::new();
        let mut offset = SEGMENT_HEADER_BYTES as usize;
        while offset < bytes.len() {
            offsets.push(offset);
            offset = parse_record(&bytes, offset).unwrap().end;
        }
        offsets
    }

    fn append_bytes(path: &Path, bytes: &[u8]) {
        let mut file = OpenOptions::new().append(true).open(path).unwrap();
        file.write_all(bytes).unwrap();
    }

    fn flip_byte(path: &Path, at: usize) {
        let mut bytes = fs::read(path).unwrap();
        bytes[at] ^= 0x55;
        fs::write(path, bytes).unwrap();
    }

    #[test]
    fn crc32_matches_the_reference_vector() {
        assert_eq!(crc32_update(0, b"123456789"), 0xCBF4_3926);
        assert_eq!(
            crc32_update(crc32_update(0, b"1234"), b"56789"),
            0xCBF4_3926
        );
        assert_eq!(crc32_update(0, b""), 0);
    }

    #[test]
    fn append_ack_reopen_replay() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), &["mqtt"]).unwrap();
        let alerts = append_n(&mut journal, 5);
        let replayed: Vec<Alert> = journal
            .pending("mqtt")
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(replayed, alerts);

        journal.ack("mqtt", alerts[2].id).unwrap();
        journal.close().unwrap();

        let journal = Journal::open(dir.path(), &["mqtt"]).unwrap();
        assert_eq!(journal.acked("mqtt"), Some(alerts[2].id));
        let replayed: Vec<Alert> = journal
            .pending("mqtt")
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(replayed, alerts[3..]);
    }

    #[test]
    fn ids_are_monotonic_across_reopen_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open_with(dir.path(), &["a"], small()).unwrap();
        let first = append_n(&mut journal, 3);
        let ids: Vec<u64> = first.iter().map(|a| a.id).collect();
        assert_eq!(ids, [ids[0], ids[0] + 1, ids[0] + 2]);
        drop(journal);

        let mut journal = Journal::open_with(dir.path(), &["a"], small()).unwrap();
        assert_eq!(journal.next_id(), ids[2] + 1);
        let more = append_n(&mut journal, 40);
        assert_eq!(more[0].id, ids[2] + 1);
        assert!(segment_files(dir.path()).len() > 2);

        // Everything delivered and compacted: only the (non-empty) active segment is left,
        // and it still carries the id sequence across a reopen.
        let last = more[39].id;
        journal.ack("a", last).unwrap();
        journal.compact().unwrap();
        assert_eq!(segment_files(dir.path()).len(), 1);
        drop(journal);
        let mut journal = Journal::open_with(dir.path(), &["a"], small()).unwrap();
        assert!(pending_ids(&journal, "a").is_empty());
        assert_eq!(journal.append(&mut alert(99)).unwrap(), last + 1);
        drop(journal);

        // A wiped directory starts from the clock, past every id handed out before.
        for path in segment_files(dir.path()) {
            fs::remove_file(path).unwrap();
        }
        fs::remove_file(dir.path().join(ACKS_FILE)).unwrap();
        let mut journal = Journal::open_with(dir.path(), &["a"], small()).unwrap();
        assert!(journal.append(&mut alert(100)).unwrap() > last + 1);
    }

    #[test]
    fn torn_tail_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), &["a"]).unwrap();
        let alerts = append_n(&mut journal, 3);
        let next = journal.next_id();
        drop(journal);
        let segment = segment_files(dir.path()).pop().unwrap();
        let good_len = fs::metadata(&segment).unwrap().len();

        // Power cut halfway through the next append.
        let mut record = Vec::new();
        let mut torn = alert(3);
        torn.id = next;
        encode_record(&mut record, &torn).unwrap();
        append_bytes(&segment, &record[..record.len() / 2]);

        let mut journal = Journal::open(dir.path(), &["a"]).unwrap();
        assert_eq!(fs::metadata(&segment).unwrap().len(), good_len);
        let ids: Vec<u64> = alerts.iter().map(|a| a.id).collect();
        assert_eq!(pending_ids(&journal, "a"), ids);
        // The torn record's id was never handed out, so it is assigned again.
        assert_eq!(journal.append(&mut alert(3)).unwrap(), next);
        drop(journal);
        let journal = Journal::open(dir.path(), &["a"]).unwrap();
        assert_eq!(pending_ids(&journal, "a").len(), 4);
    }

    #[test]
    fn torn_tail_with_full_length_or_zeros_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), &["a"]).unwrap();
        append_n(&mut journal, 2);
        let next = journal.next_id();
        drop(journal);
        let segment = segment_files(dir.path()).pop().unwrap();
        let good_len = fs::metadata(&segment).unwrap().len();

        // The size reached the disk but the data did not: a complete record with a bad CRC.
        let mut record = Vec::new();
        let mut torn = alert(2);
        torn.id = next;
        encode_record(&mut record, &torn).unwrap();
        let last = record.len() - 1;
        record[last] ^= 0xff;
        append_bytes(&segment, &record);
        drop(Journal::open(dir.path(), &["a"]).unwrap());
        assert_eq!(fs::metadata(&segment).unwrap().len(), good_len);

        // Zeros where the record should be.
        append_bytes(&segment, &[0u8; 700]);
        let journal = Journal::open(dir.path(), &["a"]).unwrap();
        assert_eq!(fs::metadata(&segment).unwrap().len(), good_len);
        assert_eq!(pending_ids(&journal, "a").len(), 2);
    }

    #[test]
    fn corrupt_middle_record_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), &["a"]).unwrap();
        append_n(&mut journal, 5);
        drop(journal);
        let segment = segment_files(dir.path()).pop().unwrap();
        let offsets = record_offsets(&segment);
        let len = fs_len(&segment);
        flip_byte(&segment, offsets[1] + 40);

        match Journal::open(dir.path(), &["a"]) {
            Err(JournalError::Corrupt { path, offset, .. }) => {
                assert_eq!(path, segment);
                assert_eq!(offset, offsets[1] as u64);
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        // Nothing was truncated: the damage is left for a human to look at.
        assert_eq!(fs_len(&segment), len);
    }

    #[test]
    fn corrupt_length_in_the_middle_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), &["a"]).unwrap();
        append_n(&mut journal, 5);
        drop(journal);
        let segment = segment_files(dir.path()).pop().unwrap();
        let offsets = record_offsets(&segment);
        // A length pointing past the end of the file must not pass for a torn tail.
        let mut bytes = fs::read(&segment).unwrap();
        bytes[offsets[2]..offsets[2] + 4].copy_from_slice(&MAX_RECORD_PAYLOAD.to_le_bytes());
        fs::write(&segment, bytes).unwrap();
        assert!(matches!(
            Journal::open(dir.path(), &["a"]),
            Err(JournalError::Corrupt { offset, .. }) if offset == offsets[2] as u64
        ));
    }

    #[test]
    fn corrupt_record_in_an_older_segment_fails_the_replay() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open_with(dir.path(), &["a"], small()).unwrap();
        append_n(&mut journal, 30);
        drop(journal);
        let oldest = segment_files(dir.path()).remove(0);
        let offsets = record_offsets(&oldest);
        flip_byte(&oldest, offsets[3] + 20);

        let journal = Journal::open_with(dir.path(), &["a"], small()).unwrap();
        let results: Vec<_> = journal.pending("a").unwrap().collect();
        assert_eq!(
            results.len(),
            4,
            "three good records, then the error, then nothing"
        );
        assert!(results[..3].iter().all(Result::is_ok));
        assert!(matches!(
            &results[3],
            Err(JournalError::Corrupt { path, offset, .. })
                if *path == oldest && *offset == offsets[3] as u64
        ));
    }

    #[test]
    fn truncated_older_segment_fails_the_replay() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open_with(dir.path(), &["a"], small()).unwrap();
        append_n(&mut journal, 30);
        drop(journal);
        // Lose the last record of a sealed segment at a record boundary: only the next
        // segment's header can tell.
        let oldest = segment_files(dir.path()).remove(0);
        let offsets = record_offsets(&oldest);
        let file = OpenOptions::new().write(true).open(&oldest).unwrap();
        file.set_len(*offsets.last().unwrap() as u64).unwrap();

        let journal = Journal::open_with(dir.path(), &["a"], small()).unwrap();
        let err = journal.pending("a").unwrap().find_map(Result::err);
        assert!(
            matches!(&err, Some(JournalError::Corrupt { detail, .. }) if detail.contains("missing")),
            "{err:?}"
        );
    }

    #[test]
    fn two_sinks_keep_their_own_positions() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), &["mqtt", "file"]).unwrap();
        let ids: Vec<u64> = append_n(&mut journal, 6).iter().map(|a| a.id).collect();
        journal.ack("mqtt", ids[4]).unwrap();
        journal.ack("file", ids[1]).unwrap();
        // Cumulative: an older ack does not move the position back.
        journal.ack("file", ids[0]).unwrap();
        assert_eq!(pending_ids(&journal, "mqtt"), ids[5..]);
        assert_eq!(pending_ids(&journal, "file"), ids[2..]);
        assert!(matches!(
            journal.ack("nope", ids[0]),
            Err(JournalError::UnknownSink { .. })
        ));
        assert!(matches!(
            journal.pending("nope"),
            Err(JournalError::UnknownSink { .. })
        ));
        assert!(matches!(
            journal.ack("mqtt", ids[5] + 1),
            Err(JournalError::AckBeyondEnd { .. })
        ));
        journal.close().unwrap();

        let journal = Journal::open(dir.path(), &["mqtt", "file"]).unwrap();
        assert_eq!(pending_ids(&journal, "mqtt"), ids[5..]);
        assert_eq!(pending_ids(&journal, "file"), ids[2..]);
    }

    #[test]
    fn new_sink_gets_everything_held_and_removed_sink_is_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), &["old"]).unwrap();
        let ids: Vec<u64> = append_n(&mut journal, 3).iter().map(|a| a.id).collect();
        journal.ack("old", ids[2]).unwrap();
        journal.close().unwrap();

        let journal = Journal::open(dir.path(), &["old", "new"]).unwrap();
        assert_eq!(journal.acked("new"), Some(0));
        assert_eq!(pending_ids(&journal, "new"), ids);
        assert!(pending_ids(&journal, "old").is_empty());
        journal.close().unwrap();

        let journal = Journal::open(dir.path(), &["new"]).unwrap();
        assert_eq!(journal.acked("old"), None);
        journal.close().unwrap();
        assert!(!read_acks(dir.path()).unwrap().contains_key("old"));
    }

    #[test]
    fn compaction_deletes_only_fully_acknowledged_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open_with(dir.path(), &["a", "b"], small()).unwrap();
        let alerts = append_n(&mut journal, 40);
        let files = segment_files(dir.path());
        assert!(files.len() >= 3, "{files:?}");
        let per_segment = record_offsets(&files[0]).len();
        let first_of_second = alerts[per_segment].id;

        // b is one record into the second segment: only the first may go.
        journal.ack("a", alerts[39].id).unwrap();
        journal.ack("b", first_of_second).unwrap();
        let used = journal.used_bytes();
        let oldest_len = fs_len(&files[0]);
        let freed = journal.compact().unwrap();
        assert_eq!(freed, oldest_len);
        assert_eq!(journal.used_bytes(), used - freed);
        assert_eq!(segment_files(dir.path()), files[1..]);
        let expected: Vec<u64> = alerts[per_segment + 1..].iter().map(|a| a.id).collect();
        assert_eq!(pending_ids(&journal, "b"), expected);

        // Nothing more to do until b moves.
        assert_eq!(journal.compact().unwrap(), 0);
        journal.ack("b", alerts[39].id).unwrap();
        journal.compact().unwrap();
        assert_eq!(segment_files(dir.path()), [files.last().unwrap().clone()]);
        assert!(pending_ids(&journal, "b").is_empty());
    }

    fn fs_len(path: &Path) -> u64 {
        fs::metadata(path).unwrap().len()
    }

    #[test]
    fn full_when_over_the_limit_then_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let config = small();
        let mut journal = Journal::open_with(dir.path(), &["slow"], config.clone()).unwrap();
        let mut accepted = Vec::new();
        let full = loop {
            let mut a = alert(accepted.len() as u64);
            match journal.append(&mut a) {
                Ok(id) => accepted.push(id),
                Err(err) => break (err, a),
            }
            assert!(accepted.len() < 1000, "never full");
        };
        let (err, refused) = full;
        assert!(matches!(err, JournalError::Full { limit, .. } if limit == config.max_bytes));
        assert_eq!(refused.id, 0, "a refused alert is left untouched");
        assert!(journal.used_bytes() <= config.max_bytes);
        let next = journal.next_id();
        // Still full on retry, and the id is not consumed.
        assert!(matches!(
            journal.append(&mut alert(0)),
            Err(JournalError::Full { .. })
        ));
        assert_eq!(journal.next_id(), next);
        assert_eq!(
            pending_ids(&journal, "slow"),
            accepted,
            "everything accepted is held"
        );

        // The sink catches up; the journal makes room on its own.
        journal.ack("slow", *accepted.last().unwrap()).unwrap();
        assert_eq!(journal.append(&mut alert(0)).unwrap(), next);
        assert_eq!(pending_ids(&journal, "slow"), [next]);
    }

    #[test]
    fn crash_without_close_replays_unpersisted_acks_as_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let lazy = JournalConfig {
            ack_sync_interval: Duration::from_secs(3600),
            ..JournalConfig::default()
        };
        let mut journal = Journal::open_with(dir.path(), &["a"], lazy.clone()).unwrap();
        let ids: Vec<u64> = append_n(&mut journal, 5).iter().map(|a| a.id).collect();
        journal.ack("a", ids[1]).unwrap();
        journal.sync_acks().unwrap();
        journal.ack("a", ids[3]).unwrap();
        // Crash: the last ack never reached the disk, and no close or flush runs.
        journal.acks_dirty = false;
        drop(journal);

        let mut journal = Journal::open_with(dir.path(), &["a"], lazy.clone()).unwrap();
        // ids[2..4] were delivered but come again: duplicates, which sinks drop by id.
        assert_eq!(pending_ids(&journal, "a"), ids[2..]);
        assert_eq!(journal.append(&mut alert(5)).unwrap(), ids[4] + 1);
        drop(journal);

        // A rotation cut before the new segment's header was durable.
        let journal = Journal::open_with(dir.path(), &["a"], lazy.clone()).unwrap();
        let next = journal.next_id();
        drop(journal);
        fs::write(dir.path().join(segment_name(next)), b"VIGJ").unwrap();
        let mut journal = Journal::open_with(dir.path(), &["a"], lazy).unwrap();
        assert_eq!(segment_files(dir.path()).len(), 1);
        assert_eq!(journal.append(&mut alert(6)).unwrap(), next);
        assert_eq!(pending_ids(&journal, "a").len(), 5);
    }

    #[test]
    fn acks_ahead_of_the_journal_never_reuse_ids() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), &["a"]).unwrap();
        let ids: Vec<u64> = append_n(&mut journal, 2).iter().map(|a| a.id).collect();
        drop(journal);
        // As if the disk lost the last records after a sink had delivered and acked them.
        let acks = BTreeMap::from([("a".to_string(), ids[1] + 10), ("b".to_string(), 0)]);
        write_acks(dir.path(), &acks).unwrap();

        let mut journal = Journal::open(dir.path(), &["a", "b"]).unwrap();
        assert_eq!(journal.append(&mut alert(7)).unwrap(), ids[1] + 11);
        assert_eq!(pending_ids(&journal, "a"), [ids[1] + 11]);
        drop(journal);
        // The gap between segments is recorded, so it is not mistaken for lost records.
        let journal = Journal::open(dir.path(), &["a", "b"]).unwrap();
        assert_eq!(pending_ids(&journal, "b"), [ids[0], ids[1], ids[1] + 11]);
    }

    #[test]
    fn an_alert_that_would_not_replay_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), &["a"]).unwrap();
        let next = journal.next_id();
        let mut bad = alert(0);
        bad.score = f32::NAN;
        assert!(matches!(
            journal.append(&mut bad),
            Err(JournalError::Encode { id, .. }) if id == next
        ));
        assert_eq!(bad.id, 0);
        assert_eq!(journal.next_id(), next);
        assert_eq!(journal.append(&mut alert(1)).unwrap(), next);
        assert_eq!(pending_ids(&journal, "a"), [next]);
    }

    #[test]
    fn a_second_handle_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path(), &["a"]).unwrap();
        assert!(matches!(
            Journal::open(dir.path(), &["a"]),
            Err(JournalError::Locked { .. })
        ));
        drop(journal);
        Journal::open(dir.path(), &["a"]).unwrap();
    }

    #[test]
    fn bad_configuration_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let tiny = JournalConfig {
            segment_bytes: 100,
            ..JournalConfig::default()
        };
        assert!(matches!(
            Journal::open_with(dir.path(), &["a"], tiny),
            Err(JournalError::Config { .. })
        ));
        let cramped = JournalConfig {
            max_bytes: MIN_SEGMENT_BYTES,
            ..small()
        };
        assert!(matches!(
            Journal::open_with(dir.path(), &["a"], cramped),
            Err(JournalError::Config { .. })
        ));
        assert!(matches!(
            Journal::open(dir.path(), &["a", "a"]),
            Err(JournalError::Config { .. })
        ));
    }
}
