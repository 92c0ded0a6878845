//! Artifact bytes.
//!
//! - [`Blobs`]: the content-addressed store (`sha256/<2 hex>/<64 hex>`) over `object_store`, a local
//!   directory by default or an S3-compatible bucket ([`BlobLocation`]). Local files take a fast
//!   path: committing is a `rename` and downloads read the file directly in large chunks. Blobs
//!   in S3 are written create-only and can be handed out as presigned URLs.
//! - [`Staging`]: where uploads land while they are hashed. Nothing in staging is visible to
//!   devices; an artifact appears only when [`Blobs::commit`] moves a verified file or object in
//!   whole, so an interrupted upload or a crash never leaves half an artifact behind. One-shot
//!   uploads stage to a local file (one request, one node); resumable sessions stay in the local
//!   directory too, unless the blobs are in an object store: then they live in the bucket
//!   ([`ObjectSessions`]) so that any node can take any chunk.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::io::SeekFrom;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::signer::{Method, SignedUrlOptions, Signer};
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use otter_core::digest::{Digests, MultiHasher};
use tokio::io::{AsyncWriteExt, BufWriter};

use crate::hot::HotCache;
use crate::objects::{ObjectSessions, ObjectWriter, S3Settings, connect_s3, promote};
use crate::private;
use crate::{Result, StoreError, UploadStore, random_id};

/// A stream of artifact bytes, as handed to the HTTP layer.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// Read size for local downloads: large reads keep syscalls and thread hops per MiB low (one
/// hop per MiB), at 1 MiB of memory per download in flight.
const LOCAL_READ_CHUNK: usize = 1024 * 1024;
/// Write buffer for staging files.
const STAGING_WRITE_BUFFER: usize = 1024 * 1024;

/// Where artifact bytes live: `file:///path` or `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobLocation {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl BlobLocation {
    /// Parses `file:///var/lib/otter/blobs` or `s3://bucket` / `s3://bucket/some/prefix`.
    pub fn parse(url: &str) -> Result<Self, String> {
        if let Some(path) = url.strip_prefix("file://") {
            if path.is_empty() {
                return Err(format!(
                    "blob URL {url:?} has no path (file:///var/lib/otter/blobs)"
                ));
            }
            return Ok(BlobLocation::Local(PathBuf::from(path)));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!(
                    "blob URL {url:?} has no bucket (s3://bucket/prefix)"
                ));
            }
            return Ok(BlobLocation::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
            });
        }
        Err(format!(
            "blob URL {url:?} must be file:///path or s3://bucket/prefix"
        ))
    }
}

/// The content-addressed artifact store.
#[derive(Clone, Debug)]
pub struct Blobs {
    pub(crate) store: Arc<dyn ObjectStore>,
    /// Where downloads read from: `store`, or for S3 a client without an overall request
    /// timeout (a slow device may take hours over a large image).
    reader: Arc<dyn ObjectStore>,
    /// Set when `store` is a local directory, for the rename and direct-read fast paths.
    local: Option<Arc<LocalFileSystem>>,
    /// Set when the store can presign download URLs (S3).
    signer: Option<Arc<dyn Signer>>,
    /// Recently served images, when enabled.
    hot: Option<Arc<HotCache>>,
}

impl Blobs {
    /// Blobs at `location`; `s3` says how to reach an S3-compatible service.
    pub fn at(location: &BlobLocation, s3: &S3Settings) -> Result<Self> {
        match location {
            BlobLocation::Local(root) => Self::local(root),
            BlobLocation::S3 { bucket, prefix } => {
                let s3 = connect_s3(bucket, prefix, s3)?;
                Ok(Blobs {
                    store: s3.store,
                    reader: s3.reader,
                    local: None,
                    signer: Some(s3.signer),
                    hot: None,
                })
            }
        }
    }

