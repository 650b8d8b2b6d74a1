//! The log writer thread: lines out of chunks, records into files, rotation, and what
//! happens when a write fails.
//!
//! Each (stage, stream) of a job keeps its incomplete last line until the newline comes,
//! so stdout and stderr never mix inside a record. Formatted records collect in one
//! buffer per file, written when it holds 256 KiB or when no more output is waiting (a
//! `tail -f` sees lines as they come). A line still incomplete after a second without
//! output, or longer than [`PIECE`], is written as a `+` record (it continues in the
//! next one), so memory stays bounded and a prompt without newline still shows.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use memchr::{memchr, memchr_iter, memrchr};

use crate::config::LogFormat;
use crate::output::Stream;

use super::clock::{LocalClock, LocalTime, WallClock};
use super::format::{self, Mark, Origin, Stamp};
use super::{JobLog, LogPlan, LogReport, Msg, Problem, Shared};

/// An incomplete line longer than this is written as a piece (a `+` record).
pub const PIECE: usize = 64 * 1024;
/// A file's formatted records are written once they reach this size.
const FLUSH_BYTES: usize = 256 * 1024;
/// A file's record buffer is kept between writes up to this capacity.
const KEEP_BUFFER: usize = 64 * 1024;
/// An incomplete line waits this long for its newline before it is written as a piece.
const PARTIAL_PATIENCE: Duration = Duration::from_secs(1);

struct Partial {
    stage: usize,
    stream: Stream,
    text: Vec<u8>,
    at: Instant,
}

struct JobFile {
    log: JobLog,
    /// None after a rotation failed to open the new file.
    file: Option<File>,
    /// Bytes in the current file.
    size: u64,
    /// Formatted records not yet written.
    out: Vec<u8>,
    partials: Vec<Partial>,
    /// Drains open now.
    open: usize,
    runs: u32,
    /// The date of the last date line in the current file.
    day: Option<(i32, u32, u32, i32)>,
    written: u64,
    lost: u64,
    /// Lost since the last note about it (a note is due once writing works again).
    lost_unnoted: u64,
    error: Option<String>,
    /// The last write failed.
    failing: bool,
    /// Rotation failed once: the file grows instead of being rotated again and again.
    no_rotation: bool,
}

pub(super) struct Writer {
    format: LogFormat,
    max_size: Option<u64>,
    keep: u32,
    files: Vec<Option<JobFile>>,
    shared: Arc<Shared>,
    clock: WallClock,
    local: LocalClock,
    /// The last stamp made, for the millisecond it was made for.
    stamp: Option<(i64, Stamp)>,
    /// When incomplete lines were last looked at.
    stale_checked: Instant,
}

impl Writer {
    pub(super) fn new(plan: LogPlan, files: Vec<Option<(File, u64)>>, shared: Arc<Shared>) -> Self {
        let jobs = plan
            .jobs
            .into_iter()
            .zip(files)
            .map(|(log, file)| {
                let (log, (file, size)) = (log?, file?);
                Some(JobFile {
                    log,
                    file: Some(file),
                    size,
                    out: Vec::new(),
                    partials: Vec::new(),
                    open: 0,
                    runs: 0,
                    day: None,
                    written: 0,
                    lost: 0,
                    lost_unnoted: 0,
                    error: None,
                    failing: false,
                    no_rotation: false,
                })
            })
            .collect();
        Writer {
            format: plan.format,
            max_size: plan.max_size,
            keep: plan.keep,
            files: jobs,
            shared,
            clock: WallClock::now(),
            local: LocalClock::new(),
            stamp: None,
            stale_checked: Instant::now(),
        }
    }

