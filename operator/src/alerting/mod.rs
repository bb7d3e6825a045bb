//! Alerting and incidents (SPEC §6–§8, DESIGN "Alerting and incidents"): alert rules and their
//! sources, the incident flow, remediation, mass-mail locks, notices and reports.
//!
//! | module | owns |
//! |---|---|
//! | `rules` | the chart's alert rules file: names, parameters, rendering |
//! | `source`, `embedded` | what is failing: Prometheus, Alertmanager's pushes, or the monitor's own history |
//! | `flow` | the incident state machine (pure) |
//! | `controller`, `deliver` | the loop: open, step, remediate, write status, deliver notices |
//! | `incidents` | what one look at the cluster finds; incident keys and names |
//! | `remediation`, `mail` | level 1 and 2 actions, mail locks |
//! | `maintenance`, `windows` | maintenance windows: which outages they hold, their phase (pure); node lookup and status writes |
//! | `announcements`, `announce` | maintenance windows told in advance: when and to whom (pure); queueing and delivering |
//! | `delivery` | incident → notice and target for the transport |
//! | `availability` | a month's availability from recorded outages, less maintenance (pure) |
//! | `report`, `reporter` | the monthly availability report: when it is due and what it says (pure); recording and delivering it |
//! | `calendar`, `notify` | business calendar and notification transport |

mod announce;
pub mod announcements;
pub mod availability;
pub mod calendar;
pub mod config;
pub mod controller;
mod deliver;
pub mod delivery;
pub mod embedded;
mod export;
pub mod flow;
pub mod incidents;
pub mod mail;
pub mod maintenance;
pub mod metrics;
pub mod notify;
pub mod outage;
pub mod remediation;
pub mod report;
mod reporter;
pub mod retention;
pub mod rules;
pub mod source;
pub mod windows;

use std::sync::Arc;

pub use config::{AlertingConfig, SourceMode};
pub use source::AlertInbox;

use crate::context::Context;

/// Runs the alert controller until `stop`. Fails when the notification transport cannot be set
/// up: an operator that cannot tell resellers must not look healthy.
pub async fn run(
    ctx: Arc<Context>,
    view: crate::view::View,
    inbox: AlertInbox,
    stop: oem_supervisor::Stop,
) -> Result<(), String> {
    let cfg = &ctx.config.alerting;
    let mode = cfg.mode(ctx.config.prometheus_url.as_deref());
    if mode == SourceMode::Embedded && !ctx.config.monitor.enabled {
        // The embedded source is the monitor's history: with the monitor off it would act on
        // stale states. Nothing to do until a Prometheus is configured.
        tracing::warn!(
            "the alert controller is idle: embedded mode needs the monitor (monitor.enabled: false)"
        );
        stop.requested().await;
        return Ok(());
    }
    let notifier = cfg
        .notify_config()
        .map_err(|e| e.to_string())
        .and_then(|c| {
            notify::Notifier::new(c.clone())
                .map(|n| (c, n.with_clock(ctx.clock.clone())))
                .map_err(|e| e.to_string())
        });
    let (notify_config, notifier) = match notifier {
        Ok(pair) => pair,
        Err(error) => {
            return Err(format!(
                "the notification transport cannot be set up (alerting.notify): {error}"
            ));
        }
    };
    tracing::info!(?mode, poll = ?cfg.poll_interval, notify_after = ?cfg.notify_after,
        "alert controller started");
    let poll = cfg.poll_interval;
    if !view.wait_ready(&stop, "alert controller").await {
        return Ok(());
    }
    let mut alerting = controller::Alerting::new(ctx.clone(), view, inbox, notify_config, notifier);
    let mut ticker = tokio::time::interval(poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stopped = stop.requested();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = &mut stopped => {
                tracing::info!("alert controller stopped");
                return Ok(());
            }
        }
        // A look over hundreds of incidents takes seconds: a stop ends it where it is. What it
        // left undone is level-triggered and done by the next look (or the next leader); a
        // notice cut mid-send is the case its idempotency key covers.
        tokio::select! {
            _ = alerting.tick() => {}
            _ = &mut stopped => {
                tracing::info!("alert controller stopped in the middle of a look");
                return Ok(());
            }
        }
    }
}
