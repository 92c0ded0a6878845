//! hawkBit's Direct Device Integration (DDI) in otter's model: who a controller is (its token),
//! its actions, its feedback and its configData (`docs/protocols/hawkbit-ddi.md`). The HTTP
//! shapes are otter-server's `protocols::hawkbit`; every decision is made here.
//!
//! - A `TargetToken` opens one device of one product, a `GatewayToken` any controller of one
//!   product; only their SHA-256 is stored. Without a token, a product that allows anonymous DDI
//!   is found by the `{tenant}` (or `--ddi-default-product`).
//! - An **action** is otter's offer of one release to one device, with a stable numeric id. A
//!   poll without an open action decides through [`devices::decide`] (protocol `ddi`) with the
//!   release the device last installed through DDI (or what otter heard of it later) and opens
//!   an action for an offer; a poll with one keeps it while its release is still offered, and
//!   answers a cancel otherwise (yanked, pinned elsewhere, its rollout paused or aborted).
//! - Feedback becomes update reports ([`devices::report`]), so rollouts' counters, automatic
//!   pause and penalty box apply as for every protocol.

use std::sync::Arc;

use otter_core::Decision;
use otter_core::model::{DEFAULT_CHANNEL, ReportState, validate_device_id};
use otter_store::{ActionState, DdiAction, DdiHolder, DdiOptions, DeviceActions, now, random_id};
use serde_json::{Map, Value};

use crate::devices::{self, CheckIn, Report};
use crate::index::{IndexedRelease, ProductIndex};
use crate::registry::{self, Route};
use crate::tokens::token_hash;
use crate::{App, AppError, AppResult, rollouts, schedules};

/// How long a poll answer tells a controller to wait when the product has no poll hint
/// (hawkBit's own default).
pub const DEFAULT_SLEEP_SECONDS: u32 = 300;
/// Most configData attributes kept per device, and the longest key and value.
const MAX_ATTRIBUTES: usize = 64;
const MAX_ATTRIBUTE_LEN: usize = 256;
/// Longest feedback detail kept (the lines are joined into the report's message).
const MAX_DETAILS_LEN: usize = 2000;

/// The credentials a DDI request carried (`Authorization: TargetToken …` / `GatewayToken …`).
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    Target(&'a str),
    Gateway(&'a str),
    None,
}

impl<'a> Credential<'a> {
    /// The token, if one was sent.
    pub fn token(&self) -> Option<&'a str> {
        match *self {
            Credential::Target(token) | Credential::Gateway(token) => Some(token),
            Credential::None => None,
        }
    }
}

/// A controller a request was authenticated as: a device of one product.
pub struct Controller {
    pub index: Arc<ProductIndex>,
    pub device: String,
}

fn unauthorized() -> AppError {
    AppError::new(
        crate::ErrorKind::Unauthorized,
        "ddi_unauthorized",
        "send Authorization: TargetToken <device token> or GatewayToken <product token>",
    )
}

/// Finds the controller a request is from. A TargetToken must be the `controller_id`'s own;
/// a request without a token needs a product allowing anonymous DDI: the `tenant` when it names
/// a product, else `--ddi-default-product`.
pub async fn authenticate(
    app: &App,
    tenant: &str,
    controller_id: &str,
    credential: Credential<'_>,
) -> AppResult<Controller> {
    validate_device_id("controllerId", controller_id)?;
    let holder = match credential.token() {
        Some(token) => app.store.ddi_token(&token_hash(token)).await?,
        None => None,
    };
    let product = match (credential, holder) {
        (Credential::Target(_), Some(DdiHolder::Target { product, device })) => {
            if device != controller_id {
                return Err(AppError::forbidden(
                    "ddi_wrong_controller",
                    "this TargetToken belongs to another controller",
                ));
            }
            product
        }
        (Credential::Gateway(_), Some(DdiHolder::Gateway { product })) => product,
        (Credential::None, _) => anonymous_product(app, tenant).await?,
        _ => return Err(unauthorized()),
    };
    let index = app.product(&product).await?;
    // Only an anonymous request pays for reading the options.
    if matches!(credential, Credential::None) && !app.store.ddi_options(&product).await?.anonymous {
        return Err(unauthorized());
    }
    Ok(Controller {
        index,
        device: controller_id.to_owned(),
    })
}

async fn anonymous_product(app: &App, tenant: &str) -> AppResult<String> {
    if app.find_product(tenant).await?.is_some() {
        return Ok(tenant.to_owned());
    }
    app.config
        .ddi_default_product
        .clone()
        .ok_or_else(unauthorized)
}

