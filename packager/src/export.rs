//! One MP4 file of a replay: a GStreamer remux (qtdemux ! mp4mux) of the source rendition's
//! stored fMP4 segments, no re-encode, off the live path.
//!
//! Segments are read from the store one at a time and pushed into a bounded `appsrc`; the muxer
//! writes the media, then its index; `mp4_trim` writes the file once more with the index in
//! front (fast start) and its edit lists set (a clip cut to the frame). Memory holds one
//! segment, the queues and the sample tables; the file goes to the store with `put_file`. Each publish of a stream starts its own timeline (the
//! source's timestamps after one offset); the fragments' decode times are moved so that the
//! publishes follow one another in the file, as they do in the replay.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gst::prelude::*;
use gst_app::AppSrc;
use hawker_storage::{IMMUTABLE, ObjectMeta, Store};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::bmff;
use crate::mp4_trim::{self, Trim};
use crate::names;
use crate::playlist::Segment;
use crate::{PackagerConfig, PackagerError};

pub(crate) const MP4_META: ObjectMeta = ObjectMeta::new("video/mp4", IMMUTABLE);

/// Bytes waiting in the `appsrc` before the feeder waits for the pipeline.
const QUEUED_BYTES: u64 = 8 << 20;
/// Bytes a track's queue may hold while the muxer waits for the other track. Bounded in bytes
/// only: the muxer interleaves by time, and a queue bounded in time (the default, 1 s) can
/// stall the demuxer for good when one track runs ahead in the file (seen with real replays).
const TRACK_QUEUE_BYTES: u32 = 32 << 20;
/// Bytes read from the input at a time.
const READ_CHUNK: usize = 1 << 20;
/// A pipeline that takes nothing from the `appsrc` for this long has stalled.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mp4Export {
    /// Size of the stored file.
    pub bytes: u64,
    /// Media duration in the file.
    pub duration_ms: u64,
    /// False when the export stopped at a publish whose codec configuration differs from the
    /// first one's (a seller who changed resolution mid-stream): one MP4 track holds one
    /// configuration.
    pub complete: bool,
}

/// The store keys of the segments to remux, in order, each with its init segment's key.
pub(crate) fn source_segments(playback_id: &str, segments: &[Segment]) -> Vec<(String, String)> {
    let key = |name: String| names::key(playback_id, names::SOURCE_RENDITION, &name);
    segments.iter().map(|s| (key(names::init_uri(s.init)), key(names::segment_uri(s.msn)))).collect()
}

/// How many of `segments` (from the first) one MP4 holds: those whose init segments carry the
/// first one's codec configuration (one MP4 track holds one).
pub(crate) async fn one_configuration(
    store: &dyn Store,
    segments: &[(String, String)],
) -> Result<usize, PackagerError> {
    let (mut first, mut checked) = (None, "");
    for (i, (init_key, _)) in segments.iter().enumerate() {
        if init_key == checked {
            continue;
        }
        let init =
            store.get(init_key).await?.ok_or_else(|| PackagerError::Playlist(format!("{init_key} is missing")))?;
        let (_, entries) =
            bmff::tracks(&init.bytes).ok_or_else(|| PackagerError::Media(format!("{init_key}: no tracks")))?;
        match &first {
            None => first = Some(entries),
            Some(known) if *known != entries => return Ok(i),
            Some(_) => {}
        }
        checked = init_key;
    }
    Ok(segments.len())
}