    /// Blobs in a local directory (created if missing, like the directories under it, for the
    /// owner only).
    pub fn local(root: &Path) -> Result<Self> {
        private::create_dir_all(root)?;
        let fs = Arc::new(LocalFileSystem::new_with_prefix(root)?);
        Ok(Blobs {
            store: fs.clone(),
            reader: fs.clone(),
            local: Some(fs),
            signer: None,
            hot: None,
        })
    }

    /// Blobs in any object store (S3-compatible, in-memory for tests).
    pub fn object_store(store: Arc<dyn ObjectStore>) -> Self {
        Blobs {
            reader: store.clone(),
            store,
            local: None,
            signer: None,
            hot: None,
        }
    }

    /// Checks that the store answers (for S3: the bucket exists and the credentials may list
    /// it), so a wrong bucket, endpoint or key fails at startup rather than at the first upload.
    pub async fn probe(&self) -> Result<()> {
        if self.local.is_some() {
            return Ok(());
        }
        let prefix = ObjectPath::from("sha256");
        let listing = self.store.list_with_delimiter(Some(&prefix));
        match tokio::time::timeout(Duration::from_secs(30), listing).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Blob(format!(
                "{} does not answer: {e}",
                self.store
            ))),
            Err(_) => Err(StoreError::Blob(format!(
                "{} did not answer within 30 s",
                self.store
            ))),
        }
    }

    /// Whether the blobs are in a local directory.
    pub fn is_local(&self) -> bool {
        self.local.is_some()
    }

    /// Whether [`Blobs::presigned_url`] can hand out URLs.
    pub fn can_presign(&self) -> bool {
        self.signer.is_some()
    }

    /// A URL that lets anyone `GET` the blob directly from the object store for `expires`, with
    /// `filename` as the download's name; `None` when the store cannot presign (local files).
    pub async fn presigned_url(
        &self,
        sha256: &str,
        filename: &str,
        expires: Duration,
    ) -> Result<Option<String>> {
        let Some(signer) = &self.signer else {
            return Ok(None);
        };
        let options = SignedUrlOptions::new().with_query([
            (
                "response-content-disposition",
                format!("attachment; filename=\"{filename}\""),
            ),
            (
                "response-content-type",
                "application/octet-stream".to_owned(),
            ),
        ]);
        let url = signer
            .signed_url_opts(Method::GET, &Self::key(sha256), expires, &options)
            .await?;
        Ok(Some(url.to_string()))
    }

    /// Keeps up to `capacity` bytes of recently served images in memory (0 disables).
    pub fn with_hot_cache(mut self, capacity: u64) -> Self {
        self.hot = (capacity > 0).then(|| Arc::new(HotCache::new(capacity)));
        self
    }

    pub(crate) fn key(sha256: &str) -> ObjectPath {
        ObjectPath::from(format!("sha256/{}/{sha256}", &sha256[..2]))
    }

    /// Makes a staged, fully hashed upload the blob for its SHA-256. Idempotent: committing bytes
    /// that are already stored just drops the staged copy. Writes to an object store are
    /// create-only: an existing blob is never rewritten.
    pub async fn commit(&self, staged: StagedFile) -> Result<()> {
        let key = Self::key(&staged.digests.sha256);
        match (staged.at, &self.local) {
            (StagedAt::File(path), Some(fs)) => {
                let dest = fs.path_to_filesystem(&key)?;
                if let Some(parent) = dest.parent() {
                    private::create_dir_all_async(parent).await?;
                }
                // rename is atomic: readers see no file or the whole file.
                tokio::fs::rename(&path, &dest).await?;
                Ok(())
            }
            (StagedAt::File(path), None) => {
                let result = match self.exists(&staged.digests.sha256).await {
                    Ok(true) => Ok(()),
                    Ok(false) => self.upload(&path, &key).await,
                    Err(e) => Err(e),
                };
                discard(&path).await;
                result
            }
            (StagedAt::Object(temp), None) => promote(&self.store, &temp, &key).await,
            (StagedAt::Object(temp), Some(_)) => Err(StoreError::Blob(format!(
                "staged object {temp} cannot be committed to local blobs"
            ))),
        }
    }

    /// Streams a verified local file to `key`: one conditional `PUT` for a small file, a
    /// multipart upload (whose object appears only when complete) for a large one.
    async fn upload(&self, path: &Path, key: &ObjectPath) -> Result<()> {
        let file = tokio::fs::File::open(path).await?;
        let mut reader = tokio_util::io::ReaderStream::with_capacity(file, LOCAL_READ_CHUNK);
        let mut writer = ObjectWriter::new(self.store.clone(), key.clone(), true);
        let written: Result<()> = async {
            while let Some(chunk) = reader.next().await {
                writer.write(chunk?).await?;
            }
            Ok(())
        }
        .await;
        match written {
            Ok(()) => writer.finish().await,
            Err(e) => {
                writer.abort().await;
                Err(e)
            }
        }
    }

    /// Whether the blob exists.
    pub async fn exists(&self, sha256: &str) -> Result<bool> {
        match self.store.head(&Self::key(sha256)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Streams `range` of a blob of `size` bytes. The caller checked the range against the size.
    pub async fn open(&self, sha256: &str, size: u64, range: Range<u64>) -> Result<ByteStream> {
        if let Some(hot) = self.hot.as_ref().filter(|hot| hot.admits(size)) {
            let image = hot
                .get_or_load(sha256, size, || self.read_whole(sha256, size))
                .await?;
            if image.len() as u64 == size {
                let part = image.slice(range.start as usize..range.end as usize);
                return Ok(futures_util::stream::once(async { Ok(part) }).boxed());
            }
            // The stored blob does not have the recorded size; let the streaming path fail.
            tracing::error!(
                sha256,
                size,
                actual = image.len(),
                "blob size differs from its record"
            );
        }
        self.open_uncached(sha256, range).await
    }

    /// A download of `range` of a blob of `size` bytes: with local blobs, the open file (which a
    /// server can `sendfile(2)` from) and a stream that reads nothing until first polled (read
    /// only by a server that cannot send the file); otherwise [`Blobs::open`]'s stream.
    pub async fn open_download(
        &self,
        sha256: &str,
        size: u64,
        range: Range<u64>,
    ) -> Result<(Option<std::fs::File>, ByteStream)> {
        let Some(fs) = &self.local else {
            return Ok((None, self.open(sha256, size, range).await?));
        };
        // Opened here rather than on the blocking pool: a metadata lookup in the kernel's
        // cache, cheaper than the hop to another thread (nginx opens its files the same way).
        let file = match std::fs::File::open(fs.path_to_filesystem(&Self::key(sha256))?) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StoreError::NotFound),
            Err(e) => return Err(e.into()),
        };
        let (blobs, sha256) = (self.clone(), sha256.to_owned());
        let lazy = futures_util::stream::once(async move {
            blobs
                .open(&sha256, size, range)
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))
        })
        .try_flatten();
        Ok((Some(file), lazy.boxed()))
    }

    async fn open_uncached(&self, sha256: &str, range: Range<u64>) -> Result<ByteStream> {
        let key = Self::key(sha256);
        if let Some(fs) = &self.local {
            return local_stream(fs.path_to_filesystem(&key)?, range).await;
        }
        if range.is_empty() {
            return Ok(futures_util::stream::empty().boxed());
        }
        let options = GetOptions {
            range: Some(GetRange::Bounded(range)),
            ..Default::default()
        };
        let result = self.reader.get_opts(&key, options).await?;
        Ok(result
            .into_stream()
            .map_err(|e| std::io::Error::other(e.to_string()))
            .boxed())
    }
}