    pub(super) fn run(mut self, receiver: mpsc::Receiver<Msg>) -> Vec<LogReport> {
        loop {
            let waiting = self.has_partials();
            let msg = if waiting {
                match receiver.recv_timeout(PARTIAL_PATIENCE) {
                    Ok(msg) => Some(msg),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match receiver.recv() {
                    Ok(msg) => Some(msg),
                    Err(_) => break,
                }
            };
            let Some(mut msg) = msg else {
                self.write_stale_partials(Instant::now());
                self.flush_all();
                continue;
            };
            // Take everything already waiting before writing: few, large writes.
            loop {
                if matches!(msg, Msg::Finish) {
                    return self.finish();
                }
                self.handle(msg);
                match receiver.try_recv() {
                    Ok(next) => msg = next,
                    Err(_) => break,
                }
            }
            // Busy with other jobs' output, a quiet job's open line still gets written
            // (looked for four times a second: the check visits every file).
            let now = Instant::now();
            if now.saturating_duration_since(self.stale_checked) >= PARTIAL_PATIENCE / 4 {
                self.stale_checked = now;
                if self.has_partials() {
                    self.write_stale_partials(now);
                }
            }
            self.flush_all();
        }
        self.finish()
    }

    fn has_partials(&self) -> bool {
        self.files
            .iter()
            .flatten()
            .any(|f| f.partials.iter().any(|p| !p.text.is_empty()))
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Open { job } => {
                let Some(file) = self.file(job) else { return };
                file.open += 1;
                if file.open == 1 {
                    file.runs += 1;
                    let text = if file.runs == 1 {
                        format!(
                            "run 1 started: {}",
                            crate::stdio::visible_inline(&file.log.command)
                        )
                    } else {
                        format!("run {} started", file.runs)
                    };
                    self.note(job, Instant::now(), &text);
                }
            }
            Msg::Chunk {
                job,
                stage,
                stream,
                at,
                data,
            } => {
                self.chunk(job, stage, stream, at, &data);
                self.shared.taken(job, data.len());
            }
            Msg::Close {
                job,
                stage,
                stream,
                at,
            } => {
                self.write_partial(job, stage, stream, at);
                if let Some(file) = self.file(job) {
                    file.open = file.open.saturating_sub(1);
                }
            }
            Msg::Note { job, at, text } => {
                self.note(job, at, &text);
            }
            Msg::Gap {
                job,
                at,
                bytes,
                lines,
            } => self.gap(job, at, bytes, lines),
            Msg::Finish => {}
        }
    }

    fn file(&mut self, job: usize) -> Option<&mut JobFile> {
        self.files.get_mut(job).and_then(Option::as_mut)
    }

