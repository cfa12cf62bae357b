//! Timestamps: the strict grammar of SEMANTICS §1/§9, kept as UTC microseconds.

// Input reaches this module: no indexing that could panic on it.
#![cfg_attr(not(test), warn(clippy::indexing_slicing))]

use std::fmt;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time in UTC, kept to the microsecond.
///
/// Parsed from `YYYY-MM-DDTHH:MM:SS`, optionally followed by a fraction of
/// 1 to 9 digits and optionally by `Z` or `±HH:MM` (no zone means UTC); digits
/// past the microsecond are truncated. Always written back as
/// `YYYY-MM-DDTHH:MM:SS.ffffff` in UTC. The year after conversion to UTC must
/// lie in 0001..=9999.
///
/// ```
/// use backdex::Timestamp;
/// let t = Timestamp::parse("2020-02-21T07:00:54.0651359+08:00").unwrap();
/// assert_eq!(t.to_string(), "2020-02-20T23:00:54.065135");
/// assert!(Timestamp::parse("2020-02-21 07:00:54").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Why a timestamp did not parse; the text says what the grammar expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampError(pub(crate) &'static str);

impl fmt::Display for TimestampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for TimestampError {}

const GRAMMAR: &str = "expected YYYY-MM-DDTHH:MM:SS[.fraction][Z|±HH:MM]";

impl Timestamp {
    /// The smallest timestamp: 0001-01-01T00:00:00.000000.
    pub const MIN: Timestamp = Timestamp(-62_135_596_800_000_000);
    /// The largest timestamp: 9999-12-31T23:59:59.999999.
    pub const MAX: Timestamp = Timestamp(253_402_300_799_999_999);

    /// Parses the strict grammar described on the type.
    ///
    /// # Errors
    ///
    /// A [`TimestampError`] saying which part of the text is off: the shape,
    /// the fraction, the zone offset, a field out of range, a date that does
    /// not exist, or a year outside 0001..=9999 after conversion to UTC.
    pub fn parse(text: &str) -> Result<Timestamp, TimestampError> {
        let Some((
            [y1, y2, y3, y4, b'-', mo1, mo2, b'-', d1, d2, b'T', h1, h2, b':', mi1, mi2, b':', s1, s2],
            mut rest,
        )) = text.as_bytes().split_first_chunk::<19>()
        else {
            return Err(TimestampError(GRAMMAR));
        };
        let fields = [y1, y2, y3, y4, mo1, mo2, d1, d2, h1, h2, mi1, mi2, s1, s2];
        if !fields.iter().all(|c| c.is_ascii_digit()) {
            return Err(TimestampError(GRAMMAR));
        }
        let year = digits(&[*y1, *y2, *y3, *y4]) as i32;
        let (month, day) = (digits(&[*mo1, *mo2]), digits(&[*d1, *d2]));
        let (hour, minute, second) = (
            digits(&[*h1, *h2]),
            digits(&[*mi1, *mi2]),
            digits(&[*s1, *s2]),
        );

        let mut micros = 0u32;
        if let Some((&b'.', tail)) = rest.split_first() {
            let n = tail.iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 || n > 9 {
                return Err(TimestampError(
                    "the fraction of a second must have 1 to 9 digits",
                ));
            }
            // Keep six digits, truncating the rest, padding short fractions.
            for i in 0..6 {
                micros = micros * 10
                    + tail
                        .get(i)
                        .filter(|_| i < n)
                        .map_or(0, |c| u32::from(c - b'0'));
            }
            rest = tail.get(n..).unwrap_or_default();
        }

        let offset_minutes: i64 = match rest {
            [] | [b'Z'] => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2]
                if [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()) =>
            {
                let (oh, om) = (digits(&[*h1, *h2]), digits(&[*m1, *m2]));
                if oh > 23 || om > 59 {
                    return Err(TimestampError("the zone offset must be within ±23:59"));
                }
                let m = i64::from(oh * 60 + om);
                if *sign == b'-' {
                    -m
                } else {
                    m
                }
            }
            _ => return Err(TimestampError(GRAMMAR)),
        };

        if hour > 23 || minute > 59 || second > 59 {
            return Err(TimestampError("hour, minute or second out of range"));
        }
        let date = NaiveDate::from_ymd_opt(year, month, day)
            .ok_or(TimestampError("no such calendar date"))?;
        let time = NaiveTime::from_hms_micro_opt(hour, minute, second, micros)
            .ok_or(TimestampError("hour, minute or second out of range"))?;
        let local = NaiveDateTime::new(date, time).and_utc().timestamp_micros();
        let utc = local - offset_minutes * 60_000_000;
        if !(Self::MIN.0..=Self::MAX.0).contains(&utc) {
            return Err(TimestampError("the year must be within 0001..=9999 in UTC"));
        }
        Ok(Timestamp(utc))
    }

    /// Microseconds since 1970-01-01T00:00:00 UTC.
    pub fn as_micros(self) -> i64 {
        self.0
    }

    /// The timestamp `micros` microseconds after the epoch, if it lies in
    /// 0001..=9999.
    pub fn from_micros(micros: i64) -> Option<Timestamp> {
        (Self::MIN.0..=Self::MAX.0)
            .contains(&micros)
            .then_some(Timestamp(micros))
    }
}

fn digits(b: &[u8]) -> u32 {
    b.iter().fold(0, |acc, c| acc * 10 + u32::from(c - b'0'))
}

