//! The time zone policies read the local time in (`context.local`): the stack's `PolicyTimeZone`,
//! an IANA name, resolved once with the bundled tz database (Lambda's runtime has none).

use chrono::{DateTime, Utc};

/// The local time of an instant, as `context.local` carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalTime {
    pub weekday: &'static str,
    pub hour: u8,
    pub minute: u8,
}

/// A named time zone; `UTC` by default.
#[derive(Clone, Debug)]
pub struct PolicyTimeZone {
    name: String,
    zone: jiff::tz::TimeZone,
}

impl Default for PolicyTimeZone {
    fn default() -> Self {
        Self { name: "UTC".to_owned(), zone: jiff::tz::TimeZone::UTC }
    }
}

impl PartialEq for PolicyTimeZone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl PolicyTimeZone {
    /// An IANA time zone name (`Europe/Berlin`, `America/New_York`, `UTC`); anything else is an
    /// error naming it.
    pub fn named(name: &str) -> Result<Self, crate::domain::errors::SettingError> {
        let name = name.trim();
        let zone = jiff::tz::db()
            .get(name)
            .map_err(|_| crate::domain::errors::SettingError::UnknownTimeZone(name.to_owned()))?;
        Ok(Self { name: name.to_owned(), zone })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `now` in this zone. An instant outside what the zone library represents (years beyond
    /// ±9999) reads as UTC.
    pub fn local(&self, now: DateTime<Utc>) -> LocalTime {
        let zoned = jiff::Timestamp::from_second(now.timestamp()).map(|t| t.to_zoned(self.zone.clone()));
        let (weekday, hour, minute) = match &zoned {
            Ok(z) => (z.weekday().to_monday_one_offset(), z.hour(), z.minute()),
            Err(_) => {
                use chrono::{Datelike, Timelike};
                let n = now.weekday().number_from_monday();
                (
                    i8::try_from(n).unwrap_or(1),
                    i8::try_from(now.hour()).unwrap_or(0),
                    i8::try_from(now.minute()).unwrap_or(0),
                )
            }
        };
        const DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
        LocalTime {
            weekday: DAYS[usize::try_from(weekday - 1).unwrap_or(0).min(6)],
            hour: u8::try_from(hour).unwrap_or(0),
            minute: u8::try_from(minute).unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn local_time_follows_the_zone_and_its_daylight_saving() {
        let berlin = PolicyTimeZone::named("Europe/Berlin").unwrap();
        // Winter: UTC+1.
        assert_eq!(berlin.local(at("2026-12-02T09:30:00Z")), LocalTime { weekday: "Wednesday", hour: 10, minute: 30 });
        // Summer: UTC+2; 23:15 UTC on a Sunday is Monday in Berlin.
        assert_eq!(berlin.local(at("2026-07-05T23:15:00Z")), LocalTime { weekday: "Monday", hour: 1, minute: 15 });
        assert_eq!(
            PolicyTimeZone::default().local(at("2026-12-02T03:00:00Z")),
            LocalTime { weekday: "Wednesday", hour: 3, minute: 0 }
        );
    }

    #[test]
    fn an_unknown_zone_is_refused_naming_it() {
        let err = PolicyTimeZone::named("Mars/Olympus").unwrap_err();
        assert_eq!(err, crate::domain::errors::SettingError::UnknownTimeZone("Mars/Olympus".into()));
        assert!(err.to_string().contains("Mars/Olympus"), "{err}");
    }
}
