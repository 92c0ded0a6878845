//! Device sightings go through a bounded queue and are written in batches, so a fleet checking in
//! costs the database one transaction per batch instead of one write per request.
//!
//! When the queue is full a check-in's sighting is dropped and counted: last-seen times are
//! best-effort. What an `installed` report says waits for room instead, and the report itself is
//! written to the store before the device gets its answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use otter_core::model::DeviceSeen;
use otter_store::Store;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

/// Largest batch written in one transaction.
const BATCH: usize = 512;

/// The sending side, shared by every request.
pub struct SeenQueue {
    tx: mpsc::Sender<DeviceSeen>,
    dropped: AtomicU64,
    closing: Arc<Notify>,
}

impl SeenQueue {
    /// Starts the writer task. It ends once [`SeenQueue::close`] is called, after writing what
    /// is queued.
    pub fn start(store: Arc<dyn Store>, capacity: usize) -> (Arc<Self>, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let closing = Arc::new(Notify::new());
        let writer = tokio::spawn(write_batches(store, rx, closing.clone()));
        (
            Arc::new(SeenQueue {
                tx,
                dropped: AtomicU64::new(0),
                closing,
            }),
            writer,
        )
    }

    /// Queues a sighting that must not be lost (a device saying it installed a release), waiting
    /// for room if needed. Going through the same queue keeps it ordered after the device's
    /// earlier check-ins, so a stale check-in can never overwrite it.
    pub async fn record_in_order(&self, seen: DeviceSeen) {
        if self.tx.send(seen).await.is_err() {
            tracing::warn!("sighting queue closed: shutting down");
        }
    }

    /// Stops accepting sightings and lets the writer flush the queue and end.
    pub fn close(&self) {
        self.closing.notify_one();
    }

    /// Queues a sighting without waiting; drops it (and counts) when the queue is full.
    pub fn record(&self, seen: DeviceSeen) {
        if self.tx.try_send(seen).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sightings dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Sightings waiting to be written.
    pub fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

async fn write_batches(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<DeviceSeen>,
    closing: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            received = rx.recv_many(&mut batch, BATCH) => {
                if received == 0 {
                    return;
                }
                write(&*store, &mut batch).await;
            }
            () = closing.notified() => {
                // No new sightings from here on; drain what is buffered.
                rx.close();
                while rx.recv_many(&mut batch, BATCH).await > 0 {
                    write(&*store, &mut batch).await;
                }
                return;
            }
        }
    }
}

async fn write(store: &dyn Store, batch: &mut Vec<DeviceSeen>) {
    if let Err(e) = store.record_seen(batch).await {
        tracing::warn!(error = %e, count = batch.len(), "could not record device sightings");
    }
    batch.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use otter_store::PageRequest;
    use otter_store::sql::SqlStore;

    fn sighting(id: &str, version: &str) -> DeviceSeen {
        DeviceSeen {
            product: "p".into(),
            id: id.into(),
            current_version: Some(version.into()),
            current_hash: None,
            channel: "stable".into(),
            at: 1,
            attributes: None,
        }
    }

    // A current-thread runtime: the writer cannot run until the test awaits, so the queue fills.
    #[tokio::test]
    async fn a_full_queue_drops_and_counts_and_close_flushes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("otter.db").display());
        let store: Arc<dyn Store> = Arc::new(SqlStore::connect(&url).await.unwrap());
        let (queue, writer) = SeenQueue::start(store.clone(), 2);
        for (i, id) in ["a", "b", "c", "d"].into_iter().enumerate() {
            queue.record(sighting(id, &format!("1.0.{i}")));
        }
        assert_eq!(queue.depth(), 2);
        assert_eq!(queue.dropped(), 2);
        queue.close();
        writer.await.unwrap();
        let page = PageRequest {
            limit: 10,
            cursor: None,
        };
        let devices = store.list_devices("p", &page).await.unwrap().items;
        let ids: Vec<_> = devices.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(
            ids,
            ["a", "b"],
            "queued sightings are written on close, dropped ones never"
        );
    }
}