/// Remuxes `segments` ((init key, segment key) pairs) into one fast-start MP4 stored at
/// `target`, in a child process when `config.remux_program` names one, with `trim` cut off
/// the ends by edit lists (see `mp4_trim`). The segments are read here, their decode times
/// moved, and written to the muxer's input as one fragmented stream; `config.work_dir` holds
/// the temporary files (on the data disk: never a RAM-backed /tmp).
pub(crate) async fn remux(
    store: Arc<dyn Store>,
    segments: Vec<(String, String)>,
    config: &PackagerConfig,
    target: &str,
    trim: Trim,
) -> Result<Mp4Export, PackagerError> {
    tokio::fs::create_dir_all(&config.work_dir).await.map_err(hawker_storage::StoreError::from)?;
    let files = TempFiles::new(&config.work_dir);
    let mut muxer = Muxer::start(config.remux_program.as_deref(), &files, trim)?;
    let fed = match muxer.input.take() {
        Some(mut input) => feed(store.as_ref(), &mut input, &segments).await,
        None => Err(PackagerError::Gst("the muxer has no input".into())),
    };
    // The input is closed here: the end of the stream for the muxer. A muxer that failed
    // closed its input too (`Closed`): it is waited for, and its error says why.
    let wait = matches!(fed, Ok(_) | Err(PackagerError::Closed(_)));
    let finished = muxer.finish(&files, wait).await;
    let complete = match (fed, finished) {
        (Ok(complete), Ok(())) => complete,
        (Ok(_) | Err(PackagerError::Closed(_)), Err(e)) | (Err(e), _) => return Err(e),
    };
    let duration =
        mp4_trim::movie_duration(&files.output).map_err(|e| PackagerError::Media(format!("the MP4: {e}")))?;
    let duration_ms = duration.as_millis() as u64;
    let bytes = tokio::fs::metadata(&files.output).await.map_err(hawker_storage::StoreError::from)?.len();
    store.put_file(target, &files.output, MP4_META).await?;
    Ok(Mp4Export { bytes, duration_ms, complete })
}

/// The muxer's output and its fast-start copy, removed when dropped (also on failure).
struct TempFiles {
    output: PathBuf,
    scratch: PathBuf,
}

impl TempFiles {
    fn new(dir: &Path) -> Self {
        let id: u64 = rand_id();
        Self { output: dir.join(format!("export-{id:016x}.mp4")), scratch: dir.join(format!("export-{id:016x}.part")) }
    }

    fn written(&self) -> u64 {
        written(&self.output, &self.scratch)
    }
}

impl Drop for TempFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.output);
        let _ = std::fs::remove_file(&self.scratch);
    }
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher
        .write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    hasher.finish()
}

type Input = Box<dyn AsyncWrite + Send + Unpin>;

/// Where the GStreamer remux runs: a child process (`<program> remux-mp4`), so that a fault in
/// a muxer (GStreamer 1.22's mp4mux has crashed a server here, once, in a CI run) ends one
/// export and never the server; or a blocking thread of this process.
struct Muxer {
    input: Option<Input>,
    running: Running,
}

enum Running {
    Child { child: tokio::process::Child, stderr: tokio::task::JoinHandle<String> },
    Thread(tokio::task::JoinHandle<Result<(), PackagerError>>),
}

/// The last bytes of a child's error output kept for its error.
const STDERR_KEPT: usize = 4096;

impl Muxer {
    fn start(program: Option<&Path>, files: &TempFiles, trim: Trim) -> Result<Self, PackagerError> {
        let io_err = |e: std::io::Error| PackagerError::Gst(format!("starting the remux: {e}"));
        match program {
            Some(program) => {
                let mut command = tokio::process::Command::new(program);
                command
                    .arg("remux-mp4")
                    .arg("--output")
                    .arg(&files.output)
                    .arg("--scratch")
                    .arg(&files.scratch)
                    .arg("--trim-head-ns")
                    .arg(trim.head_ns.to_string())
                    .arg("--trim-tail-ns")
                    .arg(trim.tail_ns.to_string())
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .kill_on_drop(true);
                // SAFETY: prctl only sets a flag of the child, between fork and exec.
                unsafe {
                    // A server killed outright takes its muxer with it (else it would mux the
                    // truncated input into the work folder the next start empties). The signal
                    // follows the spawning thread: a runtime worker, alive as long as the server.
                    command.pre_exec(|| {
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                        Ok(())
                    });
                }
                let mut child = command.spawn().map_err(io_err)?;
                let input = child.stdin.take().map(|i| Box::new(i) as Input);
                let mut pipe = child.stderr.take();
                // Drained all along (a child blocked on a full pipe would stall), the tail kept.
                let stderr = tokio::spawn(async move {
                    let mut kept = Vec::new();
                    let mut buf = [0u8; 4096];
                    while let Some(p) = pipe.as_mut() {
                        match p.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                kept.extend_from_slice(&buf[..n]);
                                let excess = kept.len().saturating_sub(STDERR_KEPT);
                                kept.drain(..excess);
                            }
                        }
                    }
                    String::from_utf8_lossy(&kept).trim().to_owned()
                });
                Ok(Self { input, running: Running::Child { child, stderr } })
            }
            None => {
                let (reader, writer) = std::io::pipe().map_err(io_err)?;
                let writer = tokio::net::unix::pipe::Sender::from_owned_fd(writer.into()).map_err(io_err)?;
                let (output, scratch) = (files.output.clone(), files.scratch.clone());
                let thread = tokio::task::spawn_blocking(move || remux_stream(reader, &output, &scratch, trim));
                Ok(Self { input: Some(Box::new(writer)), running: Running::Thread(thread) })
            }
        }
    }

    /// Closes the input and waits for the muxer to end; `wait` false: a child is killed at once
    /// (the input is incomplete). A backstop: a muxer that writes nothing for twice
    /// `STALL_TIMEOUT` is killed (it watches its own stalls).
    async fn finish(self, files: &TempFiles, wait: bool) -> Result<(), PackagerError> {
        drop(self.input);
        match self.running {
            Running::Thread(thread) => {
                thread.await.map_err(|e| PackagerError::Gst(format!("the remux task failed: {e}")))?
            }
            Running::Child { mut child, stderr } => {
                if !wait {
                    let _ = child.start_kill();
                }
                let (mut size, mut since) = (files.written(), Instant::now());
                let status = loop {
                    tokio::select! {
                        status = child.wait() => break status,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    let now = files.written();
                    if now != size {
                        (size, since) = (now, Instant::now());
                    } else if since.elapsed() > 2 * STALL_TIMEOUT {
                        let _ = child.start_kill();
                    }
                };
                let status = status.map_err(|e| PackagerError::Gst(format!("the remux process: {e}")))?;
                let stderr = stderr.await.unwrap_or_default();
                if status.success() {
                    return Ok(());
                }
                let said = stderr.lines().last().unwrap_or("no message");
                Err(PackagerError::Gst(format!("the remux process ended with {status}: {said}")))
            }
        }
    }
}

