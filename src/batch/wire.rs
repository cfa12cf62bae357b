//! The fast path of ingestion: one JSON record decoded straight into
//! borrowed parts — no `serde_json::Value` per record, no [`Record`] —
//! with the rules of SEMANTICS §1 and §9 checked on the way.
//!
//! The fast path only ever accepts; it never words an error. Whatever it
//! does not accept (a bad value, a repeated key, an opaque part near the
//! depth limit) goes to the reference path, `Record::from_value` and the
//! batch checks, whose verdict and message are the rule. So both paths
//! agree by construction on every input the fast path refuses, and the
//! builder's property tests check that they agree on every input it
//! accepts.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{json_depth, CheckValue, Checked, MAX_OPAQUE_DEPTH, MAX_TEXT_BYTES};
use crate::record::{ImageType, Member, MemberStatus, Record, Status, MAX_ID_BYTES};
use crate::timestamp::Timestamp;

/// The fast path does not accept this input; ask the reference path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused;

/// A JSON string, borrowed from the input when it has no escapes.
#[derive(Debug)]
pub(crate) struct Text<'de>(pub(crate) Cow<'de, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(TextVisitor(std::marker::PhantomData))
    }
}

/// One member as sent.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMember<'a> {
    #[serde(borrow)]
    dest_project_id: Text<'a>,
    status: MemberStatus,
}

/// How a field's type is sent (`Raw`) and what the store takes of it
/// (`Part`, borrowed from the raw value), with the field's own limits.
pub(crate) trait Wire {
    type Raw<'de>: Deserialize<'de>;
    type Part<'r>;
    /// The part of a sent value, or of an absent one (`None`: the type's
    /// default, or `default` for a string field that has one).
    fn part<'r>(
        raw: Option<&'r Self::Raw<'_>>,
        default: &'static str,
    ) -> Result<Self::Part<'r>, Refused>;
}

fn within_limit(text: &str) -> Result<&str, Refused> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(Refused);
    }
    Ok(text)
}

impl Wire for String {
    type Raw<'de> = Text<'de>;
    type Part<'r> = &'r str;
    fn part<'r>(raw: Option<&'r Text<'_>>, default: &'static str) -> Result<&'r str, Refused> {
        within_limit(raw.map_or(default, |t| &t.0))
    }
}

impl Wire for Option<String> {
    type Raw<'de> = Option<Text<'de>>;
    type Part<'r> = Option<&'r str>;
    fn part<'r>(
        raw: Option<&'r Option<Text<'_>>>,
        _: &'static str,
    ) -> Result<Option<&'r str>, Refused> {
        match raw {
            Some(Some(t)) => within_limit(&t.0).map(Some),
            _ => Ok(None),
        }
    }
}

/// Types sent as they are kept, whose default is `Default`.
macro_rules! wire_as_is {
    ($($ty:ty),*) => {
        $(impl Wire for $ty {
            type Raw<'de> = $ty;
            type Part<'r> = $ty;
            fn part(raw: Option<&$ty>, _: &'static str) -> Result<$ty, Refused> {
                Ok(raw.copied().unwrap_or_default())
            }
        })*
    };
}
wire_as_is!(u64, bool, ImageType, Option<Timestamp>);

/// Types without a default (their fields are required).
macro_rules! wire_required {
    ($($ty:ty),*) => {
        $(impl Wire for $ty {
            type Raw<'de> = $ty;
            type Part<'r> = $ty;
            fn part(raw: Option<&$ty>, _: &'static str) -> Result<$ty, Refused> {
                raw.copied().ok_or(Refused)
            }
        })*
    };
}
wire_required!(Status, Timestamp);

