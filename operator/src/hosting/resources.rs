//! How a course's cpu, memory and storage are divided between the enabled service groups,
//! by the operator's configured shares (disabled groups give theirs to the others).

use crate::config::ResourceSplit;
use oem_crds::quantity;

use super::ServiceGroup;

/// One group's share, in canonical quantity strings (millicores, MiB, GiB or MiB).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupResources {
    pub cpu: String,
    pub memory: String,
    pub storage: String,
}

const MI: f64 = 1024.0 * 1024.0;

/// Splits the totals between `groups`; `None` when a total is not a quantity.
pub fn split_resources(
    cpu: &str,
    memory: &str,
    storage: &str,
    groups: &[ServiceGroup],
    split: &ResourceSplit,
) -> Option<Vec<(ServiceGroup, GroupResources)>> {
    let cpu = quantity::value(cpu)?;
    let memory = quantity::value(memory)?;
    let storage = quantity::value(storage)?;
    let share = |g: ServiceGroup| match g {
        ServiceGroup::Web => split.web,
        ServiceGroup::Mail => split.mail,
        ServiceGroup::Db => split.db,
    };
    let total: u32 = groups.iter().map(|g| share(*g)).sum();
    // A configuration giving every enabled group 0 falls back to equal shares.
    let fraction = |g: ServiceGroup| {
        if total == 0 {
            1.0 / groups.len().max(1) as f64
        } else {
            f64::from(share(g)) / f64::from(total)
        }
    };
    Some(
        groups
            .iter()
            .map(|g| {
                let f = fraction(*g);
                let millicores = ((cpu * f * 1000.0).floor() as u64).max(1);
                let memory_mi = ((memory * f / MI).floor() as u64).max(1);
                let storage_mi = ((storage * f / MI).floor() as u64).max(1);
                (
                    *g,
                    GroupResources {
                        cpu: format!("{millicores}m"),
                        memory: format!("{memory_mi}Mi"),
                        storage: if storage_mi.is_multiple_of(1024) {
                            format!("{}Gi", storage_mi / 1024)
                        } else {
                            format!("{storage_mi}Mi")
                        },
                    },
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_follow_the_configuration() {
        let groups = [ServiceGroup::Web, ServiceGroup::Mail, ServiceGroup::Db];
        let got = split_resources("2", "4Gi", "50Gi", &groups, &ResourceSplit::default()).unwrap();
        assert_eq!(got[0].1.cpu, "1000m");
        assert_eq!(got[1].1.cpu, "400m");
        assert_eq!(got[2].1.cpu, "600m");
        assert_eq!(got[0].1.memory, "2048Mi");
        assert_eq!(got[0].1.storage, "25Gi");
    }

    #[test]
    fn a_lone_group_gets_everything() {
        let got = split_resources(
            "500m",
            "1Gi",
            "10Gi",
            &[ServiceGroup::Web],
            &ResourceSplit::default(),
        )
        .unwrap();
        assert_eq!(
            got[0].1,
            GroupResources {
                cpu: "500m".into(),
                memory: "1024Mi".into(),
                storage: "10Gi".into()
            }
        );
    }

    #[test]
    fn the_parts_never_exceed_the_course() {
        let groups = [ServiceGroup::Web, ServiceGroup::Mail, ServiceGroup::Db];
        let split = ResourceSplit {
            web: 1,
            mail: 1,
            db: 1,
        };
        let got = split_resources("1", "1Gi", "1Gi", &groups, &split).unwrap();
        let cpu: f64 = got
            .iter()
            .map(|(_, r)| quantity::value(&r.cpu).unwrap())
            .sum();
        assert!(cpu <= 1.0, "{cpu}");
    }

    #[test]
    fn a_bad_quantity_is_refused() {
        assert!(
            split_resources(
                "lots",
                "1Gi",
                "1Gi",
                &[ServiceGroup::Web],
                &ResourceSplit::default()
            )
            .is_none()
        );
    }
}