/// The proleptic Gregorian date of a day count from 1970-01-01 (Howard
/// Hinnant's `civil_from_days`): rendering many timestamps per page should
/// not go through a format-string interpreter.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// "00" to "99", two bytes each.
const DIGIT_PAIRS: &[u8; 200] = b"\
00010203040506070809101112131415161718192021222324252627282930313233343536373839\
40414243444546474849505152535455565758596061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

impl Timestamp {
    /// The text `YYYY-MM-DDTHH:MM:SS.ffffff`, as bytes.
    pub(crate) fn text(self) -> [u8; 26] {
        let secs = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000) as u32;
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400) as u32;
        let mut out = *b"0000-00-00T00:00:00.000000";
        // Two digits at a time from a table (`put2` writes `v`'s last
        // two): every rendered row writes four timestamps.
        let mut put2 = |at: usize, v: u32| {
            let pair = 2 * (v % 100) as usize;
            if let (Some(slot), Some(digits)) =
                (out.get_mut(at..at + 2), DIGIT_PAIRS.get(pair..pair + 2))
            {
                slot.copy_from_slice(digits);
            }
        };
        let year = year.clamp(0, 9999) as u32;
        put2(0, year / 100);
        put2(2, year);
        put2(5, month);
        put2(8, day);
        put2(11, sod / 3600);
        put2(14, sod / 60 % 60);
        put2(17, sod % 60);
        put2(20, micros / 10_000);
        put2(22, micros / 100);
        put2(24, micros);
        out
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.text();
        // Only ASCII digits and separators were written.
        f.write_str(std::str::from_utf8(&text).unwrap_or("0000-00-00T00:00:00.000000"))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> String {
        Timestamp::parse(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .to_string()
    }

    #[test]
    fn accepts_the_grammar() {
        assert_eq!(ok("2017-04-15T04:25:38"), "2017-04-15T04:25:38.000000");
        assert_eq!(ok("2017-04-15T04:25:38Z"), "2017-04-15T04:25:38.000000");
        assert_eq!(ok("2017-04-15T04:25:38.1"), "2017-04-15T04:25:38.100000");
        assert_eq!(
            ok("2017-04-15T04:25:38.123456789"),
            "2017-04-15T04:25:38.123456"
        );
        assert_eq!(
            ok("2017-04-15T04:25:38.999999999Z"),
            "2017-04-15T04:25:38.999999"
        );
        assert_eq!(
            ok("2017-04-15T00:25:38+01:30"),
            "2017-04-14T22:55:38.000000"
        );
        assert_eq!(
            ok("2017-12-31T23:00:00-02:00"),
            "2018-01-01T01:00:00.000000"
        );
        assert_eq!(ok("2016-02-29T00:00:00"), "2016-02-29T00:00:00.000000");
        assert_eq!(ok("0001-01-01T00:00:00"), "0001-01-01T00:00:00.000000");
        assert_eq!(
            ok("9999-12-31T23:59:59.999999"),
            "9999-12-31T23:59:59.999999"
        );
        assert_eq!(
            ok("0000-12-31T23:30:00-01:00"),
            "0001-01-01T00:30:00.000000"
        );
        assert_eq!(ok("1969-12-31T23:59:59.5"), "1969-12-31T23:59:59.500000");
    }

    #[test]
    fn rejects_what_lenient_parsers_accept() {
        for bad in [
            "",
            "2017-04-15",
            "2017-04-15t04:25:38",
            "2017-04-15 04:25:38",
            "2017-04-15T04:25:38z",
            "2017-04-15T04:25:38.",
            "2017-04-15T04:25:38.1234567890",
            "2017-04-15T04:25:38+0100",
            "2017-04-15T04:25:38+01",
            "2017-04-15T04:25:38+24:00",
            "2017-04-15T04:25:38+01:60",
            "2017-04-15T04:25:60",
            "2017-04-15T24:00:00",
            "2017-04-15T04:60:00",
            "2017-02-29T00:00:00",
            "2017-13-01T00:00:00",
            "2017-00-01T00:00:00",
            "2017-04-00T00:00:00",
            "0000-01-01T00:00:00",
            "9999-12-31T23:59:59-00:01",
            "+2017-04-15T04:25:38",
            "2017-04-15T04:25:38Z ",
            " 2017-04-15T04:25:38",
            "２０17-04-15T04:25:38",
            "2017-04-15T04:25:38ZZ",
            "2017-04-15T04:25:38.12Z+01:00",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    proptest::proptest! {
        /// The hand-written formatter agrees with chrono's over the whole range.
        #[test]
        fn formats_like_chrono(micros in Timestamp::MIN.0..=Timestamp::MAX.0) {
            let t = Timestamp(micros);
            let chrono = chrono::DateTime::from_timestamp_micros(micros).unwrap();
            let expected = chrono.naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
            proptest::prop_assert_eq!(t.to_string(), expected.clone());
            proptest::prop_assert_eq!(Timestamp::parse(&expected), Ok(t));
        }
    }

    #[test]
    fn orders_in_time() {
        let a = Timestamp::parse("2020-01-01T00:00:00+01:00").unwrap();
        let b = Timestamp::parse("2019-12-31T23:30:00").unwrap();
        assert!(a < b);
        assert_eq!(Timestamp::from_micros(a.as_micros()), Some(a));
        assert_eq!(Timestamp::from_micros(Timestamp::MAX.as_micros() + 1), None);
    }
}