/// An opaque part's text as the store keeps it: what serializing the
/// parsed value gives (the reference path's text), checked for its kind,
/// depth and size. The empty object and array are their own text.
fn opaque_text<'r>(
    raw: Option<&'r RawValue>,
    empty: &'static str,
) -> Result<Cow<'r, str>, Refused> {
    let Some(raw) = raw else {
        return Ok(Cow::Borrowed(empty));
    };
    if raw.get() == empty {
        return Ok(Cow::Borrowed(empty));
    }
    if empty == "{}" && is_flat_canonical(raw.get()) {
        return within_limit(raw.get()).map(Cow::Borrowed);
    }
    let value: Value = serde_json::from_str(raw.get()).map_err(|_| Refused)?;
    let right_kind = match &value {
        Value::Object(_) => empty == "{}",
        Value::Array(_) => empty == "[]",
        _ => false,
    };
    // Near the depth limit the reference path words the error (it counts
    // the record's own level too).
    if !right_kind || json_depth(&value) > MAX_OPAQUE_DEPTH {
        return Err(Refused);
    }
    let text = serde_json::to_string(&value).map_err(|_| Refused)?;
    within_limit(&text)?;
    Ok(Cow::Owned(text))
}

/// Whether `text` is an object already written as the reference path
/// writes it (`serde_json::to_string` of its parsed value): one level of
/// distinct keys, each value a string, a plain integer, `true`, `false` or
/// `null`, no escapes, no whitespace. Most opaque parts are such objects,
/// and taking their text as it is spares a `Value` built and written out
/// again (a tenth of a bulk load). Anything else is not judged here.
fn is_flat_canonical(text: &str) -> bool {
    struct Flat;
    impl<'de> Visitor<'de> for Flat {
        /// The length of the object written out plainly; `None` when a
        /// part of it is not plain.
        type Value = Option<usize>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<usize>, A::Error> {
            // Up to this many keys are compared pairwise; more go the long way.
            let mut keys = [""; 16];
            let mut n = 0;
            let mut len = "{}".len();
            while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                // A key with escapes is not borrowed.
                let Cow::Borrowed(key) = key else {
                    return Ok(None);
                };
                let value: &RawValue = map.next_value()?;
                let seen = keys.get(..n).unwrap_or_default();
                if seen.contains(&key) || !is_plain_scalar(value.get()) {
                    return Ok(None);
                }
                let Some(slot) = keys.get_mut(n) else {
                    return Ok(None);
                };
                *slot = key;
                n += 1;
                len += usize::from(n > 1) + key.len() + r#""":"#.len() + value.get().len();
            }
            Ok(Some(len))
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    matches!(de.deserialize_map(Flat), Ok(Some(len)) if len == text.len()) && de.end().is_ok()
}

/// A scalar whose text is the same once parsed and written again: a string
/// without escapes, an integer of at most 18 digits with no leading zero
/// (and not `-0`), `true`, `false`, `null`.
fn is_plain_scalar(text: &str) -> bool {
    let bytes = text.as_bytes();
    match bytes {
        [b'"', inner @ .., b'"'] => !inner.contains(&b'\\'),
        b"true" | b"false" | b"null" | b"0" => true,
        _ => {
            let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
            matches!(digits.first(), Some(b'1'..=b'9'))
                && digits.len() <= 18
                && digits.iter().all(u8::is_ascii_digit)
        }
    }
}

impl Wire for Map<String, Value> {
    type Raw<'de> = &'de RawValue;
    type Part<'r> = Cow<'r, str>;
    fn part<'r>(raw: Option<&'r &RawValue>, _: &'static str) -> Result<Cow<'r, str>, Refused> {
        opaque_text(raw.copied(), "{}")
    }
}

impl Wire for Vec<Value> {
    type Raw<'de> = &'de RawValue;
    type Part<'r> = Cow<'r, str>;
    fn part<'r>(raw: Option<&'r &RawValue>, _: &'static str) -> Result<Cow<'r, str>, Refused> {
        opaque_text(raw.copied(), "[]")
    }
}

impl Wire for Vec<Member> {
    type Raw<'de> = Vec<RawMember<'de>>;
    type Part<'r> = Vec<(&'r str, MemberStatus)>;
    /// One entry per destination project (SEMANTICS §1).
    fn part<'r>(
        raw: Option<&'r Vec<RawMember<'_>>>,
        _: &'static str,
    ) -> Result<Self::Part<'r>, Refused> {
        let members: Vec<(&str, MemberStatus)> = raw
            .map(|ms| {
                ms.iter()
                    .map(|m| (&*m.dest_project_id.0, m.status))
                    .collect()
            })
            .unwrap_or_default();
        for (i, (dest, _)) in members.iter().enumerate() {
            if members.iter().take(i).any(|(d, _)| d == dest) {
                return Err(Refused);
            }
        }
        Ok(members)
    }
}

