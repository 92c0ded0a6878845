//! Device sightings wait in memory, one entry per device, and are written in batches: a fleet
//! checking in costs the database a few multi-row statements per batch instead of a write per
//! request, and a device seen six times between two writes is written once, with what its
//! sightings say together ([`DeviceSeen::absorb`]).
//!
//! The writer takes everything pending whenever it is free, so batches grow with the load by
//! themselves: a device at a time when otter is quiet, tens of thousands under a flood. At most
//! `capacity` devices wait at once (plus the batch being written); a check-in of one more device
//! is dropped and counted, as last-seen times are best-effort. What an `installed` report says
//! waits for room instead, and the report itself is written to the store before the device gets
//! its answer.
//!
//! With `--max-devices-per-product`, the store records a device its product has never seen only
//! while the product has fewer devices than that; the writer counts the devices left out and
//! warns about them at most once a minute.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use otter_core::model::DeviceSeen;
use otter_store::{OverLimit, Store};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Most devices written in one transaction: a flood's backlog goes out in several, so the
/// database's write lock is never held for long.
const WRITE_BATCH: usize = 4096;

/// How often at most the writer warns about devices over `--max-devices-per-product`.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The sending side, shared by every request.
pub struct SeenQueue {
    pending: Mutex<Pending>,
    /// Most devices waiting at once.
    capacity: usize,
    /// `--max-devices-per-product`, `None` when unlimited.
    max_devices: Option<u64>,
    /// Wakes the writer: something is pending, or the queue closed.
    wake: Notify,
    /// Wakes `record_in_order` callers waiting for room: the writer took what was pending.
    room: Notify,
    /// Devices of the batch being written.
    writing: AtomicUsize,
    dropped: AtomicU64,
    over_limit: AtomicU64,
}

#[derive(Default)]
struct Pending {
    devices: HashSet<ByDevice>,
    closed: bool,
}

/// A pending sighting, hashed and compared by its device alone, so the set holds one per device.
struct ByDevice(DeviceSeen);

impl PartialEq for ByDevice {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id && self.0.product == other.0.product
    }
}

impl Eq for ByDevice {}

impl Hash for ByDevice {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.product.hash(state);
        self.0.id.hash(state);
    }
}

impl Pending {
    /// Adds `seen`, folded into its device's pending sighting if there is one. `Ok(true)` when
    /// nothing was pending before; `seen` back when the queue is closed or it would be one
    /// device too many (boxed: the rare way out stays off the common one's stack).
    fn add(&mut self, seen: DeviceSeen, capacity: usize) -> Result<bool, Box<DeviceSeen>> {
        if self.closed {
            return Err(Box::new(seen));
        }
        let seen = ByDevice(seen);
        if let Some(ByDevice(mut earlier)) = self.devices.take(&seen) {
            earlier.absorb(seen.0);
            self.devices.insert(ByDevice(earlier));
            return Ok(false);
        }
        if self.devices.len() >= capacity {
            return Err(Box::new(seen.0));
        }
        self.devices.insert(seen);
        Ok(self.devices.len() == 1)
    }
}

impl SeenQueue {
    /// Starts the writer task, holding at most `capacity` devices pending and recording new
    /// devices only up to `max_devices` per product. The task ends once [`SeenQueue::close`] is
    /// called, after writing what is pending.
    pub fn start(
        store: Arc<dyn Store>,
        capacity: usize,
        max_devices: Option<u64>,
    ) -> (Arc<Self>, JoinHandle<()>) {
        let queue = Arc::new(SeenQueue {
            pending: Mutex::default(),
            capacity: capacity.max(1),
            max_devices,
            wake: Notify::new(),
            room: Notify::new(),
            writing: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            over_limit: AtomicU64::new(0),
        });
        let writer = tokio::spawn(write_batches(queue.clone(), store));
        (queue, writer)
    }

    /// Queues a sighting that must not be lost (a device saying it installed a release), waiting
    /// for room if needed. It is folded after the device's earlier check-ins, so a stale
    /// check-in can never overwrite it.
    pub async fn record_in_order(&self, mut seen: DeviceSeen) {
        loop {
            // Created before looking, so a batch taken in between still wakes it.
            let room = self.room.notified();
            {
                let mut pending = self.lock();
                if pending.closed {
                    tracing::warn!("sighting queue closed: shutting down");
                    return;
                }
                match pending.add(seen, self.capacity) {
                    Ok(first) => {
                        drop(pending);
                        if first {
                            self.wake.notify_one();
                        }
                        return;
                    }
                    Err(back) => seen = *back,
                }
            }
            room.await;
        }
    }