    /// Job `job`'s file with what writing to it needs (None: the job keeps no log).
    fn out(&mut self, job: usize) -> Option<Out<'_>> {
        Some(Out {
            file: self.files.get_mut(job)?.as_mut()?,
            format: self.format,
            max_size: self.max_size,
            keep: self.keep,
            shared: &self.shared,
            job,
        })
    }

    fn stamp(&mut self, at: Instant) -> Stamp {
        let ms = self.clock.unix_millis(at);
        if let Some((cached, stamp)) = &self.stamp
            && *cached == ms
        {
            return stamp.clone();
        }
        let local = self.local.at_millis(ms);
        let utc = match self.format {
            LogFormat::Jsonl => {
                humantime::format_rfc3339_millis(self.clock.system_time(at)).to_string()
            }
            LogFormat::Plain => String::new(),
        };
        let stamp = Stamp { local, utc };
        self.stamp = Some((ms, stamp.clone()));
        stamp
    }

    fn chunk(&mut self, job: usize, stage: usize, stream: Stream, at: Instant, data: &[u8]) {
        let stamp = self.stamp(at);
        let Some(mut w) = self.out(job) else { return };
        let origin = Origin {
            stage: w.file.log.pipeline.then_some(stage),
            mark: Mark::Out(stream),
        };
        w.date(&stamp);
        let index = w.partial_index(stage, stream);
        let mut rest = data;
        if !w.file.partials[index].text.is_empty() {
            match memchr(b'\n', rest) {
                Some(nl) => {
                    let mut line = std::mem::take(&mut w.file.partials[index].text);
                    line.extend_from_slice(&rest[..nl]);
                    w.record(&stamp, origin, true, &line);
                    line.clear();
                    w.file.partials[index].text = line;
                    rest = &rest[nl + 1..];
                }
                None => {
                    w.hold(index, &stamp, origin, rest, at);
                    return;
                }
            }
        }
        let body_len = memrchr(b'\n', rest).map_or(0, |nl| nl + 1);
        let (body, tail) = rest.split_at(body_len);
        w.lines(&stamp, origin, body);
        w.hold(index, &stamp, origin, tail, at);
        if w.file.out.len() >= FLUSH_BYTES {
            w.flush();
        }
    }

    /// Writes what is left of `stage`'s `stream` (its end, or a gap): a `+` record.
    fn write_partial(&mut self, job: usize, stage: usize, stream: Stream, at: Instant) {
        let stamp = self.stamp(at);
        let Some(mut w) = self.out(job) else { return };
        let Some(index) = w
            .file
            .partials
            .iter()
            .position(|p| p.stage == stage && p.stream == stream)
        else {
            return;
        };
        if w.file.partials[index].text.is_empty() {
            return;
        }
        let origin = Origin {
            stage: w.file.log.pipeline.then_some(stage),
            mark: Mark::Out(stream),
        };
        w.date(&stamp);
        let text = std::mem::take(&mut w.file.partials[index].text);
        w.record(&stamp, origin, false, &text);
    }

    fn write_stale_partials(&mut self, now: Instant) {
        let mut stale = Vec::new();
        for (job, file) in self.files.iter().enumerate() {
            let Some(file) = file else { continue };
            for p in &file.partials {
                if !p.text.is_empty() && now.saturating_duration_since(p.at) >= PARTIAL_PATIENCE {
                    stale.push((job, p.stage, p.stream, p.at));
                }
            }
        }
        for (job, stage, stream, at) in stale {
            self.write_partial(job, stage, stream, at);
        }
    }

    fn note(&mut self, job: usize, at: Instant, text: &str) {
        let stamp = self.stamp(at);
        let Some(mut w) = self.out(job) else { return };
        w.date(&stamp);
        w.note(&stamp, text);
    }

    fn gap(&mut self, job: usize, at: Instant, bytes: u64, lines: u64) {
        let open: Vec<(usize, Stream)> = match self.file(job) {
            Some(file) => file.partials.iter().map(|p| (p.stage, p.stream)).collect(),
            None => return,
        };
        // The lines around the gap are cut: what was held is written as a piece.
        for (stage, stream) in open {
            self.write_partial(job, stage, stream, at);
        }
        self.note(
            job,
            at,
            &format!(
                "{} ({lines} lines) of output are missing here: the disk did not keep up",
                crate::fmt::bytes(bytes)
            ),
        );
    }

    fn flush_all(&mut self) {
        for job in 0..self.files.len() {
            if let Some(mut w) = self.out(job)
                && !w.file.out.is_empty()
            {
                w.flush();
            }
        }
    }

    fn finish(mut self) -> Vec<LogReport> {
        let now = Instant::now();
        for job in 0..self.files.len() {
            let open: Vec<(usize, Stream)> = match self.file(job) {
                Some(file) => file.partials.iter().map(|p| (p.stage, p.stream)).collect(),
                None => continue,
            };
            for (stage, stream) in open {
                self.write_partial(job, stage, stream, now);
            }
            // Dropped after the last chunk that was taken: no chunk brought its note.
            if let Some(state) = self.shared.jobs.get(job) {
                let bytes = state.gap_bytes.swap(0, Ordering::Relaxed);
                let lines = state.gap_lines.swap(0, Ordering::Relaxed);
                if bytes > 0 {
                    self.gap(job, now, bytes, lines);
                }
            }
        }
        self.flush_all();
        self.files
            .iter()
            .enumerate()
            .filter_map(|(job, file)| {
                let file = file.as_ref()?;
                let state = self.shared.jobs.get(job)?;
                Some(LogReport {
                    name: file.log.name.clone(),
                    path: file.log.path.clone(),
                    written: file.written,
                    dropped_bytes: state.dropped_bytes.load(Ordering::Relaxed),
                    dropped_lines: state.dropped_lines.load(Ordering::Relaxed),
                    lost_bytes: file.lost,
                    error: file.error.clone(),
                })
            })
            .collect()
    }
}

/// One job's file while records are added to it.
struct Out<'a> {
    file: &'a mut JobFile,
    format: LogFormat,
    max_size: Option<u64>,
    keep: u32,
    shared: &'a Shared,
    job: usize,
}

