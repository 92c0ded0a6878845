//! Artifact bytes and resumable upload sessions in an S3-compatible object store.
//!
//! - [`connect_s3`] opens a bucket (and key prefix) with the standard AWS environment variables
//!   for credentials and region, plus an explicit endpoint for MinIO, Garage, Ceph RGW or moto.
//! - [`ObjectWriter`] streams bytes into one object with bounded memory: a single `PUT` when they
//!   fit in one part, a multipart upload otherwise.
//! - [`ObjectSessions`] keeps resumable upload sessions in the bucket, so any of several stateless
//!   nodes can take any chunk: each chunk is an object `uploads/<id>/<offset:020>`, and the
//!   session's offset is derived by listing them (see [`ObjectSessions::len`]).
//!
//! Bucket layout under the prefix: `sha256/<2 hex>/<64 hex>` (artifacts, immutable),
//! `uploads/<session>/<offset>` (session chunks), `tmp/<random>` (a finalized session being
//! verified).

use std::collections::{BTreeMap, HashSet};
use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::signer::Signer;
use object_store::{
    ClientConfigKey, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart,
};
use otter_core::digest::{Digests, MultiHasher};

use crate::blob::IngestError;
use crate::{Result, StoreError, UploadStore, now, random_id};

/// Size of a multipart upload's parts, and the most a single `PUT` carries.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts of one upload in flight at once (memory per upload: about one part more than this).
const PARTS_IN_FLIGHT: usize = 2;
/// A temp object older than this is what a crashed finalize left behind.
const TEMP_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// A stalled read from the bucket fails after this long (downloads have no overall timeout:
/// a slow device may take hours over a large image).
const DOWNLOAD_READ_TIMEOUT: &str = "60s";

const UPLOADS: &str = "uploads";
const TEMP: &str = "tmp";

/// How to reach an S3-compatible service, on top of the standard AWS environment variables
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, ...).
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    /// Endpoint of a non-AWS service (`OTTER_S3_ENDPOINT`), e.g. `http://minio:9000`: requests
    /// use path-style addressing, and plain `http://` is allowed.
    pub endpoint: Option<String>,
    /// Further object_store settings by `AmazonS3ConfigKey` name (`aws_access_key_id`,
    /// `aws_region`, ...); they win over the environment. Tests pass credentials this way.
    pub options: Vec<(String, String)>,
}

/// A bucket opened for otter.
pub(crate) struct S3 {
    /// Everything but downloads, with object_store's default timeouts.
    pub store: Arc<dyn ObjectStore>,
    /// Downloads: no overall request timeout, a read timeout instead.
    pub reader: Arc<dyn ObjectStore>,
    /// Presigns download URLs.
    pub signer: Arc<dyn Signer>,
}

/// Opens `bucket`, keeping every key under `prefix` (may be empty).
pub(crate) fn connect_s3(bucket: &str, prefix: &str, settings: &S3Settings) -> Result<S3> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    for (key, value) in &settings.options {
        let key: AmazonS3ConfigKey = key
            .parse()
            .map_err(|e| StoreError::Blob(format!("S3 setting {key:?}: {e}")))?;
        builder = builder.with_config(key, value);
    }
    if let Some(endpoint) = &settings.endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_virtual_hosted_style_request(false)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    let reader_builder = {
        let mut b = builder
            .clone()
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "7d");
        if b.get_config_value(&AmazonS3ConfigKey::Client(ClientConfigKey::ReadTimeout))
            .is_none()
        {
            b = b.with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::ReadTimeout),
                DOWNLOAD_READ_TIMEOUT,
            );
        }
        b
    };
    let open = |b: AmazonS3Builder| {
        b.build()
            .map(|s3| Arc::new(PrefixStore::new(s3, prefix)))
            .map_err(|e| StoreError::Blob(format!("S3 bucket {bucket:?}: {e}")))
    };
    let store = open(builder)?;
    let reader = open(reader_builder)?;
    Ok(S3 {
        store: store.clone(),
        reader,
        signer: store,
    })
}

