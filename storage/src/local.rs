//! The default backend: objects are files under a root folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use crate::{Appender, Object, ObjectMeta, Store, StoreError, TEMP_PREFIX, check_key, temp_name};

pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    /// The deepest folder holding every key that starts with `prefix`: a walk for a stream's
    /// objects reads that stream's folder, not the whole store.
    fn folder_of(&self, prefix: &str) -> PathBuf {
        match prefix.rfind('/') {
            Some(end) if check_key(&prefix[..end]).is_ok() => self.root.join(&prefix[..end]),
            _ => self.root.clone(),
        }
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        check_key(key)?;
        Ok(self.root.join(key))
    }
}

/// A local file has no metadata of its own: serve it by the conventional type of its
/// extension, with the cache policy the caller chose when it was written.
fn meta_for(path: &Path) -> ObjectMeta {
    let content_type = match path.extension().and_then(|e| e.to_str()) {
        Some("m3u8") => "application/vnd.apple.mpegurl",
        Some("mp4") => "video/mp4",
        Some("m4s") => "video/iso.segment",
        Some("ts") => "video/mp2t",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    let cache_control = if content_type == "application/vnd.apple.mpegurl" { "no-cache" } else { crate::IMMUTABLE };
    ObjectMeta::new(content_type, cache_control)
}

#[async_trait]
impl Store for LocalStore {
    async fn put(&self, key: &str, bytes: Bytes, meta: ObjectMeta) -> Result<(), StoreError> {
        self.put_pieces(key, vec![bytes], meta).await
    }

    async fn put_pieces(&self, key: &str, pieces: Vec<Bytes>, _meta: ObjectMeta) -> Result<(), StoreError> {
        let path = self.path(key)?;
        // One trip to the blocking pool for the whole write.
        blocking(move || write_whole(&path, &pieces)).await
    }

    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        let path = self.path(key)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(Object { bytes: bytes.into(), meta: meta_for(&path) })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            // A directory under this name is not an object.
            Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Option<Bytes>, StoreError> {
        let path = self.path(key)?;
        blocking(move || read_range(&path, offset, len)).await
    }

    async fn size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        match tokio::fs::metadata(self.path(key)?).await {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn put_file(&self, key: &str, source: &Path, _meta: ObjectMeta) -> Result<(), StoreError> {
        let (path, source) = (self.path(key)?, source.to_owned());
        blocking(move || {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            // A rename when the file is on the same file system; else a copy beside the target,
            // renamed onto it, so readers never see half an object.
            if std::fs::rename(&source, &path).is_ok() {
                return Ok(());
            }
            let tmp = temp_beside(&path)?;
            let copied = std::fs::copy(&source, &tmp).and_then(|_| std::fs::rename(&tmp, &path));
            if copied.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            Ok(copied?)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match tokio::fs::remove_file(self.path(key)?).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let (root, dir) = (self.root.clone(), self.folder_of(prefix));
        let prefix = prefix.to_owned();
        blocking(move || {
            let mut keys = Vec::new();
            walk(&dir, &mut |path| {
                if let Ok(rel) = path.strip_prefix(&root) {
                    let key = rel.to_string_lossy().replace('\\', "/");
                    if key.starts_with(&prefix) && check_key(&key).is_ok() {
                        keys.push(key);
                    }
                }
            })?;
            keys.sort();
            Ok(keys)
        })
        .await
    }

    async fn remove_partials(&self, prefix: &str) -> Result<usize, StoreError> {
        let (root, dir) = (self.root.clone(), self.folder_of(prefix));
        let prefix = prefix.to_owned();
        blocking(move || {
            let mut partials = Vec::new();
            walk(&dir, &mut |path| {
                let partial = path.file_name().is_some_and(|name| name.to_string_lossy().starts_with(TEMP_PREFIX));
                let under = path.strip_prefix(&root).is_ok_and(|rel| rel.to_string_lossy().starts_with(&prefix));
                if partial && under {
                    partials.push(path);
                }
            })?;
            for path in &partials {
                std::fs::remove_file(path)?;
            }
            Ok(partials.len())
        })
        .await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<usize, StoreError> {
        let keys = self.list(prefix).await?;
        for key in &keys {
            self.delete(key).await?;
        }
        // Leave no empty folders behind for a prefix that names a folder.
        if let Some(dir) = prefix.strip_suffix('/')
            && check_key(dir).is_ok()
        {
            let _ = tokio::fs::remove_dir_all(self.root.join(dir)).await;
        }
        Ok(keys.len())
    }

    async fn append_to(&self, key: &str, _meta: ObjectMeta) -> Result<Option<Arc<dyn Appender>>, StoreError> {
        let path = self.path(key)?;
        let appender = blocking(move || LocalAppender::create(path)).await?;
        Ok(Some(Arc::new(appender)))
    }
}

/// Runs file work on the blocking pool. A task cancelled (the runtime shutting down) or
/// panicked is an I/O error of this operation, not a panic of the caller.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| StoreError::Io(std::io::Error::other(e)))?
}

/// An object written as it comes into a file beside the target (a name no key can have),
/// renamed onto the target at `finish`: readers of the key never see half an object.
struct LocalAppender {
    file: Arc<std::fs::File>,
    tmp: PathBuf,
    path: PathBuf,
    /// Bytes appended so far.
    written: AtomicU64,
    finished: AtomicBool,
}

impl LocalAppender {
    fn create(path: PathBuf) -> Result<Self, StoreError> {
        let tmp = temp_beside(&path)?;
        // Read as well: the open object's parts are read back from it.
        let file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&tmp)?;
        let file = Arc::new(file);
        Ok(Self { file, tmp, path, written: AtomicU64::new(0), finished: AtomicBool::new(false) })
    }
}

#[async_trait]
impl Appender for LocalAppender {
    async fn append(&self, pieces: Vec<Bytes>) -> Result<(), StoreError> {
        let size: u64 = pieces.iter().map(|p| p.len() as u64).sum();
        // On the caller's task, not the blocking pool: a part (~100 KB) goes into the page cache
        // in tens of microseconds, and a thread hand-off per part cost about a tenth of a live
        // stream's CPU (8 streams, A/B). The rename at `finish` and reads stay on the pool.
        write_pieces(&mut &*self.file, &pieces)?;
        self.written.fetch_add(size, Ordering::Release);
        Ok(())
    }

    async fn read_range(&self, offset: u64, len: u64) -> Result<Option<Bytes>, StoreError> {
        if offset.saturating_add(len) > self.written.load(Ordering::Acquire) {
            return Ok(None);
        }
        let file = self.file.clone();
        blocking(move || {
            use std::os::unix::fs::FileExt;
            let mut bytes = vec![0; usize::try_from(len).map_err(std::io::Error::other)?];
            file.read_exact_at(&mut bytes, offset)?;
            Ok(Some(bytes.into()))
        })
        .await
    }

    async fn finish(&self) -> Result<(), StoreError> {
        let (tmp, path) = (self.tmp.clone(), self.path.clone());
        blocking(move || Ok(std::fs::rename(tmp, path)?)).await?;
        self.finished.store(true, Ordering::Release);
        Ok(())
    }
}

impl Drop for LocalAppender {
    fn drop(&mut self) {
        if !self.finished.load(Ordering::Acquire) {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// A fresh temporary name in the folder of `path` (made if missing).
fn temp_beside(path: &Path) -> Result<PathBuf, StoreError> {
    let dir = path.parent().expect("a checked key has a parent: the root");
    std::fs::create_dir_all(dir)?;
    Ok(dir.join(temp_name()))
}

/// Writes beside the target, then renames: readers never see half an object.
fn write_whole(path: &Path, pieces: &[Bytes]) -> Result<(), StoreError> {
    let tmp = temp_beside(path)?;
    let write = || write_pieces(&mut std::fs::File::create(&tmp)?, pieces);
    let written = write().and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(written?)
}

/// Writes every piece, as few calls as the kernel allows (a segment is many small pieces).
fn write_pieces(file: &mut impl std::io::Write, pieces: &[Bytes]) -> std::io::Result<()> {
    use std::io::IoSlice;
    // At most IOV_MAX (1024 on Linux) slices a call.
    for group in pieces.chunks(1024) {
        let mut slices: Vec<IoSlice> = group.iter().map(|p| IoSlice::new(p)).collect();
        let mut rest = slices.as_mut_slice();
        while !rest.is_empty() {
            match file.write_vectored(rest) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut rest, n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

fn read_range(path: &Path, offset: u64, len: u64) -> Result<Option<Bytes>, StoreError> {
    use std::os::unix::fs::FileExt;
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::IsADirectory) => {
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    if file.metadata()?.len() < offset.saturating_add(len) {
        return Ok(None);
    }
    let mut bytes = vec![0; usize::try_from(len).map_err(std::io::Error::other)?];
    file.read_exact_at(&mut bytes, offset)?;
    Ok(Some(bytes.into()))
}

/// Every file under `dir` and its subfolders, temporary files too.
fn walk(dir: &Path, visit: &mut impl FnMut(PathBuf)) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(&path, visit)?;
        } else {
            visit(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: ObjectMeta = ObjectMeta::new("video/iso.segment", "x");

    #[tokio::test]
    async fn put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        store.put("streams/a/v0/seg1.m4s", Bytes::from_static(b"one"), META).await.unwrap();
        store.put("streams/a/v0/index.m3u8", Bytes::from_static(b"#EXTM3U"), META).await.unwrap();
        store.put("streams/b/v0/seg1.m4s", Bytes::from_static(b"other"), META).await.unwrap();

        let pieces = vec![Bytes::from_static(b"pie"), Bytes::from_static(b"ces")];
        store.put_pieces("streams/c/v0/seg1.m4s", pieces, META).await.unwrap();
        assert_eq!(&store.get("streams/c/v0/seg1.m4s").await.unwrap().unwrap().bytes[..], b"pieces");
        store.delete("streams/c/v0/seg1.m4s").await.unwrap();
        // More pieces than one vectored write takes (IOV_MAX), of uneven sizes.
        let pieces: Vec<Bytes> = (0..2500u32).map(|i| Bytes::from(vec![(i % 251) as u8; (i % 7) as usize])).collect();
        let whole = pieces.concat();
        store.put_pieces("streams/c/v0/seg2.m4s", pieces, META).await.unwrap();
        assert_eq!(store.get("streams/c/v0/seg2.m4s").await.unwrap().unwrap().bytes[..], whole[..]);
        store.delete("streams/c/v0/seg2.m4s").await.unwrap();
        let got = store.get("streams/a/v0/seg1.m4s").await.unwrap().unwrap();
        assert_eq!(&got.bytes[..], b"one");
        assert_eq!(got.meta.content_type, "video/iso.segment");
        let playlist = store.get("streams/a/v0/index.m3u8").await.unwrap().unwrap();
        assert_eq!(playlist.meta.cache_control, "no-cache");
        assert!(store.get("streams/a/v0/missing.m4s").await.unwrap().is_none());
        assert!(store.get("streams/a").await.unwrap().is_none(), "a folder is not an object");
        assert_eq!(&store.get_range("streams/a/v0/seg1.m4s", 1, 2).await.unwrap().unwrap()[..], b"ne");
        assert!(store.get_range("streams/a/v0/seg1.m4s", 2, 2).await.unwrap().is_none(), "past the end");
        assert!(store.get_range("streams/a/v0/none.m4s", 0, 1).await.unwrap().is_none());

        assert_eq!(store.list("streams/a/").await.unwrap(), vec!["streams/a/v0/index.m3u8", "streams/a/v0/seg1.m4s"]);
        assert_eq!(store.delete_prefix("streams/a/").await.unwrap(), 2);
        assert!(store.list("streams/a/").await.unwrap().is_empty());
        assert!(!dir.path().join("streams/a").exists());
        assert_eq!(store.list("streams/").await.unwrap(), vec!["streams/b/v0/seg1.m4s"]);
        store.delete("streams/b/v0/nothing").await.unwrap();
    }

    #[tokio::test]
    async fn partials_a_crash_left_under_a_prefix_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        for key in ["streams/a/v0/seg1.m4s", "streams/ab/v0/seg1.m4s"] {
            store.put(key, Bytes::from_static(b"whole"), META).await.unwrap();
        }
        // What a write cut short by SIGKILL leaves: a temporary file beside the objects.
        let half = |stream: &str| dir.path().join(format!("streams/{stream}/v0/.tmp-00000000000000aa"));
        for stream in ["a", "ab"] {
            std::fs::write(half(stream), b"half").unwrap();
        }
        assert_eq!(store.list("streams/a").await.unwrap(), ["streams/a/v0/seg1.m4s", "streams/ab/v0/seg1.m4s"]);

        assert_eq!(store.remove_partials("streams/a/").await.unwrap(), 1);
        assert!(!half("a").exists());
        assert!(half("ab").exists(), "another stream's folder is not touched");
        assert_eq!(store.list("streams/").await.unwrap(), ["streams/a/v0/seg1.m4s", "streams/ab/v0/seg1.m4s"]);
        assert_eq!(store.remove_partials("streams/a/").await.unwrap(), 0);
        assert_eq!(store.remove_partials("streams/none/").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn overwrite_is_whole_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        for n in 0..20 {
            let body = Bytes::from(vec![b'x'; 1000 + n]);
            store.put("p/index.m3u8", body, META).await.unwrap();
        }
        assert_eq!(store.get("p/index.m3u8").await.unwrap().unwrap().bytes.len(), 1019);
        assert_eq!(std::fs::read_dir(dir.path().join("p")).unwrap().count(), 1);
    }

    #[tokio::test]
    async fn appended_object_is_readable_while_open_and_published_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        let open = store.append_to("s/seg1.m4s", META).await.unwrap().expect("the local store appends");
        open.append(vec![Bytes::from_static(b"ab"), Bytes::from_static(b"cd")]).await.unwrap();
        assert_eq!(open.read_range(1, 3).await.unwrap().unwrap(), Bytes::from_static(b"bcd"));
        // Not past what is written, and not under its key before `finish`.
        assert!(open.read_range(2, 3).await.unwrap().is_none());
        assert!(store.get("s/seg1.m4s").await.unwrap().is_none());
        assert!(store.list("s/").await.unwrap().is_empty());
        open.append(vec![Bytes::from_static(b"e")]).await.unwrap();
        assert_eq!(open.read_range(2, 3).await.unwrap().unwrap(), Bytes::from_static(b"cde"));
        open.finish().await.unwrap();
        assert_eq!(store.get("s/seg1.m4s").await.unwrap().unwrap().bytes, Bytes::from_static(b"abcde"));
        drop(open);
        assert_eq!(std::fs::read_dir(dir.path().join("s")).unwrap().count(), 1);
    }

    #[tokio::test]
    async fn appended_object_dropped_unfinished_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        let open = store.append_to("s/seg2.m4s", META).await.unwrap().unwrap();
        open.append(vec![Bytes::from_static(b"abc")]).await.unwrap();
        drop(open);
        assert!(store.get("s/seg2.m4s").await.unwrap().is_none());
        assert_eq!(std::fs::read_dir(dir.path().join("s")).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn bad_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        let err = store.put("../escape", Bytes::new(), META).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidKey));
    }
}
