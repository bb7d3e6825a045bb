//! Gauge families with a series per tenant (a probe target, an end user), kept as one small map
//! each and written in the Prometheus text format at each scrape. A `prometheus::GaugeVec`
//! child keeps its own copy of the family's description and label pairs: about 0.9 KB per
//! series, so the monitor's three gauges per target alone were ~80 MB at 2,000 end users. A
//! series here is its label values joined in one string and a number: about 100 bytes.
//!
//! Families with a few fixed series (by controller, by mode) stay in the `prometheus` registry;
//! `http::State` writes both into one `/metrics` answer.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

/// Separates label values in a series' key: no Kubernetes name, service or host has it.
const SEPARATOR: char = '\u{0}';

/// One gauge family: name, help, label names and its series. Cheap to clone (shared).
#[derive(Clone)]
pub struct Gauges {
    family: Arc<Family>,
}

struct Family {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    series: Mutex<HashMap<Box<str>, f64>>,
}

/// A part that writes gauge families of its own at a scrape, from a table it keeps anyway
/// (the monitor's last results: no second copy of each target's labels).
pub trait Exposed: Send + Sync {
    /// The names of the families it writes.
    fn names(&self) -> &'static [&'static str];
    /// Appends its families in the text exposition format ([`write_family`]).
    fn write_text(&self, out: &mut String);
}

/// Every family to write at a scrape. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Families {
    all: Arc<Mutex<Registered>>,
}

/// The families registered: one lock, so a name is checked and taken in one step.
#[derive(Clone, Default)]
struct Registered {
    gauges: Vec<Gauges>,
    exposed: Vec<Arc<dyn Exposed>>,
}

impl Registered {
    fn taken(&self, name: &str) -> bool {
        self.gauges.iter().any(|g| g.family.name == name)
            || self.exposed.iter().any(|e| e.names().contains(&name))
    }
}

impl Families {
    fn registered(&self) -> std::sync::MutexGuard<'_, Registered> {
        self.all.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new family, written with the others from now on; a name taken twice is refused, as
    /// the `prometheus` registry refuses it.
    pub fn gauges(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Result<Gauges, String> {
        let mut registered = self.registered();
        if registered.taken(name) {
            return Err(format!("gauge family {name} is registered twice"));
        }
        let gauges = Gauges {
            family: Arc::new(Family {
                name,
                help,
                labels,
                series: Mutex::default(),
            }),
        };
        registered.gauges.push(gauges.clone());
        Ok(gauges)
    }

    /// Writes `part`'s families with the others from now on; a name taken twice is refused.
    pub fn expose(&self, part: Arc<dyn Exposed>) -> Result<(), String> {
        let mut registered = self.registered();
        if let Some(name) = part.names().iter().find(|n| registered.taken(n)) {
            return Err(format!("gauge family {name} is registered twice"));
        }
        registered.exposed.push(part);
        Ok(())
    }

    /// Appends every family, the gauges by name, then the exposed parts', in the text
    /// exposition format.
    pub fn write_text(&self, out: &mut String) {
        let Registered {
            mut gauges,
            exposed,
        } = self.registered().clone();
        gauges.sort_by_key(|g| g.family.name);
        for family in gauges {
            family.write_text(out);
        }
        for part in exposed {
            part.write_text(out);
        }
    }
}

/// Appends one family: its help and type lines, then a sample for each of `series` (label
/// values in the order of `labels`, and the value).
pub fn write_family<'a, V>(
    out: &mut String,
    (name, help, labels): (&str, &str, &[&str]),
    series: impl IntoIterator<Item = (V, f64)>,
) where
    V: IntoIterator<Item = &'a str>,
{
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (values, value) in series {
        out.push_str(name);
        if !labels.is_empty() {
            out.push('{');
            for (i, (label, value)) in labels.iter().zip(values).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(label);
                out.push_str("=\"");
                escape_value(value, out);
                out.push('"');
            }
            out.push('}');
        }
        out.push(' ');
        write_number(value, out);
        out.push('\n');
    }
}

fn key(values: &[&str]) -> String {
    let mut key = String::with_capacity(values.iter().map(|v| v.len() + 1).sum());
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            key.push(SEPARATOR);
        }
        key.push_str(value);
    }
    key
}