/// What a poll answers.
pub struct Poll {
    pub action: Option<PollAction>,
    /// `config.polling.sleep`, in seconds.
    pub sleep_seconds: u32,
    /// Whether otter lacks the device's attributes (the answer links configData).
    pub wants_config: bool,
    /// The id of the newest action the device installed (the answer links installedBase).
    pub installed: Option<i64>,
}

/// The action a poll points the controller at.
pub enum PollAction {
    /// Install this (deploymentBase).
    Deploy(DdiAction),
    /// Stop this (cancelAction).
    Cancel(DdiAction),
}

/// A controller's poll: its open action while its release is still offered, a cancel when it
/// is not, else a new action when the update decision offers a release.
pub async fn poll(app: &App, c: &Controller, remote: Option<std::net::IpAddr>) -> AppResult<Poll> {
    let index = &c.index;
    let product = &index.product.name;
    // The poll's one read besides the token's: the actions and the device row together.
    let actions = app.store.device_actions(product, &c.device).await?;
    let current = current_version(&actions);
    let check = CheckIn {
        protocol: "ddi",
        device: Some(&c.device),
        channel: DEFAULT_CHANNEL,
        current: current.as_deref(),
    };
    let action = match actions.open.clone() {
        Some(open) => {
            // Not decided again, but held to the same rate limit and counted like a check.
            devices::admit(app, product, &c.device)?;
            if still_offered(index, &check, &open.version)? {
                devices::count_check("ddi", "offered");
                Some(PollAction::Deploy(open))
            } else {
                devices::count_check("ddi", "up_to_date");
                Some(PollAction::Cancel(open))
            }
        }
        None => match devices::decide(app, index, check).await? {
            // A paused rollout lets the devices it took in finish; through DDI, whose actions
            // it cancels, they wait for it to resume instead.
            Decision::Offer { index: i, .. }
                if still_offered(index, &check, &index.releases[i].release.version)? =>
            {
                let version = &index.releases[i].release.version;
                let opened = app
                    .store
                    .open_ddi_action(product, &c.device, version, now())
                    .await?;
                Some(PollAction::Deploy(opened))
            }
            Decision::Offer { .. } | Decision::UpToDate | Decision::NoPath => None,
        },
    };
    app.seen.record(
        index
            .sighting(c.device.clone(), current.as_deref(), DEFAULT_CHANNEL)
            .via("ddi", remote),
    );
    Ok(Poll {
        action,
        sleep_seconds: schedules::next_check_seconds(index).unwrap_or(DEFAULT_SLEEP_SECONDS),
        wants_config: !actions.has_attributes,
        installed: actions.installed.map(|a| a.id),
    })
}

/// What the device runs as far as otter knows: the newer of its newest installed action and its
/// device row. The action covers the moment before the sighting its `installed` report queued
/// is written; the row, what the device said later (through another protocol).
fn current_version(actions: &DeviceActions) -> Option<String> {
    let row = actions.current_version.as_ref();
    match (&actions.installed, actions.last_seen) {
        (Some(installed), Some(seen)) if seen > installed.updated_at && row.is_some() => {
            row.cloned()
        }
        (Some(installed), _) => Some(installed.version.clone()),
        (None, _) => row.cloned(),
    }
}

/// Whether an open action's release is still what the device may install: not yanked, the
/// device's pin (if any), and no paused or aborted rollout of it on the device's channel.
fn still_offered(index: &ProductIndex, check: &CheckIn<'_>, version: &str) -> AppResult<bool> {
    let Some(release) = index.release(version) else {
        return Ok(false);
    };
    if release.release.yanked {
        return Ok(false);
    }
    Ok(match registry::route(index, check)? {
        Route::Pinned(Decision::Offer { index: i, .. }) => {
            index.releases[i].release.version == version
        }
        Route::Pinned(_) => false,
        Route::Channel(channel) => !rollouts::halted(index, channel, version),
    })
}

/// An action of this controller with its release, for deploymentBase.
pub struct Deployment {
    pub action: DdiAction,
    pub release: IndexedRelease,
    /// The release is mandatory: download and update are `forced`, else `attempt`.
    pub forced: bool,
    /// Whether the device's channel is inside its maintenance window; `None` without one.
    pub window_open: Option<bool>,
}

fn action_not_found(id: &str) -> AppError {
    AppError::not_found(
        "ddi_action_not_found",
        format!("no action {id} for this controller"),
    )
}

/// Parses an action id as clients send it back (a number, its string, or junk).
fn action_id(id: &str) -> AppResult<i64> {
    id.trim().parse().map_err(|_| action_not_found(id))
}