impl Blobs {
    /// Reads a whole (small) blob for the hot cache, into a buffer of its own (the cache keeps
    /// it; a pooled read buffer would never come back).
    async fn read_whole(&self, sha256: &str, size: u64) -> Result<Bytes> {
        if let Some(fs) = &self.local {
            return match tokio::fs::read(fs.path_to_filesystem(&Self::key(sha256))?).await {
                Ok(bytes) => Ok(Bytes::from(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound),
                Err(e) => Err(e.into()),
            };
        }
        let parts: Vec<Bytes> = self
            .open_uncached(sha256, 0..size)
            .await?
            .try_collect()
            .await?;
        Ok(match parts.len() {
            1 => parts.into_iter().next().unwrap_or_default(),
            _ => Bytes::from(parts.concat()),
        })
    }
}

/// Read buffers of local downloads, reused once the socket is done with them. A fresh 1 MiB
/// buffer per read is memory the allocator maps and the kernel zeroes page by page (about 60
/// page faults per MiB sent), which cost more than the read itself. Each pooled buffer is kept
/// through a handle on its allocation; the handle reclaims it when the last `Bytes` cut from it
/// is dropped. Past [`POOLED_READ_BUFFERS`] buffers in flight, reads allocate.
static READ_BUFFERS: std::sync::Mutex<Vec<BytesMut>> = std::sync::Mutex::new(Vec::new());
const POOLED_READ_BUFFERS: usize = 16;

/// Reads `len` bytes (at most [`LOCAL_READ_CHUNK`]) from `file` into a pooled buffer.
fn read_pooled(file: &mut std::fs::File, len: usize) -> std::io::Result<Bytes> {
    use std::io::Read;
    let mut buffers = READ_BUFFERS.lock().unwrap_or_else(|e| e.into_inner());
    let free = buffers
        .iter_mut()
        .position(|b| b.try_reclaim(LOCAL_READ_CHUNK));
    let mut buf = match free {
        Some(i) => buffers.swap_remove(i),
        None => BytesMut::with_capacity(LOCAL_READ_CHUNK),
    };
    drop(buffers);
    // Zeroing memory that is already mapped is cheap next to mapping it afresh.
    buf.resize(len, 0);
    let read = file.read_exact(&mut buf);
    let chunk = buf.split().freeze();
    let mut buffers = READ_BUFFERS.lock().unwrap_or_else(|e| e.into_inner());
    if buffers.len() < POOLED_READ_BUFFERS {
        buffers.push(buf);
    }
    read.map(|()| chunk)
}

/// Streams `range` of a local file. Each step is one blocking-pool hop that reads a large chunk
/// straight into the (pooled) buffer handed to the socket: no second copy, few thread hops (the first hop
/// also opens the file, so a 1 MiB image costs one).
async fn local_stream(path: PathBuf, range: Range<u64>) -> Result<ByteStream> {
    use std::io::Seek;

    fn read_chunk(file: &mut std::fs::File, remaining: u64) -> std::io::Result<Bytes> {
        read_pooled(file, remaining.min(LOCAL_READ_CHUNK as u64) as usize)
    }

    let len = range.end - range.start;
    let opened = tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path)?;
        file.seek(SeekFrom::Start(range.start))?;
        let first = read_chunk(&mut file, len)?;
        Ok::<_, std::io::Error>((file, first))
    })
    .await
    .map_err(|e| StoreError::Blob(e.to_string()))?;
    let (file, first) = match opened {
        Ok(opened) => opened,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StoreError::NotFound),
        Err(e) => return Err(e.into()),
    };
    let rest = len - first.len() as u64;
    let tail = futures_util::stream::try_unfold((file, rest), |(mut file, remaining)| async move {
        if remaining == 0 {
            return Ok(None);
        }
        let (file, chunk) = tokio::task::spawn_blocking(move || {
            read_chunk(&mut file, remaining).map(|chunk| (file, chunk))
        })
        .await
        .map_err(std::io::Error::other)??;
        let remaining = remaining - chunk.len() as u64;
        Ok(Some((chunk, (file, remaining))))
    });
    Ok(futures_util::stream::once(async { Ok(first) })
        .chain(tail)
        .boxed())
}

