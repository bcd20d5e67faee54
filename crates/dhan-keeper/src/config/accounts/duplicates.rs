//! Keys written twice inside one entry of `accounts`: serde keeps the last silently.

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::ACCOUNTS_KEY;

/// Keys that appear twice inside one entry of `accounts`, as (entry, key): serde_json would
/// silently keep the last, and a pasted entry with two `pin`s is an easy mistake.
pub(in crate::config) fn duplicate_keys_in_entries(text: &str) -> Vec<(usize, String)> {
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_map(Top).unwrap_or_default()
}

/// The top-level object: only `accounts` is looked into.
struct Top;
/// The list of entries.
struct Entries;
/// One entry: its first duplicated key.
struct Entry;

impl<'de> Visitor<'de> for Entry {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an account")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut seen, mut dup) = (std::collections::HashSet::new(), None);
        while let Some(key) = map.next_key::<String>()? {
            map.next_value::<IgnoredAny>()?;
            if !seen.insert(key.clone()) && dup.is_none() {
                dup = Some(crate::harden::sanitize(&key, 40));
            }
        }
        Ok(dup)
    }
    // Anything else is reported later as "must be an object".
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}
impl<'de> Visitor<'de> for Entries {
    type Value = Vec<(usize, String)>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of accounts")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut found = Vec::new();
        let mut i = 0;
        while let Some(dup) = seq.next_element_seed(EntrySeed)? {
            if let Some(key) = dup {
                found.push((i, key));
            }
            i += 1;
        }
        Ok(found)
    }
}

/// Deserializes one entry through [`Entry`]'s visitor.
struct EntrySeed;
impl<'de> serde::de::DeserializeSeed<'de> for EntrySeed {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(Entry)
    }
}
/// Deserializes the `accounts` value through [`Entries`]; anything but a list finds nothing.
struct EntriesSeed;
impl<'de> serde::de::DeserializeSeed<'de> for EntriesSeed {
    type Value = Vec<(usize, String)>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(Entries)
    }
}

impl<'de> Visitor<'de> for Top {
    type Value = Vec<(usize, String)>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == ACCOUNTS_KEY {
                // Not a list fails the whole look (nothing found): `from_layers` then says
                // what `accounts` must be.
                found = map.next_value_seed(EntriesSeed)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}