impl Out<'_> {
    fn report(&self, text: String) {
        (self.shared.reporter)(Problem {
            job: Some(self.job),
            text,
        });
    }

    fn partial_index(&mut self, stage: usize, stream: Stream) -> usize {
        if let Some(i) = self
            .file
            .partials
            .iter()
            .position(|p| p.stage == stage && p.stream == stream)
        {
            return i;
        }
        self.file.partials.push(Partial {
            stage,
            stream,
            text: Vec::new(),
            at: Instant::now(),
        });
        self.file.partials.len() - 1
    }

    /// Keeps `tail` (no newline) as the incomplete line; what exceeds [`PIECE`] goes out
    /// as `+` records.
    fn hold(&mut self, index: usize, stamp: &Stamp, origin: Origin, tail: &[u8], at: Instant) {
        if tail.is_empty() {
            return;
        }
        let mut text = std::mem::take(&mut self.file.partials[index].text);
        text.extend_from_slice(tail);
        let mut start = 0;
        while text.len() - start > PIECE {
            let piece = text[start..start + PIECE].to_vec();
            self.record(stamp, origin, false, &piece);
            start += PIECE;
        }
        text.drain(..start);
        let partial = &mut self.file.partials[index];
        partial.text = text;
        partial.at = at;
    }

    /// A date line at the top of each file and when the local date changes (plain).
    fn date(&mut self, stamp: &Stamp) {
        if self.format != LogFormat::Plain || self.file.day == Some(stamp.local.day_key()) {
            return;
        }
        self.file.day = Some(stamp.local.day_key());
        let text = date_line(&stamp.local);
        self.note(stamp, &text);
    }

    fn note(&mut self, stamp: &Stamp, text: &str) {
        let origin = Origin {
            stage: None,
            mark: Mark::Note,
        };
        self.record(stamp, origin, true, text.as_bytes());
    }

    fn record(&mut self, stamp: &Stamp, origin: Origin, eol: bool, text: &[u8]) {
        if self.max_size.is_some() {
            let mut one = Vec::with_capacity(text.len() + 32);
            format::record(&mut one, self.format, stamp, origin, eol, text);
            self.rotate_for(one.len() as u64, stamp);
            self.file.out.extend_from_slice(&one);
        } else {
            format::record(&mut self.file.out, self.format, stamp, origin, eol, text);
        }
    }

    /// Complete lines (`body` ends with `\n`), formatted in bulk unless a rotation may
    /// fall inside them.
    fn lines(&mut self, stamp: &Stamp, origin: Origin, body: &[u8]) {
        if body.is_empty() {
            return;
        }
        let fits = match self.max_size {
            None => true,
            Some(max) => {
                // Plain records are exact; JSON grows with escaping: go line by line.
                let count = memchr_iter(b'\n', body).count();
                self.format == LogFormat::Plain
                    && self.file.size
                        + self.file.out.len() as u64
                        + (body.len() + count * (format::plain_overhead(origin) - 1)) as u64
                        <= max
            }
        };
        if fits {
            format::lines(&mut self.file.out, self.format, stamp, origin, body);
            return;
        }
        let mut start = 0;
        for nl in memchr_iter(b'\n', body) {
            self.record(stamp, origin, true, &body[start..nl]);
            start = nl + 1;
        }
    }

    /// Rotates first when a record of `len` bytes would take the file past the limit
    /// (a file holds at least one record, however large).
    fn rotate_for(&mut self, len: u64, stamp: &Stamp) {
        let Some(max) = self.max_size else { return };
        let used = self.file.size + self.file.out.len() as u64;
        if used == 0 || used + len <= max || self.file.no_rotation {
            return;
        }
        self.flush();
        if let Err(err) = self.rotate() {
            self.file.no_rotation = true;
            self.report(format!(
                "cannot rotate {}: {err}; it grows past log_max_size from now on",
                self.file.log.path.display()
            ));
            return;
        }
        // The new file starts with its date and where the earlier lines went.
        self.file.day = None;
        let earlier = if self.keep == 0 {
            "rotated: earlier output was removed (log_keep = 0)".to_string()
        } else {
            format!(
                "rotated: earlier output is in {}",
                numbered(&self.file.log.path, 1).display()
            )
        };
        let origin = Origin {
            stage: None,
            mark: Mark::Note,
        };
        if self.format == LogFormat::Plain {
            self.file.day = Some(stamp.local.day_key());
            let date = date_line(&stamp.local);
            format::record(
                &mut self.file.out,
                self.format,
                stamp,
                origin,
                true,
                date.as_bytes(),
            );
        }
        format::record(
            &mut self.file.out,
            self.format,
            stamp,
            origin,
            true,
            earlier.as_bytes(),
        );
    }

    /// `NAME.log` becomes `NAME.log.1`, `.1` becomes `.2` … up to `log_keep`; a new
    /// `NAME.log` is opened.
    fn rotate(&mut self) -> std::io::Result<()> {
        // Renamed while open (the old name keeps its handle until the new file is open),
        // so a failure leaves the current file in use.
        let path = self.file.log.path.clone();
        if self.keep == 0 {
            std::fs::remove_file(&path)?;
        } else {
            let _ = std::fs::remove_file(numbered(&path, self.keep));
            for n in (1..self.keep).rev() {
                let from = numbered(&path, n);
                if from.exists() {
                    std::fs::rename(&from, numbered(&path, n + 1))?;
                }
            }
            std::fs::rename(&path, numbered(&path, 1))?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        self.file.file = Some(file);
        self.file.size = 0;
        Ok(())
    }

    /// Writes the formatted records. A failure loses them: counted, said once per
    /// error, and noted in the log when a write works again.
    fn flush(&mut self) {
        if self.file.out.is_empty() {
            return;
        }
        let mut note_len = 0;
        if self.file.failing && self.file.lost_unnoted > 0 {
            // Retry with a note of what was lost in front.
            let mut note = Vec::new();
            let lost = crate::fmt::bytes(self.file.lost_unnoted);
            let why = self.file.error.clone().unwrap_or_default();
            let text = format!("{lost} of this log could not be written here ({why})");
            let stamp_now = Stamp {
                local: LocalClock::new().at_millis(WallClock::now().unix_millis(Instant::now())),
                utc: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            };
            let origin = Origin {
                stage: None,
                mark: Mark::Note,
            };
            format::record(
                &mut note,
                self.format,
                &stamp_now,
                origin,
                true,
                text.as_bytes(),
            );
            note_len = note.len();
            note.extend_from_slice(&self.file.out);
            self.file.out = note;
        }
        let out = std::mem::take(&mut self.file.out);
        let mut done = 0;
        let mut failure = None;
        match self.file.file.as_mut() {
            None => failure = Some(std::io::Error::other("the file is not open")),
            Some(f) => {
                while done < out.len() {
                    match f.write(&out[done..]) {
                        Ok(0) => {
                            failure = Some(ErrorKind::WriteZero.into());
                            break;
                        }
                        Ok(n) => {
                            done += n;
                            self.shared.progressed();
                        }
                        Err(err) if err.kind() == ErrorKind::Interrupted => {}
                        Err(err) => {
                            failure = Some(err);
                            break;
                        }
                    }
                }
            }
        }
        if failure.is_some() && done > 0 && out[done - 1] != b'\n' {
            // A short write cut a record: take the piece back, so the file stays whole
            // records (the cut record counts as lost).
            let whole = out[..done]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |nl| nl + 1);
            if let Some(f) = self.file.file.as_ref()
                && f.set_len(self.file.size + whole as u64).is_ok()
            {
                done = whole;
            }
        }
        self.file.size += done as u64;
        self.file.written += done as u64;
        // The note about an earlier loss is not the job's output: not counted again.
        let lost = (out.len() - done.max(note_len)) as u64;
        let mut out = out;
        out.clear();
        // A small buffer is kept for the next records; a flood's large one is freed, so
        // a thousand files that were busy once do not each hold one.
        if out.capacity() <= KEEP_BUFFER {
            self.file.out = out;
        }
        match failure {
            None => {
                if self.file.failing {
                    self.file.failing = false;
                    self.file.lost_unnoted = 0;
                    self.report(format!(
                        "writing {} again ({} of it could not be written)",
                        self.file.log.path.display(),
                        crate::fmt::bytes(self.file.lost)
                    ));
                }
            }
            Some(err) => {
                self.file.lost += lost;
                self.file.lost_unnoted += lost;
                let text = err.to_string();
                let new_error = self.file.error.as_deref() != Some(text.as_str());
                self.file.failing = true;
                self.file.error = Some(text.clone());
                if new_error {
                    self.report(format!(
                        "cannot write {}: {text}; what it loses is counted and noted in it once \
                         writing works again",
                        self.file.log.path.display()
                    ));
                }
            }
        }
    }
}

/// `web.log` → `web.log.3`.
fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn date_line(local: &LocalTime) -> String {
    format!("date {} {}", local.date_text(), local.offset_text())
}
