//! Maintenance windows and poll hints ([`otter_store::ScheduleStore`]).

use otter_core::schedule::{PollHint, WindowSpec};

use super::*;

pub async fn windows_and_poll_hints_are_set_replaced_and_removed(store: &dyn Store) {
    let window = |slot: &str| WindowSpec {
        timezone: "Europe/Berlin".to_owned(),
        slots: vec![slot.to_owned()],
    };
    store
        .set_window("door", "stable", Some(&window("mon-fri 02:00-05:00")), T0)
        .await
        .unwrap();
    store
        .set_window("door", "beta", Some(&window("daily 00:00-24:00")), T0)
        .await
        .unwrap();
    store
        .set_window("door", "stable", Some(&window("sat 22:00-04:00")), T0 + 1)
        .await
        .unwrap();
    assert_eq!(
        store.windows("door").await.unwrap(),
        [
            ("beta".to_owned(), window("daily 00:00-24:00")),
            ("stable".to_owned(), window("sat 22:00-04:00")),
        ],
        "by channel, the later window replacing the earlier"
    );
    store
        .set_window("door", "beta", None, T0 + 2)
        .await
        .unwrap();
    assert_eq!(store.windows("door").await.unwrap().len(), 1);
    assert!(store.windows("other").await.unwrap().is_empty());

    assert_eq!(store.poll_hint("door").await.unwrap(), None);
    let hint = PollHint {
        interval_seconds: 3600,
        jitter_percent: 20,
    };
    store.set_poll_hint("door", Some(&hint), T0).await.unwrap();
    assert_eq!(store.poll_hint("door").await.unwrap(), Some(hint));
    let shorter = PollHint {
        interval_seconds: 60,
        jitter_percent: 0,
    };
    store
        .set_poll_hint("door", Some(&shorter), T0)
        .await
        .unwrap();
    assert_eq!(store.poll_hint("door").await.unwrap(), Some(shorter));
    store.set_poll_hint("door", None, T0).await.unwrap();
    assert_eq!(store.poll_hint("door").await.unwrap(), None);
}
