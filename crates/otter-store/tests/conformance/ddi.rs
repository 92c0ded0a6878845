//! hawkBit DDI tokens, options and actions ([`otter_store::DdiStore`]).

use otter_store::{ActionState, DdiHolder, DdiOptions};

use super::*;

pub async fn ddi_tokens_open_their_holder_and_a_new_one_replaces_the_old(store: &dyn Store) {
    let target = DdiHolder::Target {
        product: "door".to_owned(),
        device: "d-1".to_owned(),
    };
    let gateway = DdiHolder::Gateway {
        product: "door".to_owned(),
    };
    store.set_ddi_token("t1", &target, T0).await.unwrap();
    store.set_ddi_token("g1", &gateway, T0).await.unwrap();
    assert_eq!(store.ddi_token("t1").await.unwrap(), Some(target.clone()));
    assert_eq!(store.ddi_token("g1").await.unwrap(), Some(gateway.clone()));
    store.set_ddi_token("t2", &target, T0 + 1).await.unwrap();
    store.set_ddi_token("g2", &gateway, T0 + 1).await.unwrap();
    assert_eq!(store.ddi_token("t1").await.unwrap(), None);
    assert_eq!(store.ddi_token("g1").await.unwrap(), None);
    assert_eq!(store.ddi_token("t2").await.unwrap(), Some(target.clone()));
    assert_eq!(store.ddi_token("g2").await.unwrap(), Some(gateway.clone()));
    assert_eq!(
        store.ddi_tokens("door").await.unwrap(),
        [("g2".to_owned(), gateway), ("t2".to_owned(), target)]
    );
    assert!(store.ddi_tokens("other").await.unwrap().is_empty());

    assert_eq!(
        store.ddi_options("door").await.unwrap(),
        DdiOptions::default()
    );
    let options = DdiOptions {
        anonymous: true,
        token_downloads: false,
    };
    store.set_ddi_options("door", &options, T0).await.unwrap();
    assert_eq!(store.ddi_options("door").await.unwrap(), options);
}

pub async fn one_ddi_action_is_open_per_device(store: &dyn Store) {
    let first = store
        .open_ddi_action("door", "d-1", "1.0.0", T0)
        .await
        .unwrap();
    assert_eq!(first.state, ActionState::Open);
    // Opening again (a racing poll) finds the open one.
    let again = store
        .open_ddi_action("door", "d-1", "1.1.0", T0)
        .await
        .unwrap();
    assert_eq!(again, first);
    let other = store
        .open_ddi_action("door", "d-2", "1.0.0", T0)
        .await
        .unwrap();
    assert_ne!(other.id, first.id);

    assert!(
        store
            .update_ddi_action(first.id, ActionState::Open, "proceeding", T0 + 1)
            .await
            .unwrap()
    );
    let found = store.device_actions("door", "d-1").await.unwrap();
    assert_eq!(found.open.as_ref().map(|a| a.id), Some(first.id));
    assert_eq!(found.open.unwrap().execution.as_deref(), Some("proceeding"));
    assert_eq!(found.installed, None);

    assert!(
        store
            .update_ddi_action(first.id, ActionState::Installed, "closed", T0 + 2)
            .await
            .unwrap()
    );
    // A closed action stays closed.
    assert!(
        !store
            .update_ddi_action(first.id, ActionState::Failed, "closed", T0 + 3)
            .await
            .unwrap()
    );
    let next = store
        .open_ddi_action("door", "d-1", "1.1.0", T0 + 4)
        .await
        .unwrap();
    assert!(next.id > first.id);
    let found = store.device_actions("door", "d-1").await.unwrap();
    assert_eq!(found.open.map(|a| a.id), Some(next.id));
    let installed = found.installed.unwrap();
    assert_eq!(
        (installed.id, installed.state),
        (first.id, ActionState::Installed)
    );
    assert_eq!(
        store.get_ddi_action("door", "d-1", first.id).await.unwrap(),
        Some(installed)
    );
    assert_eq!(
        store.get_ddi_action("door", "d-2", first.id).await.unwrap(),
        None
    );

    // The device row rides along: nothing for a device never seen, else its version and
    // whether it has attributes.
    assert_eq!((found.current_version, found.has_attributes), (None, false));
    let mut seen = DeviceSeen::new("door".to_owned(), "d-1".to_owned(), "stable".to_owned(), T0);
    seen.current_version = Some("0.9.0".to_owned());
    store.record_seen(&[seen.clone()], None).await.unwrap();
    let found = store.device_actions("door", "d-1").await.unwrap();
    assert_eq!(found.current_version.as_deref(), Some("0.9.0"));
    assert_eq!(found.last_seen, Some(T0));
    assert!(!found.has_attributes);
    seen.at = T0 + 5;
    seen.attributes = Some(json!({"board": "rev2"}));
    store.record_seen(&[seen], None).await.unwrap();
    let found = store.device_actions("door", "d-1").await.unwrap();
    assert!(found.has_attributes);
    assert_eq!(found.open.map(|a| a.id), Some(next.id));
    let empty = store.device_actions("door", "nobody").await.unwrap();
    assert_eq!(empty, Default::default());
}

pub async fn devices_filter_by_attribute(store: &dyn Store) {
    let seen = |id: &str, attributes: serde_json::Value| {
        let mut seen = DeviceSeen::new("door".to_owned(), id.to_owned(), "stable".to_owned(), T0);
        seen.attributes = Some(attributes);
        seen
    };
    store
        .record_seen(
            &[
                seen("a", json!({"board": "rev2", "odd%_\\\"": "x"})),
                seen("b", json!({"board": "rev22"})),
                seen("c", json!({"xboard": "rev2", "note": "\"board\":\"rev2\""})),
            ],
            None,
        )
        .await
        .unwrap();
    let ids = async |key: &str, value: &str| {
        let filter = DeviceFilter {
            attribute: Some((key.to_owned(), value.to_owned())),
            ..DeviceFilter::default()
        };
        let page = store
            .list_devices(
                "door",
                &filter,
                &PageRequest {
                    limit: 10,
                    cursor: None,
                },
            )
            .await
            .unwrap();
        page.items.into_iter().map(|d| d.id).collect::<Vec<_>>()
    };
    assert_eq!(ids("board", "rev2").await, ["a"]);
    assert_eq!(ids("board", "rev22").await, ["b"]);
    assert_eq!(ids("odd%_\\\"", "x").await, ["a"]);
    assert!(ids("board", "rev%").await.is_empty());
    assert!(ids("board", "REV2").await.is_empty());
    assert!(ids("oard", "rev2").await.is_empty());
}
