//! An event's `data` as JSON text.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// An event's `data`: JSON text, written once (from a publisher's request, or from the
/// runtime's own types) and handed to the log and to every subscriber as it is. Only a
/// reader that looks inside parses it ([`EventData::value`]). Building a JSON value per
/// event, a map entry per field, then writing it out again for the log was a sixth of
/// the store writer's CPU under a busy queue (every transition is an event).
///
/// Text from outside (a request, a plugin, the log) is checked in full as it comes in:
/// `RawValue` alone only skips over a value, letting through what no JSON reader takes
/// back (`1e400`, a lone surrogate `"\ud800"`).
#[derive(Clone, Serialize)]
#[serde(transparent)]
pub struct EventData(Box<RawValue>);

impl EventData {
    /// The JSON text of `data`. Serialising the runtime's own types cannot fail; a
    /// type that does (a map with keys that are not text) is recorded as `null`.
    pub fn of(data: &impl Serialize) -> Self {
        Self(serde_json::value::to_raw_value(data).unwrap_or_else(|_| Self::null().0))
    }

    /// `text` if it is one JSON value.
    pub fn from_text(text: String) -> Result<Self, serde_json::Error> {
        Self::checked(RawValue::from_string(text)?)
    }

    /// `raw`, once every number and string in it reads (see [`Checked`]).
    fn checked(raw: Box<RawValue>) -> Result<Self, serde_json::Error> {
        serde_json::from_str::<Checked>(raw.get())?;
        Ok(Self(raw))
    }

    pub fn null() -> Self {
        Self(RawValue::NULL.to_owned())
    }

    /// The JSON text.
    pub fn text(&self) -> &str {
        self.0.get()
    }

    /// The data parsed, for a reader that looks inside.
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(self.text()).unwrap_or(serde_json::Value::Null)
    }
}

impl<'de> Deserialize<'de> for EventData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::checked(Box::<RawValue>::deserialize(deserializer)?).map_err(de::Error::custom)
    }
}

/// A JSON value read to its end and kept nowhere: every number in range, every string
/// decoded.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Checked)
    }
}

impl<'de> Visitor<'de> for Checked {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_entry::<Checked, Checked>()?.is_some() {}
        Ok(Checked)
    }
}

impl From<serde_json::Value> for EventData {
    fn from(value: serde_json::Value) -> Self {
        Self::of(&value)
    }
}

impl Default for EventData {
    fn default() -> Self {
        Self::null()
    }
}

impl PartialEq for EventData {
    fn eq(&self, other: &Self) -> bool {
        self.text() == other.text()
    }
}

impl std::fmt::Debug for EventData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn data_goes_out_as_the_json_it_came_in_as() {
        let data = EventData::from_text(r#"{"b":1,"a":[true,null]}"#.into()).unwrap();
        assert_eq!(data.text(), r#"{"b":1,"a":[true,null]}"#);
        assert_eq!(
            serde_json::to_string(&json!({ "data": data })).unwrap(),
            r#"{"data":{"a":[true,null],"b":1}}"#,
            "inside a value it is parsed like any JSON"
        );
        #[derive(Serialize)]
        struct Wrapper {
            data: EventData,
        }
        assert_eq!(
            serde_json::to_string(&Wrapper { data }).unwrap(),
            r#"{"data":{"b":1,"a":[true,null]}}"#,
            "inside a type it is written as it is"
        );
    }

    #[test]
    fn text_that_is_not_one_json_value_is_refused() {
        assert!(EventData::from_text("{".into()).is_err());
        assert!(EventData::from_text("1 2".into()).is_err());
        // What RawValue alone lets through, and no JSON reader takes back.
        for text in [r#"{"n": 1e400}"#, r#"["\ud800"]"#, r#"{"\udc00": 1}"#] {
            assert!(EventData::from_text(text.into()).is_err(), "{text}");
            let request = format!(r#"{{"data": {text}}}"#);
            assert!(
                serde_json::from_str::<Wrapped>(&request).is_err(),
                "{request}"
            );
        }
        assert!(
            serde_json::from_str::<Wrapped>(r#"{"data": {"n": 1e300, "s": "\u00e9"}}"#).is_ok()
        );
        assert_eq!(EventData::of(&json!({ "n": 1 })).value(), json!({ "n": 1 }));
        assert_eq!(EventData::default().text(), "null");
    }

    #[derive(Deserialize)]
    struct Wrapped {
        #[allow(dead_code)]
        data: EventData,
    }

    #[test]
    fn it_reads_from_a_json_value_too() {
        #[derive(Deserialize)]
        struct Request {
            data: EventData,
        }
        let r: Request = serde_json::from_value(json!({ "data": { "k": "v" } })).unwrap();
        assert_eq!(r.data.value(), json!({ "k": "v" }));
    }
}