/// The entry point of the remux child process (`hawker remux-mp4`): the fragmented stream on
/// stdin, one fast-start MP4 at `output` with `trim` cut off its ends, written through
/// `scratch`.
pub fn remux_stdin(output: &Path, scratch: &Path, trim: Trim) -> Result<(), PackagerError> {
    gst::init().map_err(|e| PackagerError::Gst(e.to_string()))?;
    remux_stream(std::io::stdin().lock(), output, scratch, trim)
}

/// Builds the pipeline, feeds it `input` until its end, waits for the file, then writes it
/// again fast-start, with `trim` cut off (see `mp4_trim`).
fn remux_stream(input: impl Read, output: &Path, scratch: &Path, trim: Trim) -> Result<(), PackagerError> {
    mux_stream(input, output)?;
    mp4_trim::finish_file(output, scratch, trim).map_err(|e| PackagerError::Media(format!("finishing the MP4: {e}")))
}

fn mux_stream(mut input: impl Read, output: &Path) -> Result<(), PackagerError> {
    let gst_err = |e: &dyn std::fmt::Display| PackagerError::Gst(e.to_string());
    let pipeline = gst::Pipeline::new();
    let src = gst_app::AppSrc::builder()
        .caps(&gst::Caps::builder("video/quicktime").build())
        .format(gst::Format::Bytes)
        .build();
    let demux = gst::ElementFactory::make("qtdemux").build().map_err(|e| gst_err(&e))?;
    // The index last: `mp4_trim` puts it in front, in the one copy it makes anyway.
    let mux = gst::ElementFactory::make("mp4mux").build().map_err(|e| gst_err(&e))?;
    let sink = gst::ElementFactory::make("filesink")
        .property("location", output.to_string_lossy().as_ref())
        .build()
        .map_err(|e| gst_err(&e))?;
    pipeline.add_many([src.upcast_ref(), &demux, &mux, &sink]).map_err(|e| gst_err(&e))?;
    src.link(&demux).map_err(|e| gst_err(&e))?;
    mux.link(&sink).map_err(|e| gst_err(&e))?;
    let weak = pipeline.downgrade();
    let mux_weak = mux.downgrade();
    demux.connect_pad_added(move |_, pad| {
        let (Some(pipeline), Some(mux)) = (weak.upgrade(), mux_weak.upgrade()) else { return };
        keep_first_caps(pad);
        let kind = pad.current_caps().and_then(|c| c.structure(0).map(|s| s.name().to_string())).unwrap_or_default();
        let template = if kind.starts_with("video/") { "video_%u" } else { "audio_%u" };
        let queue = gst::ElementFactory::make("queue")
            .property("max-size-time", 0u64)
            .property("max-size-buffers", 0u32)
            .property("max-size-bytes", TRACK_QUEUE_BYTES)
            .build();
        let Ok(queue) = queue else { return };
        if pipeline.add(&queue).is_err() {
            return;
        }
        let linked = mux
            .request_pad_simple(template)
            .ok_or(())
            .and_then(|mux_pad| queue.static_pad("src").ok_or(())?.link(&mux_pad).map_err(|_| ()))
            .and_then(|_| pad.link(&queue.static_pad("sink").ok_or(())?).map_err(|_| ()));
        if linked.is_err() {
            tracing::warn!(kind, "export: a track could not be linked to the muxer");
        }
        let _ = queue.sync_state_with_parent();
    });
    let bus = pipeline.bus().ok_or_else(|| PackagerError::Gst("no bus".into()))?;
    pipeline.set_state(gst::State::Playing).map_err(|e| gst_err(&e))?;
    let mut fed = Ok(0u64);
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        match input.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                if let Err(e) = push(&src, &bus, Bytes::copy_from_slice(&chunk[..n])) {
                    fed = Err(e);
                    break;
                }
                fed = fed.map(|total| total + n as u64);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                fed = Err(PackagerError::Gst(format!("reading the input: {e}")));
                break;
            }
        }
    }
    let finished = match fed {
        Ok(0) => Err(PackagerError::Media("the input is empty".into())),
        Ok(_) => {
            let _ = src.end_of_stream();
            wait_end(&bus, output)
        }
        Err(e) => Err(e),
    };
    let _ = pipeline.set_state(gst::State::Null);
    finished
}