async fn action_of(app: &App, c: &Controller, id: &str) -> AppResult<DdiAction> {
    app.store
        .get_ddi_action(&c.index.product.name, &c.device, action_id(id)?)
        .await?
        .ok_or_else(|| action_not_found(id))
}

/// The deployment of one of the controller's actions.
pub async fn deployment(app: &App, c: &Controller, id: &str) -> AppResult<Deployment> {
    let action = action_of(app, c, id).await?;
    let release = c
        .index
        .release(&action.version)
        .cloned()
        .ok_or_else(|| action_not_found(id))?;
    let channel = c
        .index
        .devices
        .channel(&c.device)
        .unwrap_or(DEFAULT_CHANNEL);
    Ok(Deployment {
        forced: release.release.mandatory,
        window_open: c.index.windows.get(channel).map(|w| w.is_open(now())),
        release,
        action,
    })
}

/// The newest action the controller installed, for installedBase.
pub async fn installed(app: &App, c: &Controller, id: &str) -> AppResult<Deployment> {
    let deployment = deployment(app, c, id).await?;
    if deployment.action.state != ActionState::Installed {
        return Err(action_not_found(id));
    }
    Ok(deployment)
}

/// DDI's `status.execution`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Execution {
    Closed,
    Proceeding,
    Canceled,
    Scheduled,
    Rejected,
    Resumed,
    Download,
    Downloaded,
}

impl Execution {
    fn as_str(self) -> &'static str {
        match self {
            Execution::Closed => "closed",
            Execution::Proceeding => "proceeding",
            Execution::Canceled => "canceled",
            Execution::Scheduled => "scheduled",
            Execution::Rejected => "rejected",
            Execution::Resumed => "resumed",
            Execution::Download => "download",
            Execution::Downloaded => "downloaded",
        }
    }
}

/// DDI's `status.result.finished`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Finished {
    Success,
    Failure,
    None,
}

/// One feedback as otter reads it.
#[derive(Debug, Clone)]
pub struct Feedback {
    pub execution: Execution,
    pub finished: Finished,
    /// `status.details`, blank lines dropped.
    pub details: Vec<String>,
}

impl Feedback {
    /// The update report this feedback is, and the state it leaves the action in. Scheduled and
    /// resumed, and closed without a result, are recorded on the action only: otter's reports
    /// have no such state.
    fn meaning(&self) -> (Option<ReportState>, ActionState) {
        match (self.execution, self.finished) {
            (Execution::Closed, Finished::Success) => {
                (Some(ReportState::Installed), ActionState::Installed)
            }
            (Execution::Closed, Finished::Failure) => {
                (Some(ReportState::Failed), ActionState::Failed)
            }
            (Execution::Proceeding | Execution::Download, _) => {
                (Some(ReportState::Downloading), ActionState::Open)
            }
            (Execution::Downloaded, _) => (Some(ReportState::Downloaded), ActionState::Open),
            (Execution::Canceled, _) => (None, ActionState::Canceled),
            (Execution::Rejected, _) => (None, ActionState::Rejected),
            (Execution::Closed | Execution::Scheduled | Execution::Resumed, _) => {
                (None, ActionState::Open)
            }
        }
    }

    fn message(&self) -> Option<String> {
        let text = self.details.join("\n");
        (!text.is_empty()).then(|| text.chars().take(MAX_DETAILS_LEN).collect())
    }
}

/// Records feedback on a deployment: the update report it means (only while the action is open,
/// so a repeated final feedback counts once) and the action's new state.
pub async fn feedback(app: &App, c: &Controller, id: &str, feedback: Feedback) -> AppResult<()> {
    let action = action_of(app, c, id).await?;
    if action.state != ActionState::Open {
        return Ok(());
    }
    let (report, state) = feedback.meaning();
    if let Some(state) = report {
        let channel = c
            .index
            .devices
            .channel(&c.device)
            .unwrap_or(DEFAULT_CHANNEL);
        devices::report(
            app,
            &c.index.product.name,
            Report {
                device: c.device.clone(),
                version: action.version.clone(),
                state,
                message: feedback.message(),
                channel: Some(channel.to_owned()),
            },
        )
        .await?;
    }
    app.store
        .update_ddi_action(action.id, state, feedback.execution.as_str(), now())
        .await?;
    Ok(())
}

