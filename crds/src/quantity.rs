//! Kubernetes quantities (`100M`, `1.5Gi`, `250m`, `1e3`) as numbers, for comparing and
//! summing them: the operator's diff-before-write and the webhooks' quota checks share it.

/// The value of a Kubernetes quantity ("100M", "1.5Gi", "250m", "1e3"), or `None` when the
/// string is not one.
pub fn value(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    if number.is_empty() || number == "+" || number == "-" {
        return None;
    }
    let base: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp if exp.starts_with(['e', 'E']) => 10f64.powi(exp[1..].parse::<i32>().ok()?),
        _ => return None,
    };
    Some(base * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_scale_by_their_unit() {
        assert_eq!(value("1Gi"), Some(1073741824.0));
        assert_eq!(value("100M"), Some(1e8));
        assert_eq!(value("250m"), Some(0.25));
        assert_eq!(value("1e3"), Some(1000.0));
        assert_eq!(value("2"), Some(2.0));
    }

    #[test]
    fn what_is_not_a_quantity_is_none() {
        assert_eq!(value("nginx:1.27"), None);
        assert_eq!(value("M"), None);
        assert_eq!(value(""), None);
        assert_eq!(value("1Xi"), None);
    }
}
