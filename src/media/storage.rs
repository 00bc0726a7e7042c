//! Where media objects live, behind a small interface: `stat`, a ranged streaming `read`, and
//! an atomic `write`. `LocalDir` (a directory on disk) is the one backend; an S3-compatible one
//! would implement the same three calls (HEAD, ranged GET, PUT).
//!
//! Objects are immutable (content-addressed names, derived objects computed from them), so a
//! `stat` followed by a `read` always sees the same bytes, and writing a name that exists is a
//! no-op.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream, StreamExt};

use super::names::ObjectKey;

/// A download reads the object in pieces of this size (a slow reader holds one, not the file).
const CHUNK: u64 = 64 * 1024;

pub trait Storage: Send + Sync + 'static {
    /// The object's size in bytes; `None` if there is no such object.
    fn stat(&self, key: &ObjectKey) -> BoxFuture<'static, io::Result<Option<u64>>>;

    /// `len` bytes from `start`, as a stream of chunks (the object exists: `stat` said so).
    fn read(
        &self,
        key: &ObjectKey,
        start: u64,
        len: u64,
    ) -> BoxFuture<'static, io::Result<BoxStream<'static, io::Result<Bytes>>>>;

    /// Stores the object whole or not at all; an existing object is left as it is.
    fn write(&self, key: &ObjectKey, data: Bytes) -> BoxFuture<'static, io::Result<()>>;

    /// For the start-up log line.
    fn describe(&self) -> String;
}

/// Reads a whole object (for thumbnails and conversions, bounded by the upload limit).
pub async fn read_all(storage: &dyn Storage, key: &ObjectKey) -> io::Result<Option<Bytes>> {
    let Some(len) = storage.stat(key).await? else {
        return Ok(None);
    };
    let mut body = storage.read(key, 0, len).await?;
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(Some(out.into()))
}

/// Objects as files under `root/<kind>/<name>`.
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    pub fn new(root: &Path) -> LocalDir {
        LocalDir {
            root: root.to_path_buf(),
        }
    }

    fn path(&self, key: &ObjectKey) -> PathBuf {
        self.root.join(key.kind.dir()).join(key.name())
    }
}

/// Runs blocking file work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)?
}

impl Storage for LocalDir {
    fn stat(&self, key: &ObjectKey) -> BoxFuture<'static, io::Result<Option<u64>>> {
        let path = self.path(key);
        Box::pin(blocking(move || match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }))
    }

    fn read(
        &self,
        key: &ObjectKey,
        start: u64,
        len: u64,
    ) -> BoxFuture<'static, io::Result<BoxStream<'static, io::Result<Bytes>>>> {
        let path = self.path(key);
        Box::pin(async move {
            let file = blocking(move || {
                let mut f = std::fs::File::open(&path)?;
                f.seek(SeekFrom::Start(start))?;
                Ok(f)
            })
            .await?;
            Ok(chunks(file, len))
        })
    }

    fn write(&self, key: &ObjectKey, data: Bytes) -> BoxFuture<'static, io::Result<()>> {
        let path = self.path(key);
        Box::pin(blocking(move || write_atomically(&path, &data)))
    }

    fn describe(&self) -> String {
        format!("local directory {}", self.root.display())
    }
}

/// `len` bytes of `file` from its position, one `CHUNK` per poll.
fn chunks(file: std::fs::File, len: u64) -> BoxStream<'static, io::Result<Bytes>> {
    stream::try_unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return Ok(None);
        }
        let n = left.min(CHUNK);
        let (file, buf) = blocking(move || {
            let mut buf = vec![0; n as usize];
            file.read_exact(&mut buf)?;
            Ok((file, buf))
        })
        .await?;
        Ok(Some((Bytes::from(buf), (file, left - n))))
    })
    .boxed()
}

/// Writes a temporary file beside `path`, syncs it and renames it into place: readers see the
/// old state or the whole object, and a crash leaves at most a stray temporary file.
fn write_atomically(path: &Path, data: &[u8]) -> io::Result<()> {
    if path.is_file() {
        return Ok(());
    }
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("object path has no folder"))?;
    std::fs::create_dir_all(dir)?;
    let mut salt = [0u8; 8];
    getrandom::fill(&mut salt).map_err(io::Error::other)?;
    let tmp = dir.join(format!(".tmp-{:016x}", u64::from_le_bytes(salt)));
    let written = (|| {
        let mut f = std::fs::File::create_new(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}
