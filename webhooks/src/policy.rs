//! The provider's security policy: which PHP and database versions courses may use, and when
//! each reaches end of life. Loaded from a YAML/JSON file; an empty list allows any version.

use jiff::civil::Date;
use oem_crds::course::DatabaseEngine;
use serde::{Deserialize, Serialize};

/// Allowed runtime versions per runtime.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecurityPolicy {
    /// PHP versions (MAJOR.MINOR).
    #[serde(default)]
    pub php: Vec<RuntimeVersion>,
    /// MariaDB versions.
    #[serde(default)]
    pub mariadb: Vec<RuntimeVersion>,
    /// PostgreSQL versions.
    #[serde(default)]
    pub postgresql: Vec<RuntimeVersion>,
}

/// One allowed version and the day its support ends.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeVersion {
    pub version: String,
    /// The last day of support; from the next day on the version is past end of life.
    #[serde(default)]
    pub end_of_life: Option<Date>,
}

/// What the policy says of one version on one day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Support {
    Supported { end_of_life: Option<Date> },
    PastEndOfLife(Date),
    NotListed,
}

impl SecurityPolicy {
    /// Versions supported upstream as of 2026 (the chart ships the same list).
    pub fn builtin() -> Self {
        fn v(version: &str, eol: &str) -> RuntimeVersion {
            RuntimeVersion {
                version: version.into(),
                end_of_life: eol.parse().ok(),
            }
        }
        Self {
            php: vec![
                v("8.1", "2025-12-31"),
                v("8.2", "2026-12-31"),
                v("8.3", "2027-12-31"),
                v("8.4", "2028-12-31"),
            ],
            mariadb: vec![
                v("10.6", "2026-07-06"),
                v("10.11", "2028-02-16"),
                v("11.4", "2029-05-29"),
            ],
            postgresql: vec![
                v("14", "2026-11-12"),
                v("15", "2027-11-11"),
                v("16", "2028-11-09"),
                v("17", "2029-11-08"),
            ],
        }
    }

    pub fn php(&self, version: &str, today: Date) -> Support {
        support(&self.php, version, today)
    }

    pub fn database(&self, engine: DatabaseEngine, version: &str, today: Date) -> Support {
        match engine {
            DatabaseEngine::Mariadb => support(&self.mariadb, version, today),
            DatabaseEngine::Postgresql => support(&self.postgresql, version, today),
        }
    }
}

fn support(list: &[RuntimeVersion], version: &str, today: Date) -> Support {
    if list.is_empty() {
        return Support::Supported { end_of_life: None };
    }
    match list.iter().find(|r| r.version == version) {
        None => Support::NotListed,
        Some(RuntimeVersion {
            end_of_life: Some(eol),
            ..
        }) if *eol < today => Support::PastEndOfLife(*eol),
        Some(r) => Support::Supported {
            end_of_life: r.end_of_life,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn a_version_is_supported_through_its_last_day() {
        let p = SecurityPolicy::builtin();
        assert!(matches!(
            p.php("8.2", date(2026, 12, 31)),
            Support::Supported { .. }
        ));
        assert_eq!(
            p.php("8.2", date(2027, 1, 1)),
            Support::PastEndOfLife(date(2026, 12, 31))
        );
        assert_eq!(p.php("5.6", date(2026, 1, 1)), Support::NotListed);
    }

    #[test]
    fn an_empty_list_allows_any_version() {
        let p = SecurityPolicy::default();
        assert!(matches!(
            p.database(DatabaseEngine::Postgresql, "9", date(2026, 1, 1)),
            Support::Supported { .. }
        ));
    }
}