    /// Stops accepting sightings and lets the writer write what is pending and end.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
        self.room.notify_waiters();
    }

    /// Queues a sighting without waiting; drops it (and counts) when it is a new device and
    /// `capacity` devices are already waiting.
    pub fn record(&self, seen: DeviceSeen) {
        let added = self.lock().add(seen, self.capacity);
        match added {
            Ok(true) => self.wake.notify_one(),
            Ok(false) => {}
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Sightings dropped because too many devices were waiting.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Sightings of new devices not recorded because their product had
    /// `--max-devices-per-product` devices.
    pub fn over_limit(&self) -> u64 {
        self.over_limit.load(Ordering::Relaxed)
    }

    /// Devices waiting to be written, the batch being written included.
    pub fn depth(&self) -> usize {
        self.lock().devices.len() + self.writing.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn write_batches(queue: Arc<SeenQueue>, store: Arc<dyn Store>) {
    let mut warnings = Warnings::default();
    loop {
        let (batch, closed) = {
            let mut pending = queue.lock();
            let batch = std::mem::take(&mut pending.devices);
            // Under the lock, so depth() never misses the devices on their way to the writer.
            queue.writing.store(batch.len(), Ordering::Relaxed);
            (batch, pending.closed)
        };
        if batch.is_empty() {
            if closed {
                return;
            }
            queue.wake.notified().await;
            continue;
        }
        queue.room.notify_waiters();
        let batch: Vec<DeviceSeen> = batch.into_iter().map(|d| d.0).collect();
        for chunk in batch.chunks(WRITE_BATCH) {
            match store.record_seen(chunk, queue.max_devices).await {
                Ok(over) if over.is_empty() => {}
                Ok(over) => {
                    let count: u64 = over.values().sum();
                    queue.over_limit.fetch_add(count, Ordering::Relaxed);
                    warnings.add(over, queue.max_devices);
                }
                Err(e) => {
                    tracing::warn!(error = %e, count = chunk.len(), "could not record device sightings");
                }
            }
            queue.writing.fetch_sub(chunk.len(), Ordering::Relaxed);
        }
    }
}

/// Devices over the cap, gathered between two warnings.
#[derive(Default)]
struct Warnings {
    last: Option<Instant>,
    since: OverLimit,
}

impl Warnings {
    fn add(&mut self, over: OverLimit, max_devices: Option<u64>) {
        for (product, count) in over {
            *self.since.entry(product).or_default() += count;
        }
        if self.last.is_some_and(|last| last.elapsed() < WARN_EVERY) {
            return;
        }
        tracing::warn!(max_devices, not_recorded = ?self.since,
            "new devices not recorded: their product has --max-devices-per-product devices");
        self.since.clear();
        self.last = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otter_store::PageRequest;
    use otter_store::sql::SqlStore;

    fn sighting(id: &str, version: &str, at: i64) -> DeviceSeen {
        DeviceSeen {
            current_version: Some(version.into()),
            ..DeviceSeen::new("p".into(), id.into(), "stable".into(), at)
        }
    }

    async fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("otter.db").display());
        let store = Arc::new(SqlStore::connect(&url).await.unwrap());
        (dir, store)
    }

    /// The devices of product `p` as (id, version).
    async fn devices(store: &dyn Store) -> Vec<(String, String)> {
        let page = PageRequest {
            limit: 10,
            cursor: None,
        };
        let devices = store
            .list_devices("p", &Default::default(), &page)
            .await
            .unwrap()
            .items;
        devices
            .into_iter()
            .map(|d| (d.id, d.current_version.unwrap_or_default()))
            .collect()
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(id, v)| ((*id).to_owned(), (*v).to_owned()))
            .collect()
    }

    // A current-thread runtime: the writer cannot run until the test awaits, so the queue fills.
    #[tokio::test]
    async fn a_device_seen_again_is_folded_and_a_full_queue_drops_new_devices_and_counts() {
        let (_dir, store) = store().await;
        let (queue, writer) = SeenQueue::start(store.clone(), 2, None);
        queue.record(sighting("a", "1.0.0", 1));
        queue.record(sighting("b", "1.0.0", 1));
        queue.record(sighting("c", "1.0.0", 1));
        // a is already waiting: its new sighting takes no room and replaces what it said.
        queue.record(sighting("a", "1.0.3", 2));
        queue.record(sighting("d", "1.0.0", 2));
        assert_eq!(queue.depth(), 2);
        assert_eq!(queue.dropped(), 2);
        queue.close();
        writer.await.unwrap();
        assert_eq!(
            devices(&*store).await,
            pairs(&[("a", "1.0.3"), ("b", "1.0.0")]),
            "pending sightings are written on close, dropped ones never"
        );
    }

    #[tokio::test]
    async fn an_installed_sighting_waits_for_room_and_a_stale_check_in_does_not_undo_it() {
        let (_dir, store) = store().await;
        let (queue, writer) = SeenQueue::start(store.clone(), 1, None);
        queue.record(sighting("a", "1.0.0", 5));
        // No room for b: it waits until the writer takes a, rather than being dropped.
        queue.record_in_order(sighting("b", "2.0.0", 10)).await;
        // A check-in of b from before its report, queued after it, changes nothing.
        queue.record(sighting("b", "1.0.0", 9));
        queue.close();
        writer.await.unwrap();
        assert_eq!(queue.dropped(), 0);
        assert_eq!(
            devices(&*store).await,
            pairs(&[("a", "1.0.0"), ("b", "2.0.0")])
        );
    }

    #[tokio::test]
    async fn new_devices_over_the_cap_are_counted_not_recorded() {
        let (_dir, store) = store().await;
        let (queue, writer) = SeenQueue::start(store.clone(), 10, Some(2));
        for id in ["a", "b", "c"] {
            queue.record(sighting(id, "1.0.0", 1));
        }
        queue.close();
        writer.await.unwrap();
        assert_eq!(queue.over_limit(), 1);
        assert_eq!(
            devices(&*store).await,
            pairs(&[("a", "1.0.0"), ("b", "1.0.0")])
        );
    }
}
