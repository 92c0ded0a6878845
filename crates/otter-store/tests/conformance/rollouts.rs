//! Rollouts and the devices they take in ([`otter_store::RolloutStore`]): one rollout not over
//! per channel, the concurrency cap (also under concurrent admissions), failures and the penalty
//! box, retry-failed, timeouts and per-stage counts.

use otter_core::rollout::{DeviceState, Policy, Rollout, RolloutState, Stage};
use otter_store::{DeviceFilter, RolloutStatus, SlotAnswer};

use super::*;

fn plan(channel: &str, version: &str) -> Rollout {
    Rollout {
        id: 0,
        product: "door-sensor".to_owned(),
        version: version.to_owned(),
        channel: channel.to_owned(),
        stages: vec![
            Stage {
                tags: vec!["canary".to_owned()],
                percent: None,
            },
            Stage {
                tags: Vec::new(),
                percent: Some(100.0),
            },
        ],
        policy: Policy::default(),
        current_stage: 0,
        state: RolloutState::Running,
        counted_from: T0,
        reason: None,
        start_at: None,
        stage_started_at: T0,
        in_flight: 0,
        created_at: T0,
        updated_at: T0,
    }
}

pub async fn rollouts_one_active_per_channel_and_list_newest_first(store: &dyn Store) {
    let earliest = store
        .create_rollout(&plan("stable", "2.0.0"))
        .await
        .unwrap();
    assert!(earliest.id > 0);
    assert_eq!(
        store.get_rollout("door-sensor", earliest.id).await.unwrap(),
        Some(earliest.clone())
    );
    assert_eq!(store.get_rollout("other", earliest.id).await.unwrap(), None);
    match store.create_rollout(&plan("stable", "2.0.1")).await {
        Err(StoreError::Conflict("rollout")) => {}
        other => panic!("expected a rollout conflict, got {other:?}"),
    }
    let beta = store.create_rollout(&plan("beta", "2.0.1")).await.unwrap();
    // Once the first is over, its channel takes a new one.
    assert!(
        store
            .set_rollout_state(
                earliest.id,
                &[RolloutState::Running],
                RolloutState::Aborted,
                Some("by hand"),
                T0 + 5
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_rollout_state(
                earliest.id,
                &[RolloutState::Running],
                RolloutState::Paused,
                None,
                T0 + 6
            )
            .await
            .unwrap(),
        "a conditional change applies once"
    );
    let second = store
        .create_rollout(&plan("stable", "2.0.1"))
        .await
        .unwrap();
    let page = store.list_rollouts("door-sensor", &first(2)).await.unwrap();
    let ids: Vec<i64> = page.items.iter().map(|r| r.id).collect();
    assert_eq!(ids, [second.id, beta.id]);
    let rest = store
        .list_rollouts("door-sensor", &after(2, &page.next_cursor))
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0].state, RolloutState::Aborted);
    assert_eq!(rest.items[0].reason.as_deref(), Some("by hand"));
    assert_eq!(store.active_rollouts().await.unwrap().len(), 2);
    assert_eq!(
        store
            .abort_release_rollouts("door-sensor", "2.0.1", "yanked", T0 + 7)
            .await
            .unwrap(),
        2
    );
    assert!(store.active_rollouts().await.unwrap().is_empty());
    assert_eq!(store.gating_rollouts("door-sensor").await.unwrap().len(), 3);
}

