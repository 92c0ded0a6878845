//! `otter rollout`: staged rollouts of a release (docs/rollouts.md).

use otter_client::Client;
use otter_core::model::format_rfc3339;
use otter_core::rollout::{AutoAdvance, PauseOn, Policy, Rollout, Stage, StageCounts};
use otter_core::units::parse_duration;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{list, write_table};

/// Roll a release out in stages, watch it, and steer it.
#[derive(clap::Subcommand, Debug)]
pub enum RolloutCommand {
    /// Start a rollout of a release to a channel, in stages. Create it before publishing the
    /// release and nobody outside the first stage ever sees it.
    #[command(after_help = "Example:
  otter rollout create door-sensor 2.0.0 \\
    --stage tag=canary --stage 1% --stage 10% --stage 50% --stage 100% \\
    --auto-advance 1h --min-installed-percent 90 \\
    --pause-failures 20 --pause-rate 5 --pause-min-attempts 50 --max-concurrent 200")]
    // Boxed: its flags make it several times the size of the other commands.
    Create(Box<CreateArgs>),
    /// List a product's rollouts, newest first.
    List {
        product: String,
        /// Print the rollouts as a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show a rollout: where it stands, why it paused, and its devices per stage.
    Show { product: String, id: i64 },
    /// Move to the next stage (past the last: complete the rollout).
    Advance { product: String, id: i64 },
    /// Let no new device in; devices already in may finish.
    Pause { product: String, id: i64 },
    /// Let devices in again.
    Resume { product: String, id: i64 },
    /// Stop for good: nobody new gets the release.
    Abort { product: String, id: i64 },
    /// Let failed devices (not those in the penalty box) try again.
    RetryFailed { product: String, id: i64 },
}

/// What `otter rollout create` takes.
#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// The product whose release to roll out.
    product: String,
    /// The release's version.
    version: String,
    /// Default: the server's default channel (stable).
    #[arg(long)]
    channel: Option<String>,
    /// A stage, in order: `tag=NAME` (repeat for several tags, all must match), `N%`, or
    /// both comma-separated (`tag=eu,10%`).
    #[arg(long = "stage", value_name = "STAGE", required = true, value_parser = parse_stage)]
    stages: Vec<Stage>,
    /// When to start (RFC 3339); default now.
    #[arg(long, value_name = "TIME")]
    start_at: Option<String>,
    /// Advance a stage by itself after this soak time (e.g. 1h), once enough of its devices
    /// installed; without it only `otter rollout advance` does.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    auto_advance: Option<std::time::Duration>,
    /// With --auto-advance: at least this many of the stage's devices installed.
    #[arg(
        long,
        value_name = "COUNT",
        default_value_t = 0,
        requires = "auto_advance"
    )]
    min_installed: u64,
    /// With --auto-advance: at least this share of the devices the stage let in installed.
    #[arg(long, value_name = "PERCENT", requires = "auto_advance")]
    min_installed_percent: Option<f64>,
    /// Pause by itself once this many devices of the current stage failed.
    #[arg(long, value_name = "COUNT")]
    pause_failures: Option<u64>,
    /// Pause by itself once failures reach this share of the stage's finished attempts.
    #[arg(long, value_name = "PERCENT")]
    pause_rate: Option<f64>,
    /// With --pause-rate: judge the rate only after this many finished attempts.
    #[arg(long, value_name = "COUNT", default_value_t = 0)]
    pause_min_attempts: u64,
    /// Most devices updating at once (0: no cap).
    #[arg(long, value_name = "COUNT", default_value_t = 0)]
    max_concurrent: u32,
    /// Failures after which a device enters the penalty box.
    #[arg(long, value_name = "COUNT", default_value_t = 3)]
    penalty_failures: u32,
    /// How long a device stays in the penalty box.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "24h")]
    penalty_time: std::time::Duration,
    /// A device silent this long after it started downloading has failed (one only
    /// offered the release gives its slot back).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1h")]
    device_timeout: std::time::Duration,
}

/// Parses `tag=canary`, `10%`, `tag=eu,tag=beta,0.5%`.
fn parse_stage(s: &str) -> Result<Stage, String> {
    let mut stage = Stage {
        tags: Vec::new(),
        percent: None,
    };
    for part in s.split(',').map(str::trim) {
        if let Some(tag) = part.strip_prefix("tag=") {
            stage.tags.push(tag.to_owned());
        } else if let Some(p) = part.strip_suffix('%') {
            let p: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("{part:?} is not a percentage like 10%"))?;
            stage.percent = Some(p);
        } else {
            return Err(format!("{part:?}: use tag=NAME, N% or both (tag=eu,10%)"));
        }
    }
    stage.validate()?;
    Ok(stage)
}

/// A rollout as `show` answers it.
#[derive(Deserialize)]
struct View {
    #[serde(flatten)]
    rollout: Rollout,
    counts: Vec<StageCounts>,
}

impl super::Row for Rollout {
    const HEADER: &'static [&'static str] =
        &["ID", "VERSION", "CHANNEL", "STATE", "STAGE", "CREATED"];
}

fn describe(stage: &Stage) -> String {
    let mut parts: Vec<String> = stage.tags.iter().map(|t| format!("tag={t}")).collect();
    parts.extend(stage.percent.map(|p| format!("{p}%")));
    parts.join(",")
}