/// Records feedback on a cancel: the device stopped the action (closed or canceled), or did
/// not (anything else is recorded and the poll keeps asking).
pub async fn cancel_feedback(
    app: &App,
    c: &Controller,
    id: &str,
    feedback: Feedback,
) -> AppResult<()> {
    let action = action_of(app, c, id).await?;
    let state = match feedback.execution {
        Execution::Closed | Execution::Canceled if feedback.finished != Finished::Failure => {
            ActionState::Canceled
        }
        _ => ActionState::Open,
    };
    app.store
        .update_ddi_action(action.id, state, feedback.execution.as_str(), now())
        .await?;
    Ok(())
}

/// One of the controller's actions, for cancelAction.
pub async fn action(app: &App, c: &Controller, id: &str) -> AppResult<DdiAction> {
    action_of(app, c, id).await
}

/// How configData's `data` changes the device's attributes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Merge,
    Replace,
    Remove,
}

/// Stores what a controller says about itself (configData) as its device's attributes, which
/// the device list can filter by.
pub async fn config_data(
    app: &App,
    c: &Controller,
    data: Map<String, Value>,
    mode: Mode,
) -> AppResult<()> {
    let product = &c.index.product.name;
    let mut attributes = match app.store.get_device(product, &c.device).await? {
        Some(device) => device.attributes.as_object().cloned().unwrap_or_default(),
        None => Map::new(),
    };
    // Values are kept as text (SWUpdate sends strings; a number or flag is spelt out).
    let data = data.into_iter().map(|(k, v)| match v {
        Value::Number(_) | Value::Bool(_) => (k, Value::String(v.to_string())),
        other => (k, other),
    });
    match mode {
        Mode::Merge => attributes.extend(data),
        Mode::Replace => attributes = data.collect(),
        Mode::Remove => {
            let gone: Vec<String> = data.map(|(k, _)| k).collect();
            attributes.retain(|k, _| !gone.contains(k));
        }
    }
    if attributes.len() > MAX_ATTRIBUTES
        || attributes.iter().any(|(k, v)| {
            k.chars().count() > MAX_ATTRIBUTE_LEN
                || !v.is_string()
                || v.as_str()
                    .is_some_and(|v| v.chars().count() > MAX_ATTRIBUTE_LEN)
        })
    {
        return Err(AppError::invalid(
            "invalid_config_data",
            format!(
                "configData keeps at most {MAX_ATTRIBUTES} string attributes of at most \
                 {MAX_ATTRIBUTE_LEN} characters"
            ),
        ));
    }
    let mut seen = c.index.sighting(c.device.clone(), None, DEFAULT_CHANNEL);
    seen.attributes = Some(Value::Object(attributes));
    // Written now rather than queued: the next configData (a `remove` after a `merge`) reads
    // what this one left. Queued sightings never clear attributes, so none undoes it.
    let limit = app.config.max_devices_per_product;
    app.store
        .record_seen(&[seen], (limit > 0).then_some(limit))
        .await?;
    Ok(())
}

/// A DDI token just made: shown this once.
pub struct NewToken {
    pub token: String,
}

/// Makes (or replaces) the TargetToken of `device` of `product`.
pub async fn target_token(app: &App, product: &str, device: &str) -> AppResult<NewToken> {
    validate_device_id("device", device)?;
    let holder = DdiHolder::Target {
        product: product.to_owned(),
        device: device.to_owned(),
    };
    new_token(app, product, holder).await
}

/// Makes (or replaces) the GatewayToken of `product`.
pub async fn gateway_token(app: &App, product: &str) -> AppResult<NewToken> {
    let holder = DdiHolder::Gateway {
        product: product.to_owned(),
    };
    new_token(app, product, holder).await
}

async fn new_token(app: &App, product: &str, holder: DdiHolder) -> AppResult<NewToken> {
    app.product(product).await?;
    // 256 random bits; hawkBit's tokens are 32 characters, clients take any header-safe text.
    let token = format!("{}{}", random_id(), random_id());
    app.store
        .set_ddi_token(&token_hash(&token), &holder, now())
        .await?;
    tracing::info!(product, holder = ?holder, "DDI token made");
    Ok(NewToken { token })
}

/// A product's DDI options.
pub async fn options(app: &App, product: &str) -> AppResult<DdiOptions> {
    app.product(product).await?;
    Ok(app.store.ddi_options(product).await?)
}

/// Sets a product's DDI options.
pub async fn set_options(app: &App, product: &str, options: DdiOptions) -> AppResult<DdiOptions> {
    app.product(product).await?;
    app.store.set_ddi_options(product, &options, now()).await?;
    tracing::info!(product, options = ?options, "DDI options changed");
    Ok(options)
}