/// An upload that finished arriving and was hashed, waiting to be committed.
#[derive(Debug)]
pub struct StagedFile {
    at: StagedAt,
    pub digests: Digests,
}

/// Where a staged upload's bytes are.
#[derive(Debug)]
enum StagedAt {
    /// A file in the local staging directory.
    File(PathBuf),
    /// A temp object in the blob store (a sealed session whose chunks were in the bucket).
    Object(ObjectPath),
}

/// Why bytes could not be staged.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// More bytes arrived than allowed.
    #[error("upload exceeds the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// The client's body stream failed (disconnect, bad multipart framing).
    #[error("upload interrupted: {0}")]
    Body(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<std::io::Error> for IngestError {
    fn from(e: std::io::Error) -> Self {
        IngestError::Store(e.into())
    }
}

/// Where uploads land before they are verified: a local directory, and for resumable sessions
/// the blob store's bucket when blobs are not local.
#[derive(Debug, Clone)]
pub struct Staging {
    dir: PathBuf,
    /// Set when sessions live in the object store.
    objects: Option<ObjectSessions>,
    /// The digests of each local session's bytes so far, carried from chunk to chunk so that
    /// sealing needs no second pass over the file. A session whose state is missing (otter
    /// restarted) or out of step (a chunk failed mid-write) is hashed from its file instead.
    hashed: Arc<SessionHashes>,
}

#[derive(Default)]
struct SessionHashes(Mutex<HashMap<String, MultiHasher>>);

impl std::fmt::Debug for SessionHashes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionHashes").finish_non_exhaustive()
    }
}