/// A checked field of a [`Record`] as the store takes it, borrowed from the
/// record and what checking it produced: the same part the fast path makes
/// of the value sent as JSON. Large upserts build column blocks from these.
pub(crate) trait PartOf: Wire + CheckValue {
    fn part_of<'r>(value: &'r Self, checked: &'r <Self as CheckValue>::Checked) -> Self::Part<'r>;
}

impl PartOf for String {
    fn part_of<'r>(value: &'r String, _: &()) -> &'r str {
        value
    }
}

impl PartOf for Option<String> {
    fn part_of<'r>(value: &'r Option<String>, _: &()) -> Option<&'r str> {
        value.as_deref()
    }
}

macro_rules! part_as_is {
    ($($ty:ty),*) => {
        $(impl PartOf for $ty {
            fn part_of(value: &$ty, _: &()) -> $ty {
                *value
            }
        })*
    };
}
part_as_is!(u64, bool, ImageType, Option<Timestamp>, Status, Timestamp);

/// Opaque parts: the text checking wrote.
macro_rules! part_opaque {
    ($($ty:ty),*) => {
        $(impl PartOf for $ty {
            fn part_of<'r>(_: &'r $ty, checked: &'r String) -> Cow<'r, str> {
                Cow::Borrowed(checked)
            }
        })*
    };
}
part_opaque!(Map<String, Value>, Vec<Value>);

impl PartOf for Vec<Member> {
    fn part_of<'r>(value: &'r Vec<Member>, _: &()) -> Vec<(&'r str, MemberStatus)> {
        value
            .iter()
            .map(|m| (m.dest_project_id.as_str(), m.status))
            .collect()
    }
}

/// The `default` argument of a field's presence: its literal, or none.
macro_rules! default_text {
    (required) => {
        ""
    };
    (default) => {
        ""
    };
    ($literal:literal) => {
        $literal
    };
}

/// A required field that is absent is refused.
macro_rules! present {
    ($raw:expr, required) => {
        match $raw {
            Some(v) => Some(v),
            None => return Err(Refused),
        }
    };
    ($raw:expr, $other:tt) => {
        $raw
    };
}

macro_rules! define_wire_record {
    ($( {
        $variant:ident, $field:ident, $ty:ty, $presence:tt, $column:ident,
        [$($bitmap:ident)?], [$($order:ident)?], [$($substring:ident)?], [$($index:ident)?],
        [$($v1:literal)?], [$($v3:literal)?], [$($doc:literal)*]
    } )*) => {
        /// A record as sent, each field borrowed where it can be; `None`
        /// for an absent field.
        pub(crate) struct RawRecord<'de> {
            $( $field: Option<<$ty as Wire>::Raw<'de>>, )*
        }

        /// A record's fields as the store takes them, borrowed from a
        /// [`RawRecord`], every rule checked.
        pub(crate) struct Parts<'r> {
            $( pub(crate) $field: <$ty as Wire>::Part<'r>, )*
        }

        impl<'de> Deserialize<'de> for RawRecord<'de> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct RecordVisitor;
                impl<'de> Visitor<'de> for RecordVisitor {
                    type Value = RawRecord<'de>;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a record object")
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawRecord<'de>, A::Error> {
                        let mut record = RawRecord { $( $field: None, )* };
                        while let Some(key) = map.next_key::<Text<'de>>()? {
                            match &*key.0 {
                                $( stringify!($field) => {
                                    // A repeated key: the reference path decides.
                                    if record.$field.is_some() {
                                        return Err(de::Error::custom("repeated key"));
                                    }
                                    record.$field = Some(map.next_value()?);
                                } )*
                                _ => return Err(de::Error::custom("unknown field")),
                            }
                        }
                        Ok(record)
                    }
                }
                d.deserialize_map(RecordVisitor)
            }
        }

        impl<'r> Parts<'r> {
            /// The parts of a record that passed the batch checks.
            pub(crate) fn of(record: &'r Record, checked: &'r Checked) -> Parts<'r> {
                Parts {
                    $( $field: <$ty as PartOf>::part_of(&record.$field, &checked.$field), )*
                }
            }
        }

        impl RawRecord<'_> {
            /// The fields as the store takes them, if every rule holds.
            pub(crate) fn parts(&self) -> Result<Parts<'_>, Refused> {
                let parts = Parts {
                    $( $field: <$ty as Wire>::part(
                        present!(self.$field.as_ref(), $presence),
                        default_text!($presence),
                    )?, )*
                };
                if parts.id.is_empty() || parts.id.len() > MAX_ID_BYTES {
                    return Err(Refused);
                }
                Ok(parts)
            }
        }
    };
}

