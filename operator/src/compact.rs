//! Two steps the operator's long-lived tables share to keep thousands of entries small: a
//! name or a state kept as a 64-bit hash instead of a copy, and a sorted vector that grows by
//! an eighth instead of doubling (a doubled vector of 2,000 entries keeps up to 2,000 empty).

use std::hash::{DefaultHasher, Hash, Hasher};

/// A 64-bit hash of `value`, the same in every run (SipHash with fixed keys): for tables that
/// remember what they saw by a hash instead of a copy. Two values whose hashes meet (2^-64 a
/// pair) are taken as one; each caller says what that costs it.
pub fn hash_of(value: impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// Inserts `item` at `at` in a vector kept sorted by its caller, growing a full vector by an
/// eighth of its length (at least one).
pub fn insert_growing<T>(items: &mut Vec<T>, at: usize, item: T) {
    if items.len() == items.capacity() {
        items.reserve_exact(items.len() / 8 + 1);
    }
    items.insert(at, item);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vector_grows_by_an_eighth_and_keeps_the_order_given() {
        let mut items = Vec::new();
        for i in (0..800).rev() {
            insert_growing(&mut items, 0, i);
        }
        assert_eq!(items, (0..800).collect::<Vec<_>>());
        assert!(
            items.capacity() <= 800 + 800 / 8 + 1,
            "{}",
            items.capacity()
        );
    }

    #[test]
    fn a_hash_tells_values_apart_and_repeats() {
        assert_eq!(hash_of(("ns", "a")), hash_of(("ns", "a")));
        assert_ne!(hash_of(("ns", "a")), hash_of(("ns", "b")));
        assert_ne!(hash_of((Some("ns"), "a")), hash_of((None::<&str>, "a")));
    }
}