const TEMP_PREFIX: &str = "tmp-";
const SESSION_PREFIX: &str = "upload-";

impl Staging {
    /// Uses `dir`, creating it if needed. Staged files are the owner's only, and keep that
    /// mode when they become blobs.
    pub fn new(dir: &Path) -> Result<Self> {
        private::create_dir_all(dir)?;
        Ok(Staging {
            dir: dir.to_path_buf(),
            objects: None,
            hashed: Arc::default(),
        })
    }

    /// Keeps resumable sessions in `blobs`' object store when it is not a local directory, so
    /// that several nodes sharing the bucket can each take any chunk of any session.
    pub fn with_sessions_in(mut self, blobs: &Blobs) -> Self {
        self.objects = (!blobs.is_local()).then(|| ObjectSessions::new(blobs.store.clone()));
        self
    }

    /// Whether sessions live in the object store.
    pub fn sessions_in_objects(&self) -> bool {
        self.objects.is_some()
    }

    /// Streams a whole upload into a fresh staging file while hashing it. On any failure the
    /// file is removed.
    pub async fn ingest<S, E>(&self, body: S, limit: u64) -> Result<StagedFile, IngestError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Display,
    {
        let path = self.dir.join(format!("{TEMP_PREFIX}{}", random_id()));
        let file = private::create_file(&path).await?;
        let mut hasher = MultiHasher::new();
        match write_stream(file, body, &mut hasher, limit).await {
            Ok(()) => Ok(StagedFile {
                at: StagedAt::File(path),
                digests: hasher.finish(),
            }),
            Err(e) => {
                discard(&path).await;
                Err(e)
            }
        }
    }