/// Lets through a track's first caps and drops later ones that differ only in frame rate.
/// qtdemux reading fragments works the frame rate out again at every fragment and sends new
/// caps each time (0/1, 91/3, 30/1…: thousands in an hour). mp4mux took each as a new sample
/// description (31 in a 16 s file) and, now and then, crashed on that churn (a SIGSEGV after
/// "gst_value_compare: assertion 'G_IS_VALUE (value1)' failed", seen in CI and in the export
/// benchmark). mp4mux times samples by their timestamps, not the caps' frame rate.
fn keep_first_caps(pad: &gst::Pad) {
    let kept: std::sync::Mutex<Option<gst::Caps>> = std::sync::Mutex::new(None);
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        let Some(gst::EventView::Caps(event)) = info.event().map(|e| e.view()) else {
            return gst::PadProbeReturn::Ok;
        };
        let mut caps = event.caps().to_owned();
        if let Some(s) = caps.make_mut().structure_mut(0) {
            s.remove_field("framerate");
        }
        let mut kept = crate::lock(&kept);
        if kept.as_ref() == Some(&caps) {
            // Handled, not Drop: a dropped sticky event stays pending and is offered again
            // before every buffer; a handled one counts as delivered.
            return gst::PadProbeReturn::Handled;
        }
        *kept = Some(caps);
        gst::PadProbeReturn::Ok
    });
}

/// Writes init and segments to the muxer, moving each publish's decode times to follow the
/// previous one; returns whether it wrote them all (see [`Mp4Export::complete`]).
async fn feed(store: &dyn Store, input: &mut Input, segments: &[(String, String)]) -> Result<bool, PackagerError> {
    let read = async |key: &str| -> Result<Bytes, PackagerError> {
        store
            .get(key)
            .await?
            .map(|o| o.bytes)
            .ok_or_else(|| PackagerError::Playlist(format!("{key} is missing from the store")))
    };
    let mut first_entries: Option<Vec<u8>> = None;
    let mut tracks = Vec::new();
    let mut current_init = String::new();
    // Where the file's timeline has got (ns), and the shift of the current publish.
    let (mut end_ns, mut shift_ns) = (0u64, 0i64);
    let mut starting = true;
    for (init_key, segment_key) in segments {
        if *init_key != current_init {
            let init = read(init_key).await?;
            let (found, entries) =
                bmff::tracks(&init).ok_or_else(|| PackagerError::Media(format!("{init_key}: no tracks")))?;
            match &first_entries {
                None => {
                    write(input, &init).await?;
                    first_entries = Some(entries);
                }
                Some(first) if *first != entries => {
                    tracing::warn!(init_key, "export stops here: the codec configuration changed");
                    return Ok(false);
                }
                Some(_) => {}
            }
            tracks = found;
            current_init.clone_from(init_key);
            starting = true;
        }
        let mut segment = read(segment_key).await?.to_vec();
        let spans = bmff::fragment_spans(&segment, &tracks);
        let Some(start) = spans.iter().map(|s| s.0).min() else { continue };
        if starting {
            shift_ns = i64::try_from(end_ns).unwrap_or(i64::MAX) - i64::try_from(start).unwrap_or(i64::MAX);
            starting = false;
        }
        if !bmff::shift_decode_times(&mut segment, &tracks, shift_ns) {
            return Err(PackagerError::Media(format!("{segment_key}: decode times out of range")));
        }
        let end = spans.iter().map(|s| s.1).max().unwrap_or(start);
        end_ns = end_ns.max(u64::try_from(i64::try_from(end).unwrap_or(i64::MAX) + shift_ns).unwrap_or(0));
        write(input, &segment).await?;
    }
    if first_entries.is_none() {
        return Err(PackagerError::Playlist("nothing to export".into()));
    }
    Ok(true)
}