/// Streams bytes into one object. Up to [`PART_SIZE`] bytes are held and sent in one `PUT`;
/// past that the object becomes a multipart upload with at most [`PARTS_IN_FLIGHT`] parts in
/// flight, so memory stays bounded whatever the object's size. The object appears only when
/// [`ObjectWriter::finish`] succeeds; after an error, call [`ObjectWriter::abort`].
pub struct ObjectWriter {
    store: Arc<dyn ObjectStore>,
    key: ObjectPath,
    create: bool,
    held: Vec<Bytes>,
    held_len: usize,
    multipart: Option<WriteMultipart>,
    written: u64,
}

impl ObjectWriter {
    /// A writer for `key`. With `create`, a single `PUT` is conditional (`If-None-Match: *`) and
    /// an object already at `key` is left as it is (callers use this for content-addressed keys,
    /// where an existing object holds the same bytes). Multipart uploads cannot be conditional
    /// in object_store; callers check existence first and only write verified bytes.
    pub fn new(store: Arc<dyn ObjectStore>, key: ObjectPath, create: bool) -> Self {
        ObjectWriter {
            store,
            key,
            create,
            held: Vec::new(),
            held_len: 0,
            multipart: None,
            written: 0,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    pub async fn write(&mut self, bytes: Bytes) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.written += bytes.len() as u64;
        if let Some(multipart) = &mut self.multipart {
            multipart.wait_for_capacity(PARTS_IN_FLIGHT).await?;
            multipart.put(bytes);
            return Ok(());
        }
        self.held_len += bytes.len();
        self.held.push(bytes);
        if self.held_len > PART_SIZE {
            let upload = self.store.put_multipart(&self.key).await?;
            let mut multipart = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            for held in self.held.drain(..) {
                multipart.put(held);
            }
            self.held_len = 0;
            self.multipart = Some(multipart);
        }
        Ok(())
    }

    /// Makes the object visible.
    pub async fn finish(mut self) -> Result<()> {
        if let Some(multipart) = self.multipart.take() {
            // finish aborts the upload itself when it fails.
            multipart.finish().await?;
            return Ok(());
        }
        let payload: PutPayload = std::mem::take(&mut self.held).into_iter().collect();
        if !self.create {
            self.store.put(&self.key, payload).await?;
            return Ok(());
        }
        let create = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&self.key, payload.clone(), create)
            .await
        {
            // Content-addressed: what is there already has these bytes.
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            // The service cannot do conditional writes (AWS_CONDITIONAL_PUT=disabled).
            Err(object_store::Error::NotImplemented { .. }) => {
                self.store.put(&self.key, payload).await?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Drops what was written; nothing appears at the key.
    pub async fn abort(mut self) {
        if let Some(multipart) = self.multipart.take()
            && let Err(e) = multipart.abort().await
        {
            tracing::warn!(key = %self.key, error = %e, "could not abort a multipart upload");
        }
    }
}

/// Moves a verified temp object to its content-addressed `key`, create-only where the service
/// can (`AWS_COPY_IF_NOT_EXISTS`), else by a plain copy: the bytes are verified, so at worst an
/// object is replaced by the same bytes. The temp object is deleted either way.
pub(crate) async fn promote(
    store: &Arc<dyn ObjectStore>,
    temp: &ObjectPath,
    key: &ObjectPath,
) -> Result<()> {
    let result = match store.head(key).await {
        Ok(_) => Ok(()),
        Err(object_store::Error::NotFound { .. }) => {
            match store.copy_if_not_exists(temp, key).await {
                Ok(()) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
                Err(
                    object_store::Error::NotSupported { .. }
                    | object_store::Error::NotImplemented { .. },
                ) => store.copy(temp, key).await.map_err(StoreError::from),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    };
    delete_quietly(store, temp).await;
    result
}

async fn delete_quietly(store: &Arc<dyn ObjectStore>, key: &ObjectPath) {
    match store.delete(key).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => tracing::warn!(key = %key, error = %e, "could not delete an object"),
    }
}

/// One chunk object of a session.
#[derive(Debug, Clone)]
struct Part {
    key: ObjectPath,
    size: u64,
}

/// Resumable upload sessions whose bytes live in the bucket.
///
/// The chunk objects are the authority on a session's offset, like the staging file is for a
/// local session: the offset is where the chain of chunks that starts at byte 0 (each chunk
/// named by its offset, the next starting where it ends) stops. A node derives it by listing
/// the session's prefix, so no node keeps anything of a session in memory. Chunks are written
/// whole or not at all (a multipart upload completes or leaves nothing); a chunk whose client
/// went away mid-way is completed with the bytes that did arrive.
///
/// Two nodes racing on one offset (a client retrying on another node while the first request
/// still runs) can leave a chunk object outside the chain; it is never read, and it goes with
/// the session. Any object in the chain holds the client's bytes for exactly its range, so the
/// chain is always a prefix of what the client sent, and finalize checks the SHA-256 anyway.
#[derive(Debug, Clone)]
pub struct ObjectSessions {
    store: Arc<dyn ObjectStore>,
}

impl ObjectSessions {
    pub(crate) fn new(store: Arc<dyn ObjectStore>) -> Self {
        ObjectSessions { store }
    }

    fn prefix(id: &str) -> ObjectPath {
        ObjectPath::from(format!("{UPLOADS}/{id}"))
    }

    fn part_key(id: &str, offset: u64) -> ObjectPath {
        ObjectPath::from(format!("{UPLOADS}/{id}/{offset:020}"))
    }

    /// The chain of chunks from byte 0, in order.
    async fn chain(&self, id: &str) -> Result<Vec<Part>> {
        let listed: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&Self::prefix(id)))
            .try_collect()
            .await?;
        let by_offset: BTreeMap<u64, Part> = listed
            .into_iter()
            .filter_map(|meta| {
                let offset = meta.location.filename()?.parse::<u64>().ok()?;
                Some((
                    offset,
                    Part {
                        key: meta.location,
                        size: meta.size,
                    },
                ))
            })
            .collect();
        let mut chain = Vec::new();
        let mut at = 0;
        while let Some(part) = by_offset.get(&at).filter(|p| p.size > 0) {
            at += part.size;
            chain.push(part.clone());
        }
        Ok(chain)
    }

    /// Bytes the session holds.
    pub async fn len(&self, id: &str) -> Result<u64> {
        Ok(self.chain(id).await?.iter().map(|p| p.size).sum())
    }

    /// Stores a chunk that starts at `offset` (which the caller checked against [`Self::len`]);
    /// the session may not grow past `limit`. Returns the session's new length. Bytes that
    /// arrived before the client went away are kept; a chunk that would pass `limit` is dropped
    /// whole.
    pub async fn append<S, E>(
        &self,
        id: &str,
        offset: u64,
        mut body: S,
        limit: u64,
    ) -> (u64, Result<(), IngestError>)
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Display,
    {
        let allowed = limit.saturating_sub(offset);
        let mut writer = ObjectWriter::new(self.store.clone(), Self::part_key(id, offset), false);
        let mut outcome = Ok(());
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    outcome = Err(IngestError::Body(e.to_string()));
                    break;
                }
            };
            if writer.written() + chunk.len() as u64 > allowed {
                writer.abort().await;
                return (offset, Err(IngestError::TooLarge { limit }));
            }
            if let Err(e) = writer.write(chunk).await {
                writer.abort().await;
                return (offset, Err(e.into()));
            }
        }
        let written = writer.written();
        if written == 0 {
            writer.abort().await;
            return (offset, outcome);
        }
        // Also after a client error: the bytes that did arrive are kept.
        match writer.finish().await {
            Ok(()) => (offset + written, outcome),
            Err(e) => (offset, Err(e.into())),
        }
    }

    /// Streams the session's chunks in order through the hashers into a new temp object and
    /// returns its key and digests. The chunks stay until [`Self::remove`], so a finalize that
    /// fails here can be retried.
    pub async fn seal(&self, id: &str) -> Result<(ObjectPath, Digests)> {
        let chain = self.chain(id).await?;
        let temp = ObjectPath::from(format!("{TEMP}/{}", random_id()));
        let mut writer = ObjectWriter::new(self.store.clone(), temp.clone(), false);
        let mut hasher = MultiHasher::new();
        let copied: Result<()> = async {
            for part in &chain {
                let mut stream = self.store.get(&part.key).await?.into_stream();
                let mut got = 0u64;
                while let Some(bytes) = stream.next().await {
                    let bytes = bytes?;
                    got += bytes.len() as u64;
                    hasher.update(&bytes);
                    writer.write(bytes).await?;
                }
                if got != part.size {
                    return Err(StoreError::Blob(format!(
                        "upload chunk {} has {got} bytes, listed with {}",
                        part.key, part.size
                    )));
                }
            }
            Ok(())
        }
        .await;
        match copied {
            Ok(()) => writer.finish().await?,
            Err(e) => {
                writer.abort().await;
                return Err(e);
            }
        }
        Ok((temp, hasher.finish()))
    }

    /// Deletes a session's chunks (finalized, aborted, expired).
    pub async fn remove(&self, id: &str) {
        if let Err(e) = self.delete_under(&Self::prefix(id)).await {
            tracing::warn!(upload = %id, error = %e, "could not delete an upload's chunks");
        }
    }

    /// Deletes a temp object that will not be committed (checksum mismatch).
    pub async fn discard(&self, temp: &ObjectPath) {
        delete_quietly(&self.store, temp).await;
    }

    async fn delete_under(&self, prefix: &ObjectPath) -> Result<usize> {
        let keys = self
            .store
            .list(Some(prefix))
            .map_ok(|meta| meta.location)
            .boxed();
        let deleted: Vec<ObjectPath> = self
            .store
            .delete_stream(keys)
            .or_else(|e| async move {
                match e {
                    object_store::Error::NotFound { path, .. } => Ok(ObjectPath::from(path)),
                    other => Err(other),
                }
            })
            .try_collect()
            .await?;
        Ok(deleted.len())
    }

    /// Deletes chunks of sessions the database no longer knows (a node died between deleting a
    /// session's row and its chunks, or a chunk raced with finalize on another node) and temp
    /// objects of finalizes that crashed. Lists first and asks the database second: a session
    /// is created in the database before its first chunk, so a listed chunk of a live session
    /// always finds its row. Returns how many objects went.
    pub async fn sweep(&self, uploads: &dyn UploadStore) -> Result<usize> {
        let listed: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&ObjectPath::from(UPLOADS)))
            .try_collect()
            .await?;
        let live: HashSet<String> = uploads.all_uploads().await?.into_iter().collect();
        let orphans: Vec<ObjectPath> = listed
            .into_iter()
            .filter(|meta| {
                meta.location
                    .parts()
                    .nth(1)
                    .is_some_and(|id| !live.contains(id.as_ref()))
            })
            .map(|meta| meta.location)
            .collect();
        let cutoff = now() - TEMP_MAX_AGE.as_secs() as i64;
        let stale_temps: Vec<ObjectPath> = self
            .store
            .list(Some(&ObjectPath::from(TEMP)))
            .try_filter(|meta| std::future::ready(meta.last_modified.timestamp() < cutoff))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await?;
        let mut removed = 0;
        for key in orphans.iter().chain(&stale_temps) {
            delete_quietly(&self.store, key).await;
            removed += 1;
        }
        Ok(removed)
    }
}