    fn session_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{SESSION_PREFIX}{id}"))
    }

    /// Creates the empty file of a new upload session (nothing to do in an object store: a
    /// session without chunks holds 0 bytes).
    pub async fn create_session(&self, id: &str) -> Result<()> {
        if self.objects.is_some() {
            return Ok(());
        }
        private::create_file(&self.session_path(id)).await?;
        Ok(())
    }

    /// Bytes a session holds: the authority on its offset, since the bytes are written before
    /// the database learns of them. In an object store, a session that exists in the database
    /// holds 0 bytes until its first chunk.
    pub async fn session_len(&self, id: &str) -> Result<u64> {
        if let Some(objects) = &self.objects {
            return objects.len(id).await;
        }
        match tokio::fs::metadata(self.session_path(id)).await {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    /// Appends a chunk to a session that holds exactly `offset` bytes; the session may not grow
    /// past `limit`. Bytes that arrived before the client went away are kept, so the client can
    /// resume from the returned length; a chunk that would pass `limit` is rolled back whole.
    pub async fn append<S, E>(
        &self,
        id: &str,
        offset: u64,
        body: S,
        limit: u64,
    ) -> (u64, Result<(), IngestError>)
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Display,
    {
        if let Some(objects) = &self.objects {
            return objects.append(id, offset, body, limit).await;
        }
        let path = self.session_path(id);
        let file = match tokio::fs::OpenOptions::new().append(true).open(&path).await {
            Ok(f) => f,
            Err(e) => return (offset, Err(e.into())),
        };
        // Continue the session's digests when they cover exactly the bytes before this chunk;
        // otherwise the hasher only counts this chunk's bytes against the limit.
        let carried = self.hashed_lock().remove(id).filter(|h| h.size() == offset);
        let (mut hasher, chunk_limit) = match carried {
            Some(hasher) => (hasher, limit),
            None if offset == 0 => (MultiHasher::new(), limit),
            None => (MultiHasher::new(), limit - offset),
        };
        let continues = hasher.size() == offset;
        let result = write_stream(file, body, &mut hasher, chunk_limit).await;
        if let Err(IngestError::TooLarge { .. }) = result {
            let rollback = async {
                let f = tokio::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .await?;
                f.set_len(offset).await?;
                f.sync_all().await
            };
            if let Err(e) = rollback.await {
                return (offset, Err(e.into()));
            }
            return (offset, Err(IngestError::TooLarge { limit }));
        }
        match self.session_len(id).await {
            Ok(len) => {
                if continues && hasher.size() == len {
                    self.hashed_lock().insert(id.to_owned(), hasher);
                }
                (len, result)
            }
            Err(e) => (offset, Err(e.into())),
        }
    }

    fn hashed_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, MultiHasher>> {
        self.hashed.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hashes a complete session and hands it over for committing; the session file moves to a
    /// temp name so a concurrent chunk cannot change it after hashing. In an object store the
    /// chunks are streamed in order into a temp object and stay until [`Staging::remove_session`].
    pub async fn seal_session(&self, id: &str) -> Result<StagedFile> {
        if let Some(objects) = &self.objects {
            let (temp, digests) = objects.seal(id).await?;
            return Ok(StagedFile {
                at: StagedAt::Object(temp),
                digests,
            });
        }
        let sealed = self.dir.join(format!("{TEMP_PREFIX}{}", random_id()));
        let carried = self.hashed_lock().remove(id);
        tokio::fs::rename(self.session_path(id), &sealed).await?;
        let len = tokio::fs::metadata(&sealed).await?.len();
        let digests = match carried.filter(|h| h.size() == len) {
            Some(hasher) => Ok(hasher.finish()),
            None => {
                let path = sealed.clone();
                tokio::task::spawn_blocking(move || digest_file(&path))
                    .await
                    .map_err(|e| StoreError::Blob(e.to_string()))?
            }
        };
        match digests {
            Ok(digests) => Ok(StagedFile {
                at: StagedAt::File(sealed),
                digests,
            }),
            Err(e) => {
                discard(&sealed).await;
                Err(e.into())
            }
        }
    }

    /// Removes a session's bytes (finalized, aborted, expired).
    pub async fn remove_session(&self, id: &str) {
        match &self.objects {
            Some(objects) => objects.remove(id).await,
            None => {
                self.hashed_lock().remove(id);
                discard(&self.session_path(id)).await
            }
        }
    }

    /// Drops a staged upload that will not be committed (checksum mismatch, already stored).
    pub async fn discard(&self, staged: StagedFile) {
        match (staged.at, &self.objects) {
            (StagedAt::File(path), _) => discard(&path).await,
            (StagedAt::Object(temp), Some(objects)) => objects.discard(&temp).await,
            (StagedAt::Object(temp), None) => {
                tracing::warn!(%temp, "staged object without an object store")
            }
        }
    }

    /// Deletes what sessions in the object store left behind: chunks of sessions the database
    /// no longer knows and temp objects of crashed finalizes (nothing to do for local
    /// sessions, see [`Staging::sweep`]). Safe while other nodes serve the same bucket.
    pub async fn sweep_objects(&self, uploads: &dyn UploadStore) -> Result<usize> {
        match &self.objects {
            Some(objects) => objects.sweep(uploads).await,
            None => Ok(0),
        }
    }

    /// Deletes every temp file and every session file whose id is not in `live`: what a crash or
    /// an interrupted upload left behind. Returns how many files went.
    pub async fn sweep(&self, live: &HashSet<String>) -> Result<usize> {
        let mut removed = 0;
        let mut entries = tokio::fs::read_dir(&self.dir).await?;
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name().to_string_lossy().into_owned();
            let orphan = name.starts_with(TEMP_PREFIX)
                || name
                    .strip_prefix(SESSION_PREFIX)
                    .is_some_and(|id| !live.contains(id));
            if orphan {
                discard(&entry.path()).await;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Writes `body` to `file` through `hasher`, refusing to pass `limit` bytes, and syncs the file.
async fn write_stream<S, E>(
    file: tokio::fs::File,
    mut body: S,
    hasher: &mut MultiHasher,
    limit: u64,
) -> Result<(), IngestError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Display,
{
    let mut out = BufWriter::with_capacity(STAGING_WRITE_BUFFER, file);
    let mut outcome = Ok(());
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                outcome = Err(IngestError::Body(e.to_string()));
                break;
            }
        };
        if hasher.size() + chunk.len() as u64 > limit {
            outcome = Err(IngestError::TooLarge { limit });
            break;
        }
        hasher.update(&chunk);
        out.write_all(&chunk).await?;
    }
    // Flush even after a client error: for sessions, the bytes that did arrive are kept.
    out.flush().await?;
    out.get_ref().sync_all().await?;
    outcome
}

fn digest_file(path: &Path) -> std::io::Result<Digests> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = MultiHasher::new();
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        match file.read(&mut buf)? {
            0 => return Ok(hasher.finish()),
            n => hasher.update(&buf[..n]),
        }
    }
}

