//! Finished incidents are deleted `alerting.incidentRetention` (90 days) after they ended, so
//! the Incidents of a long-lived cluster — and what every look at them costs — stay bounded.
//! An incident still open, still owing a notice or a report, is never deleted.

use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Preconditions};
use oem_crds::incident::Incident;

use super::flow;
use super::incidents::key_of;
use crate::context::Context;

/// At most this many deletions per look: a first start on a cluster with years of incidents
/// spreads them over several polls instead of one burst of writes.
pub const MAX_DELETIONS_PER_POLL: usize = 50;

/// When a finished incident ended: its report, else its recovery. `None` while it is not
/// finished (open, or owing a notice or a report).
pub fn ended_at(incident: &Incident) -> Option<Timestamp> {
    if !flow::finished(incident) {
        return None;
    }
    let status = incident.status.as_ref()?;
    [&status.report_sent_at, &status.resolved_at]
        .into_iter()
        .flatten()
        .map(|t| t.0)
        .max()
}

/// The finished incidents that ended more than `retention` before `now`, those that ended
/// first first, at most `cap`.
pub fn expired(
    incidents: &[Incident],
    retention: SignedDuration,
    now: Timestamp,
    cap: usize,
) -> Vec<&Incident> {
    let mut old: Vec<(Timestamp, &Incident)> = incidents
        .iter()
        .filter_map(|i| ended_at(i).map(|at| (at, i)))
        .filter(|(at, _)| *at + retention < now)
        .collect();
    old.sort_by_key(|(at, i)| (*at, i.name_any()));
    old.into_iter().take(cap).map(|(_, i)| i).collect()
}

/// Deletes the expired incidents (each only if it is still the object looked at: its uid as a
/// precondition). Returns the names deleted.
pub async fn collect(ctx: &Context, incidents: &[Incident], now: Timestamp) -> Vec<String> {
    let retention = SignedDuration::try_from(ctx.config.alerting.incident_retention)
        .unwrap_or(SignedDuration::MAX);
    let mut deleted = Vec::new();
    for incident in expired(incidents, retention, now, MAX_DELETIONS_PER_POLL) {
        let namespace = incident.namespace().unwrap_or_default();
        let api: Api<Incident> = Api::namespaced(ctx.client.clone(), &namespace);
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: incident.uid(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&incident.name_any(), &params).await {
            Ok(_) => {
                tracing::info!(namespace = %namespace, incident = %incident.name_any(),
                    "finished incident deleted after its retention");
                ctx.metrics
                    .alerting
                    .incidents_deleted
                    .with_label_values(&[key_of(incident).reseller()])
                    .inc();
                deleted.push(incident.name_any());
            }
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
            Err(error) => {
                tracing::warn!(namespace = %namespace, incident = %incident.name_any(), %error,
                    "deleting a finished incident failed");
            }
        }
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use oem_crds::enduser::ServiceName;
    use oem_crds::incident::{IncidentKind, IncidentPhase, IncidentSpec, IncidentStatus};

    fn at(days: i64) -> Timestamp {
        "2026-01-01T00:00:00Z".parse::<Timestamp>().unwrap() + SignedDuration::from_hours(24 * days)
    }

    fn incident(
        name: &str,
        phase: IncidentPhase,
        resolved: Option<i64>,
        reported: Option<i64>,
    ) -> Incident {
        let mut i = Incident::new(
            name,
            IncidentSpec {
                end_user: "shop".into(),
                service: ServiceName::Http,
                kind: IncidentKind::ServiceDown,
                cause: None,
                report_deferral: None,
                node: None,
            },
        );
        i.metadata.namespace = Some("reseller-sakura".into());
        i.status = Some(IncidentStatus {
            phase: Some(phase),
            started_at: Some(Time(at(0))),
            resolved_at: resolved.map(|d| Time(at(d))),
            report_sent_at: reported.map(|d| Time(at(d))),
            ..IncidentStatus::default()
        });
        i
    }

    #[test]
    fn only_finished_incidents_past_the_retention_go_oldest_first() {
        let retention = SignedDuration::from_hours(24 * 90);
        let incidents = vec![
            // Resolved without notice on day 1 (nothing to report): finished.
            incident("short", IncidentPhase::Resolved, Some(1), None),
            // Reported on day 5.
            incident("told", IncidentPhase::Reported, Some(2), Some(5)),
            // Reported on day 40: within the retention on day 100.
            incident("recent", IncidentPhase::Reported, Some(39), Some(40)),
            // Open since day 0: never deleted, however old.
            incident("open", IncidentPhase::Notified, None, None),
        ];
        let names =
            |list: Vec<&Incident>| list.into_iter().map(|i| i.name_any()).collect::<Vec<_>>();
        assert_eq!(
            names(expired(&incidents, retention, at(100), 10)),
            ["short", "told"]
        );
        assert_eq!(names(expired(&incidents, retention, at(100), 1)), ["short"]);
        assert!(
            expired(&incidents, retention, at(91), 10).is_empty(),
            "day 91: 90 days after day 1 only just"
        );
        assert_eq!(
            names(expired(&incidents, retention, at(1000), 10)),
            ["short", "told", "recent"]
        );
    }
}
