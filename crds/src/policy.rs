//! The provider's security policy: which PHP and database versions courses may use, when each
//! reaches end of life, and the image that runs it. One list, read by the operator (which image
//! a course runs, whether it is Ready) and the webhooks (what a course may choose). Loaded from
//! YAML/JSON; an empty list allows any version (and names no image).

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::course::DatabaseEngine;

/// Where the project's own images are named (`scripts/build-images.sh` builds and tags them).
pub const IMAGE_REGISTRY: &str = "oem.local/oem-hosting";
/// The tag of the project's images (`images/TAG`).
pub const IMAGE_TAG: &str = include_str!("../../images/TAG");

/// The name of the project's image `name`, e.g. `oem.local/oem-hosting/web-php8.4:2026.12.0`.
pub fn project_image(name: &str) -> String {
    format!("{IMAGE_REGISTRY}/{name}:{}", IMAGE_TAG.trim())
}

/// Allowed runtime versions per runtime.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
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

/// One allowed version, the day its support ends and the image that runs it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuntimeVersion {
    pub version: String,
    /// The last day of support; from the next day on the version is past end of life.
    #[serde(default)]
    pub end_of_life: Option<Date>,
    /// The container image that runs this version; a version without one cannot be served.
    #[serde(default)]
    pub image: Option<String>,
}

/// What the policy says of one version on one day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Support {
    Supported {
        end_of_life: Option<Date>,
    },
    PastEndOfLife(Date),
    /// Listed, but no image runs it: a course on it cannot be served.
    NoImage,
    NotListed,
}

impl SecurityPolicy {
    /// The versions the project's images run (`images/`), with the end of their security
    /// support in the Debian release they come from (the chart ships the same list). Versions
    /// past end of life stay listed so courses still on them are named as such.
    pub fn builtin() -> Self {
        fn v(version: &str, eol: &str, image: Option<&str>) -> RuntimeVersion {
            RuntimeVersion {
                version: version.into(),
                end_of_life: eol.parse().ok(),
                image: image.map(project_image),
            }
        }
        Self {
            php: vec![
                v("8.1", "2025-12-31", None),
                // Debian 12's PHP 8.2 is security-supported through Debian 12's LTS.
                v("8.2", "2028-06-30", Some("web-php8.2")),
                v("8.4", "2030-06-30", Some("web-php8.4")),
            ],
            mariadb: vec![
                v("10.6", "2026-07-06", None),
                v("10.11", "2028-02-16", Some("mariadb")),
            ],
            postgresql: vec![
                v("14", "2026-11-12", None),
                v("15", "2028-06-30", Some("postgresql")),
            ],
        }
    }

    pub fn php(&self, version: &str, today: Date) -> Support {
        support(&self.php, version, today)
    }

    pub fn database(&self, engine: DatabaseEngine, version: &str, today: Date) -> Support {
        support(self.databases(engine), version, today)
    }

    fn databases(&self, engine: DatabaseEngine) -> &[RuntimeVersion] {
        match engine {
            DatabaseEngine::Mariadb => &self.mariadb,
            DatabaseEngine::Postgresql => &self.postgresql,
        }
    }

    /// The image that runs PHP `version`, if the policy names one.
    pub fn php_image(&self, version: &str) -> Option<&str> {
        self.php_runtime(version).ok()
    }

    /// The image that runs PHP `version`, or why none does.
    pub fn php_runtime(&self, version: &str) -> Result<&str, Unservable> {
        runtime(&self.php, Some(version))
    }

    /// The database version a course gets when it names none: the newest listed one with an
    /// image (the last in the list).
    pub fn default_database(&self, engine: DatabaseEngine) -> Option<&str> {
        self.databases(engine)
            .iter()
            .rev()
            .find(|r| r.image.is_some())
            .map(|r| r.version.as_str())
    }

    /// The image that runs `engine` at `version` (the default version when `None`).
    pub fn database_image(&self, engine: DatabaseEngine, version: Option<&str>) -> Option<&str> {
        self.database_runtime(engine, version).ok()
    }

    /// The image that runs `engine` at `version` (the default version when `None`), or why
    /// none does.
    pub fn database_runtime(
        &self,
        engine: DatabaseEngine,
        version: Option<&str>,
    ) -> Result<&str, Unservable> {
        let version = version.or_else(|| self.default_database(engine));
        runtime(self.databases(engine), version)
    }

    /// Every image the policy names, with the field that names it (for validation).
    pub fn images(&self) -> impl Iterator<Item = (String, &str)> {
        [
            ("php", &self.php),
            ("mariadb", &self.mariadb),
            ("postgresql", &self.postgresql),
        ]
        .into_iter()
        .flat_map(|(runtime, list)| {
            list.iter().enumerate().filter_map(move |(i, r)| {
                r.image
                    .as_deref()
                    .map(|image| (format!("{runtime}[{i}].image"), image))
            })
        })
    }
}

/// Why no image serves a runtime version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unservable {
    /// The policy does not list the version (or names no version at all).
    NotListed,
    /// Listed, or allowed by an empty list, but no image runs it.
    NoImage,
}

/// The image of `version` in `list`. An empty list allows any version, but names no image.
fn runtime<'a>(list: &'a [RuntimeVersion], version: Option<&str>) -> Result<&'a str, Unservable> {
    if list.is_empty() {
        return Err(Unservable::NoImage);
    }
    let entry = version
        .and_then(|v| list.iter().find(|r| r.version == v))
        .ok_or(Unservable::NotListed)?;
    entry.image.as_deref().ok_or(Unservable::NoImage)
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
        Some(RuntimeVersion { image: None, .. }) => Support::NoImage,
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
            p.php("8.2", date(2028, 6, 30)),
            Support::Supported { .. }
        ));
        assert_eq!(
            p.php("8.2", date(2028, 7, 1)),
            Support::PastEndOfLife(date(2028, 6, 30))
        );
        assert_eq!(p.php("5.6", date(2026, 1, 1)), Support::NotListed);
    }

    #[test]
    fn every_supported_builtin_version_has_a_project_image() {
        let p = SecurityPolicy::builtin();
        assert_eq!(
            p.php_image("8.4"),
            Some(project_image("web-php8.4").as_str())
        );
        assert_eq!(
            p.database_image(DatabaseEngine::Postgresql, None),
            Some(project_image("postgresql").as_str())
        );
        assert_eq!(p.default_database(DatabaseEngine::Mariadb), Some("10.11"));
        assert!(project_image("mariadb").starts_with("oem.local/oem-hosting/mariadb:"));
        assert!(!project_image("mariadb").ends_with('\n'));
    }

    #[test]
    fn a_listed_version_without_an_image_cannot_be_served() {
        let mut p = SecurityPolicy::builtin();
        p.php.push(RuntimeVersion {
            version: "8.3".into(),
            end_of_life: None,
            image: None,
        });
        assert_eq!(p.php("8.3", date(2026, 1, 1)), Support::NoImage);
        assert_eq!(p.php_image("8.3"), None);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = serde_yaml::from_str::<SecurityPolicy>("php: [{version: '8.4', imgae: x}]")
            .expect_err("misspelled key");
        assert!(err.to_string().contains("imgae"), "{err}");
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