/// Writes to the muxer's input; a muxer that takes nothing for `STALL_TIMEOUT` has stalled.
async fn write(input: &mut Input, bytes: &[u8]) -> Result<(), PackagerError> {
    match tokio::time::timeout(STALL_TIMEOUT, input.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(PackagerError::Closed(format!("the muxer's input: {e}"))),
        Err(_) => Err(PackagerError::Gst("export: the muxer stalled".into())),
    }
}

/// One buffer into the `appsrc`, after waiting while it holds `QUEUED_BYTES`; fails on a
/// pipeline error or a stall (a push never waits for good on a pipeline that stopped).
fn push(src: &AppSrc, bus: &gst::Bus, bytes: Bytes) -> Result<(), PackagerError> {
    let mut level = src.current_level_bytes();
    let mut since = Instant::now();
    while level >= QUEUED_BYTES {
        check_bus(bus)?;
        std::thread::sleep(Duration::from_millis(5));
        let now = src.current_level_bytes();
        if now < level {
            since = Instant::now();
        } else if since.elapsed() > STALL_TIMEOUT {
            return Err(PackagerError::Gst("export: the pipeline stalled".into()));
        }
        level = now;
    }
    check_bus(bus)?;
    src.push_buffer(gst::Buffer::from_slice(bytes)).map_err(|e| PackagerError::Gst(format!("push: {e:?}")))?;
    Ok(())
}

fn check_bus(bus: &gst::Bus) -> Result<(), PackagerError> {
    match bus.pop_filtered(&[gst::MessageType::Error]) {
        Some(message) => Err(error_of(&message)),
        None => Ok(()),
    }
}

fn error_of(message: &gst::Message) -> PackagerError {
    match message.view() {
        gst::MessageView::Error(e) => PackagerError::Gst(format!("export: {}", e.error())),
        _ => PackagerError::Gst("export failed".into()),
    }
}

/// Bytes written so far: the muxer's output and its fast-start copy (the parent's stall watch;
/// the muxer watches its output alone).
fn written(output: &Path, scratch: &Path) -> u64 {
    [output, scratch].iter().map(|p| std::fs::metadata(p).map_or(0, |m| m.len())).sum()
}

/// Waits for the muxer to finish (write the index) once every segment is in; fails when its
/// output stops growing for `STALL_TIMEOUT` without an end.
fn wait_end(bus: &gst::Bus, output: &Path) -> Result<(), PackagerError> {
    let size_of = || std::fs::metadata(output).map_or(0, |m| m.len());
    let (mut size, mut since) = (size_of(), Instant::now());
    loop {
        match bus.timed_pop_filtered(gst::ClockTime::SECOND, &[gst::MessageType::Eos, gst::MessageType::Error]) {
            Some(message) if message.type_() == gst::MessageType::Eos => return Ok(()),
            Some(message) => return Err(error_of(&message)),
            None => {}
        }
        let now = size_of();
        if now != size {
            (size, since) = (now, Instant::now());
        } else if since.elapsed() > STALL_TIMEOUT {
            return Err(PackagerError::Gst("export: the muxer stalled before the end".into()));
        }
    }
}
