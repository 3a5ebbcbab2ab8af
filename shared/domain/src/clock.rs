//! Reading the wall clock, in one place. The domain never reads it: every
//! function that depends on time takes `now` as an argument, so tests fix
//! it; binaries read it here, once per event.

/// Epoch seconds now (0 if the clock is before 1970).
pub fn now_seconds() -> i64 {
    now_millis() / 1000
}

/// Epoch milliseconds now (0 if the clock is before 1970).
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