/// Against a real S3-compatible server (moto, started by otter-testkit); skipped with a SKIP line
/// when moto is not installed, failed under `CI=true`.
#[cfg(test)]
mod tests {
    use std::ops::Range;

    use futures_util::stream;
    use otter_core::digest::sha256_hex;
    use otter_core::model::UploadSession;
    use otter_testkit::s3::TempS3;

    use super::*;
    use crate::blob::{BlobLocation, Blobs, Staging};

    fn blobs_in(s3: &TempS3, prefix: &str) -> Blobs {
        let location = BlobLocation::parse(&s3.url(prefix)).unwrap();
        let settings = S3Settings {
            endpoint: Some(s3.endpoint.clone()),
            options: s3.options(),
        };
        Blobs::at(&location, &settings).unwrap()
    }

    fn body(parts: Vec<Vec<u8>>) -> impl Stream<Item = Result<Bytes, String>> + Unpin {
        stream::iter(parts.into_iter().map(|p| Ok(Bytes::from(p))))
    }

    fn cut(part: &[u8]) -> impl Stream<Item = Result<Bytes, String>> + Unpin {
        stream::iter(vec![
            Ok(Bytes::copy_from_slice(part)),
            Err("connection reset".to_string()),
        ])
    }

    async fn read(blobs: &Blobs, sha: &str, size: u64, range: Range<u64>) -> Vec<u8> {
        let parts: Vec<Bytes> = blobs
            .open(sha, size, range)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        parts.concat()
    }