impl Gauges {
    fn series(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, f64>> {
        self.family
            .series
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the series of these label values (in the order of the family's label names).
    pub fn set(&self, values: &[&str], value: f64) {
        debug_assert_eq!(
            values.len(),
            self.family.labels.len(),
            "{}",
            self.family.name
        );
        let key = key(values);
        let mut series = self.series();
        match series.get_mut(key.as_str()) {
            Some(v) => *v = value,
            None => {
                series.insert(key.into_boxed_str(), value);
            }
        }
    }

    /// Removes the series of these label values, if there is one.
    pub fn remove(&self, values: &[&str]) {
        self.series().remove(key(values).as_str());
    }

    /// The value of one series.
    pub fn get(&self, values: &[&str]) -> Option<f64> {
        self.series().get(key(values).as_str()).copied()
    }

    /// Makes the family exactly `values`, in one step: a scrape sees the old series or the
    /// new ones, never a family missing a series that stays (a rule's `for:` would restart).
    pub fn replace<I, L>(&self, values: I)
    where
        I: IntoIterator<Item = (L, f64)>,
        L: AsRef<[String]>,
    {
        let fresh: HashMap<Box<str>, f64> = values
            .into_iter()
            .map(|(labels, value)| {
                let labels: Vec<&str> = labels.as_ref().iter().map(String::as_str).collect();
                (key(&labels).into_boxed_str(), value)
            })
            .collect();
        *self.series() = fresh;
    }

    /// How many series the family has.
    pub fn len(&self) -> usize {
        self.series().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn write_text(&self, out: &mut String) {
        let family = &self.family;
        let series = self.series();
        let mut keys: Vec<(&Box<str>, &f64)> = series.iter().collect();
        keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
        write_family(
            out,
            (family.name, family.help, family.labels),
            keys.into_iter()
                .map(|(key, value)| (key.split(SEPARATOR), *value)),
        );
    }
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_value(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn write_number(value: f64, out: &mut String) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn families() -> (Families, Gauges) {
        let families = Families::default();
        let probes = families
            .gauges("oem_probe_success", "1 when up", &["enduser", "service"])
            .unwrap();
        (families, probes)
    }

    #[test]
    fn series_are_written_in_the_text_format_in_order() {
        let (families, probes) = families();
        probes.set(&["bob", "http"], 0.0);
        probes.set(&["alice", "imaps"], 1.0);
        probes.set(&["alice", "imaps"], 0.25);
        let other = families
            .gauges("oem_a_first", "Line one\nline two", &[])
            .unwrap();
        other.set(&[], f64::INFINITY);
        let mut out = String::new();
        families.write_text(&mut out);
        assert_eq!(
            out,
            "# HELP oem_a_first Line one\\nline two\n# TYPE oem_a_first gauge\noem_a_first +Inf\n\
             # HELP oem_probe_success 1 when up\n# TYPE oem_probe_success gauge\n\
             oem_probe_success{enduser=\"alice\",service=\"imaps\"} 0.25\n\
             oem_probe_success{enduser=\"bob\",service=\"http\"} 0\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let (families, probes) = families();
        probes.set(&["a\"b\\c\nd", ""], 1.0);
        let mut out = String::new();
        families.write_text(&mut out);
        assert!(
            out.contains(r#"oem_probe_success{enduser="a\"b\\c\nd",service=""} 1"#),
            "{out}"
        );
    }

    #[test]
    fn a_series_is_removed_and_a_family_replaced_whole() {
        let (families, probes) = families();
        probes.set(&["alice", "http"], 1.0);
        probes.set(&["bob", "http"], 1.0);
        probes.remove(&["alice", "http"]);
        assert_eq!(probes.get(&["alice", "http"]), None);
        assert_eq!(probes.get(&["bob", "http"]), Some(1.0));
        probes.replace([(vec!["carol".to_owned(), "ftp".to_owned()], 2.0)]);
        assert_eq!(probes.len(), 1);
        assert_eq!(probes.get(&["carol", "ftp"]), Some(2.0));
        assert!(
            families.gauges("oem_probe_success", "again", &[]).is_err(),
            "one name, one family"
        );
    }
}
