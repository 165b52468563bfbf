//! How config values are written: durations as people write them (`"250ms"`, `"30s"`,
//! `"1h 30m"`), and unset values as an absent key (an empty string, as older configs wrote
//! them, also means unset).

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// `Duration` as a humantime string.
pub mod duration {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `"250ms"`, `"30s"`, `"5m"`, `"1h 30m"`, `"7d"`; `"0"` is zero.
pub fn parse(text: &str) -> Result<Duration, String> {
    if text.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("`{text}` is not a duration ({e}); write e.g. \"250ms\", \"30s\", \"5m\", \"1h\"")
    })
}

/// `Option<T>` where an absent key or an empty string is `None`, anything else parses as `T`.
pub mod optional {
    use super::*;
    use std::str::FromStr;

    pub fn serialize<T: serde::Serialize, S: Serializer>(
        v: &Option<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(v, s)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
        D: Deserializer<'de>,
    {
        let text = Option::<String>::deserialize(d)?;
        match text.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(t) => t
                .parse()
                .map(Some)
                .map_err(|e| serde::de::Error::custom(format!("`{t}`: {e}"))),
        }
    }
}

/// Whole milliseconds, saturating (for the store and metrics, which count in ms).
pub fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert!(parse("soon")
            .unwrap_err()
            .contains("`soon` is not a duration"));
    }
}