    /// `len` bytes that differ along the way, so a misplaced part changes the hash.
    fn image(seed: u8, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed)
            .collect()
    }

    fn blob_key(prefix: &str, sha: &str) -> String {
        format!("{prefix}/sha256/{}/{sha}", &sha[..2])
    }

    #[tokio::test]
    async fn blobs_in_s3_commit_open_ranges_and_exist() {
        let Some(s3) = otter_testkit::s3::start() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::new(dir.path()).unwrap();
        let blobs = blobs_in(&s3, "fleet/a");
        // One image that fits a single PUT, one that needs a multipart upload (8 MiB parts).
        for len in [11, PART_SIZE + 3 * 1024 * 1024 + 5] {
            let bytes = image(len as u8, len);
            let staged = staging
                .ingest(body(vec![bytes.clone()]), u64::MAX)
                .await
                .unwrap();
            let sha = staged.digests.sha256.clone();
            assert_eq!(sha, sha256_hex(&bytes));
            assert!(!blobs.exists(&sha).await.unwrap());
            blobs.commit(staged).await.unwrap();
            assert!(blobs.exists(&sha).await.unwrap());
            let size = len as u64;
            assert_eq!(read(&blobs, &sha, size, 0..size).await, bytes);
            assert_eq!(read(&blobs, &sha, size, 3..9).await, &bytes[3..9]);
            assert_eq!(
                read(&blobs, &sha, size, size - 4..size).await,
                &bytes[len - 4..]
            );
            assert_eq!(s3.get(&blob_key("fleet/a", &sha)).unwrap(), bytes);
        }
        // Everything is under the prefix, nothing left in staging or the bucket's tmp/.
        let keys = s3.keys("");
        assert_eq!(keys.len(), 2, "{keys:?}");
        assert!(
            keys.iter().all(|k| k.starts_with("fleet/a/sha256/")),
            "{keys:?}"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        // Through the download cache: loaded once from S3, ranges sliced from memory.
        let cached = blobs_in(&s3, "fleet/a").with_hot_cache(1 << 20);
        let sha = sha256_hex(&image(11, 11));
        assert_eq!(read(&cached, &sha, 11, 0..11).await, image(11, 11));
        assert_eq!(read(&cached, &sha, 11, 2..5).await, &image(11, 11)[2..5]);

        // A missing blob is NotFound, not an error.
        let missing = sha256_hex(b"nothing");
        assert!(!blobs.exists(&missing).await.unwrap());
        assert!(matches!(
            blobs.open(&missing, 5, 0..5).await,
            Err(StoreError::NotFound)
        ));

        // Presigned URLs point into the bucket, under the prefix.
        let url = blobs
            .presigned_url(&sha, "fw.bin", Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap();
        assert!(
            url.starts_with(&format!("{}/{}/fleet/a/sha256/", s3.endpoint, s3.bucket)),
            "{url}"
        );
        assert!(url.contains("X-Amz-Signature="), "{url}");
    }

    #[tokio::test]
    async fn writes_are_create_only_and_committing_twice_is_fine() {
        let Some(s3) = otter_testkit::s3::start() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::new(dir.path()).unwrap();
        let blobs = blobs_in(&s3, "");
        let bytes = image(1, 1000);
        let sha = sha256_hex(&bytes);
        for _ in 0..2 {
            let staged = staging
                .ingest(body(vec![bytes.clone()]), u64::MAX)
                .await
                .unwrap();
            blobs.commit(staged).await.unwrap();
        }
        assert_eq!(
            s3.keys(""),
            vec![blob_key("", &sha).trim_start_matches('/')]
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        // A create-only PUT to an existing key succeeds and leaves the object as it was.
        let key = Blobs::key(&sha);
        let mut writer = ObjectWriter::new(blobs.store.clone(), key, true);
        writer
            .write(Bytes::from_static(b"other bytes"))
            .await
            .unwrap();
        writer.finish().await.unwrap();
        assert_eq!(
            s3.get(blob_key("", &sha).trim_start_matches('/')).unwrap(),
            bytes
        );
    }

    /// A second node's view of the same bucket: its own client, nothing shared in memory.
    fn node(s3: &TempS3, dir: &std::path::Path) -> (Blobs, Staging) {
        let blobs = blobs_in(s3, "p");
        let staging = Staging::new(dir).unwrap().with_sessions_in(&blobs);
        assert!(staging.sessions_in_objects());
        (blobs, staging)
    }

    #[tokio::test]
    async fn sessions_keep_chunks_in_the_bucket_and_finalize_into_a_blob() {
        let Some(s3) = otter_testkit::s3::start() else {
            return;
        };
        let dir_a = tempfile::tempdir().unwrap();
        let dir_b = tempfile::tempdir().unwrap();
        let (blobs, a) = node(&s3, dir_a.path());
        let (_, b) = node(&s3, dir_b.path());
        let size = PART_SIZE + 2_000_000;
        let bytes = image(7, size);
        let limit = size as u64;

        a.create_session("s1").await.unwrap();
        assert_eq!(a.session_len("s1").await.unwrap(), 0);
        let (len, r) = a
            .append("s1", 0, body(vec![bytes[..1000].to_vec()]), limit)
            .await;
        assert!(r.is_ok());
        assert_eq!(len, 1000);
        // Node B sees what node A wrote, and takes the next chunk, which is cut off mid-way.
        assert_eq!(b.session_len("s1").await.unwrap(), 1000);
        let (len, r) = b.append("s1", 1000, cut(&bytes[1000..5000]), limit).await;
        assert!(matches!(r, Err(IngestError::Body(_))), "{r:?}");
        assert_eq!(len, 5000, "the bytes before the cut are kept");
        assert_eq!(a.session_len("s1").await.unwrap(), 5000);
        // A chunk that would pass the declared size is dropped whole.
        let (len, r) = a.append("s1", 5000, body(vec![vec![0; size]]), limit).await;
        assert!(matches!(r, Err(IngestError::TooLarge { .. })), "{r:?}");
        assert_eq!(len, 5000);
        assert_eq!(b.session_len("s1").await.unwrap(), 5000);
        // An empty chunk changes nothing.
        let (len, r) = a.append("s1", 5000, body(vec![]), limit).await;
        assert!(r.is_ok());
        assert_eq!(len, 5000);
        // A chunk larger than a part (a multipart upload), in pieces, cut off after more than
        // a part arrived: the multipart upload is completed with what arrived.
        let cut_at = 5000 + PART_SIZE + 1000;
        let pieces: Vec<Result<Bytes, String>> = bytes[5000..cut_at]
            .chunks(64 * 1024)
            .map(|p| Ok(Bytes::copy_from_slice(p)))
            .chain([Err("connection reset".to_string())])
            .collect();
        let (len, r) = b.append("s1", 5000, stream::iter(pieces), limit).await;
        assert!(matches!(r, Err(IngestError::Body(_))), "{r:?}");
        assert_eq!(len, cut_at as u64);
        assert_eq!(a.session_len("s1").await.unwrap(), cut_at as u64);
        let (len, r) = a
            .append(
                "s1",
                cut_at as u64,
                body(vec![bytes[cut_at..].to_vec()]),
                limit,
            )
            .await;
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(len, limit);
        assert_eq!(b.session_len("s1").await.unwrap(), limit);
        let parts = s3.keys("p/uploads/s1/");
        assert_eq!(
            parts,
            [0, 1000, 5000, cut_at].map(|o| format!("p/uploads/s1/{o:020}")),
        );

        let staged = a.seal_session("s1").await.unwrap();
        assert_eq!(staged.digests.sha256, sha256_hex(&bytes));
        assert_eq!(staged.digests.size, limit);
        // Sealing keeps the chunks (a failed finalize can be retried); removing drops them.
        assert_eq!(s3.keys("p/uploads/").len(), 4);
        a.remove_session("s1").await;
        assert!(s3.keys("p/uploads/").is_empty());
        let sha = staged.digests.sha256.clone();
        blobs.commit(staged).await.unwrap();
        assert_eq!(read(&blobs, &sha, limit, 0..limit).await, bytes);
        assert_eq!(
            s3.keys("p/"),
            vec![blob_key("p", &sha)],
            "no temp objects left"
        );
    }

    #[tokio::test]
    async fn a_checksum_mismatch_leaves_nothing() {
        let Some(s3) = otter_testkit::s3::start() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let (blobs, staging) = node(&s3, dir.path());
        let bytes = image(3, 3000);
        staging.create_session("s2").await.unwrap();
        let (len, _) = staging
            .append("s2", 0, body(vec![bytes.clone()]), 3000)
            .await;
        assert_eq!(len, 3000);
        let staged = staging.seal_session("s2").await.unwrap();
        assert_eq!(s3.keys("p/tmp/").len(), 1, "sealed into a temp object");
        // The caller finds the SHA-256 is not the declared one and drops everything.
        staging.discard(staged).await;
        staging.remove_session("s2").await;
        assert!(s3.keys("").is_empty(), "{:?}", s3.keys(""));
        assert!(!blobs.exists(&sha256_hex(&bytes)).await.unwrap());
    }

    #[tokio::test]
    async fn sweeping_removes_chunks_of_sessions_the_database_forgot() {
        let Some(s3) = otter_testkit::s3::start() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let (_, staging) = node(&s3, dir.path());
        let db = crate::sql::SqlStore::connect(&format!(
            "sqlite://{}",
            dir.path().join("otter.db").display()
        ))
        .await
        .unwrap();
        let session = UploadSession {
            id: "live".into(),
            filename: "fw.bin".into(),
            size: 100,
            sha256: sha256_hex(b"x"),
            offset: 0,
            created_at: 0,
            updated_at: 0,
        };
        db.create_upload(&session).await.unwrap();
        for id in ["live", "dead"] {
            let (len, _) = staging.append(id, 0, body(vec![vec![1; 10]]), 100).await;
            assert_eq!(len, 10);
            let (len, _) = staging.append(id, 10, body(vec![vec![2; 10]]), 100).await;
            assert_eq!(len, 20);
        }
        assert_eq!(staging.sweep_objects(&db).await.unwrap(), 2);
        assert_eq!(
            s3.keys("p/"),
            [0, 10].map(|o| format!("p/uploads/live/{o:020}"))
        );
        assert_eq!(staging.session_len("live").await.unwrap(), 20);
        db.close().await;
    }
}