crate::schema::record_fields!(define_wire_record);

/// Decodes one JSON record on the fast path. The line's UTF-8 is checked
/// once, whole: decoding from bytes would check each string on its own,
/// which cost a tenth of a bulk load (most strings are short).
pub(crate) fn raw_record(json: &[u8]) -> Result<RawRecord<'_>, Refused> {
    let text = std::str::from_utf8(json).map_err(|_| Refused)?;
    serde_json::from_str(text).map_err(|_| Refused)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Pieces of objects: plain and awkward keys, scalars in and out of
    /// their written form, nesting, whitespace.
    fn object_text() -> impl Strategy<Value = String> {
        let pick = |texts: &[&'static str]| prop::sample::select(texts.to_vec());
        // Mostly plain pieces, so that many objects are taken whole.
        let key = prop_oneof![
            8 => pick(&[r#""a""#, r#""b""#, r#""ab""#, r#""é""#, r#""""#, r#""c d""#]),
            1 => pick(&[r#""a\u0062""#, r#""\"""#, r#""\n""#]),
        ];
        let value = prop_oneof![
            8 => pick(&[r#""x""#, r#""""#, r#""é""#, "0", "7", "-12", "123456789012345678",
                        "true", "false", "null"]),
            1 => pick(&[r#""\n""#, r#""\u00e9""#, "-0", "007", "1.0", "1e2", "-", "+1",
                        "1234567890123456789012", "{}", "[]", r#"{"a":1}"#, "[1]"]),
        ];
        let space = prop_oneof![9 => Just(""), 1 => pick(&[" ", "\n", "\t"])];
        let pairs = prop::collection::vec((key, value, space.clone()), 0..20);
        (pairs, space).prop_map(|(pairs, tail)| {
            let body: Vec<String> = pairs
                .iter()
                .map(|(k, v, s)| format!("{s}{k}:{s}{v}"))
                .collect();
            format!("{{{}{tail}}}", body.join(","))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Whatever is taken as it is, is what the reference path writes.
        #[test]
        fn a_flat_canonical_object_is_its_own_serialization(text in object_text()) {
            if is_flat_canonical(&text) {
                let value: Value = serde_json::from_str(&text).unwrap();
                prop_assert_eq!(serde_json::to_string(&value).unwrap(), text);
            }
        }
    }

    #[test]
    fn plain_objects_are_taken_and_the_rest_is_not() {
        for plain in [
            r#"{"private_ip":"10.244.104.4","eip":""}"#,
            r#"{"a":true,"b":null,"c":-12,"d":0,"é":"ü"}"#,
        ] {
            assert!(is_flat_canonical(plain), "{plain}");
        }
        for other in [
            r#"{"a":1,"a":2}"#,
            r#"{"a": 1}"#,
            r#"{"a":-0}"#,
            r#"{"a":1.0}"#,
            r#"{"a":"\n"}"#,
            r#"{"a\u0062":1}"#,
            r#"{"a":{}}"#,
            r#"{"a":1} "#,
            r#"[1]"#,
            r#"{"a":1}{"#,
        ] {
            assert!(!is_flat_canonical(other), "{other}");
        }
    }
}