pub async fn rollouts_advance_once_per_stage(store: &dyn Store) {
    let r = store
        .create_rollout(&plan("stable", "2.0.0"))
        .await
        .unwrap();
    let running = [RolloutState::Running];
    assert!(
        store
            .advance_rollout(r.id, &running, 0, false, T0 + 10)
            .await
            .unwrap()
    );
    assert!(
        !store
            .advance_rollout(r.id, &running, 0, false, T0 + 11)
            .await
            .unwrap(),
        "two nodes advancing the same stage move it once"
    );
    assert!(
        store
            .advance_rollout(r.id, &running, 1, true, T0 + 12)
            .await
            .unwrap()
    );
    let done = store
        .get_rollout("door-sensor", r.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (done.current_stage, done.state),
        (1, RolloutState::Completed)
    );
    assert_eq!(done.stage_started_at, T0 + 12);
    assert!(
        store
            .gating_rollouts("door-sensor")
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn the_concurrency_cap_holds_and_slots_come_back(store: &dyn Store) {
    let r = store
        .create_rollout(&Rollout {
            policy: Policy {
                max_concurrent: 2,
                ..Policy::default()
            },
            ..plan("stable", "2.0.0")
        })
        .await
        .unwrap();
    let admit = |d: &'static str, at: i64| store.admit_device(r.id, d, 0, 2, at);
    assert_eq!(admit("a", T0).await.unwrap(), SlotAnswer::Admitted);
    assert_eq!(admit("b", T0).await.unwrap(), SlotAnswer::Admitted);
    assert_eq!(admit("a", T0).await.unwrap(), SlotAnswer::Holding);
    assert_eq!(admit("c", T0).await.unwrap(), SlotAnswer::Refused);
    assert!(store.device_downloading(r.id, "b", T0 + 1).await.unwrap());
    assert!(store.device_installed(r.id, "a", T0 + 2).await.unwrap());
    assert!(!store.device_installed(r.id, "a", T0 + 3).await.unwrap());
    assert_eq!(admit("a", T0).await.unwrap(), SlotAnswer::Installed);
    assert_eq!(admit("c", T0 + 3).await.unwrap(), SlotAnswer::Admitted);
    // An offer nobody acted on gives its slot back, without a failure.
    assert_eq!(
        store
            .stale_devices(r.id, DeviceState::Offered, T0 + 4)
            .await
            .unwrap(),
        ["c"]
    );
    assert!(store.drop_offer(r.id, "c", T0 + 4).await.unwrap());
    assert!(!store.drop_offer(r.id, "c", T0 + 4).await.unwrap());
    let counts = store.rollout_counts(r.id, 2, T0 + 5, 0).await.unwrap();
    assert_eq!(
        (
            counts[0].downloading,
            counts[0].installed,
            counts[0].offered
        ),
        (1, 1, 0)
    );
    assert_eq!(
        store
            .get_rollout("door-sensor", r.id)
            .await
            .unwrap()
            .unwrap()
            .in_flight,
        1
    );
    // A paused rollout lets nobody new in.
    store
        .set_rollout_state(
            r.id,
            &[RolloutState::Running],
            RolloutState::Paused,
            None,
            T0 + 6,
        )
        .await
        .unwrap();
    assert_eq!(admit("d", T0 + 6).await.unwrap(), SlotAnswer::Refused);
    assert_eq!(admit("b", T0 + 6).await.unwrap(), SlotAnswer::Holding);
}

pub async fn concurrent_admissions_never_pass_the_cap(store: &dyn Store) {
    let r = store
        .create_rollout(&plan("stable", "2.0.0"))
        .await
        .unwrap();
    let names: Vec<String> = (0..40).map(|i| format!("dev-{i}")).collect();
    let results =
        futures_util::future::join_all(names.iter().map(|d| store.admit_device(r.id, d, 0, 5, T0)))
            .await;
    let admitted = results
        .into_iter()
        .filter(|a| *a.as_ref().unwrap() == SlotAnswer::Admitted)
        .count();
    assert_eq!(admitted, 5);
    let rollout = store
        .get_rollout("door-sensor", r.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rollout.in_flight, 5);
    assert_eq!(
        store.rollout_members(r.id, T0).await.unwrap().offered.len(),
        5
    );
}

pub async fn failures_fill_the_penalty_box_and_retry_lets_the_rest_in(store: &dyn Store) {
    let r = store
        .create_rollout(&plan("stable", "2.0.0"))
        .await
        .unwrap();
    let in_flight = [DeviceState::Offered, DeviceState::Downloading];
    let fail = |d: &'static str, at: i64| store.fail_device(r.id, d, &in_flight, 2, at + 100, at);
    for d in ["a", "b"] {
        assert_eq!(
            store.admit_device(r.id, d, 0, 0, T0).await.unwrap(),
            SlotAnswer::Admitted
        );
    }
    let first = fail("a", T0 + 1).await.unwrap().unwrap();
    assert_eq!((first.stage, first.failures, first.boxed), (0, 1, false));
    assert_eq!(
        fail("a", T0 + 1).await.unwrap(),
        None,
        "a failed device holds no slot to fail"
    );
    assert_eq!(
        store.admit_device(r.id, "a", 0, 0, T0 + 2).await.unwrap(),
        SlotAnswer::Failed
    );
    assert_eq!(store.retry_failed(r.id, T0 + 2).await.unwrap(), 1);
    assert_eq!(
        store.admit_device(r.id, "a", 1, 0, T0 + 3).await.unwrap(),
        SlotAnswer::Admitted
    );
    let second = fail("a", T0 + 4).await.unwrap().unwrap();
    assert_eq!((second.stage, second.failures, second.boxed), (1, 2, true));
    fail("b", T0 + 4).await.unwrap().unwrap();
    let members = store.rollout_members(r.id, T0 + 5).await.unwrap();
    assert_eq!(members.penalty, [("a".to_owned(), T0 + 104)]);
    assert_eq!(members.failed, ["b"]);
    assert!(members.offered.is_empty() && members.downloading.is_empty());
    let counts = store.rollout_counts(r.id, 2, T0 + 5, 0).await.unwrap();
    assert_eq!((counts[0].failed, counts[1].penalty), (1, 1));
    // The device list filters by it (devices the product has seen, as the list holds).
    let seen = |id: &str| {
        DeviceSeen::new(
            "door-sensor".to_owned(),
            id.to_owned(),
            "stable".to_owned(),
            T0,
        )
    };
    store
        .record_seen(&[seen("a"), seen("b"), seen("c")], None)
        .await
        .unwrap();
    let in_status = |status: RolloutStatus| async move {
        let filter = DeviceFilter {
            status: Some((status, T0 + 5)),
            ..DeviceFilter::default()
        };
        let page = store
            .list_devices("door-sensor", &filter, &super::first(10))
            .await
            .unwrap();
        page.items.into_iter().map(|d| d.id).collect::<Vec<_>>()
    };
    assert_eq!(in_status(RolloutStatus::Penalty).await, ["a"]);
    let attempts = store.device_attempts("door-sensor", "a", 10).await.unwrap();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(
        (
            attempts[0].rollout,
            attempts[0].failures,
            attempts[0].penalty_until
        ),
        (r.id, 2, Some(T0 + 104))
    );
    assert!(
        store
            .device_attempts("door-sensor", "nobody", 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(in_status(RolloutStatus::Failed).await, ["b"]);
    assert!(in_status(RolloutStatus::Installed).await.is_empty());
    // Retry lets only b in while a serves its time; after it, a starts afresh.
    assert_eq!(store.retry_failed(r.id, T0 + 5).await.unwrap(), 1);
    assert_eq!(store.retry_failed(r.id, T0 + 104).await.unwrap(), 1);
    assert_eq!(
        store.admit_device(r.id, "a", 1, 0, T0 + 105).await.unwrap(),
        SlotAnswer::Admitted
    );
    let fresh = fail("a", T0 + 106).await.unwrap().unwrap();
    assert_eq!((fresh.failures, fresh.boxed), (1, false));
    assert_eq!(
        store
            .get_rollout("door-sensor", r.id)
            .await
            .unwrap()
            .unwrap()
            .in_flight,
        0
    );
}
