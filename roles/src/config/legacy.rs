//! Keys of earlier configs, still accepted: a duration key with its unit in the name and an
//! integer value (`poll_interval_ms = 250`) is read as the new key (`poll_interval = "250ms"`).
//! Giving both is an error naming both.

use toml::Value;

/// (section, old key, new key, unit of the old value).
const RENAMED: &[(&str, &str, &str, &str)] = &[
    ("cluster", "lease_ttl_secs", "lease_ttl", "s"),
    ("cluster", "call_timeout_ms", "call_timeout", "ms"),
    ("cluster", "lock_ttl_ms", "lock_ttl", "ms"),
    ("supervisor", "ready_timeout_secs", "ready_timeout", "s"),
    ("supervisor", "drain_timeout_secs", "drain_timeout", "s"),
    (
        "supervisor",
        "http_close_grace_ms",
        "http_close_grace",
        "ms",
    ),
    (
        "supervisor",
        "restart_backoff_initial_ms",
        "restart_backoff_initial",
        "ms",
    ),
    (
        "supervisor",
        "restart_backoff_max_ms",
        "restart_backoff_max",
        "ms",
    ),
    ("dispatcher", "poll_interval_ms", "poll_interval", "ms"),
    (
        "dispatcher",
        "delivery_timeout_ms",
        "delivery_timeout",
        "ms",
    ),
    ("dispatcher", "resync_interval_secs", "resync_interval", "s"),
    ("executor", "kill_grace_secs", "kill_grace", "s"),
    ("executor", "output_linger_ms", "output_linger", "ms"),
    ("executor", "heartbeat_ms", "heartbeat", "ms"),
    ("monitor", "retention_days", "retention", "d"),
    ("monitor", "lost_after_ms", "lost_after", "ms"),
    ("monitor", "check_interval_ms", "check_interval", "ms"),
    ("alarm", "merge_window_secs", "merge_window", "s"),
];

/// Rewrites the old keys of `doc` into the new ones, in place.
pub fn upgrade(doc: &mut Value) -> Result<(), String> {
    for (section, old, new, unit) in RENAMED {
        let Some(table) = doc.get_mut(*section).and_then(Value::as_table_mut) else {
            continue;
        };
        let Some(value) = table.remove(*old) else {
            continue;
        };
        if table.contains_key(*new) {
            return Err(format!(
                "`{section}.{old}` and `{section}.{new}` both given: keep `{new}` (a duration such as \"30s\")"
            ));
        }
        let n = value.as_integer().filter(|n| *n >= 0).ok_or_else(|| {
            format!("`{section}.{old}` must be a whole number ({unit}); or write `{new} = \"...\"`")
        })?;
        table.insert((*new).to_string(), Value::String(format!("{n}{unit}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_keys_become_durations_and_both_is_an_error() {
        let mut doc: Value =
            toml::from_str("[dispatcher]\npoll_interval_ms = 100\n").expect("toml");
        upgrade(&mut doc).expect("upgrade");
        assert_eq!(doc["dispatcher"]["poll_interval"].as_str(), Some("100ms"));
        let mut both: Value =
            toml::from_str("[dispatcher]\npoll_interval_ms = 100\npoll_interval = \"1s\"\n")
                .expect("toml");
        assert!(upgrade(&mut both).unwrap_err().contains("both given"));
    }
}