async fn discard(path: &Path) {
    if let Err(e) = tokio::fs::remove_file(path).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "could not remove staging file");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, String>> + Unpin {
        stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    async fn read_all(blobs: &Blobs, sha: &str, range: Range<u64>) -> Vec<u8> {
        // Every test blob is "hello world".
        let parts: Vec<Bytes> = blobs
            .open(sha, 11, range)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        parts.concat()
    }

    async fn round_trip(blobs: Blobs, staging: Staging) {
        let staged = staging
            .ingest(chunks(&[b"hello ", b"world"]), 100)
            .await
            .unwrap();
        let sha = staged.digests.sha256.clone();
        assert_eq!(staged.digests.size, 11);
        assert!(!blobs.exists(&sha).await.unwrap());
        blobs.commit(staged).await.unwrap();
        assert!(blobs.exists(&sha).await.unwrap());
        assert_eq!(read_all(&blobs, &sha, 0..11).await, b"hello world");
        assert_eq!(read_all(&blobs, &sha, 6..9).await, b"wor");
    }

    /// Downloads held open while others stream keep their own bytes: a pooled read buffer is
    /// reused only once every chunk cut from it is gone.
    #[tokio::test]
    async fn chunks_held_by_slow_downloads_are_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::new(&dir.path().join("staging")).unwrap();
        let blobs = Blobs::local(&dir.path().join("blobs")).unwrap();
        let mut images = Vec::new();
        for seed in 0..3u8 {
            let image: Vec<u8> = (0..LOCAL_READ_CHUNK + 1000)
                .map(|i| (i as u8).wrapping_mul(seed + 1).wrapping_add(seed))
                .collect();
            let body = futures_util::stream::iter([Ok::<_, String>(Bytes::from(image.clone()))]);
            let staged = staging.ingest(body, u64::MAX).await.unwrap();
            let sha = staged.digests.sha256.clone();
            blobs.commit(staged).await.unwrap();
            images.push((sha, image));
        }
        let size = images[0].1.len() as u64;
        let mut held = Vec::new();
        for round in 0..2 * POOLED_READ_BUFFERS {
            let (sha, image) = &images[round % images.len()];
            let from = (round * 37) as u64;
            let mut stream = blobs.open(sha, size, from..size).await.unwrap();
            let first = stream.next().await.unwrap().unwrap();
            assert_eq!(
                &first[..],
                &image[from as usize..from as usize + first.len()]
            );
            // Every other download stalls with its first chunk; the rest finish.
            if round % 2 == 0 {
                held.push((first, image, from));
            } else {
                let rest: Vec<Bytes> = stream.try_collect().await.unwrap();
                assert_eq!(
                    [first].iter().chain(&rest).map(Bytes::len).sum::<usize>() as u64,
                    size - from
                );
            }
        }
        for (chunk, image, from) in held {
            assert_eq!(
                &chunk[..],
                &image[from as usize..from as usize + chunk.len()]
            );
        }
    }

    #[tokio::test]
    async fn local_and_object_store_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::new(&dir.path().join("staging")).unwrap();
        round_trip(
            Blobs::local(&dir.path().join("blobs")).unwrap(),
            staging.clone(),
        )
        .await;
        let memory = Arc::new(object_store::memory::InMemory::new());
        round_trip(Blobs::object_store(memory), staging.clone()).await;
        assert_eq!(
            staging.sweep(&HashSet::new()).await.unwrap(),
            0,
            "staging left files"
        );
    }

    #[tokio::test]
    async fn failed_ingest_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::new(dir.path()).unwrap();
        let too_big = staging.ingest(chunks(&[b"0123456789"]), 5).await;
        assert!(matches!(too_big, Err(IngestError::TooLarge { limit: 5 })));
        let broken = stream::iter(vec![
            Ok(Bytes::from_static(b"abc")),
            Err("reset".to_string()),
        ]);
        assert!(matches!(
            staging.ingest(broken, 100).await,
            Err(IngestError::Body(_))
        ));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn sessions_append_keep_partial_chunks_and_roll_back_overflow() {
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::new(dir.path()).unwrap();
        staging.create_session("s1").await.unwrap();
        let (len, r) = staging.append("s1", 0, chunks(&[b"abc"]), 10).await;
        assert!(r.is_ok());
        assert_eq!(len, 3);
        let cut = stream::iter(vec![
            Ok(Bytes::from_static(b"de")),
            Err("reset".to_string()),
        ]);
        let (len, r) = staging.append("s1", 3, cut, 10).await;
        assert!(matches!(r, Err(IngestError::Body(_))));
        assert_eq!(len, 5, "bytes before the disconnect are kept");
        let (len, r) = staging.append("s1", 5, chunks(&[b"fghijkl"]), 10).await;
        assert!(matches!(r, Err(IngestError::TooLarge { .. })));
        assert_eq!(len, 5, "an overflowing chunk is rolled back");
        let (len, _) = staging.append("s1", 5, chunks(&[b"fghij"]), 10).await;
        assert_eq!(len, 10);
        let sealed = staging.seal_session("s1").await.unwrap();
        assert_eq!(
            sealed.digests.sha256,
            otter_core::digest::sha256_hex(b"abcdefghij")
        );
        let live: HashSet<String> = ["s2".to_string()].into();
        staging.create_session("s2").await.unwrap();
        staging.create_session("dead").await.unwrap();
        assert_eq!(
            staging.sweep(&live).await.unwrap(),
            2,
            "sealed temp + dead session"
        );
        assert_eq!(staging.session_len("s2").await.unwrap(), 0);
    }
}
