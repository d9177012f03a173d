//! The spool: objects waiting for upload, one file each in a local folder, so that they
//! survive an outage of the remote store and a restart of hawker.
//!
//! A file is `<seq as 16 hex digits>.obj`: the magic line, a 4-byte little-endian header
//! length, the JSON header (key and metadata), then the body. Files are written beside their
//! name and renamed into place, so a crash leaves whole entries or none.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{ObjectMeta, TEMP_PREFIX, intern_cache_control, intern_content_type, temp_name};

const MAGIC: &[u8] = b"HKSPOOL1\n";

#[derive(Serialize, Deserialize)]
struct Header {
    key: String,
    content_type: String,
    cache_control: String,
}

/// One spooled object, as found on disk.
#[derive(Debug, Clone)]
pub(crate) struct SpoolEntry {
    pub seq: u64,
    pub key: String,
    pub meta: ObjectMeta,
    /// Bytes the file takes on disk.
    pub size: u64,
}

pub(crate) struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// Bytes free for the spool on its file system; `None` when it cannot be told.
    pub fn disk_free(&self) -> Option<u64> {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(self.dir.as_os_str().as_bytes()).ok()?;
        // SAFETY: statvfs fills `stat`, a plain C struct, for a NUL-terminated path.
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        let done = unsafe { libc::statvfs(path.as_ptr(), &mut stat) } == 0;
        done.then(|| stat.f_bavail.saturating_mul(stat.f_frsize))
    }

    /// Opens (creating) the folder and returns what a previous run left in it, oldest first.
    /// Temporary files of interrupted writes and unreadable files are removed.
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<(Spool, Vec<SpoolEntry>)> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        let mut entries = Vec::new();
        for item in std::fs::read_dir(&dir)? {
            let item = item?;
            let path = item.path();
            let name = item.file_name().to_string_lossy().into_owned();
            let seq = name.strip_suffix(".obj").and_then(|s| u64::from_str_radix(s, 16).ok());
            let entry = seq.and_then(|seq| read_header(&path).ok().map(|(key, meta)| (seq, key, meta)));
            match entry {
                Some((seq, key, meta)) => {
                    let size = item.metadata()?.len();
                    entries.push(SpoolEntry { seq, key, meta, size });
                }
                None => {
                    if !name.starts_with(TEMP_PREFIX) {
                        tracing::warn!(file = %path.display(), "unreadable spool file removed");
                    }
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        entries.sort_by_key(|e| e.seq);
        Ok((Spool { dir }, entries))
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:016x}.obj"))
    }

    /// Bytes on disk for an object of `body` bytes under `key`.
    pub fn file_size(key: &str, body: usize) -> u64 {
        (MAGIC.len() + 4 + 160 + key.len() + body) as u64
    }

    pub async fn write(&self, seq: u64, key: &str, meta: ObjectMeta, body: &Bytes) -> std::io::Result<u64> {
        let header = serde_json::to_vec(&Header {
            key: key.to_owned(),
            content_type: meta.content_type.to_owned(),
            cache_control: meta.cache_control.to_owned(),
        })
        .expect("a header serializes");
        let mut file = Vec::with_capacity(MAGIC.len() + 4 + header.len() + body.len());
        file.extend_from_slice(MAGIC);
        file.extend_from_slice(&(header.len() as u32).to_le_bytes());
        file.extend_from_slice(&header);
        file.extend_from_slice(body);
        let size = file.len() as u64;
        let tmp = self.dir.join(temp_name());
        if let Err(e) = tokio::fs::write(&tmp, &file).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        if let Err(e) = tokio::fs::rename(&tmp, self.path(seq)).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        Ok(size)
    }

    /// The body of an entry; `None` once it is gone (uploaded or cancelled meanwhile).
    pub async fn read(&self, seq: u64) -> std::io::Result<Option<Bytes>> {
        match tokio::fs::read(self.path(seq)).await {
            Ok(file) => {
                let body = split(&file)
                    .map(|(_, start)| start)
                    .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "corrupt spool file"))?;
                Ok(Some(Bytes::from(file).slice(body..)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn remove(&self, seq: u64) {
        match tokio::fs::remove_file(self.path(seq)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(seq, %e, "removing a spool file failed")
            }
            _ => {}
        }
    }
}

/// (header JSON, offset of the body) of a spool file's bytes.
fn split(file: &[u8]) -> Option<(&[u8], usize)> {
    let rest = file.strip_prefix(MAGIC)?;
    let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let header = rest.get(4..4 + len)?;
    Some((header, MAGIC.len() + 4 + len))
}

fn read_header(path: &Path) -> std::io::Result<(String, ObjectMeta)> {
    use std::io::Read;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "corrupt spool file");
    let mut file = std::fs::File::open(path)?;
    let mut start = vec![0u8; MAGIC.len() + 4];
    file.read_exact(&mut start)?;
    if !start.starts_with(MAGIC) {
        return Err(bad());
    }
    let len = u32::from_le_bytes(start[MAGIC.len()..].try_into().expect("4 bytes")) as usize;
    if len > 64 * 1024 {
        return Err(bad());
    }
    let mut header = vec![0u8; len];
    file.read_exact(&mut header)?;
    let header: Header = serde_json::from_slice(&header).map_err(|_| bad())?;
    crate::check_key(&header.key).map_err(|_| bad())?;
    let meta = ObjectMeta {
        content_type: intern_content_type(&header.content_type),
        cache_control: intern_cache_control(&header.cache_control),
    };
    Ok((header.key, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_survive_a_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, found) = Spool::open(dir.path()).unwrap();
        assert!(found.is_empty());
        let meta = ObjectMeta::new("video/iso.segment", crate::IMMUTABLE);
        let live = ObjectMeta::new("application/vnd.apple.mpegurl", "no-cache");
        spool.write(17, "s/a/seg2.m4s", meta, &Bytes::from_static(b"two")).await.unwrap();
        spool.write(3, "s/a/seg1.m4s", meta, &Bytes::from_static(b"one")).await.unwrap();
        spool.write(20, "s/a/live.m3u8", live, &Bytes::from_static(b"#EXTM3U")).await.unwrap();
        std::fs::write(dir.path().join(".tmp-00000000000000aa"), b"half").unwrap();
        std::fs::write(dir.path().join("0000000000000009.obj"), b"garbage").unwrap();
        drop(spool);

        let (spool, found) = Spool::open(dir.path()).unwrap();
        let keys: Vec<_> = found.iter().map(|e| (e.seq, e.key.as_str())).collect();
        assert_eq!(keys, vec![(3, "s/a/seg1.m4s"), (17, "s/a/seg2.m4s"), (20, "s/a/live.m3u8")]);
        assert_eq!(found[2].meta, live);
        assert_eq!(found[0].meta, meta);
        assert_eq!(&spool.read(17).await.unwrap().unwrap()[..], b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3, "junk is removed");
        spool.remove(17).await;
        assert!(spool.read(17).await.unwrap().is_none());
    }
}
