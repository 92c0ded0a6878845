//! [`HotCache`]: recently served firmware images kept in memory.
//!
//! A rollout makes a whole fleet fetch the same image within minutes. Serving it from memory
//! skips the disk (or the object store) and the copy into a read buffer: the cached bytes go to
//! the socket as they are. The cache is bounded in total size, holds only images up to
//! [`MAX_ITEM`], loads each image once however many devices ask at the same moment (one loader,
//! everyone else waits for it), and evicts the least recently used image first. Images are
//! content-addressed, so an entry never goes stale.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::OnceCell;

/// Largest image kept in memory; bigger ones (embedded-Linux root file systems) always stream.
pub const MAX_ITEM: u64 = 16 * 1024 * 1024;

#[derive(Debug)]
pub struct HotCache {
    capacity: u64,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Bytes reserved by entries, loaded or loading.
    used: u64,
    /// Logical clock for least-recently-used eviction.
    clock: u64,
}

#[derive(Debug)]
struct Entry {
    bytes: Arc<OnceCell<Bytes>>,
    size: u64,
    last_used: u64,
}

impl HotCache {
    /// A cache holding at most `capacity` bytes of images.
    pub fn new(capacity: u64) -> Self {
        HotCache {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Whether an image of `size` bytes is worth caching.
    pub fn admits(&self, size: u64) -> bool {
        size <= MAX_ITEM.min(self.capacity)
    }

    /// The image's bytes, loading them with `load` on a miss. Concurrent misses share one load;
    /// a failed load is forgotten so the next request tries again.
    pub async fn get_or_load<F, Fut, E>(&self, key: &str, size: u64, load: F) -> Result<Bytes, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, E>>,
    {
        let cell = self.reserve(key, size);
        let result = cell.get_or_try_init(load).await.cloned();
        if result.is_err() {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(entry) = inner.entries.get(key)
                && Arc::ptr_eq(&entry.bytes, &cell)
                && !entry.bytes.initialized()
            {
                inner.used -= entry.size;
                inner.entries.remove(key);
            }
        }
        result
    }

    /// Finds or creates the entry for `key`, evicting loaded images until it fits.
    fn reserve(&self, key: &str, size: u64) -> Arc<OnceCell<Bytes>> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.clock += 1;
        let now = inner.clock;
        if let Some(entry) = inner.entries.get_mut(key) {
            entry.last_used = now;
            return entry.bytes.clone();
        }
        while inner.used + size > self.capacity {
            // Only loaded entries are evicted; a loading one has waiters counting on it.
            let victim = inner
                .entries
                .iter()
                .filter(|(_, e)| e.bytes.initialized())
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone());
            let Some(victim) = victim else { break };
            if let Some(evicted) = inner.entries.remove(&victim) {
                inner.used -= evicted.size;
            }
        }
        let bytes = Arc::new(OnceCell::new());
        inner.used += size;
        inner.entries.insert(
            key.to_owned(),
            Entry {
                bytes: bytes.clone(),
                size,
                last_used: now,
            },
        );
        bytes
    }

    /// Bytes of images held or being loaded.
    pub fn used(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).used
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn image(n: usize) -> Bytes {
        Bytes::from(vec![7u8; n])
    }

    #[tokio::test]
    async fn concurrent_misses_load_once() {
        let cache = Arc::new(HotCache::new(1000));
        let loads = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (cache, loads) = (cache.clone(), loads.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_load("a", 100, || async {
                            loads.fetch_add(1, Ordering::SeqCst);
                            tokio::task::yield_now().await;
                            Ok::<_, ()>(image(100))
                        })
                        .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().len(), 100);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn evicts_least_recently_used_and_stays_bounded() {
        let cache = HotCache::new(250);
        for key in ["a", "b"] {
            cache
                .get_or_load(key, 100, || async { Ok::<_, ()>(image(100)) })
                .await
                .unwrap();
        }
        // Touch a, so b is the least recently used when c arrives.
        cache
            .get_or_load("a", 100, || async { Err(()) })
            .await
            .unwrap();
        cache
            .get_or_load("c", 100, || async { Ok::<_, ()>(image(100)) })
            .await
            .unwrap();
        assert_eq!(cache.used(), 200);
        assert!(
            cache
                .get_or_load("a", 100, || async { Err(()) })
                .await
                .is_ok(),
            "a kept"
        );
        assert!(
            cache
                .get_or_load("b", 100, || async { Err(()) })
                .await
                .is_err(),
            "b evicted"
        );
    }

    #[tokio::test]
    async fn failed_loads_are_retried() {
        let cache = HotCache::new(1000);
        assert!(
            cache
                .get_or_load("a", 10, || async { Err("disk") })
                .await
                .is_err()
        );
        assert_eq!(cache.used(), 0);
        let ok = cache
            .get_or_load("a", 10, || async { Ok::<_, &str>(image(10)) })
            .await;
        assert_eq!(ok.unwrap().len(), 10);
        assert!(!cache.admits(MAX_ITEM + 1));
    }
}