fn print_view(view: &View) -> anyhow::Result<()> {
    let r = &view.rollout;
    println!(
        "rollout {} of {} {} on {}: {}, stage {} of {} (since {})",
        r.id,
        r.product,
        r.version,
        r.channel,
        r.state.as_str(),
        r.current_stage + 1,
        r.stages.len(),
        format_rfc3339(r.stage_started_at)
    );
    if let Some(reason) = &r.reason {
        println!("why: {reason}");
    }
    if let Some(start) = r.start_at {
        println!("starts: {}", format_rfc3339(start));
    }
    let cap = match r.policy.max_concurrent {
        0 => "no cap".to_owned(),
        n => format!("cap {n}"),
    };
    println!("updating now: {} ({cap})", r.in_flight);
    let rows: Vec<Vec<String>> = r
        .stages
        .iter()
        .zip(&view.counts)
        .enumerate()
        .map(|(i, (stage, c))| {
            let mark = if i as u32 == r.current_stage { "*" } else { "" };
            vec![
                format!("{}{mark}", i + 1),
                describe(stage),
                c.offered.to_string(),
                c.downloading.to_string(),
                c.installed.to_string(),
                c.failed.to_string(),
                c.penalty.to_string(),
            ]
        })
        .collect();
    let header = [
        "STAGE",
        "DEVICES",
        "OFFERED",
        "DOWNLOADING",
        "INSTALLED",
        "FAILED",
        "PENALTY",
    ];
    write_table(&mut std::io::stdout().lock(), &header, &rows)?;
    Ok(())
}

impl RolloutCommand {
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        let rollouts = |product: &str| client.url(&["api", "v1", "products", product, "rollouts"]);
        let one = |product: &str, id: i64, action: Option<&str>| {
            let id = id.to_string();
            let mut segments = vec!["api", "v1", "products", product, "rollouts", &id];
            segments.extend(action);
            client.url(&segments)
        };
        let view: View = match self {
            RolloutCommand::Create(args) => {
                let CreateArgs {
                    product,
                    version,
                    channel,
                    stages,
                    start_at,
                    auto_advance,
                    min_installed,
                    min_installed_percent,
                    pause_failures,
                    pause_rate,
                    pause_min_attempts,
                    max_concurrent,
                    penalty_failures,
                    penalty_time,
                    device_timeout,
                } = *args;
                let policy = Policy {
                    auto_advance: auto_advance.map(|soak| AutoAdvance {
                        soak_seconds: soak.as_secs(),
                        min_installed,
                        min_installed_percent,
                    }),
                    pause_on: (pause_failures.is_some() || pause_rate.is_some()).then_some(
                        PauseOn {
                            failures: pause_failures,
                            failure_percent: pause_rate,
                            min_attempts: pause_min_attempts,
                        },
                    ),
                    max_concurrent,
                    penalty_failures,
                    penalty_seconds: penalty_time.as_secs(),
                    device_timeout_seconds: device_timeout.as_secs(),
                };
                let mut body = json!({
                    "version": version, "channel": channel, "stages": stages, "policy": policy,
                });
                if let Some(start_at) = start_at {
                    body["startAt"] = Value::String(start_at);
                }
                client.post(rollouts(&product), &body).await?
            }
            RolloutCommand::List { product, json } => {
                return list(
                    client,
                    rollouts(&product),
                    json,
                    "rollouts",
                    |r: Rollout| {
                        vec![
                            r.id.to_string(),
                            r.version,
                            r.channel,
                            r.state.as_str().to_owned(),
                            format!("{}/{}", r.current_stage + 1, r.stages.len()),
                            format_rfc3339(r.created_at),
                        ]
                    },
                )
                .await;
            }
            RolloutCommand::Show { product, id } => client.get(one(&product, id, None)).await?,
            RolloutCommand::Advance { product, id } => {
                client
                    .post_empty(one(&product, id, Some("advance")))
                    .await?
            }
            RolloutCommand::Pause { product, id } => {
                client.post_empty(one(&product, id, Some("pause"))).await?
            }
            RolloutCommand::Resume { product, id } => {
                client.post_empty(one(&product, id, Some("resume"))).await?
            }
            RolloutCommand::Abort { product, id } => {
                client.post_empty(one(&product, id, Some("abort"))).await?
            }
            RolloutCommand::RetryFailed { product, id } => {
                #[derive(Deserialize)]
                struct Retried {
                    retried: u64,
                    rollout: View,
                }
                let answer: Retried = client
                    .post_empty(one(&product, id, Some("retry-failed")))
                    .await?;
                println!("{} failed devices may try again", answer.retried);
                answer.rollout
            }
        };
        print_view(&view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_parse_from_tags_and_percentages() {
        assert_eq!(
            parse_stage("tag=canary").unwrap(),
            Stage {
                tags: vec!["canary".into()],
                percent: None
            }
        );
        assert_eq!(parse_stage("0.5%").unwrap().percent, Some(0.5));
        let both = parse_stage("tag=eu, tag=beta,10%").unwrap();
        assert_eq!((both.tags.len(), both.percent), (2, Some(10.0)));
        assert!(parse_stage("ten%").is_err());
        assert!(parse_stage("150%").is_err());
        assert!(parse_stage("canary").is_err());
    }
}
